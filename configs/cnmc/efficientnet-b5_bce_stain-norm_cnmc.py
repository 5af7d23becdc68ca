# Backbone comparison on C-NMC 2019: EfficientNet-B5 from ImageNet, the study's head (GAP -> FC
# 256 -> ReLU -> FC 1), binary cross entropy, Adam, batch 32, patient-wise split and Reinhard
# stain normalisation (at 224x224, like the other backbones; B5's native size is 456).
_base_ = '../_base_/cnmc_backbone-comparison.py'

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
