# BCCD blood-cell detection (RBC / WBC / Platelets), COCO-format annotations written by
#   python tools/dataset_converters/bccd_to_coco.py ../shared/data/BCCD --out-dir data/bccd
# Split: the study's 256 / 74 / 34 train / val / test images (seeded, stratified); the
# dataset's own ImageSets split is in annotations/imagesets_{train,val,test}.json.

# Every image file is checked once at start-up (header and size, no decoding): an empty,
# truncated or non-image file, or one larger than max_image_size (640x480 expected), stops
# the run with its path and the fix instead of failing mid-epoch (on_error='skip' drops it).
max_image_size = 4096
dataset_type = 'BCCDDataset'
data_root = 'data/bccd/'
img_scale = (640, 480)  # BCCD's native size; mmdet's COCO default 1333x800 only costs time
backend_args = None

# The project's augmentation: the BCCD study's (random crop, resize, flip, brightness,
# saturation, hue, Gaussian noise) plus contrast (PhotoMetricDistortion) and Gaussian blur,
# which the paper does not name. Its exact augmentation is ./bccd_study_augmentation.py,
# used by the configs of configs/bccd_study/.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomCrop', crop_size=(0.8, 0.8), crop_type='relative_range',
         allow_negative_crop=False),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PhotoMetricDistortion', brightness_delta=32, contrast_range=(0.8, 1.2),
         saturation_range=(0.7, 1.3), hue_delta=10),
    dict(type='GaussianNoise', prob=0.3, std_range=(2.0, 8.0)),
    dict(type='RandomGaussianBlur', prob=0.2, sigma_range=(0.3, 1.2)),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]

train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        check_images=True,
        max_image_size=max_image_size,
        data_root=data_root,
        ann_file='annotations/train.json',
        data_prefix=dict(img='JPEGImages/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        check_images=True,
        max_image_size=max_image_size,
        data_root=data_root,
        ann_file='annotations/val.json',
        data_prefix=dict(img='JPEGImages/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
# the test split: val's loader and dataset with the test annotations
test_dataloader = dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], ann_file='annotations/test.json'))

# The evaluators of every detector: COCO mAP, mAP50, mAP75, mAP_s/m/l and per-class AP
# (CocoMetric), and the per-class cell-count error (CellCountMetric: at score 0.3, at the
# thresholds calibrated on val by CountCalibrationHook, and the split's best threshold).
coco_metric = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/val.json',
    metric='bbox',
    classwise=True,
    format_only=False,
    backend_args=backend_args)
count_metric = dict(type='CellCountMetric', score_thr=0.3)
val_evaluator = [coco_metric, count_metric]
test_evaluator = [dict(coco_metric, ann_file=data_root + 'annotations/test.json'), count_metric]
