from . import transforms  # noqa: F401
from .bccd import BCCDDataset  # noqa: F401
