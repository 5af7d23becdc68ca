# Backbone comparison on C-NMC 2019: ResNet-152 from ImageNet, the study's head (GAP -> FC 256 ->
# ReLU -> FC 1), binary cross entropy, Adam, batch 32, patient-wise split and Reinhard stain
# normalisation. The study used Keras' ResNet152V2 (pre-activation blocks), which mmpretrain
# does not provide; mmpretrain's ResNet-152 (v1.5 bottlenecks) is the closest model-zoo model.
_base_ = '../_base_/cnmc_backbone-comparison.py'

model = dict(
    backbone=dict(
        type='ResNet',
        depth=152,
        out_indices=(3, ),
        style='pytorch',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/resnet/'
            'resnet152_8xb32_in1k_20210901-4d7582fa.pth',
            prefix='backbone')),
    head=dict(in_channels=2048))
