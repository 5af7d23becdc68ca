# YOLOv7-tiny (Wang et al., 2022) for BCCD's 3 classes, trained FROM SCRATCH (no pretrained
# weights, as the reference trains): YOLOv7Backbone + YOLOv7PAFPN + YOLOv7Head (the layers of
# WongKinYiu/yolov7 cfg/training/yolov7-tiny.yaml) in mmdet's SingleStageDetector, with the
# reference's training recipe in mmdet / mmengine pieces. YOLOv7 (l) is
# ./yolov7_l_640_300e_bccd.py, which changes what differs.
#
# Following the reference (WongKinYiu/yolov7):
#   - model: cfg/training/yolov7-tiny.yaml (LeakyReLU 0.1, BN momentum 0.03 eps 1e-3, the
#     anchors of the yaml, IDetect with its implicit layers); 6,228,762 parameters at 80
#     classes, as the reference's, 6,221,370 in its fused form (README: 6.2 M);
#   - losses: utils/loss.py ComputeLossOTA (YOLOv7Assigner: anchor_t 4.0, 3 positive cells,
#     SimOTA with the top-10 IoUs, IoU cost x3); gains of data/hyp.scratch.tiny.yaml: box 0.05,
#     cls 0.5 (x num_classes / 80 in the head), obj 1.0, objectness weights 4.0 / 1.0 / 0.4;
#   - augmentation, data/hyp.scratch.tiny.yaml and utils/datasets.py: mosaic 1.0 of 640x640
#     tiles (centre in [0.5, 1.5] x 640), then the affine of random_perspective (translate 0.1,
#     zoom in U(1 - 0.5, 1.1 + 0.5), no rotation, shear or perspective), mixup 0.05 with a
#     second mosaic, HSV, left-right flip 0.5, no up-down flip;
#   - optimiser, train.py + the hyp file: SGD lr0 0.01, momentum 0.937, Nesterov, weight decay
#     5e-4 on the conv weights only (not on BN, biases or the implicit layers), at the nominal
#     batch 64 (nbs); warm-up 3 epochs (lr from ~0, momentum 0.8 -> 0.937), then a cosine from
#     lr0 to lr0 * lrf (lrf 0.01) over the 300 epochs (one_cycle, stepped per epoch);
#   - EMA of the weights and buffers (utils/torch_utils.py ModelEMA: decay 0.9999 * (1 -
#     exp(-updates / 2000)), i.e. mmdet's ExpMomentumEMA with momentum 1e-4, gamma 2000);
#   - test: test.py's conf 0.001, NMS IoU 0.65, multi-label, 300 boxes; images resized to a
#     long side of 640, evaluated at their own aspect ratio (the reference's rect evaluation).
#
# Our choices, and why:
#   - batch 64 on one GPU: the nominal batch (the reference's single-GPU run is batch 32
#     accumulated twice to 64: the same SGD step; the head sums the loss over the images as the
#     reference does, so lr and weight decay are the reference's as they stand). A smaller GPU:
#     tools/train.py --amp;
#   - the warm-up is 3 epochs, without the reference's floor of 1,000 iterations (BCCD's 256
#     training images make 4 iterations per epoch: the floor would be 250 of the 300 epochs),
#     and without its separate bias warm-up (bias lr from 0.1 down to lr0): mmengine's
#     schedulers scale every parameter group alike;
#   - mmdet's transforms: CachedMosaic (4 tiles always, the 3 others from the last 40 loaded
#     images, not from the whole dataset; the reference makes 20% of its mosaics of 9 tiles,
#     which mmdet has not), the package's YOLOv7RandomAffine (mmdet's RandomAffine about the
#     mosaic's centre, as random_perspective, with its box_candidates filter: mmdet's zooms
#     about the top-left corner and would show mostly the first tile),
#     FastCachedMixUp (mmdet's CachedMixUp on uint8: the second image is an earlier mosaic of
#     the cache, blended 1:1 where the reference draws the ratio from Beta(8, 8), mean 0.5),
#     FastYOLOXHSVRandomAug with mmdet's YOLOX ranges (hue +-5, saturation and value +-30,
#     additive; the reference multiplies by U(1 -+ 0.015 / 0.7 / 0.4)); no paste_in (the
#     reference's copy-paste of objects from other images: no mmdet transform does it);
#   - native size: BCCD's 640x480 smears are tested as 640x480 (480 is a multiple of 32, no
#     padding; the reference's rect batches would add half a stride of border); padding, for
#     other sizes, is the reference's grey 114;
#   - validation and checkpoint every 5 epochs (the package's detection runtime), the best by
#     COCO mAP on val (the reference: every epoch, by 0.1 mAP50 + 0.9 mAP);
#   - the package's evaluators and hooks as every BCCD detector: CocoMetric + CellCountMetric,
#     LatencyHook, CountCalibrationHook.
_base_ = ['../_base_/datasets/bccd_detection.py', '../_base_/det_runtime.py']

img_scale = (640, 640)  # the reference's --img 640: mosaic tiles and output size
max_epochs = 300
model = dict(
    type='SingleStageDetector',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.],
        bgr_to_rgb=True, pad_size_divisor=32,
        pad_value=114 / 255),  # padding follows the normalisation: the reference's grey 114
    backbone=dict(type='YOLOv7Backbone', arch='tiny'),
    neck=dict(type='YOLOv7PAFPN', arch='tiny'),
    bbox_head=dict(
        type='YOLOv7Head',
        num_classes=3,
        in_channels=(128, 256, 512),
        prior_generator=dict(
            type='YOLOAnchorGenerator',
            base_sizes=[[(12, 16), (19, 36), (40, 28)], [(36, 75), (76, 55), (72, 146)],
                        [(142, 110), (192, 243), (459, 401)]],
            strides=[8, 16, 32]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=0.5),
        loss_obj=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox_weight=0.05,
        obj_level_weights=(4.0, 1.0, 0.4),
        img_scale=img_scale[0]),
    train_cfg=dict(assigner=dict(type='YOLOv7Assigner', anchor_t=4.0, candidate_topk=10,
                                 iou_weight=3.0, cls_weight=1.0)),
    test_cfg=dict(multi_label=True, nms_pre=30000, score_thr=0.001,
                  nms=dict(type='nms', iou_threshold=0.65), max_per_img=300))

affine_translate = 0.1  # hyp.scratch.tiny.yaml translate
# hyp.scratch.tiny.yaml scale 0.5: random_perspective zooms by U(1 - scale, 1.1 + scale)
affine_zoom = (0.5, 1.6)
mixup_prob = 0.05  # hyp.scratch.tiny.yaml mixup
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='CachedMosaic', img_scale=img_scale, center_ratio_range=(0.5, 1.5),
         pad_val=114.0, prob=1.0, max_cached_images=40, random_pop=True),
    # random_perspective: zoom about the mosaic's centre, the 640x640 window at its centre
    # (+- translate), boxes under 2 px, under 10% of their area or thinner than 1:20 dropped
    dict(type='YOLOv7RandomAffine', max_rotate_degree=0.0, max_shear_degree=0.0,
         max_translate_ratio=affine_translate,
         scaling_ratio_range=affine_zoom,
         border=(-img_scale[0] // 2, -img_scale[1] // 2), border_val=(114, 114, 114),
         min_bbox_size=2, min_area_ratio=0.1, max_aspect_ratio=20),
    dict(type='FastCachedMixUp', img_scale=img_scale, ratio_range=(1.0, 1.0), flip_ratio=1.0,
         max_cached_images=20, random_pop=True, pad_val=(114, 114, 114), prob=mixup_prob),
    dict(type='FastYOLOXHSVRandomAug', hue_delta=5, saturation_delta=30, value_delta=30),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=img_scale, keep_ratio=True),  # long side 640: 640x480 as it is
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True, pin_memory=True,
    batch_sampler=None,  # every mosaic is 640x640: nothing to group by aspect ratio
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

lrf = 0.01  # hyp.scratch.tiny.yaml: the final lr is lr0 * lrf
warmup_epochs = 3
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='LinearMomentum', start_factor=0.8 / 0.937, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=lrf, T_max=max_epochs, by_epoch=True,
         begin=0, end=max_epochs),
]
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='GroupedOptimWrapperConstructor',  # 3 param groups, not one per tensor
    optimizer=dict(type='SGD', lr=0.01, momentum=0.937, nesterov=True, weight_decay=5e-4),
    # the reference's three groups: conv weights with decay; BN weights, biases and the
    # implicit layers without
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.,
                       custom_keys={'.implicit': dict(decay_mult=0.)}))
# lr and weight decay are the reference's at its nominal batch 64
auto_scale_lr = dict(enable=False, base_batch_size=64)

custom_hooks = [
    dict(type='LatencyHook', warmup=5),
    dict(type='EMAHook', ema_type='ForeachExpMomentumEMA', momentum=0.0001, gamma=2000,
         update_buffers=True, priority=49),
    dict(type='CountCalibrationHook'),
]
env_cfg = dict(cudnn_benchmark=True)  # fixed input sizes (640x640 training, 640x480 test)
