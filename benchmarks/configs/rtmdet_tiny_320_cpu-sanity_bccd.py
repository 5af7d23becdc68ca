# CPU sanity run of the RTMDet budget recipe (issue 8) at 320 px, batch 8, one loader worker,
# 600 s: does the from-scratch recipe learn on the 2-core developer machine? (benchmarks/README.md)
#   python benchmarks/bccd_budget.py benchmarks/configs/rtmdet_tiny_320_cpu-sanity_bccd.py \
#       --budget 600 --data-root data/bccd
# The control with mmdet's / mmengine's stock pieces adds (to the same command):
#   --work-dir work_dirs/sanity_stock --cfg-options model.bbox_head.type=RTMDetSepBNHead \
#   model.train_cfg.assigner.type=DynamicSoftLabelAssigner \
#   optim_wrapper.constructor=DefaultOptimWrapperConstructor \
#   train_dataloader.dataset.dataset.pipeline.5.type=YOLOXHSVRandomAug \
#   train_dataloader.dataset.dataset.pipeline.8.type=CachedMixUp \
#   custom_hooks.2.ema_type=ExpMomentumEMA
_base_ = ['../../configs/rtmdet/rtmdet_tiny_640_240s-budget_bccd.py']
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
