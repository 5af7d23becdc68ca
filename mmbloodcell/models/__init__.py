from . import (backbones, classifiers, data_preprocessors, heads, layers, losses,  # noqa: F401
               task_modules)
