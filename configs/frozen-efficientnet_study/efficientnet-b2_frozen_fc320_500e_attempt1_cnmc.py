# The frozen-EfficientNet report, attempt 1: ImageNet EfficientNet-B2 frozen (no gradient, BN
# statistics as pretrained), an FC 320 + ReLU + one-output head, binary cross entropy,
# ImageNet normalisation, the whole 450x450 frame resized to 224x224, no augmentation, 500
# epochs. Data balanced by undersampling: 2,397 + 2,397 training and 150 + 150 validation
# cells (4,794 / 300, half ALL), drawn at random (seed 0, disjoint) from the training folds;
# the reported number is the best validation accuracy. Which EfficientNet the report used is
# not said (B2 is ours), nor its optimiser (Adam 1e-4) or batch (32).
_base_ = '../cnmc/efficientnet-b2_frozen_bce_cnmc.py'

meta_keys = {{_base_.meta_keys}}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = train_pipeline
train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    dataset=dict(patient_split=None, pipeline=train_pipeline,
                 class_subsample=dict(num_per_class=2397, offset=0, seed=0)))
val_dataloader = dict(
    dataset=dict(patient_split=None, pipeline=test_pipeline,
                 class_subsample=dict(num_per_class=150, offset=2397, seed=0)))
test_dataloader = val_dataloader
test_evaluator = {{_base_.val_evaluator}}

train_cfg = dict(max_epochs=500, val_interval=5)
default_hooks = dict(checkpoint=dict(interval=5, save_best='binary/accuracy'))
