# The model of configs/fhl_study/densenet201_fhl_table2_cnmc.py (Focal Hinge Loss) on the
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
        type='DenseNet',
        arch='201',
        # ImageNet-1k weights of the mmpretrain model zoo (torchvision's, converted)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/densenet/'
            'densenet201_4xb256_in1k_20220426-05cae4ef.pth',
            prefix='backbone')),
    head=dict(in_channels=1920))
