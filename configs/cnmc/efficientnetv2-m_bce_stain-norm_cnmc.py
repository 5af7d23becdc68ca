# Backbone comparison on C-NMC 2019: EfficientNetV2-M from ImageNet-1k, the study's head (GAP ->
# FC 256 -> ReLU -> FC 1), binary cross entropy, Adam, batch 32, patient-wise split and
# Reinhard stain normalisation (at 224x224, like the other backbones).
_base_ = '../_base_/cnmc_backbone-comparison.py'

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
