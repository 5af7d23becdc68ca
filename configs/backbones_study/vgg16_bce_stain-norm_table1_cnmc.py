# The six-backbone study, Table I, VGG16: VGG-16 (no BN) from ImageNet at 224x224; the study's
# protocol of _base_/cnmc_backbones-study.py.
_base_ = '../_base_/cnmc_backbones-study.py'

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
