# BCCD study, Table 1, row "SSD": SSD300 (VGG-16) trained with Focal + L1 + GIoU, SGD lr 0.02,
# momentum 0.9, weight decay 0.0005, the study's augmentation (section 4.2).
# mmbloodcell/studies/bccd_sparse_rcnn.yaml lists every setting against the paper and checks it.
# Overrides of configs/ssd/ssd300_focal-giou-l1_50e_bccd.py (the same model and losses):
# the train pipeline and the optimiser's lr (2e-3 there).
_base_ = [
    '../ssd/ssd300_focal-giou-l1_50e_bccd.py', '../_base_/datasets/bccd_study_augmentation.py'
]
input_size = 300
# the study's augmentation, resized to 300x300 without keeping the aspect ratio (as the test
# pipeline of the base)
train_pipeline = [
    dict(t, scale=(input_size, input_size), keep_ratio=False) if t['type'] == 'Resize' else t
    for t in _base_.study_train_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# the paper: SGD, lr 0.02, momentum 0.9, weight decay 0.0005 (batch silent: 8 here; warm-up,
# step decay and gradient clipping at 35 of det_sgd_50e.py are the project's)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=5e-4))
