"""Numpy post-processing of one-stage detectors' raw outputs: mmdet's ``predict_by_feat``.

An exported detector graph (:func:`mmbloodcell.apis.export.export_onnx`) ends at the head's
per-level outputs: ``cls_score_<l>`` ``(N, A * C, H_l, W_l)``, ``bbox_pred_<l>``
``(N, A * 4, H_l, W_l)`` and, for FCOS, ``centerness_<l>`` ``(N, A, H_l, W_l)``.
:class:`DensePostProcessor` turns them into boxes per image as mmdet's
``BaseDenseHead._predict_by_feat_single`` + ``_bbox_post_process`` do, for the heads that use
them unchanged (FCOS, RTMDet, SSD, RetinaNet-like) and for GFL:

1. per level: priors of the level's grid (``MlvlPointGenerator``: points
   ``((x + offset) * s_w, (y + offset) * s_h)``; ``AnchorGenerator`` / ``SSDAnchorGenerator``:
   the level's base anchors shifted by ``(x * s_w, y * s_h)``), scores ``sigmoid`` (or
   ``softmax`` without the background column), ``scores > score_thr`` and the ``nms_pre``
   highest (class-wise flattened, as ``filter_scores_and_topk``);
   GFL's box outputs ``(4 * (n + 1))`` per prior are distributions over ``0..n`` strides
   first: ``distance = stride * sum_i i * softmax(logits)_i`` per side, on the anchors'
   centres (its ``integral`` and ``anchor_center``);
2. boxes decoded (``DistancePointBBoxCoder``: ``(px - l, py - t, px + r, py + b)``;
   ``DeltaXYWHBBoxCoder``: ``delta2bbox`` with the coder's means / stds) and clipped to the
   resized image, then divided by the resize's ``scale_factor``; FCOS's scores multiplied by
   ``sigmoid(centerness)``;
3. boxes with ``w, h > min_bbox_size`` kept; class-aware NMS (mmcv ``batched_nms``: boxes of
   class ``c`` offset by ``c * (max coordinate + 1)``, then greedy NMS suppressing
   ``IoU > iou_threshold``), the first ``max_per_img``.

Everything is float32 as in mmdet, so the boxes equal mmdet's up to the rounding of
``exp`` / ``sigmoid``. The head's description (``head`` of the ONNX metadata) is made by
:func:`mmbloodcell.apis.export.describe_dense_head`.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'sigmoid', 'softmax', 'point_priors', 'anchor_priors', 'distance2bbox', 'delta2bbox',
    'filter_scores_and_topk', 'nms', 'batched_nms', 'DensePostProcessor'
]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` in the input's dtype."""
    x = np.asarray(x)
    return (1 / (1 + np.exp(-x))).astype(x.dtype, copy=False)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax over ``axis`` (max-shifted), in the input's dtype."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype, copy=False)


def _grid(featmap_size: Tuple[int, int], stride: Sequence[float],
          offset: float) -> Tuple[np.ndarray, np.ndarray]:
    """x and y of every location of a level, ``(H * W,)`` float32 each, row-major:
    ``((j + offset) * stride_w, (i + offset) * stride_h)``."""
    h, w = featmap_size
    xs = (np.arange(w, dtype=np.float32) + np.float32(offset)) * np.float32(stride[0])
    ys = (np.arange(h, dtype=np.float32) + np.float32(offset)) * np.float32(stride[1])
    return np.tile(xs, h), np.repeat(ys, w)


def point_priors(featmap_size: Tuple[int, int], stride: Sequence[float],
                 offset: float = 0.5) -> np.ndarray:
    """``MlvlPointGenerator`` points of one level, ``(H * W, 2)`` float32 ``(x, y)``, row-major:
    ``((j + offset) * stride_w, (i + offset) * stride_h)``."""
    return np.stack(_grid(featmap_size, stride, offset), -1).astype(np.float32)


def anchor_priors(featmap_size: Tuple[int, int], stride: Sequence[float],
                  base_anchors: np.ndarray) -> np.ndarray:
    """``AnchorGenerator`` anchors of one level, ``(H * W * A, 4)`` float32: the ``(A, 4)``
    base anchors shifted by ``(j * stride_w, i * stride_h)``, location-major."""
    xx, yy = _grid(featmap_size, stride, 0.0)
    shifts = np.stack([xx, yy, xx, yy], -1)
    base = np.asarray(base_anchors, np.float32).reshape(-1, 4)
    return (base[None] + shifts[:, None]).reshape(-1, 4)


def _clip(bboxes: np.ndarray, max_shape: Optional[Sequence[int]]) -> np.ndarray:
    if max_shape is not None:
        bboxes[:, 0::2] = np.clip(bboxes[:, 0::2], 0, max_shape[1])
        bboxes[:, 1::2] = np.clip(bboxes[:, 1::2], 0, max_shape[0])
    return bboxes


def distance2bbox(points: np.ndarray, distance: np.ndarray,
                  max_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """``(x - l, y - t, x + r, y + b)`` of points ``(N, 2)`` and distances ``(N, 4)``, clipped
    to ``max_shape = (h, w)`` when given."""
    bboxes = np.stack([points[:, 0] - distance[:, 0], points[:, 1] - distance[:, 1],
                       points[:, 0] + distance[:, 2], points[:, 1] + distance[:, 3]], -1)
    return _clip(bboxes, max_shape)


def delta2bbox(rois: np.ndarray, deltas: np.ndarray, means: Sequence[float] = (0., 0., 0., 0.),
               stds: Sequence[float] = (1., 1., 1., 1.),
               max_shape: Optional[Sequence[int]] = None, wh_ratio_clip: float = 16 / 1000,
               clip_border: bool = True, add_ctr_clamp: bool = False,
               ctr_clamp: float = 32) -> np.ndarray:
    """``DeltaXYWHBBoxCoder.decode`` of deltas ``(N, 4)`` on boxes ``(N, 4)``: with
    ``d = delta * std + mean``, centre ``c + wh * d_xy`` and size
    ``wh * exp(clip(d_wh, +-|log(wh_ratio_clip)|))``."""
    if len(deltas) == 0:
        return deltas.reshape(0, 4)
    d = deltas * np.asarray(stds, np.float32)[None] + np.asarray(means, np.float32)[None]
    dxy, dwh = d[:, :2], d[:, 2:]
    pxy = (rois[:, :2] + rois[:, 2:]) * np.float32(0.5)
    pwh = rois[:, 2:] - rois[:, :2]
    dxy_wh = pwh * dxy
    max_ratio = float(np.abs(np.log(wh_ratio_clip)))
    if add_ctr_clamp:
        dxy_wh = np.clip(dxy_wh, -ctr_clamp, ctr_clamp)
        dwh = np.minimum(dwh, max_ratio)
    else:
        dwh = np.clip(dwh, -max_ratio, max_ratio)
    gxy = pxy + dxy_wh
    gwh = pwh * np.exp(dwh)
    bboxes = np.concatenate([gxy - gwh * np.float32(0.5), gxy + gwh * np.float32(0.5)], -1)
    return _clip(bboxes, max_shape if clip_border else None)


def filter_scores_and_topk(scores: np.ndarray, score_thr: float,
                           topk: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mmdet's ``filter_scores_and_topk``: of ``scores`` ``(P, C)``, the entries
    ``> score_thr``, the ``topk`` highest (``min(topk, n)`` as mmdet slices them).

    Returns:
        tuple: scores ``(K,)``, labels ``(K,)`` and prior indices ``(K,)``, highest first.
    """
    rows, labels = np.nonzero(scores > score_thr)
    kept = scores[rows, labels]
    order = np.argsort(-kept, kind='stable')[:min(int(topk), len(kept))]
    return kept[order], labels[order], rows[order]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
        offset: int = 0) -> np.ndarray:
    """Greedy NMS as mmcv's ``nms`` op: in descending score order, a box is dropped when its
    IoU with a kept box is ``> iou_threshold`` (areas ``(x2 - x1 + offset) * (y2 - y1 +
    offset)``, float32). Returns the kept indices, highest score first."""
    boxes = boxes.astype(np.float32, copy=False)
    order = np.argsort(-scores, kind='stable')
    x1, y1, x2, y2 = (boxes[order, i] for i in range(4))
    off = np.float32(offset)
    areas = (x2 - x1 + off) * (y2 - y1 + off)
    alive = np.ones(len(order), bool)
    thr = np.float32(iou_threshold)
    for i in range(len(order)):
        if not alive[i]:
            continue
        rest = np.nonzero(alive[i + 1:])[0] + i + 1
        if not len(rest):
            break
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) +
                       off)
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) +
                       off)
        inter = w * h
        with np.errstate(invalid='ignore', divide='ignore'):  # 0 / 0 of empty boxes: kept
            iou = inter / (areas[i] + areas[rest] - inter)
        alive[rest[iou > thr]] = False
    return order[alive]


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float,
                class_agnostic: bool = False, split_thr: int = 10000,
                max_num: int = -1) -> np.ndarray:
    """mmcv's ``batched_nms`` with ``type='nms'``: class-aware NMS by offsetting each class's
    boxes by ``label * (max coordinate + 1)`` (fewer than ``split_thr`` boxes), or class by
    class. Returns the kept indices, highest score first."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    if class_agnostic:
        shifted = boxes
    else:
        offsets = labels.astype(np.float32) * (boxes.max() + np.float32(1))
        shifted = boxes + offsets[:, None]
    if len(shifted) < split_thr:
        keep = nms(shifted, scores, iou_threshold)
    else:
        kept = []
        for c in np.unique(labels):
            idx = np.nonzero(labels == c)[0]
            kept.append(idx[nms(shifted[idx], scores[idx], iou_threshold)])
        keep = np.concatenate(kept)
        keep = keep[np.argsort(-scores[keep], kind='stable')]
    return keep[:max_num] if max_num > 0 else keep


class DensePostProcessor:
    """Boxes of a one-stage detector's raw per-level outputs, as mmdet's ``predict_by_feat``
    (see the module docstring).

    Args:
        head (dict): The head's description (``head`` of the ONNX metadata):
            ``cls_out_channels``, ``use_sigmoid``, ``num_levels``, ``with_score_factors``,
            ``priors`` (``{"type": "point", "strides", "offset"}`` or ``{"type": "anchor",
            "strides", "base_anchors"[, "centers": true]}``), [``integral`` ``{"reg_max"}``],
            ``coder`` (``{"type": "distance", "clip_border"}``
            or ``{"type": "delta_xywh", "means", "stds", "clip_border", "wh_ratio_clip",
            "add_ctr_clamp", "ctr_clamp"}``).
        test_cfg (dict): The model's ``test_cfg`` (``nms_pre``, ``score_thr``,
            ``min_bbox_size``, ``nms=dict(type='nms', iou_threshold)``, ``max_per_img``).
    """

    def __init__(self, head: dict, test_cfg: dict):
        self.head = head
        self.test_cfg = dict(test_cfg)
        nms_cfg = dict(self.test_cfg.get('nms') or {})
        if nms_cfg.get('type', 'nms') != 'nms':
            raise ValueError(f"test_cfg.nms.type={nms_cfg.get('type')!r} is not supported by "
                             f"the numpy post-processor: use dict(type='nms', iou_threshold=..)")
        self.nms_cfg = nms_cfg
        self._priors: Dict[tuple, List[np.ndarray]] = {}

    def priors(self, featmap_sizes: Sequence[Tuple[int, int]]) -> List[np.ndarray]:
        """The priors of every level for these feature-map sizes (cached)."""
        key = tuple(map(tuple, featmap_sizes))
        if key not in self._priors:
            spec = self.head['priors']
            if spec['type'] == 'point':
                self._priors[key] = [point_priors(s, st, spec['offset'])
                                     for s, st in zip(key, spec['strides'])]
            else:
                self._priors[key] = [anchor_priors(s, st, np.asarray(b, np.float32))
                                     for s, st, b in zip(key, spec['strides'],
                                                         spec['base_anchors'])]
        return self._priors[key]

    def decode(self, priors: np.ndarray, bbox_pred: np.ndarray,
               max_shape: Sequence[int]) -> np.ndarray:
        coder = self.head['coder']
        clip = max_shape if coder.get('clip_border', True) else None
        if coder['type'] == 'distance':
            return distance2bbox(priors, bbox_pred, clip)
        return delta2bbox(priors, bbox_pred, coder['means'], coder['stds'], clip,
                          coder.get('wh_ratio_clip', 16 / 1000), True,
                          coder.get('add_ctr_clamp', False), coder.get('ctr_clamp', 32))

    def single(self, cls_scores: Sequence[np.ndarray], bbox_preds: Sequence[np.ndarray],
               score_factors: Optional[Sequence[np.ndarray]], img_shape: Sequence[int],
               scale_factor: Optional[Sequence[float]] = None) -> Dict[str, np.ndarray]:
        """Boxes of one image from its per-level outputs ``(A * C, H, W)`` /
        ``(A * 4, H, W)`` / ``(A, H, W)``.

        Args:
            img_shape: ``(h, w)`` of the resized image (before padding): boxes are clipped
                to it.
            scale_factor: ``(w_scale, h_scale)`` of the resize; boxes are divided by it
                (None: not rescaled).

        Returns:
            dict: ``bboxes`` ``(K, 4)`` x1y1x2y2, ``scores`` ``(K,)``, ``labels`` ``(K,)``.
        """
        cfg = self.test_cfg
        channels = int(self.head['cls_out_channels'])
        sizes = [tuple(c.shape[-2:]) for c in cls_scores]
        mlvl_priors = self.priors(sizes)
        nms_pre = cfg.get('nms_pre', -1)
        score_thr = cfg.get('score_thr', 0)
        integral = self.head.get('integral')
        bins = 4 if integral is None else 4 * (integral['reg_max'] + 1)
        strides = self.head['priors']['strides']
        boxes, scores, labels, factors, priors = [], [], [], [], []
        for lvl, (cls, reg) in enumerate(zip(cls_scores, bbox_preds)):
            reg = reg.transpose(1, 2, 0).reshape(-1, bins)
            cls = cls.transpose(1, 2, 0).reshape(-1, channels)
            prob = sigmoid(cls) if self.head['use_sigmoid'] else softmax(cls)[:, :-1]
            s, lab, keep = filter_scores_and_topk(prob, score_thr, nms_pre)
            reg, prior = reg[keep], mlvl_priors[lvl][keep]
            if integral is not None:
                n = integral['reg_max'] + 1
                dist = softmax(reg.reshape(-1, n)) @ np.arange(n, dtype=np.float32)
                reg = dist.reshape(-1, 4) * np.float32(strides[lvl][0])
            if self.head['priors'].get('centers'):
                prior = (prior[:, :2] + prior[:, 2:]) * np.float32(0.5)
            boxes.append(reg)
            priors.append(prior)
            scores.append(s)
            labels.append(lab)
            if score_factors is not None:
                factors.append(sigmoid(score_factors[lvl].transpose(1, 2, 0).reshape(-1))[keep])
        bboxes = self.decode(np.concatenate(priors), np.concatenate(boxes), img_shape)
        scores = np.concatenate(scores)
        labels = np.concatenate(labels).astype(np.int64)
        if scale_factor is not None:
            inv = np.asarray([1 / s for s in scale_factor], np.float32)
            bboxes = bboxes * np.tile(inv, 2)[None]
        if score_factors is not None:
            scores = scores * np.concatenate(factors)
        min_size = cfg.get('min_bbox_size', -1)
        if min_size is not None and min_size >= 0:
            w, h = bboxes[:, 2] - bboxes[:, 0], bboxes[:, 3] - bboxes[:, 1]
            valid = (w > min_size) & (h > min_size)
            bboxes, scores, labels = bboxes[valid], scores[valid], labels[valid]
        if len(bboxes):
            nms_cfg = self.nms_cfg
            keep = batched_nms(bboxes, scores, labels, nms_cfg.get('iou_threshold', 0.5),
                               class_agnostic=bool(nms_cfg.get('class_agnostic', False)),
                               split_thr=int(nms_cfg.get('split_thr', 10000)),
                               max_num=int(nms_cfg.get('max_num', -1)))
            keep = keep[:cfg.get('max_per_img', 100)]
            bboxes, scores, labels = bboxes[keep], scores[keep], labels[keep]
        return dict(bboxes=bboxes.reshape(-1, 4).astype(np.float32),
                    scores=scores.astype(np.float32), labels=labels)

    def __call__(self, outputs: Dict[str, np.ndarray],
                 img_metas: Sequence[dict]) -> List[Dict[str, np.ndarray]]:
        """Boxes of every image of a batch.

        Args:
            outputs (dict): The graph's outputs by name, each ``(N, ..., H_l, W_l)``.
            img_metas (Sequence[dict]): Per image ``img_shape`` ``(h, w)`` and
                ``scale_factor`` ``(w_scale, h_scale)``.
        """
        n = self.head['num_levels']
        cls = [outputs[f'cls_score_{i}'] for i in range(n)]
        reg = [outputs[f'bbox_pred_{i}'] for i in range(n)]
        fac = [outputs[f'centerness_{i}'] for i in range(n)] \
            if self.head.get('with_score_factors') else None
        return [self.single([c[b] for c in cls], [r[b] for r in reg],
                            None if fac is None else [f[b] for f in fac],
                            meta['img_shape'][:2], meta.get('scale_factor'))
                for b, meta in enumerate(img_metas)]
