# EfficientNet-B2 + the study's head (GAP -> FC 256 -> ReLU -> FC 1) trained with the Focal Hinge
# Loss on C-NMC 2019 at 224x224; the base of the efficientnet-b2_<loss>_cnmc.py configs.
_base_ = [
    '../_base_/datasets/cnmc.py',
    '../_base_/schedules/cnmc_adam.py',
    '../_base_/cls_runtime.py',
]

model = dict(
    type='ImageClassifier',
    # ImageNet statistics, as mmpretrain's efficientnet-b2_8xb32_in1k (the weights below)
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='EfficientNet',
        arch='b2',
        # ImageNet-1k weights of the mmpretrain model zoo (converted from TensorFlow)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/efficientnet/'
            'efficientnet-b2_3rdparty_8xb32_in1k_20220119-ea374a30.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='BinaryClsHead',
        in_channels=1408,
        hidden_channels=256,
        loss=dict(type='FocalHingeLoss', gamma=2.0)))
