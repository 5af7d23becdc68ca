# Modules register themselves on import; add one import line per module.
from .batch_dynamic_soft_label_assigner import BatchDynamicSoftLabelAssigner  # noqa: F401
from .fp32_hungarian_assigner import Fp32HungarianAssigner  # noqa: F401
from .batch_hungarian_assigner import BatchHungarianAssigner  # noqa: F401
from .yolov7_assigner import YOLOv7Assigner  # noqa: F401
