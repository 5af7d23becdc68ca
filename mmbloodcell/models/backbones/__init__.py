# Modules register themselves on import; add one import line per module.
from .simplenet import SimpleNet  # noqa: F401
from .yolov7_backbone import YOLOv7Backbone  # noqa: F401
