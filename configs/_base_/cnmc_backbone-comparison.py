# The backbone comparison on C-NMC 2019 (Xception, VGG-16, ResNet-152, EfficientNet-B5 /
# V2-M, SimpleNet): the study's head (GAP -> FC 256 -> ReLU -> FC 1) trained with binary cross
# entropy, Adam, batch 32, the patient-wise split and Reinhard stain normalisation. Each config
# sets the backbone and head.in_channels.
_base_ = [
    './datasets/cnmc_stain-norm.py',
    './schedules/cnmc_adam.py',
    './cls_runtime.py',
    './models/binary_cls.py',
]

model = dict(head=dict(loss=dict(_delete_=True, type='WeightedBCELoss', class_weight=None)))
