# The study's classifier on C-NMC 2019: an mmpretrain backbone (set by each config), global
# average pooling, and the binary head GAP -> FC 256 -> ReLU -> FC 1 (one logit for `all`)
# trained with the Focal Hinge Loss. Configs add `backbone` and `head.in_channels` (the
# backbone's output channels) and may swap `head.loss`.
model = dict(
    type='ImageClassifier',
    # ImageNet statistics (those of the pretrained weights), BGR images -> RGB
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='BinaryClsHead',
        hidden_channels=256,
        loss=dict(type='FocalHingeLoss', gamma=2.0)))
