# Modules register themselves on import; add one import line per module.
from .simplenet import SimpleNet  # noqa: F401
