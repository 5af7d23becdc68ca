# The Focal Hinge Loss study, Table 2, EfficientNetB2 / Focal Hinge Loss: EfficientNet-B2 + the
# study's head (GAP -> FC 256 -> ReLU -> FC 1) on its protocol at 224x224 (the paper gives no
# input size). The base of the efficientnet-b2_<loss>_table2 configs.
_base_ = './densenet201_fhl_table2_cnmc.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='EfficientNet',
        arch='b2',
        # ImageNet-1k weights of the mmpretrain model zoo (converted from TensorFlow)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/efficientnet/'
            'efficientnet-b2_3rdparty_8xb32_in1k_20220119-ea374a30.pth',
            prefix='backbone')),
    head=dict(in_channels=1408))
