# Sparse R-CNN R-50-FPN, 100 learnable proposals, Focal + L1 + GIoU (the BCCD study's setting),
# at BCCD's native 640x480 instead of mmdet's 1333x800.
_base_ = [
    '../_base_/models/sparse-rcnn_r50_fpn.py', '../_base_/datasets/bccd_detection.py',
    '../_base_/schedules/det_adamw_50e.py', '../_base_/det_runtime.py'
]
# mmdet's Sparse R-CNN recipe: AdamW 2.5e-5 (batch 16), gradient clipping at 1
optim_wrapper = dict(optimizer=dict(lr=2.5e-5, weight_decay=1e-4))
