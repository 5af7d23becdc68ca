# Issue 8's fast detector: RTMDet-tiny (Lyu et al., 2022) trained FROM SCRATCH on BCCD for a
# fixed wall-clock budget (default 240 s on one GPU), to compare with ultralytics YOLOv8n under
# the same budget (benchmarks/bccd_budget.py). The levers, relative to the study's Sparse R-CNN:
#   - native 640x480 inputs (mmdet's COCO default 1333x800 only costs time on 640x480 smears);
#   - a small BN/SiLU CSPNeXt that trains from scratch with big batches, no pretrained weights;
#   - mosaic + mixup + HSV + scale jitter (cells are many, small and alike: mosaic multiplies
#     the instances per batch), EMA of the weights for the short schedule;
#   - the learning rate follows the WALL CLOCK: TimeBudgetHook warms up, then anneals with a
#     cosine over the budget, and ends training at the first epoch boundary past it;
#   - AMP (pass --amp to tools/train.py), many loader workers, one validation at the end;
#   - the training targets are assigned for the whole batch at once (BatchRTMDetSepBNHead +
#     BatchDynamicSoftLabelAssigner: the stock RTMDet targets and losses, without mmdet's loop
#     over images and over boxes, which dominates the GPU step with 20-80 cells per image);
#   - the loader: mmdet's HSV and mix-up augmentations re-implemented for uint8 images
#     (FastYOLOXHSVRandomAug, FastCachedMixUp: same results, a third less time per sample);
#   - AdamW and the EMA update all tensors with a few multi-tensor kernels
#     (GroupedOptimWrapperConstructor, ForeachExpMomentumEMA: the same updates).
_base_ = ['../_base_/datasets/bccd_detection.py', '../_base_/det_runtime.py']

budget_s = 240
norm_cfg = dict(type='BN')  # SyncBN would be reverted anyway on one GPU
act_cfg = dict(type='SiLU', inplace=True)
model = dict(
    type='RTMDet',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395],
        bgr_to_rgb=False, pad_size_divisor=32, batch_augments=None),
    backbone=dict(
        type='CSPNeXt', arch='P5', expand_ratio=0.5, deepen_factor=0.167, widen_factor=0.375,
        channel_attention=True, norm_cfg=norm_cfg, act_cfg=act_cfg, init_cfg=None),
    neck=dict(
        type='CSPNeXtPAFPN', in_channels=[96, 192, 384], out_channels=96, num_csp_blocks=1,
        expand_ratio=0.5, norm_cfg=norm_cfg, act_cfg=act_cfg),
    bbox_head=dict(
        type='BatchRTMDetSepBNHead', num_classes=3, in_channels=96, stacked_convs=2,
        feat_channels=96,
        anchor_generator=dict(type='MlvlPointGenerator', offset=0, strides=[8, 16, 32]),
        bbox_coder=dict(type='DistancePointBBoxCoder'),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        with_objectness=False, exp_on_reg=False, share_conv=True, pred_kernel_size=1,
        norm_cfg=norm_cfg, act_cfg=act_cfg),
    train_cfg=dict(assigner=dict(type='BatchDynamicSoftLabelAssigner', topk=13),
                   allowed_border=-1,
                   pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=30000, min_bbox_size=0, score_thr=0.001,
                  nms=dict(type='nms', iou_threshold=0.65), max_per_img=100))

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
test_dataloader = dict(num_workers=4, dataset=dict(pipeline=test_pipeline))

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
]
env_cfg = dict(cudnn_benchmark=True)
