# C-NMC 2019 as in cnmc.py, plus Reinhard stain colour normalisation of every cell (the
# backbone comparison study normalises stain colours and splits patient-wise).
_base_ = './cnmc.py'

# Reinhard reference: the CIELAB mean / std of the median training cell, read from the file
# that `python tools/analysis/cnmc_stain_reference.py data/C-NMC_Leukemia` writes
# (<data_root>/stain_reference.json). Another reference: a cell image or statistics, e.g.
# dict(type='StainNormalize', method='reinhard', reference='path/to/cell.bmp').
stain_norm = dict(type='StainNormalize', method='reinhard', reference={{_base_.stain_reference}})

train_pipeline = [
    dict(type='LoadImageFromFile'),
    stain_norm,
    dict(type='RandomRotate', angle=180, prob=0.5, expand=True),
    dict(type='CropToCell', margin=2),
    dict(type='Resize', scale=({{_base_.img_size}}, {{_base_.img_size}})),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='PackInputs', meta_keys={{_base_.meta_keys}}),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    stain_norm,
    dict(type='CropToCell', margin=2),
    dict(type='Resize', scale=({{_base_.img_size}}, {{_base_.img_size}})),
    dict(type='PackInputs', meta_keys={{_base_.meta_keys}}),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
