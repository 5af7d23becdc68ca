# Sparse R-CNN (Sun et al., CVPR 2021) with the study's supervision (Focal + L1 + GIoU, Hungarian
# matching) on RTMDet-tiny's BN/SiLU CSPNeXt, from scratch, for BCCD's 3 classes: strides 4-32
# into a 128-channel FPN, 100 proposals, 6 DII stages of 128 channels (FFN 512); the batch
# matched and its targets built at once (BatchSparseRoIHead + BatchHungarianAssigner).
# Otherwise as sparse-rcnn_r50_fpn.py.
_base_ = './sparse-rcnn_r50_fpn.py'
channels = 128
norm_cfg = dict(type='BN')
act_cfg = dict(type='SiLU', inplace=True)
model = dict(
    data_preprocessor=dict(mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395],
                           bgr_to_rgb=False),
    backbone=dict(
        _delete_=True,
        type='CSPNeXt', arch='P5', expand_ratio=0.5, deepen_factor=0.167, widen_factor=0.375,
        out_indices=(1, 2, 3, 4), channel_attention=True, norm_cfg=norm_cfg, act_cfg=act_cfg,
        init_cfg=None),
    neck=dict(in_channels=[48, 96, 192, 384], out_channels=channels),
    rpn_head=dict(proposal_feature_channel=channels),
    roi_head=dict(
        # mmdet's SparseRoIHead with the targets of all images matched at once (same losses)
        type='BatchSparseRoIHead',
        proposal_feature_channel=channels,
        bbox_roi_extractor=dict(out_channels=channels),
        # a list is replaced whole: the R-50 stages, 128 channels wide, FFN 4x, 32 dynamic
        bbox_head=[
            dict(stage, in_channels=channels, feedforward_channels=4 * channels,
                 dynamic_conv_cfg=dict(stage['dynamic_conv_cfg'], in_channels=channels,
                                       feat_channels=32, out_channels=channels))
            for stage in _base_.model.roi_head.bbox_head
        ]),
    # a list is replaced whole: the R-50 stages with mmdet's HungarianAssigner, costs in float32
    # (works under --amp), all images of the batch costed at once with one copy to the host
    train_cfg=dict(rcnn=[
        dict(stage, assigner=dict(stage['assigner'], type='BatchHungarianAssigner'))
        for stage in _base_.model.train_cfg.rcnn
    ]))
