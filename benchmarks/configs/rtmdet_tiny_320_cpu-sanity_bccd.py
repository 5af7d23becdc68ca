# CPU sanity run of the RTMDet budget recipe at 320 px, batch 8, one loader worker, 600 s:
# does the from-scratch recipe learn on a 2-core CPU machine? (benchmarks/README.md)
#   python benchmarks/bccd_budget.py benchmarks/configs/rtmdet_tiny_320_cpu-sanity_bccd.py \
#       --budget 600 --data-root data/bccd
# The control with mmdet's / mmengine's stock pieces adds (to the same command):
#   --work-dir work_dirs/sanity_stock --cfg-options model.bbox_head.type=RTMDetSepBNHead \
#   model.train_cfg.assigner.type=DynamicSoftLabelAssigner \
#   optim_wrapper.constructor=DefaultOptimWrapperConstructor \
#   train_dataloader.dataset.dataset.pipeline.5.type=YOLOXHSVRandomAug \
#   train_dataloader.dataset.dataset.pipeline.8.type=CachedMixUp \
#   custom_hooks.2.ema_type=ExpMomentumEMA
_base_ = [
    './_base_/bccd_320_cpu-sanity.py', '../../configs/_base_/models/rtmdet-tiny_bccd.py'
]
