# The frozen-EfficientNet report, attempt 4: attempt 3's model trained 700 more epochs with the
# rotation but without the crop (the whole frame resized; `mmbloodcell reproduce
# frozen-efficientnet` starts from attempt 3's last checkpoint with load_from).
_base_ = './efficientnet-b2_frozen_fc320_500e_attempt1_cnmc.py'

meta_keys = {{_base_.meta_keys}}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomRotate', angle=45, prob=1.0),
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs', meta_keys=meta_keys),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

train_cfg = dict(max_epochs=700)
