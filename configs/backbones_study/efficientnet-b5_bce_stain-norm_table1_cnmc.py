# The six-backbone study, Table I, EfficientNetB5: EfficientNet-B5 from ImageNet at 456x456,
# its native size; the study's protocol of _base_/cnmc_backbones-study.py.
_base_ = '../_base_/cnmc_backbones-study.py'

img_size = 456
model = dict(
    backbone=dict(
        type='EfficientNet',
        arch='b5',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/efficientnet/'
            'efficientnet-b5_3rdparty_8xb32_in1k_20220119-e9814430.pth',
            prefix='backbone')),
    head=dict(in_channels=2048))

train_pipeline = [
    dict(t, scale=(img_size, img_size)) if t['type'] == 'Resize' else t
    for t in _base_.train_pipeline
]
test_pipeline = [
    dict(t, scale=(img_size, img_size)) if t['type'] == 'Resize' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
