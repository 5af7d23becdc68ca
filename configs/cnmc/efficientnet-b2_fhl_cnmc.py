# EfficientNet-B2 + the study's head (GAP -> FC 256 -> ReLU -> FC 1) trained with the Focal Hinge
# Loss on C-NMC 2019 at 224x224; the base of the efficientnet-b2_<loss>_cnmc.py configs.
_base_ = [
    '../_base_/datasets/cnmc.py',
    '../_base_/schedules/cnmc_adam.py',
    '../_base_/cls_runtime.py',
    '../_base_/models/binary_cls.py',
]

model = dict(
    backbone=dict(
        type='EfficientNet',
        arch='b2',
        # ImageNet-1k weights of the mmpretrain model zoo (converted from TensorFlow)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/efficientnet/'
            'efficientnet-b2_3rdparty_8xb32_in1k_20220119-ea374a30.pth',
            prefix='backbone')),
    head=dict(in_channels=1408))
