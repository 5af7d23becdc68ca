# The wall-clock budget recipe for BCCD detection from scratch, everything but the
# model: native 640 px, mosaic + mix-up + HSV + flips + scale jitter, the lr on the wall clock
# (TimeBudgetHook: warm-up, cosine over the budget, stop at the first epoch boundary past it),
# EMA, fused AdamW over 2 parameter groups, many loader workers, one validation at the end.
# Used by configs/rtmdet/rtmdet_tiny_640_240s-budget_bccd.py and
# configs/sparse_rcnn/sparse-rcnn_cspnext-t_fpn_100p_640_240s-budget_bccd.py (see their headers).
_base_ = ['./datasets/bccd_detection.py', './det_runtime.py']

budget_s = 240
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='CachedMosaic', img_scale=(640, 640), pad_val=114.0, max_cached_images=20,
         random_pop=False),
    dict(type='RandomResize', scale=(1280, 1280), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(640, 640)),
    dict(type='FastYOLOXHSVRandomAug'),  # mmdet's YOLOXHSVRandomAug, one lookup table
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='Pad', size=(640, 640), pad_val=dict(img=(114, 114, 114))),
    # mmdet's CachedMixUp in uint8 (no float64 copies): the same output, 2x faster
    dict(type='FastCachedMixUp', img_scale=(640, 640), ratio_range=(1.0, 1.0), max_cached_images=10,
         random_pop=False, pad_val=(114, 114, 114), prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(640, 640), keep_ratio=True),  # 640x480: BCCD's own size
    dict(type='Pad', size=(640, 640), pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=32, num_workers=12, persistent_workers=True, pin_memory=True,
    batch_sampler=None,
    dataset=dict(_delete_=True, type='RepeatDataset', times=5,
                 dataset=dict(type={{_base_.dataset_type}}, data_root={{_base_.data_root}},
                              ann_file='annotations/train.json',
                              data_prefix=dict(img='JPEGImages/'),
                              filter_cfg=dict(filter_empty_gt=True, min_size=1),
                              pipeline=train_pipeline)))
val_dataloader = dict(num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# epochs are an upper bound: TimeBudgetHook ends training when the budget is spent
max_epochs = 1000
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = []  # TimeBudgetHook owns the lr (warm-up + cosine over wall time)
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='GroupedOptimWrapperConstructor',  # 2 param groups, not 240: fused AdamW
    optimizer=dict(type='AdamW', lr=0.004, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0, bias_decay_mult=0, bypass_duplicate=True))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, save_best=None, save_last=True, max_keep_ckpts=1))
custom_hooks = [
    dict(type='LatencyHook', warmup=10),
    dict(type='TimeBudgetHook', budget_s=budget_s, lr_schedule='cosine', warmup_iters=100,
         min_lr_ratio=0.05),
    dict(type='EMAHook', ema_type='ForeachExpMomentumEMA', momentum=0.0002, update_buffers=True,
         priority=49),
    dict(type='CountCalibrationHook'),
]
env_cfg = dict(cudnn_benchmark=True)
