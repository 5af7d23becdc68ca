from . import backbones, classifiers, heads, layers, losses, task_modules  # noqa: F401
