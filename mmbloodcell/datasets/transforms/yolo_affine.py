"""The random affine of YOLOv7's training pipeline (the reference's ``random_perspective``
without its perspective term), on mmdet's :class:`RandomAffine`."""
from typing import Tuple

import cv2
import numpy as np
from mmcv.transforms.utils import cache_randomness
from mmdet.datasets.transforms import RandomAffine
from mmdet.structures.bbox import autocast_box_type
from numpy import random  # as mmdet's transforms: numpy's generator (seeded by mmengine)

from mmbloodcell.registry import DET_TRANSFORMS


@DET_TRANSFORMS.register_module()
class YOLOv7RandomAffine(RandomAffine):
    """mmdet's :class:`RandomAffine` about the image centre, with the box filter of YOLOv7.

    For an input of ``(h, w)`` and ``border = (b_x, b_y)`` the output has ``(H, W) = (h + 2 b_y,
    w + 2 b_x)`` (a mosaic of ``2s x 2s`` with ``border=(-s // 2, -s // 2)`` gives ``s x s``).
    Each point ``p`` of the input is moved to ``M p`` with::

        M = T @ Sh @ R(a) @ Z(z) @ C
        C = translate(-w / 2, -h / 2)            # the input's centre to the origin
        Z(z), z ~ U(scaling_ratio_range)         # zoom about the centre
        R(a), a ~ U(-max_rotate_degree, +max_rotate_degree)
        Sh = shear(U(-max_shear_degree, +max_shear_degree) per axis)
        T = translate(u_x W, u_y H), u ~ U(0.5 - max_translate_ratio, 0.5 + max_translate_ratio)

    so that with no zoom and no translation the output is the centre crop of the input; mmdet's
    RandomAffine zooms about the top-left corner and translates by ``+-max_translate_ratio``
    only, so after a mosaic it shows mostly the top-left tile. Pixels from outside the input
    are ``border_val``. An input that the border would leave empty (a single image that
    ``CachedMosaic`` passes through while its cache fills) keeps its size, as the reference
    warps an image it does not mosaic.

    Boxes: the corners are moved by ``M``, the enclosing box is clipped to the output; a box is
    kept when its width and height exceed ``min_bbox_size`` pixels, its clipped area is more
    than ``min_area_ratio`` of its zoomed area ``z^2 * w_0 * h_0`` and its aspect ratio
    ``max(w / h, h / w)`` is below ``max_aspect_ratio`` (the reference's ``box_candidates``:
    2, 0.1, 20).

    Args:
        max_rotate_degree, max_translate_ratio, scaling_ratio_range, max_shear_degree, border,
            border_val: As :class:`RandomAffine`.
        min_bbox_size (float): Defaults to 2.
        min_area_ratio (float): Defaults to 0.1.
        max_aspect_ratio (float): Defaults to 20.
    """

    def __init__(self,
                 max_rotate_degree: float = 0.0,
                 max_translate_ratio: float = 0.1,
                 scaling_ratio_range: Tuple[float, float] = (0.5, 1.5),
                 max_shear_degree: float = 0.0,
                 border: Tuple[int, int] = (0, 0),
                 border_val: Tuple[int, int, int] = (114, 114, 114),
                 min_bbox_size: float = 2.0,
                 min_area_ratio: float = 0.1,
                 max_aspect_ratio: float = 20.0) -> None:
        if not 0 <= max_translate_ratio <= 0.5:
            raise ValueError(f'YOLOv7RandomAffine: max_translate_ratio must be in [0, 0.5] (the '
                             f'translation is a fraction of the output), got {max_translate_ratio}')
        super().__init__(max_rotate_degree=max_rotate_degree,
                         max_translate_ratio=max_translate_ratio,
                         scaling_ratio_range=scaling_ratio_range,
                         max_shear_degree=max_shear_degree, border=border,
                         border_val=border_val, bbox_clip_border=True)
        self.min_bbox_size = min_bbox_size
        self.min_area_ratio = min_area_ratio
        self.max_aspect_ratio = max_aspect_ratio

    @cache_randomness
    def _random_warp(self, in_hw: Tuple[int, int],
                     out_hw: Tuple[int, int]) -> Tuple[np.ndarray, float]:
        """The 3x3 matrix ``M`` of the class docstring and its zoom ``z``."""
        (h, w), (out_h, out_w) = in_hw, out_hw
        centre = self._get_translation_matrix(-w / 2, -h / 2)
        zoom = random.uniform(*self.scaling_ratio_range)
        rotation = self._get_rotation_matrix(
            random.uniform(-self.max_rotate_degree, self.max_rotate_degree))
        shear = self._get_shear_matrix(
            random.uniform(-self.max_shear_degree, self.max_shear_degree),
            random.uniform(-self.max_shear_degree, self.max_shear_degree))
        t = self.max_translate_ratio
        translate = self._get_translation_matrix(random.uniform(0.5 - t, 0.5 + t) * out_w,
                                                 random.uniform(0.5 - t, 0.5 + t) * out_h)
        matrix = (translate @ shear @ rotation @ self._get_scaling_matrix(zoom) @ centre)
        return matrix.astype(np.float32), zoom

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        img = results['img']
        in_hw = img.shape[:2]
        out_hw = (in_hw[0] + 2 * self.border[1], in_hw[1] + 2 * self.border[0])
        if min(out_hw) <= 0:  # not a mosaic (CachedMosaic's first samples): no border
            out_hw = in_hw
        matrix, zoom = self._random_warp(in_hw, out_hw)
        results['img'] = cv2.warpAffine(img, matrix[:2], dsize=(out_hw[1], out_hw[0]),
                                        borderValue=self.border_val)
        results['img_shape'] = out_hw

        bboxes = results['gt_bboxes']
        if len(bboxes):
            area0 = (bboxes.widths * bboxes.heights).numpy() * zoom ** 2
            bboxes.project_(matrix)
            bboxes.clip_(out_hw)
            w, h = bboxes.widths.numpy(), bboxes.heights.numpy()
            aspect = np.maximum(w / (h + 1e-16), h / (w + 1e-16))
            keep = ((w > self.min_bbox_size) & (h > self.min_bbox_size) &
                    (w * h / (area0 + 1e-16) > self.min_area_ratio) &
                    (aspect < self.max_aspect_ratio))
            results['gt_bboxes'] = bboxes[keep]
            results['gt_bboxes_labels'] = results['gt_bboxes_labels'][keep]
            results['gt_ignore_flags'] = results['gt_ignore_flags'][keep]
            if 'gt_masks' in results:
                raise NotImplementedError('YOLOv7RandomAffine: boxes only, no masks')
        return results

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] + f', min_bbox_size={self.min_bbox_size}, '
                f'min_area_ratio={self.min_area_ratio}, '
                f'max_aspect_ratio={self.max_aspect_ratio})')
