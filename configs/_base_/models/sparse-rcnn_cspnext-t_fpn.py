# Sparse R-CNN (Sun et al., CVPR 2021) with the study's supervision (Focal + L1 + GIoU, Hungarian
# matching) on RTMDet-tiny's BN/SiLU CSPNeXt, from scratch, for BCCD's 3 classes: strides 4-32
# into a 128-channel FPN, 100 proposals, 6 DII stages of 128 channels (FFN 512); the batch
# matched and its targets built at once (BatchSparseRoIHead + BatchHungarianAssigner).
num_stages = 6
num_proposals = 100
num_classes = 3  # RBC, WBC, Platelets
channels = 128
norm_cfg = dict(type='BN')
act_cfg = dict(type='SiLU', inplace=True)
model = dict(
    type='SparseRCNN',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395],
        bgr_to_rgb=False, pad_size_divisor=32),
    backbone=dict(
        type='CSPNeXt', arch='P5', expand_ratio=0.5, deepen_factor=0.167, widen_factor=0.375,
        out_indices=(1, 2, 3, 4), channel_attention=True, norm_cfg=norm_cfg, act_cfg=act_cfg,
        init_cfg=None),
    neck=dict(
        type='FPN', in_channels=[48, 96, 192, 384], out_channels=channels, start_level=0,
        add_extra_convs='on_input', num_outs=4),
    rpn_head=dict(
        type='EmbeddingRPNHead', num_proposals=num_proposals, proposal_feature_channel=channels),
    roi_head=dict(
        # mmdet's SparseRoIHead with the targets of all images matched at once (same losses)
        type='BatchSparseRoIHead',
        num_stages=num_stages,
        stage_loss_weights=[1] * num_stages,
        proposal_feature_channel=channels,
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=2),
            out_channels=channels,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=[
            dict(
                type='DIIHead',
                num_classes=num_classes,
                num_ffn_fcs=2,
                num_heads=8,
                num_cls_fcs=1,
                num_reg_fcs=3,
                feedforward_channels=4 * channels,
                in_channels=channels,
                dropout=0.0,
                ffn_act_cfg=dict(type='ReLU', inplace=True),
                dynamic_conv_cfg=dict(
                    type='DynamicConv',
                    in_channels=channels,
                    feat_channels=32,
                    out_channels=channels,
                    input_feat_shape=7,
                    act_cfg=dict(type='ReLU', inplace=True),
                    norm_cfg=dict(type='LN')),
                loss_bbox=dict(type='L1Loss', loss_weight=5.0),
                loss_iou=dict(type='GIoULoss', loss_weight=2.0),
                loss_cls=dict(
                    type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                    loss_weight=2.0),
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    clip_border=False,
                    target_means=[0., 0., 0., 0.],
                    target_stds=[0.5, 0.5, 1., 1.])) for _ in range(num_stages)
        ]),
    train_cfg=dict(
        rpn=None,
        rcnn=[
            dict(
                assigner=dict(
                    # mmdet's HungarianAssigner, costs in float32 (works under --amp), all
                    # images of the batch costed at once with one copy to the host
                    type='BatchHungarianAssigner',
                    match_costs=[
                        dict(type='FocalLossCost', weight=2.0),
                        dict(type='BBoxL1Cost', weight=5.0, box_format='xyxy'),
                        dict(type='IoUCost', iou_mode='giou', weight=2.0)
                    ]),
                sampler=dict(type='PseudoSampler'),
                pos_weight=1) for _ in range(num_stages)
        ]),
    test_cfg=dict(rpn=None, rcnn=dict(max_per_img=num_proposals)))
