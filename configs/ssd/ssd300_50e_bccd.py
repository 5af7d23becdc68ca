# SSD300 (VGG-16) with stock SSD losses: softmax CE with hard negative mining + smooth-L1.
# ConfigurableSSDHead is mmdet's SSDHead that also predicts under mmdet 3.3.0 (stock SSDHead
# crashes there with "'SSDHead' object has no attribute 'loss_cls'").
_base_ = [
    'mmdet::_base_/models/ssd300.py', '../_base_/datasets/bccd_detection.py',
    '../_base_/schedules/det_sgd_50e.py', '../_base_/det_runtime.py'
]
input_size = 300
model = dict(bbox_head=dict(type='ConfigurableSSDHead', num_classes=3))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomCrop', crop_size=(0.8, 0.8), crop_type='relative_range',
         allow_negative_crop=False),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PhotoMetricDistortion', brightness_delta=32, contrast_range=(0.8, 1.2),
         saturation_range=(0.7, 1.3), hue_delta=10),
    dict(type='GaussianNoise', prob=0.3, std_range=(2.0, 8.0)),
    dict(type='RandomGaussianBlur', prob=0.2, sigma_range=(0.3, 1.2)),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=8, batch_sampler=None, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
