# Modules register themselves on import; add one import line per module.
from .grouped_constructor import GroupedOptimWrapperConstructor  # noqa: F401
