# A detector small enough to train on a laptop CPU in minutes, from scratch on BCCD at 320x240:
# FCOS (Tian et al., ICCV 2019) with a ResNet-18 backbone, a light FPN and GroupNorm heads (GN
# trains from scratch with small batches). No pretrained weights: it runs offline. The base of
# the package's CPU detector (configs/gfl/gfl_r18-w32_fpn_320_24e_bccd_cpu.py, the README's main
# job, more accurate and 2x faster: benchmarks/bccd_cpu_budget.md) and the small detector of
# the test suite.
_base_ = [
    '../_base_/datasets/bccd_detection.py', '../_base_/det_runtime.py'
]
img_scale = (320, 240)
model = dict(
    type='FCOS',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='ResNet', depth=18, num_stages=4, out_indices=(1, 2, 3), frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch',
        init_cfg=None),
    neck=dict(
        type='FPN', in_channels=[128, 256, 512], out_channels=128, start_level=0,
        add_extra_convs='on_output', num_outs=3, relu_before_extra_convs=True),
    bbox_head=dict(
        type='FCOSHead',
        num_classes=3,
        in_channels=128,
        stacked_convs=2,
        feat_channels=128,
        strides=[8, 16, 32],
        regress_ranges=((-1, 48), (48, 96), (96, 1e8)),
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        norm_on_bbox=True,
        centerness_on_reg=True,
        center_sampling=True,
        conv_bias=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    test_cfg=dict(
        nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100))

# lighter augmentation than the dataset base's (no crop, noise or blur), at 320x240
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PhotoMetricDistortion', brightness_delta=32, contrast_range=(0.8, 1.2),
         saturation_range=(0.7, 1.3), hue_delta=10),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=60),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
    clip_grad=dict(max_norm=10, norm_type=2))
default_hooks = dict(checkpoint=dict(interval=max_epochs, save_best=None),
                     logger=dict(interval=8))
# a wall-clock cap for slow machines: stop at the first epoch end after 9 minutes of training
# (fewer epochs there; the checkpoint and the test still happen)
custom_hooks = [dict(type='LatencyHook', warmup=5), dict(type='TimeBudgetHook', budget_s=540),
                dict(type='CountCalibrationHook')]
