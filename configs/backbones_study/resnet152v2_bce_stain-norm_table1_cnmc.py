# The six-backbone study, Table I, ResNet152V2: the pre-activation ResNet-152 (He et al. 2016,
# Keras' ResNet152V2) as timm's 'resnetv2_152', at 224x224; the study's protocol of
# _base_/cnmc_backbones-study.py. No ImageNet weights of this model exist for PyTorch (timm
# publishes none for resnetv2_152), so it starts from random weights unlike the paper's
# ImageNet model; with converted weights set model.backbone.pretrained=True and
# model.backbone.pretrained_cfg_overlay=dict(file='resnetv2_152.pth'). The ImageNet-pretrained
# ResNet-152 v1.5 alternative is configs/cnmc/resnet152_bce_stain-norm_cnmc.py.
_base_ = '../_base_/cnmc_backbones-study.py'

model = dict(
    backbone=dict(type='TIMMBackbone', model_name='resnetv2_152', pretrained=False),
    head=dict(in_channels=2048))
