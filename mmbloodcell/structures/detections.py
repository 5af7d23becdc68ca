"""Detection records: the boxes of an mmdet ``pred_instances`` as JSON-ready dicts, and the
per-class cell counts of a blood smear."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

__all__ = ['instances_to_detections', 'count_cells', 'to_numpy']


def to_numpy(value) -> np.ndarray:
    """A tensor (any device, detached) or array-like as a numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def instances_to_detections(pred_instances, classes: Sequence[str],
                            score_thr: Optional[float] = None) -> List[dict]:
    """Boxes of one image as ``{'label', 'class', 'score', 'bbox': [x1, y1, x2, y2]}`` dicts, in
    the order of ``pred_instances``; scores rounded to 4 decimals, coordinates to 1.

    Args:
        pred_instances (InstanceData | dict): mmdet predictions of one image (or their dict
            form, ``tools/test.py --out``): ``bboxes`` (N, 4) x1y1x2y2 in original-image
            pixels, ``scores`` (N,), ``labels`` (N,), tensors or arrays.
        classes (Sequence[str]): Class names, indexed by label.
        score_thr (float, optional): Keep ``score >= score_thr``; None keeps all.
    """
    bboxes = to_numpy(pred_instances.get('bboxes')).reshape(-1, 4)
    scores = to_numpy(pred_instances.get('scores')).reshape(-1)
    labels = to_numpy(pred_instances.get('labels')).reshape(-1)
    keep = np.ones(len(scores), bool) if score_thr is None else scores >= score_thr
    return [
        dict(label=int(label), **{'class': classes[int(label)]}, score=round(float(score), 4),
             bbox=[round(float(v), 1) for v in box])
        for box, score, label in zip(bboxes[keep], scores[keep], labels[keep])
    ]


def count_cells(detections: Sequence[dict], classes: Sequence[str]) -> Dict[str, int]:
    """Per-class counts of :func:`instances_to_detections` records, plus ``total``:
    ``{<class>: n, ..., 'total': n}`` with every class present (0 when none)."""
    counts = {name: 0 for name in classes}
    for det in detections:
        counts[det['class']] += 1
    counts['total'] = len(detections)
    return counts
