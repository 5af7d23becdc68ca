# The frozen-EfficientNet recipe on C-NMC 2019: ImageNet EfficientNet-B2 used as a fixed feature
# extractor (no gradient reaches it and its BN statistics stay as pretrained), a GAP -> FC 320
# -> ReLU -> FC 1 head trained with binary cross entropy, 224x224 inputs (the whole 450x450
# frame resized, no cropping), ImageNet normalisation, random rotations of +-45 degrees and
# class-balanced epochs.
_base_ = [
    '../_base_/datasets/cnmc.py',
    '../_base_/schedules/cnmc_adam.py',
    '../_base_/cls_runtime.py',
]

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='EfficientNet',
        arch='b2',
        norm_eval=True,  # keep the pretrained BN statistics (Keras' trainable=False)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/efficientnet/'
            'efficientnet-b2_3rdparty_8xb32_in1k_20220119-ea374a30.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='BinaryClsHead',
        in_channels=1408,
        hidden_channels=320,
        freeze_backbone=True,
        loss=dict(type='WeightedBCELoss', class_weight=None)))

meta_keys = {{_base_.meta_keys}}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomRotate', angle=45, prob=1.0),
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs', meta_keys=meta_keys),
]
# balanced epochs: the minority class (hem) is oversampled to the size of the majority
train_dataloader = dict(
    sampler=dict(type='ClassBalancedOverSampler', target_ratio=1.0),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# only the head learns: a larger learning rate than the fine-tuning configs
optim_wrapper = dict(optimizer=dict(lr=1e-4))
