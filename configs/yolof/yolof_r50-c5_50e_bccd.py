# YOLOF (Chen et al., CVPR 2021): ResNet-50 C5 + dilated encoder, one level, Focal + GIoU: the
# model of mmdet's yolof/yolof_r50-c5_8xb8-1x_coco.py for 3 classes.
# mmengine refuses a key that two bases define, so an mmdet config (with its own dataset,
# schedule and runtime) cannot be a base beside the BCCD ones: the model is restated.
_base_ = [
    '../_base_/datasets/bccd_detection.py', '../_base_/schedules/det_sgd_50e.py',
    '../_base_/det_runtime.py'
]
model = dict(
    type='YOLOF',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[103.530, 116.280, 123.675], std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False, pad_size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='caffe',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://detectron/resnet50_caffe')),
    neck=dict(
        type='DilatedEncoder', in_channels=2048, out_channels=512, block_mid_channels=128,
        num_residual_blocks=4, block_dilations=[2, 4, 6, 8]),
    bbox_head=dict(
        type='YOLOFHead',
        num_classes=3,
        in_channels=512,
        reg_decoded_bbox=True,
        anchor_generator=dict(
            type='AnchorGenerator', ratios=[1.0], scales=[1, 2, 4, 8, 16], strides=[32]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
            target_stds=[1., 1., 1., 1.], add_ctr_clamp=True, ctr_clamp=32),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(type='UniformAssigner', pos_ignore_thr=0.15, neg_ignore_thr=0.7),
        allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(
        nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=100))
# mmdet's YOLOF recipe scaled to batch 8: lr 0.12 / 64 * 8, backbone at 1/3 of it
optim_wrapper = dict(
    optimizer=dict(lr=0.015, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0., custom_keys={'backbone': dict(lr_mult=1. / 3)}))
train_dataloader = dict(batch_size=8)
