# The BCCD study's SSD300 variant: Focal classification + L1 (box deltas) + GIoU (decoded boxes)
# instead of softmax CE with hard negative mining + smooth-L1.
_base_ = './ssd300_50e_bccd.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    test_cfg=dict(score_thr=0.05))
