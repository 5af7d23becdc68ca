# The frozen-EfficientNet report, attempt 2: attempt 1 with a 300x300 centre crop before the
# resize to 224x224 (training and validation) and random rotation in [-45, 45] degrees during
# training; 500 epochs.
_base_ = './efficientnet-b2_frozen_fc320_500e_attempt1_cnmc.py'

meta_keys = {{_base_.meta_keys}}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomRotate', angle=45, prob=1.0),
    dict(type='CenterCrop', crop_size=300),
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CenterCrop', crop_size=300),
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs', meta_keys=meta_keys),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
