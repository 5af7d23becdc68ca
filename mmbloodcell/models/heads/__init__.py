# Modules register themselves on import; add one import line per module.
from .configurable_ssd_head import ConfigurableSSDHead  # noqa: F401
from .binary_cls_head import BinaryClsHead  # noqa: F401
from .batch_rtmdet_head import BatchRTMDetSepBNHead  # noqa: F401
from .batch_sparse_roi_head import BatchSparseRoIHead  # noqa: F401
from .yolov7_head import YOLOv7Head  # noqa: F401
