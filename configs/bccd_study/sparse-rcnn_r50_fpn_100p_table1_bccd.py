# BCCD study, Table 1, row "SPARSE RCNN": Sparse R-CNN R-50-FPN, 100 proposals, Focal + L1 +
# GIoU, Adam lr 0.00005, weight decay 0.001, the study's augmentation (section 4.2).
# mmbloodcell/studies/bccd_sparse_rcnn.yaml lists every setting against the paper and checks it.
# Overrides of configs/sparse_rcnn/sparse-rcnn_r50_fpn_100p_50e_bccd.py (the same model and
# losses): the train pipeline and the optimiser (AdamW 2.5e-5, weight decay 1e-4 there).
_base_ = [
    '../sparse_rcnn/sparse-rcnn_r50_fpn_100p_50e_bccd.py',
    '../_base_/datasets/bccd_study_augmentation.py'
]
# the study's augmentation at 640x480 (BCCD's native size; the paper does not give one)
train_pipeline = _base_.study_train_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# the paper: ADAM (PyTorch's Adam: weight decay added to the gradient, not AdamW's decoupled
# decay), lr 0.00005, weight decay 0.001. Batch silent: 4 here; the warm-up, step decay and
# gradient clipping at 1 of det_adamw_50e.py are the project's.
optim_wrapper = dict(optimizer=dict(_delete_=True, type='Adam', lr=5e-5, weight_decay=1e-3))
