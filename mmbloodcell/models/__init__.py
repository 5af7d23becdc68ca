from . import backbones, classifiers, detectors, heads, losses  # noqa: F401
