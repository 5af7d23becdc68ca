# The frozen-EfficientNet recipe on C-NMC 2019: ImageNet EfficientNet-B2 used as a fixed feature
# extractor (no gradient reaches it and its BN statistics stay as pretrained), a GAP -> FC 320
# -> ReLU -> FC 1 head trained with binary cross entropy, 224x224 inputs (the whole 450x450
# frame resized, no cropping), ImageNet normalisation, random rotations of +-45 degrees and
# class-balanced epochs (the dataset base's ClassBalancedOverSampler); otherwise as
# efficientnet-b2_fhl_cnmc.py.
_base_ = './efficientnet-b2_fhl_cnmc.py'

model = dict(
    backbone=dict(norm_eval=True),  # keep the pretrained BN statistics (Keras' trainable=False)
    head=dict(hidden_channels=320, freeze_backbone=True,
              loss=dict(_delete_=True, type='WeightedBCELoss', class_weight=None)))

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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# only the head learns: a larger learning rate than the fine-tuning configs
optim_wrapper = dict(optimizer=dict(lr=1e-4))
