# Backbone comparison on C-NMC 2019: SimpleNet, the small CNN of the comparison, trained from
# scratch; the study's head (GAP -> FC 256 -> ReLU -> FC 1), binary cross entropy, Adam, batch
# 32, patient-wise split and Reinhard stain normalisation. The inputs are normalised with the
# ImageNet statistics of binary_cls.py; for a model trained from scratch the training set's own
# are better: run tools/analysis/cnmc_mean_std.py and paste its lines into
# model.data_preprocessor.
_base_ = '../_base_/cnmc_backbone-comparison.py'

model = dict(
    backbone=dict(type='SimpleNet', widths=(32, 64, 128, 256), convs_per_stage=2),
    head=dict(in_channels=256))

# trained from scratch: a larger learning rate than the fine-tuning configs' 1e-5
optim_wrapper = dict(optimizer=dict(lr=1e-3))
