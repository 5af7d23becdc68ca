# Modules register themselves on import; add one import line per module.
from .yolov7_pafpn import YOLOv7PAFPN  # noqa: F401
