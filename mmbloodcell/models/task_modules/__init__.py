# Modules register themselves on import; add one import line per module.
from .batch_dsl_assigner import BatchDynamicSoftLabelAssigner  # noqa: F401
