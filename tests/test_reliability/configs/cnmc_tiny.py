# A C-NMC classifier small enough for the CPU tests of resume, distributed runs and
# reproducibility: the cls runtime of every C-NMC config (atomic checkpoints, NonFiniteLossHook,
# ExactResumeHook), a 2-stage SimpleNet with dropout, random augmentations, 32x32 crops.
# The tests write synthetic data (make_synthetic_cnmc) and set data_root.
_base_ = ['../../../configs/_base_/cls_runtime.py']

data_root = 'data/cnmc_tiny/'
img_size = 32
meta_keys = ('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'patient_id', 'file_name')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomRotate', angle=180, prob=0.5),
    dict(type='CropToCell', margin=2),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CropToCell', margin=2),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='PackInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CNMCDataset', data_root=data_root, split='train', folds=(0, ),
                 check_images=True, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CNMCDataset', data_root=data_root, split='prelim_test', test_mode=True,
                 check_images=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='BinaryClassificationMetric')
test_evaluator = val_evaluator

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='SimpleNet', widths=(8, 16), convs_per_stage=1),
    neck=dict(type='GlobalAveragePooling'),
    # dropout: resuming must also restore torch's generator to repeat the same masks
    head=dict(type='BinaryClsHead', in_channels=16, hidden_channels=16, dropout=0.25,
              loss=dict(type='WeightedBCELoss', class_weight=None)))

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
param_scheduler = [dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0, end=4)]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(interval=1),
    # mid-epoch checkpoints (every 4 iterations; 6 per epoch on the tests' 24 cells)
    checkpoint=dict(by_epoch=False, interval=4, save_best=None, max_keep_ckpts=-1))
custom_hooks = []  # no LatencyHook: its timings would differ between identical runs
randomness = dict(seed=0, deterministic=True)
