# Modules register themselves on import; add one import line per module.
from .ssd_head import ConfigurableSSDHead  # noqa: F401
from .binary_cls_head import BinaryClsHead  # noqa: F401
from .rtmdet_batch_head import BatchRTMDetSepBNHead  # noqa: F401
from .batch_sparse_roi_head import BatchSparseRoIHead  # noqa: F401
