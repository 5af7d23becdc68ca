# The fast budget detector: RTMDet-tiny (Lyu et al., 2022) trained FROM SCRATCH on BCCD for a
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
_base_ = ['../_base_/bccd_240s-budget.py', '../_base_/models/rtmdet-tiny_bccd.py']
