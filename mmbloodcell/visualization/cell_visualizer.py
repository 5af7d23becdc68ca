"""What mmbloodcell draws on a blood smear: mmdet's boxes with class names and scores, and a
banner with the per-class cell counts."""
import warnings
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmengine.structures import InstanceData

from mmbloodcell.registry import DET_VISUALIZERS, register_module
from mmbloodcell.structures import count_cells, instances_to_detections

__all__ = ['CellDetVisualizer', 'draw_detections']

#: RGB colours per class when no palette is given: BCCDDataset's (RBC, WBC, Platelets).
DEFAULT_PALETTE = [(220, 20, 60), (30, 90, 255), (0, 190, 80)]


@register_module(DET_VISUALIZERS)
class CellDetVisualizer(DetLocalVisualizer):
    """:class:`~mmdet.visualization.DetLocalVisualizer` that adds a count banner to the
    predictions it draws: ``RBC: n  WBC: n  Platelets: n  total: n`` (white on black, top
    left), counting the boxes drawn; ground truth is drawn as mmdet draws it."""

    def _draw_instances(self, image: np.ndarray, instances: InstanceData,
                        classes: Optional[List[str]],
                        palette: Optional[List[tuple]]) -> np.ndarray:
        with warnings.catch_warnings():
            # a box reaching past the border is drawn clipped, as it should be
            warnings.filterwarnings('ignore', message='Warning: The (bbox|polygon) is out of')
            drawn = super()._draw_instances(image, instances, classes, palette)
        if 'scores' not in instances or not classes:
            return drawn
        counts = count_cells(instances_to_detections(instances, classes), classes)
        banner = '  '.join(f'{name}: {counts[name]}' for name in classes)
        banner += f"  total: {counts['total']}"
        height, width = drawn.shape[:2]
        self.draw_texts(banner, np.array([4, 4]), colors='white',
                        font_sizes=max(8, round(min(height, width) / 40)),
                        bboxes=dict(facecolor='black', alpha=1.0, pad=2, edgecolor='none'))
        return self.get_image()


def draw_detections(img: np.ndarray, detections: Sequence[dict], classes: Sequence[str],
                    palette: Optional[Sequence[tuple]] = None) -> np.ndarray:
    """Draw all the :func:`~mmbloodcell.structures.instances_to_detections` records with
    :class:`CellDetVisualizer` on a copy of an ``(H, W, 3)`` BGR (or ``(H, W)`` gray) image;
    returns the ``(H, W, 3)`` BGR uint8 drawing. ``palette``: RGB per class, by default BCCD's
    colours, repeated as needed."""
    rgb = np.ascontiguousarray(np.stack([img] * 3, -1) if img.ndim == 2 else img[..., 2::-1])
    palette = list(palette or DEFAULT_PALETTE)
    palette = [tuple(palette[i % len(palette)]) for i in range(max(len(classes), 1))]
    # constructed directly, not through the registry: no global mmengine instance is made
    visualizer = CellDetVisualizer(name='draw_detections')
    visualizer.dataset_meta = dict(classes=tuple(classes), palette=palette)
    instances = InstanceData(
        bboxes=torch.tensor([d['bbox'] for d in detections], dtype=torch.float32).reshape(-1, 4),
        scores=torch.tensor([d['score'] for d in detections], dtype=torch.float32),
        labels=torch.tensor([d['label'] for d in detections], dtype=torch.long))
    # the records are drawn as given: a threshold below every score
    visualizer.add_datasample('detections', rgb, DetDataSample(pred_instances=instances),
                              draw_gt=False, pred_score_thr=-1.0)
    return np.ascontiguousarray(visualizer.get_image()[..., ::-1])
