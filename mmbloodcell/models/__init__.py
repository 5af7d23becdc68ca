from . import classifiers, detectors, heads, losses  # noqa: F401
