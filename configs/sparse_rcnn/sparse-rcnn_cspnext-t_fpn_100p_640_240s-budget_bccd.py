# A Sparse R-CNN-family budget detector: Sparse R-CNN (Sun et al., CVPR 2021) with the
# study's supervision (Focal + L1 + GIoU, Hungarian matching), trained FROM SCRATCH on BCCD
# within the same wall-clock budget as the RTMDet budget config and YOLOv8n (240 s on one GPU).
# It shares the RTMDet budget config's recipe (configs/_base_/bccd_240s-budget.py: native 640
# px, mosaic + mix-up + HSV + flips, the lr following the wall clock through TimeBudgetHook, EMA,
# AMP, fused AdamW, many loader workers); its model (configs/_base_/models/
# sparse-rcnn_cspnext-t_fpn.py) differs from the study's R-50 Sparse R-CNN in:
#   - the R-50 backbone (slow from scratch, frozen-BN habits of ImageNet fine-tuning) becomes
#     RTMDet-tiny's BN/SiLU CSPNeXt, which trains from scratch, with its stride-4 stage too
#     (Sparse R-CNN pools RoIs from strides 4-32);
#   - 128 instead of 256 channels in the FPN and the dynamic-instance heads, a 4x (512-wide)
#     feed-forward layer instead of 8x: the six DII stages are most of the FLOPs and parameters
#     of a Sparse R-CNN with a small backbone;
#   - the matching and the targets of the whole batch at once (BatchSparseRoIHead +
#     BatchHungarianAssigner: mmdet's losses, without its loop over images at every stage,
#     which costs ~1,280 operator calls per image and iteration: benchmarks/README.md);
#   - AdamW at a from-scratch learning rate with gradient clipping at 1 (mmdet's Sparse R-CNN
#     recipe clips too), instead of the fine-tuning lr 2.5e-5.
# Train:  python tools/train.py configs/sparse_rcnn/sparse-rcnn_cspnext-t_fpn_100p_640_240s-budget_bccd.py --amp
# Budget run with scoring: python benchmarks/bccd_budget.py CONFIG --budget 240 --amp
_base_ = [
    '../_base_/bccd_240s-budget.py', '../_base_/models/sparse-rcnn_cspnext-t_fpn.py'
]

optim_wrapper = dict(
    optimizer=dict(lr=4e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0, norm_type=2))
