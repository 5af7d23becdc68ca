# Modules register themselves on import; add one import line per module.
from .stats_file import StatsFileClsDataPreprocessor, load_mean_std  # noqa: F401
