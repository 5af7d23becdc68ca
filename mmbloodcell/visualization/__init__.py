# Modules register themselves on import; add one import line per module.
from .cell_visualizer import CellDetVisualizer, draw_detections  # noqa: F401
