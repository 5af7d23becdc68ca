# Backbone comparison on C-NMC 2019: SimpleNet, the small CNN of the comparison, trained from
# scratch; the study's head (GAP -> FC 256 -> ReLU -> FC 1), binary cross entropy, Adam, batch
# 32, patient-wise split and Reinhard stain normalisation.
_base_ = [
    '../_base_/datasets/cnmc_stain-norm.py',
    '../_base_/schedules/cnmc_adam.py',
    '../_base_/cls_runtime.py',
]

model = dict(
    type='ImageClassifier',
    # ImageNet statistics; for a model trained from scratch the training set's own are
    # better: run tools/analysis/cnmc_mean_std.py and paste its lines here
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(type='SimpleNet', widths=(32, 64, 128, 256), convs_per_stage=2),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='BinaryClsHead',
        in_channels=256,
        hidden_channels=256,
        loss=dict(type='WeightedBCELoss', class_weight=None)))

# trained from scratch: a larger learning rate than the fine-tuning configs' 1e-5
optim_wrapper = dict(optimizer=dict(lr=1e-3))
