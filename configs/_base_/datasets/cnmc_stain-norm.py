# C-NMC 2019 as in cnmc.py, plus Reinhard stain colour normalisation of every cell (the
# backbone comparison study normalises stain colours and splits patient-wise).
_base_ = './cnmc.py'

# Reinhard reference: CIELAB mean / std of the cell pixels of the C-NMC training cell
# UID_1_3_1_all.bmp (mmbloodcell.datasets.transforms.cell.reinhard_stats). To use another
# reference cell: dict(type='StainNormalize', method='reinhard', reference='path/to/cell.bmp')
stain_norm = dict(
    type='StainNormalize',
    method='reinhard',
    ref_mean=[19.406, 26.734, -22.947],
    ref_std=[8.175, 4.339, 6.854])

train_pipeline = [
    dict(type='LoadImageFromFile'),
    stain_norm,
    dict(type='RandomRotate', angle=180, prob=0.5),
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
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
