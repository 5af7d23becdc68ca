from . import backbones, classifiers, detectors, heads, layers, losses, task_modules  # noqa: F401
