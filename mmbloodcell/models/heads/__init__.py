# Modules register themselves on import; add one import line per module.
from .ssd_head import ConfigurableSSDHead  # noqa: F401
