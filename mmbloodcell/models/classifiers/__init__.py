# Modules register themselves on import; add one import line per module.
from .ensemble import EnsembleClassifier  # noqa: F401
from .fast_classifier import FastImageClassifier  # noqa: F401
