from . import backbones, classifiers, detectors, heads, losses, task_modules  # noqa: F401
