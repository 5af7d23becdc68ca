"""Prediction records shared by the inference API, the analysis tools and the harnesses."""
from .detections import count_cells, instances_to_detections, to_numpy

__all__ = ['count_cells', 'instances_to_detections', 'to_numpy']
