# BCCD study, Table 1, row "YOLOv3": a comparison model "of published works" (the paper quotes
# it; its own settings are not given): mmdet's YOLOv3 Darknet-53 recipe at 416 px on the
# study's split and augmentation (section 4.2).
# mmbloodcell/studies/bccd_sparse_rcnn.yaml lists every setting against the paper and checks it.
# Overrides of configs/yolo/yolov3_d53_416_50e_bccd.py: the train pipeline only.
_base_ = [
    '../yolo/yolov3_d53_416_50e_bccd.py', '../_base_/datasets/bccd_study_augmentation.py'
]
# the study's augmentation at 416x416 (the base's size, keeping the aspect ratio as it does)
train_pipeline = [
    dict(t, scale=_base_.img_scale) if t['type'] == 'Resize' else t
    for t in _base_.study_train_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
