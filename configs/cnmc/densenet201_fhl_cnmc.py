# DenseNet-201 + the study's head (GAP -> FC 256 -> ReLU -> FC 1) trained with the Focal Hinge
# Loss on C-NMC 2019; the base of the densenet201_<loss>_cnmc.py configs.
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
