# DenseNet-201 + the study's head (GAP -> FC 256 -> ReLU -> FC 1) trained with the Focal Hinge
# Loss on C-NMC 2019; the base of the densenet201_<loss>_cnmc.py configs.
_base_ = [
    '../_base_/datasets/cnmc.py',
    '../_base_/schedules/cnmc_adam.py',
    '../_base_/cls_runtime.py',
]

model = dict(
    type='ImageClassifier',
    # ImageNet statistics (the pretrained weights'), BGR images -> RGB
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='DenseNet',
        arch='201',
        # ImageNet-1k weights of the mmpretrain model zoo (torchvision's, converted)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/densenet/'
            'densenet201_4xb256_in1k_20220426-05cae4ef.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='BinaryClsHead',
        in_channels=1920,
        hidden_channels=256,
        loss=dict(type='FocalHingeLoss', gamma=2.0)))
