# A BCCD detector small enough for the CPU tests of distributed runs and reproducibility: the
# BCCD dataset config and det runtime of every detection config, FCOS with a ResNet-18 of
# quarter width, 160x120 inputs. The tests set the annotation files (real BCCD subsets).
_base_ = ['../../../configs/_base_/datasets/bccd_detection.py',
          '../../../configs/_base_/det_runtime.py']

img_scale = (160, 120)
model = dict(
    type='FCOS',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=18, base_channels=16, num_stages=4, out_indices=(1, 2, 3),
                  frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                  norm_eval=False, style='pytorch', init_cfg=None),
    neck=dict(type='FPN', in_channels=[32, 64, 128], out_channels=32, start_level=0,
              add_extra_convs='on_output', num_outs=3, relu_before_extra_convs=True),
    bbox_head=dict(
        type='FCOSHead', num_classes=3, in_channels=32, stacked_convs=1, feat_channels=32,
        strides=[8, 16, 32], regress_ranges=((-1, 24), (24, 48), (48, 1e8)),
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True), norm_on_bbox=True,
        centerness_on_reg=True, center_sampling=True, conv_bias=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    # keep every box: a model trained for a few iterations scores low
    test_cfg=dict(nms_pre=200, min_bbox_size=0, score_thr=0.0,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=50))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
loader = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(batch_size=2, **loader,
                        dataset=dict(pipeline=train_pipeline, check_images=True))
val_dataloader = dict(**loader, dataset=dict(pipeline=test_pipeline, check_images=True))
test_dataloader = dict(**loader, dataset=dict(pipeline=test_pipeline, check_images=True))

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = []
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3,
                                                         weight_decay=0.05))
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, save_best=None),
                     visualization=dict(draw=False))
custom_hooks = []  # no LatencyHook: its timings would differ between identical runs
randomness = dict(seed=0, deterministic=True)
