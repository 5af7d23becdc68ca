# The six-backbone study on C-NMC 2019 (docs/paper_protocols.md): the backbone comparison of
# cnmc_backbone-comparison.py (the study's head, binary cross entropy, Adam, batch 32,
# Reinhard stain normalisation, patient-wise split) with the study's own settings: 200
# epochs, random rotation and random noise, and its two-way split: 80 % of the patients train,
# the other 20 % are the test sample (the paper has no validation set, so no epoch is
# selected: the row is the last epoch, tested on the held-out patients). Each config sets the
# backbone, head.in_channels and its input size (the Keras default size of the model; the
# paper gives none).
_base_ = './cnmc_backbone-comparison.py'

stain_norm = {{_base_.stain_norm}}
meta_keys = {{_base_.meta_keys}}
img_size = {{_base_.img_size}}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    stain_norm,
    dict(type='RandomRotate', angle=180, prob=0.5, expand=True),
    dict(type='CropToCell', margin=2),
    dict(type='Resize', scale=(img_size, img_size)),
    dict(type='GaussianNoise', prob=0.5, std_range=(1.0, 10.0)),
    dict(type='PackInputs', meta_keys=meta_keys),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
test_dataloader = {{_base_.val_dataloader}}  # the held-out patients
test_evaluator = {{_base_.val_evaluator}}

train_cfg = dict(max_epochs=200, val_interval=10)
# no model selection: keep the last epoch (and one before it)
default_hooks = dict(checkpoint=dict(interval=10, save_best=None))
