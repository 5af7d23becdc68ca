# Modules register themselves on import; add one import line per module.
from .binary_metrics import BinaryClassificationMetric  # noqa: F401
from .count_metric import CellCountMetric  # noqa: F401
