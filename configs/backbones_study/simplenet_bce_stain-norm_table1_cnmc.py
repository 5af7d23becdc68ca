# The six-backbone study, Table I, SimpleNet: the small CNN the study trains from scratch
# (mmbloodcell's SimpleNet: 4 stages of 2 x (conv-BN-ReLU) + max pooling; the paper only says
# "a simple sequence of a few layers") at 224x224; the study's protocol of
# _base_/cnmc_backbones-study.py.
_base_ = '../_base_/cnmc_backbones-study.py'

model = dict(
    backbone=dict(type='SimpleNet', widths=(32, 64, 128, 256), convs_per_stage=2),
    head=dict(in_channels=256))

# trained from scratch: a larger learning rate than the fine-tuning configs' 1e-5
optim_wrapper = dict(optimizer=dict(lr=1e-3))
