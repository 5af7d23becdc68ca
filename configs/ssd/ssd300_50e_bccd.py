# SSD300 (VGG-16) with stock SSD losses: softmax CE with hard negative mining + smooth-L1.
# ConfigurableSSDHead is mmdet's SSDHead that also predicts under mmdet 3.3.0 (stock SSDHead
# crashes there with "'SSDHead' object has no attribute 'loss_cls'").
_base_ = [
    'mmdet::_base_/models/ssd300.py', '../_base_/datasets/bccd_detection.py',
    '../_base_/schedules/det_sgd_50e.py', '../_base_/det_runtime.py'
]
input_size = 300
model = dict(bbox_head=dict(type='ConfigurableSSDHead', num_classes=3))

# the dataset base's pipelines (the project's augmentation), resized to 300x300 without keeping
# the aspect ratio: a list is replaced whole
train_pipeline = [
    dict(t, scale=(input_size, input_size), keep_ratio=False) if t['type'] == 'Resize' else t
    for t in _base_.train_pipeline
]
test_pipeline = [
    dict(t, scale=(input_size, input_size), keep_ratio=False) if t['type'] == 'Resize' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(batch_size=8, batch_sampler=None, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
