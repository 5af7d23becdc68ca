# BCCD study, Table 1, row "YOLOF": a comparison model "of published works" (the paper quotes
# it; its own settings are not given): mmdet's YOLOF R-50-C5 recipe (Focal + GIoU, SGD) on the
# study's split and augmentation (section 4.2).
# mmbloodcell/studies/bccd_sparse_rcnn.yaml lists every setting against the paper and checks it.
# Overrides of configs/yolof/yolof_r50-c5_50e_bccd.py: the train pipeline only.
_base_ = [
    '../yolof/yolof_r50-c5_50e_bccd.py', '../_base_/datasets/bccd_study_augmentation.py'
]
train_pipeline = _base_.study_train_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
