from .noise import GaussianNoise, RandomGaussianBlur  # noqa: F401
from .cell import CLAHE, CropToCell, EnsureRGB8, RandomRotate, StainNormalize  # noqa: F401
from .fast_yolox_aug import FastCachedMixUp, FastYOLOXHSVRandomAug  # noqa: F401
from .yolo_affine import YOLOv7RandomAffine  # noqa: F401
