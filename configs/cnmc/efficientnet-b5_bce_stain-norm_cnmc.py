# Backbone comparison on C-NMC 2019: EfficientNet-B5 from ImageNet, the study's head (GAP -> FC
# 256 -> ReLU -> FC 1), binary cross entropy, Adam, batch 32, patient-wise split and Reinhard
# stain normalisation (at 224x224, like the other backbones; B5's native size is 456).
_base_ = [
    '../_base_/datasets/cnmc_stain-norm.py',
    '../_base_/schedules/cnmc_adam.py',
    '../_base_/cls_runtime.py',
]

model = dict(
    type='ImageClassifier',
    # ImageNet statistics (those of the pretrained weights), BGR images -> RGB
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='EfficientNet',
        arch='b5',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/efficientnet/'
            'efficientnet-b5_3rdparty_8xb32_in1k_20220119-e9814430.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='BinaryClsHead',
        in_channels=2048,
        hidden_channels=256,
        loss=dict(type='WeightedBCELoss', class_weight=None)))
