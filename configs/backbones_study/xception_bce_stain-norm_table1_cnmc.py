# The six-backbone study, Table I, Xception: timm's 'legacy_xception' (the original Keras
# Xception; pretrained=True downloads its ImageNet weights from the Hugging Face hub, needs
# `pip install timm`) at 299x299, its Keras size; the study's protocol of
# _base_/cnmc_backbones-study.py.
_base_ = '../_base_/cnmc_backbones-study.py'

img_size = 299
model = dict(
    # the pretrained weights expect inputs scaled to [-1, 1], RGB
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(type='TIMMBackbone', model_name='legacy_xception', pretrained=True),
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
