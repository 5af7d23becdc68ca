# Backbone comparison on C-NMC 2019: Xception, the study's head (GAP -> FC 256 -> ReLU -> FC 1),
# binary cross entropy, Adam, batch 32, patient-wise split and Reinhard stain normalisation.
# Xception comes from timm through mmpretrain's TIMMBackbone: it needs `pip install timm`.
# timm's 'legacy_xception' is the original (Keras) Xception; pretrained=True downloads its
# ImageNet weights from the Hugging Face hub when the model is built.
_base_ = '../_base_/cnmc_backbone-comparison.py'

model = dict(
    # the pretrained weights expect inputs scaled to [-1, 1], RGB
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(type='TIMMBackbone', model_name='legacy_xception', pretrained=True),
    head=dict(in_channels=2048))
