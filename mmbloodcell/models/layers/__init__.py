# Modules register themselves on import; add one import line per module.
from .ema import ForeachExpMomentumEMA  # noqa: F401
