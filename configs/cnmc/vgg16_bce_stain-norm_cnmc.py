# Backbone comparison on C-NMC 2019: VGG-16 (no BN) from ImageNet, the study's head (GAP -> FC
# 256 -> ReLU -> FC 1), binary cross entropy, Adam, batch 32, patient-wise split and Reinhard
# stain normalisation.
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
        type='VGG',
        depth=16,
        num_classes=-1,  # features only: the last conv stage, (N, 512, H/32, W/32)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/vgg/'
            'vgg16_batch256_imagenet_20210208-db26f1a5.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='BinaryClsHead',
        in_channels=512,
        hidden_channels=256,
        loss=dict(type='WeightedBCELoss', class_weight=None)))
