# Backbone comparison on C-NMC 2019: VGG-16 (no BN) from ImageNet, the study's head (GAP -> FC
# 256 -> ReLU -> FC 1), binary cross entropy, Adam, batch 32, patient-wise split and Reinhard
# stain normalisation.
_base_ = '../_base_/cnmc_backbone-comparison.py'

model = dict(
    backbone=dict(
        type='VGG',
        depth=16,
        num_classes=-1,  # features only: the last conv stage, (N, 512, H/32, W/32)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/vgg/'
            'vgg16_batch256_imagenet_20210208-db26f1a5.pth',
            prefix='backbone')),
    head=dict(in_channels=512))
