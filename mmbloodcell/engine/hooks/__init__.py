# Modules register themselves on import; add one import line per module.
from .latency_hook import LatencyHook  # noqa: F401
from .class_weight_hook import ClassWeightHook  # noqa: F401
from .time_budget_hook import TimeBudgetHook  # noqa: F401
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook  # noqa: F401
from .exact_resume_hook import ExactResumeHook  # noqa: F401
from .logger_hook import MainProcessLoggerHook  # noqa: F401
from .report_hook import ReportHook  # noqa: F401
from .count_calibration_hook import CountCalibrationHook  # noqa: F401
