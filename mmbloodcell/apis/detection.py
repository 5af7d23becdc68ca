"""Detection results people can read: per-class cell counts and annotated images."""
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

# BGR colours per class, matching BCCDDataset's palette order (RBC, WBC, Platelets)
_DEFAULT_COLORS = [(60, 20, 220), (255, 144, 30), (0, 200, 0)]


def palette_to_bgr(palette, num_classes: int) -> Optional[List[tuple]]:
    """An mmdet ``dataset_meta['palette']`` (RGB triples, one per class) as BGR colours for
    :func:`draw_detections`; None when it is not such a list (e.g. ``'random'``)."""
    if not isinstance(palette, (list, tuple)) or len(palette) < num_classes:
        return None
    try:
        return [tuple(int(c) for c in reversed(tuple(rgb)[:3])) for rgb in palette]
    except (TypeError, ValueError):
        return None


def detections_to_list(pred_instances, classes: Sequence[str],
                       score_thr: float = 0.3) -> List[dict]:
    """``pred_instances`` (mmdet ``InstanceData``: bboxes (N, 4), scores (N,), labels (N,)) ->
    a list of ``{'label', 'class', 'score', 'bbox': [x1, y1, x2, y2]}`` above ``score_thr``."""
    bboxes = pred_instances.bboxes.detach().cpu().numpy()
    scores = pred_instances.scores.detach().cpu().numpy()
    labels = pred_instances.labels.detach().cpu().numpy()
    keep = scores >= score_thr
    out = []
    for box, score, label in zip(bboxes[keep], scores[keep], labels[keep]):
        out.append(dict(label=int(label), **{'class': classes[int(label)]},
                        score=round(float(score), 4),
                        bbox=[round(float(v), 1) for v in box]))
    return out


def count_cells(detections: List[dict], classes: Sequence[str]) -> Dict[str, int]:
    """Per-class counts of a :func:`detections_to_list` result, plus ``total``."""
    counts = {name: 0 for name in classes}
    for det in detections:
        counts[det['class']] += 1
    counts['total'] = len(detections)
    return counts


def draw_detections(img: np.ndarray, detections: List[dict], classes: Sequence[str],
                    colors: Optional[Sequence] = None) -> np.ndarray:
    """Draw boxes, class names and scores, and a per-class count banner, on a BGR copy."""
    colors = list(colors or _DEFAULT_COLORS)
    out = img.copy()
    thickness = max(1, round(min(img.shape[:2]) / 300))
    for det in detections:
        color = tuple(int(c) for c in colors[det['label'] % len(colors)])
        x1, y1, x2, y2 = (int(round(v)) for v in det['bbox'])
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        cv2.putText(out, f"{det['class']} {det['score']:.2f}", (x1, max(y1 - 3, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
    counts = count_cells(detections, classes)
    banner = '  '.join(f'{name}: {counts[name]}' for name in classes)
    banner += f"  total: {counts['total']}"
    (w, h), _ = cv2.getTextSize(banner, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(out, (0, 0), (w + 8, h + 10), (0, 0, 0), -1)
    cv2.putText(out, banner, (4, h + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out
