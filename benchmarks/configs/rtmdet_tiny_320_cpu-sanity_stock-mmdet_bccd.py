# The CPU sanity run with mmdet's / mmengine's stock pieces (the control): RTMDetSepBNHead +
# DynamicSoftLabelAssigner, DefaultOptimWrapperConstructor, ExpMomentumEMA, YOLOXHSVRandomAug,
# CachedMixUp.
_base_ = ['./rtmdet_tiny_320_cpu-sanity_bccd.py']
model = dict(bbox_head=dict(type='RTMDetSepBNHead'),
             train_cfg=dict(assigner=dict(type='DynamicSoftLabelAssigner')))
optim_wrapper = dict(constructor='DefaultOptimWrapperConstructor')
S = 320
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='CachedMosaic', img_scale=(S, S), pad_val=114.0, max_cached_images=20,
         random_pop=False),
    dict(type='RandomResize', scale=(2 * S, 2 * S), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(S, S)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='Pad', size=(S, S), pad_val=dict(img=(114, 114, 114))),
    dict(type='CachedMixUp', img_scale=(S, S), ratio_range=(1.0, 1.0), max_cached_images=10,
         random_pop=False, pad_val=(114, 114, 114), prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
custom_hooks = [
    dict(type='LatencyHook', warmup=10),
    dict(type='TimeBudgetHook', budget_s=600, lr_schedule='cosine', warmup_iters=50,
         min_lr_ratio=0.05),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True,
         priority=49),
]
