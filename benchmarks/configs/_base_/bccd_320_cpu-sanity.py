# The budget recipe (configs/_base_/bccd_240s-budget.py) scaled down for sanity runs on a 2-core
# CPU machine: 320 px, batch 8, one loader worker, a 600 s budget (benchmarks/README.md).
_base_ = ['../../../configs/_base_/bccd_240s-budget.py']
S = 320
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='CachedMosaic', img_scale=(S, S), pad_val=114.0, max_cached_images=20,
         random_pop=False),
    dict(type='RandomResize', scale=(2 * S, 2 * S), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(S, S)),
    dict(type='FastYOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='Pad', size=(S, S), pad_val=dict(img=(114, 114, 114))),
    dict(type='FastCachedMixUp', img_scale=(S, S), ratio_range=(1.0, 1.0), max_cached_images=10,
         random_pop=False, pad_val=(114, 114, 114), prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(S, S), keep_ratio=True),
    dict(type='Pad', size=(S, S), pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=8, num_workers=1, persistent_workers=True, pin_memory=False,
                        dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(num_workers=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(num_workers=1, dataset=dict(pipeline=test_pipeline))
custom_hooks = [
    dict(type='LatencyHook', warmup=10),
    dict(type='TimeBudgetHook', budget_s=600, lr_schedule='cosine', warmup_iters=50,
         min_lr_ratio=0.05),
    dict(type='EMAHook', ema_type='ForeachExpMomentumEMA', momentum=0.0002, update_buffers=True,
         priority=49),
]
