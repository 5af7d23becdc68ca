# The model of configs/fhl_study/efficientnet-b2_fhl_table2_cnmc.py (Focal Hinge Loss) on the
# patient-wise protocol of cnmc.py (80 % of the training patients train, the others
# validate, the labelled prelim set tests) with ImageNet normalisation: the study's own
# protocol is the first line of the fhl_study config's _base_.
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
