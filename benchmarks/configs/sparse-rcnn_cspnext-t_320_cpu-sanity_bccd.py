# CPU sanity run of the Sparse R-CNN budget recipe at 320 px, batch 8, one loader worker,
# 600 s, as benchmarks/configs/rtmdet_tiny_320_cpu-sanity_bccd.py does for RTMDet: does the
# from-scratch recipe learn on a 2-core CPU machine?
#   python benchmarks/bccd_budget.py benchmarks/configs/sparse-rcnn_cspnext-t_320_cpu-sanity_bccd.py \
#       --budget 600 --data-root data/bccd
_base_ = [
    './_base_/bccd_320_cpu-sanity.py',
    '../../configs/_base_/models/sparse-rcnn_cspnext-t_fpn.py'
]
optim_wrapper = dict(
    optimizer=dict(lr=4e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0, norm_type=2))
