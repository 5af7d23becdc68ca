# EfficientNet-B2 from timm (through mmpretrain's TIMMBackbone) with the study's head and the
# Focal Hinge Loss; otherwise as efficientnet-b2_fhl_cnmc.py. timm's implementation infers
# 1.46x faster than mmpretrain's at batch 256 in fp32 (benchmarks/cnmc_classification.md):
# symmetric PyTorch padding instead of mmpretrain's TF-style adaptive padding (an extra pad
# per convolution) and fused SiLU. The two are different weight layouts: this config's
# checkpoints do not load into efficientnet-b2_fhl_cnmc.py and vice versa.
# pretrained=True downloads timm's ImageNet weights (efficientnet_b2.ra_in1k, RGB, ImageNet
# mean / std) from the Hugging Face hub when the model is built; needs `pip install timm`.
_base_ = './efficientnet-b2_fhl_cnmc.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='TIMMBackbone',
        model_name='efficientnet_b2',
        pretrained=True,
        drop_rate=0.0,
        drop_path_rate=0.0))
