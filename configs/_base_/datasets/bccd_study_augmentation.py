# The BCCD study's training augmentation, exactly the operations its section 4.2 names: random
# crop, resize, random flip, brightness, "gaussian" (read as Gaussian noise), saturation, hue.
# No contrast and no blur (the paper names neither), no channel swap.
#
# A config switches to it by adding this file to its bases and replacing its train pipeline:
#   _base_ = ['../ssd/ssd300_50e_bccd.py', '../_base_/datasets/bccd_study_augmentation.py']
#   train_pipeline = _base_.study_train_pipeline
#   train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# It defines only `study_*` names, so it sits beside a dataset base without a duplicate key.
#
# Parameters are the project's (the paper gives none):
# - RandomCrop: a crop of 80% of each side at a random place (boxes cut by the border are
#   clipped, images left without a box are re-drawn);
# - Resize to BCCD's native 640x480 keeping the aspect ratio (a config re-sizes it to its
#   input size);
# - YOLOXHSVRandomAug (mmdet): each of hue, saturation and value (brightness) is shifted with
#   p 0.5 by a uniform amount in +-5 OpenCV hue units (+-10 degrees), +-30 / 255 saturation,
#   +-30 / 255 value; nothing else changes. mmdet's PhotoMetricDistortion is not used: even
#   with contrast_range=(1, 1) it permutes the colour channels of half the images.
# - RandomFlip: horizontal or vertical, p 0.5;
# - GaussianNoise (mmbloodcell): with p 0.3 add N(0, std^2) per pixel, std ~ U(2, 8) (0-255).
study_img_scale = (640, 480)
study_train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomCrop', crop_size=(0.8, 0.8), crop_type='relative_range',
         allow_negative_crop=False),
    dict(type='Resize', scale=study_img_scale, keep_ratio=True),
    # before the flip: it converts in place, which a flipped (negative-stride) view refuses;
    # a per-pixel change commutes with the flip, so the order changes nothing
    dict(type='YOLOXHSVRandomAug', hue_delta=5, saturation_delta=30, value_delta=30),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='GaussianNoise', prob=0.3, std_range=(2.0, 8.0)),
    dict(type='PackDetInputs')
]
