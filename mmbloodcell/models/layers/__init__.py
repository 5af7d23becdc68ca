# Modules register themselves on import; add one import line per module.
from .ema import ForeachExpMomentumEMA  # noqa: F401
from .yolov7_blocks import (YOLOv7ELAN, YOLOv7MPDown, YOLOv7RepConv,  # noqa: F401
                            YOLOv7SPPCSPC, conv_bn_act)
