"""Prediction records shared by the inference API, the analysis tools and the harnesses; the
ground truth of a batch as padded tensors."""
from .detections import count_cells, instances_to_detections, to_numpy
from .gt_batch import pad_gt_instances

__all__ = ['count_cells', 'instances_to_detections', 'to_numpy', 'pad_gt_instances']
