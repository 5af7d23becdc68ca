# The six-backbone study, Table I, EfficientNetV2M: EfficientNetV2-M from ImageNet-1k at
# 480x480, its Keras size; the study's protocol of _base_/cnmc_backbones-study.py.
_base_ = '../_base_/cnmc_backbones-study.py'

img_size = 480
model = dict(
    # the pretrained weights expect inputs scaled to [-1, 1], RGB
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(
        type='EfficientNetV2',
        arch='m',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/efficientnetv2/'
            'efficientnetv2-m_3rdparty_in1k_20221220-9dc0c729.pth',
            prefix='backbone')),
    head=dict(in_channels=1280))

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
