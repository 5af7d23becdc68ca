from . import (backbones, classifiers, data_preprocessors, heads, layers, losses,  # noqa: F401
               necks, task_modules)
