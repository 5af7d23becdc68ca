# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Figures of a run: training curves, detection precision-recall curves, classification ROC
curve and confusion matrix, and grids of sample predictions.

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` built without pyplot (no
global backend is touched), from what the tools write: the records of
``vis_data/scalars.json`` (:mod:`mmbloodcell.analysis.logs`), or the list of dicts that
``tools/test.py CONFIG CKPT --out preds.pkl`` dumps: detection samples with ``img_id``,
``img_path``, ``pred_instances`` (``bboxes`` (N, 4) x1y1x2y2 in original-image pixels,
``scores``, ``labels``) and ``gt_instances``; classification samples with ``img_path``,
``gt_label``, ``pred_label``, ``pred_score`` (2,) and, from ``BinaryClsHead`` /
``EnsembleClassifier``, ``pred_prob`` (the probability of class 1, ``all``).
"""
import contextlib
import io
import math
import os
import os.path as osp
import re
import warnings
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmbloodcell.datasets.cnmc import CNMC_CLASSES
from mmbloodcell.models.heads.binary_cls_head import positive_prob
from mmbloodcell.structures import to_numpy

__all__ = [
    'save_figure', 'figure_to_png', 'plot_training_curves', 'coco_pr_curves', 'plot_pr_curves',
    'classification_arrays', 'roc_curve', 'plot_roc_curve', 'plot_confusion_matrix',
    'plot_detection_samples', 'plot_classification_samples', 'is_detection_preds',
    'is_classification_preds', 'plot_count_scatter', 'detection_confusion_matrix'
]

_SKIP_KEYS = {'step', 'epoch', 'iter', 'time', 'data_time', 'memory'}


def _new_figure(width: float, height: float, layout: Optional[str] = None) -> Figure:
    """A figure without pyplot (``layout='constrained'``: titles do not overlap panels)."""
    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str) -> str:
    """Write ``fig`` as a PNG to ``path`` (folders created); returns ``path``."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, format='png', bbox_inches='tight')
    return path


def figure_to_png(fig: Figure) -> bytes:
    """The PNG bytes of ``fig``."""
    buf = io.BytesIO()
    fig.savefig(buf, format='png', bbox_inches='tight')
    return buf.getvalue()


def _prefix(title: str) -> str:
    return f'{title}: ' if title else ''


def _no_data(ax, text: str, **kwargs) -> None:
    ax.text(0.5, 0.5, text, ha='center', va='center', transform=ax.transAxes, **kwargs)


# ----------------------------------------------------------------------------------------------
# training curves
# ----------------------------------------------------------------------------------------------

def _numeric(rec: dict, key: str) -> float:
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return float('nan')
    return float(v)


def _loss_series(train: List[dict]) -> 'OrderedDict[str, np.ndarray]':
    """Loss curves: ``loss`` (the total) first, then each part. Parts of multi-stage heads
    named ``s<i>.<name>`` (Sparse R-CNN's six stages) are summed over the stages into
    ``<name> (all stages)``."""
    keys = []
    for rec in train:
        for k in rec:
            if 'loss' in k and k not in keys:
                keys.append(k)
    series: 'OrderedDict[str, np.ndarray]' = OrderedDict()
    if 'loss' in keys:
        series['loss'] = np.array([_numeric(r, 'loss') for r in train])
    staged: 'OrderedDict[str, List[str]]' = OrderedDict()
    for k in keys:
        if k == 'loss':
            continue
        m = re.match(r'^s\d+\.(.+)$', k)
        if m:
            staged.setdefault(m.group(1), []).append(k)
        else:
            series[k] = np.array([_numeric(r, k) for r in train])
    for name, parts in staged.items():
        series[f'{name} (all stages)'] = np.nansum(
            np.array([[_numeric(r, p) for p in parts] for r in train]), axis=1)
    return series


def _val_groups(val: List[dict]) -> 'OrderedDict[str, List[str]]':
    """Panels of validation metrics: keys grouped by prefix (``coco/``, ``binary/``, ...);
    COCO's overall mAPs and its per-class APs (``coco/<class>_precision``) get one panel each;
    of the cell counts (``count/``) the MAE at the fixed threshold per class and its mean; speed,
    counts and timing keys are left out."""
    first = ('mAP', 'per-class AP (IoU 0.50:0.95)', 'mAP by object size')
    keys: List[str] = []
    for rec in val:
        keys += [k for k, v in rec.items() if k not in keys and k not in _SKIP_KEYS
                 and isinstance(v, (int, float)) and not isinstance(v, bool)
                 and not k.startswith('speed/') and not k.rsplit('/', 1)[-1].startswith('num_')
                 and (not k.startswith('count/') or _is_count_mae(k))]
    groups: 'OrderedDict[str, List[str]]' = OrderedDict()
    for k in keys:
        prefix, _, name = k.rpartition('/')
        if prefix == 'coco':
            title = first[1] if name.endswith('_precision') else first[2] if name in (
                'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l') else first[0]
        elif prefix == 'count':
            title = 'count MAE (cells / image)'
        else:
            title = 'metrics (%)' if prefix == 'binary' else prefix or 'metrics'
        groups.setdefault(title, []).append(k)
    order = [t for t in first if t in groups] + [t for t in groups if t not in first]
    return OrderedDict((t, groups[t]) for t in order)


def _is_count_mae(key: str) -> bool:
    return key.endswith('_mae') and not key.endswith('_best_mae')


def plot_training_curves(train: List[dict], val: Optional[List[dict]] = None,
                         title: str = '') -> 'OrderedDict[str, Figure]':
    """Figures of a training log: ``train`` records (``iter``, ``epoch``, ``lr``, ``loss*``),
    ``val`` records (metrics and ``step``), ``title`` prefixing the figure titles.

    Returns:
        OrderedDict[str, Figure]: ``'loss'`` (total and parts against the iteration, epoch
        boundaries dotted), ``'lr'`` (learning rate; log scale when it spans more than a
        decade) and, with validation records, ``'val_metrics'`` (one panel per metric group
        against the epoch, or the iteration for iter-based runs; COCO's -1 "no object of this
        size" is not drawn).
    """
    if not train:
        raise ValueError('plot_training_curves: no training records (the log has no line with '
                         'an "iter" key)')
    figs: 'OrderedDict[str, Figure]' = OrderedDict()
    x = np.array([r.get('step', r.get('iter', i + 1)) for i, r in enumerate(train)], float)
    by_epoch = 'epoch' in train[-1]
    boundaries = []
    if by_epoch:
        epochs = [r.get('epoch') for r in train]
        boundaries = [x[i - 1] for i in range(1, len(train)) if epochs[i] != epochs[i - 1]]
    prefix = _prefix(title)

    # losses
    series = _loss_series(train)
    fig = _new_figure(7.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    if series:
        for name, y in series.items():
            total = name == 'loss'
            ax.plot(x, y, label=name, linewidth=2.2 if total else 1.2,
                    marker='o' if len(x) <= 30 else None, markersize=3,
                    color='black' if total else None, zorder=3 if total else 2)
        ax.legend(fontsize=8, loc='upper right')
    else:
        _no_data(ax, 'no loss in the log')
    for b in boundaries if len(boundaries) <= 100 else []:
        ax.axvline(b, color='grey', linestyle=':', linewidth=0.8)
    ax.set(xlabel='iteration' + (' (dotted: epoch ends)' if boundaries else ''),
           ylabel='training loss', title=f'{prefix}training loss')
    ax.grid(alpha=0.3)
    figs['loss'] = fig

    # learning rate
    fig = _new_figure(7.5, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    lr = np.array([_numeric(r, 'lr') for r in train])
    if np.isfinite(lr).any():
        ax.plot(x, lr, color='tab:blue', marker='o' if len(x) <= 30 else None, markersize=3)
        pos = lr[np.isfinite(lr) & (lr > 0)]
        if pos.size and pos.max() / pos.min() > 10:
            ax.set_yscale('log')
    else:
        _no_data(ax, 'no lr in the log')
    ax.set(xlabel='iteration', ylabel='learning rate', title=f'{prefix}learning rate')
    ax.grid(alpha=0.3)
    figs['lr'] = fig

    # validation metrics
    groups = _val_groups(val or [])
    if groups:
        vx = np.array([r.get('step', i + 1) for i, r in enumerate(val)], float)
        cols = min(len(groups), 2)
        rows = math.ceil(len(groups) / cols)
        fig = _new_figure(6.0 * cols, 4.0 * rows)
        for i, (gname, keys) in enumerate(groups.items()):
            ax = fig.add_subplot(rows, cols, i + 1)
            for k in keys:
                y = np.array([_numeric(r, k) for r in val])
                if k.startswith('coco/'):
                    y[y < 0] = np.nan  # COCO's -1: no ground truth of this size / class
                if not np.isfinite(y).any():
                    continue
                ax.plot(vx, y, marker='o', markersize=4, label=k.rpartition('/')[2])
            ax.set_xlabel('epoch' if by_epoch else 'iteration')
            ax.set_title(f'{prefix}validation {gname}', fontsize=10)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
            if len(vx) <= 20:
                ax.set_xticks(vx)
        fig.tight_layout()
        figs['val_metrics'] = fig
    return figs


# ----------------------------------------------------------------------------------------------
# detection: precision-recall curves from COCOeval
# ----------------------------------------------------------------------------------------------

def is_detection_preds(preds: Sequence[dict]) -> bool:
    return bool(preds) and 'pred_instances' in preds[0]


def is_classification_preds(preds: Sequence[dict]) -> bool:
    return bool(preds) and ('pred_prob' in preds[0] or 'pred_score' in preds[0]) \
        and 'pred_instances' not in preds[0]


def coco_pr_curves(ann_file: str, preds: Sequence[dict],
                   classes: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Per-class precision-recall curves of detection predictions, by pycocotools' COCOeval.

    Label ``i`` is the category named ``classes[i]`` (mmdet's ``CocoMetric`` convention), else
    the file's ``i``-th category. The predicted images are evaluated with ``maxDets = (100,
    300, 1000)`` as ``CocoMetric`` does, so the APs equal its ``coco/<class>_precision``.
    ``COCOeval.eval['precision']`` is ``(T, R, K, A, M)``: T = 10 IoU thresholds 0.50:0.95,
    R = 101 recall points, K classes, A = 4 areas (0 = all), M = 3 maxDets (-1 = 1000); -1
    marks "no ground truth".

    Returns:
        dict: ``classes`` (K names), ``recall`` (R,), ``precision_50`` (K, R) at IoU 0.5,
        ``precision`` (K, R) averaged over the IoU thresholds, ``ap_50`` and ``ap`` (K,) (NaN
        without ground truth), ``mAP`` and ``mAP_50`` (as ``COCOeval.summarize``:
        ``coco/bbox_mAP`` and ``coco/bbox_mAP_50`` before rounding), ``num_gt`` (K,),
        ``num_images``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'{ann_file}: COCO annotation file not found (the ann_file of '
                                f'the test_evaluator of the config the predictions came from)')
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    cats = gt.dataset['categories']
    if classes is None:
        cat_ids = [c['id'] for c in cats]
        names = [c['name'] for c in cats]
    else:
        by_name = {c['name']: c['id'] for c in cats}
        missing = [c for c in classes if c not in by_name]
        if missing:
            raise ValueError(f'{ann_file}: classes {missing} of the predictions are not '
                             f'categories of the file ({sorted(by_name)})')
        cat_ids = [by_name[c] for c in classes]
        names = list(classes)
    img_ids, dets = [], []
    known = set(gt.getImgIds())
    for p in preds:
        if 'pred_instances' not in p or 'img_id' not in p:
            raise ValueError('coco_pr_curves: the predictions are not detection results '
                             '(need img_id and pred_instances; dump them with tools/test.py '
                             '--out preds.pkl)')
        img_id = int(p['img_id'])
        if img_id not in known:
            raise ValueError(f'{ann_file}: image id {img_id} of the predictions '
                             f"({p.get('img_path')}) is not in the file; pass the ann_file the "
                             f'predictions were made for')
        img_ids.append(img_id)
        inst = p['pred_instances']
        boxes, scores, labels = (to_numpy(inst[k]) for k in ('bboxes', 'scores', 'labels'))
        for (x1, y1, x2, y2), s, lab in zip(boxes.reshape(-1, 4), scores, labels):
            dets.append(dict(image_id=img_id, category_id=cat_ids[int(lab)],
                             bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                             score=float(s)))
    recall = np.linspace(0.0, 1.0, 101)
    num_gt = np.array([
        sum(not a.get('iscrowd', 0) for a in gt.loadAnns(gt.getAnnIds(imgIds=img_ids, catIds=[c])))
        for c in cat_ids])
    if dets:
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(dets)
            ev = COCOeval(gt, dt, 'bbox')
            ev.params.catIds = cat_ids
            ev.params.imgIds = sorted(set(img_ids))
            ev.params.maxDets = [100, 300, 1000]
            ev.evaluate()
            ev.accumulate()
        prec = ev.eval['precision'][:, :, :, 0, -1]  # (T, R, K)
        prec = np.moveaxis(prec, 2, 0)  # (K, T, R)
    else:  # no box at all: precision 0 wherever there is ground truth
        prec = np.where(num_gt[:, None, None] > 0, 0.0, -1.0) * np.ones((len(cat_ids), 10, 101))
    valid = prec > -1
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        masked = np.where(valid, prec, np.nan)
        precision = np.nanmean(masked, axis=1)  # (K, R) mean over IoU thresholds
        ap = np.nanmean(masked.reshape(len(cat_ids), -1), axis=1)
        ap_50 = np.nanmean(masked[:, 0, :], axis=1)
        # COCOeval.summarize()'s mAP: the mean of every valid entry (all classes together)
        mean_ap = float(np.nanmean(masked)) if valid.any() else float('nan')
        mean_ap_50 = float(np.nanmean(masked[:, 0, :])) if valid[:, 0, :].any() else float('nan')
    return dict(classes=names, recall=recall, precision_50=masked[:, 0, :],
                precision=precision, ap_50=ap_50, ap=ap, mAP=mean_ap, mAP_50=mean_ap_50,
                num_gt=num_gt, num_images=len(set(img_ids)))


def plot_pr_curves(pr: Dict[str, object], title: str = '') -> Figure:
    """Two panels, IoU 0.5 and IoU 0.50:0.95 (precision averaged over the thresholds), one
    curve per class labelled with its AP and number of ground-truth boxes."""
    fig = _new_figure(12, 4.8, layout='constrained')
    for i, (key, ap_key, map_key, name) in enumerate(
            (('precision_50', 'ap_50', 'mAP_50', 'IoU 0.50'),
             ('precision', 'ap', 'mAP', 'IoU 0.50:0.95'))):
        ax = fig.add_subplot(1, 2, i + 1)
        for k, cls in enumerate(pr['classes']):
            y = np.asarray(pr[key])[k]
            ap = float(np.asarray(pr[ap_key])[k])
            label = f"{cls} (AP {ap:.3f}, {int(pr['num_gt'][k])} gt)" if np.isfinite(ap) \
                else f'{cls} (no ground truth)'
            ax.plot(pr['recall'], np.nan_to_num(y, nan=0.0) if np.isfinite(ap) else y,
                    label=label, linewidth=1.8)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='recall', ylabel='precision')
        mean = float(pr.get(map_key, float('nan')))
        ax.set_title(f'{name} (mAP {mean:.3f})', fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc='lower left')
    fig.suptitle(f'{_prefix(title)}precision-recall per class', fontsize=11)
    return fig


def plot_count_scatter(records: Sequence[dict], classes: Sequence[str],
                       title: str = '') -> Figure:
    """Predicted vs annotated cell count per image, one panel per class: the counts at the
    fixed threshold (circles) and, when the records have them, at the calibrated thresholds
    (crosses), with the diagonal ``predicted = annotated``.

    Args:
        records (Sequence[dict]): The ``images`` of a ``count_errors_<split>.json``
            (``CellCountMetric``): ``annotated``, ``predicted`` and ``predicted_calibrated``
            (``{class: n}``, the last may be None).
        classes (Sequence[str]): The classes, one panel each.
    """
    fig = _new_figure(4.2 * max(len(classes), 1), 4.2, layout='constrained')
    for i, cls in enumerate(classes):
        ax = fig.add_subplot(1, max(len(classes), 1), i + 1)
        gt = np.array([r['annotated'][cls] for r in records], dtype=float)
        fixed = np.array([r['predicted'][cls] for r in records], dtype=float)
        cal = [r.get('predicted_calibrated') for r in records]
        top = max([1.0] + list(gt) + list(fixed))
        ax.scatter(gt, fixed, s=22, alpha=0.6, label='fixed threshold', marker='o')
        if records and all(c is not None for c in cal):
            cal = np.array([c[cls] for c in cal], dtype=float)
            top = max(top, float(cal.max()))
            ax.scatter(gt, cal, s=28, alpha=0.8, label='calibrated', marker='x')
        if not records:
            _no_data(ax, 'no images')
        ax.plot([0, top * 1.05], [0, top * 1.05], color='grey', linewidth=1, linestyle='--')
        ax.set(xlim=(-0.5, top * 1.05), ylim=(-0.5, top * 1.05), xlabel='annotated count',
               ylabel='predicted count')
        ax.set_title(f'{cls} ({len(records)} images)', fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc='upper left')
    fig.suptitle(f'{_prefix(title)}predicted vs annotated cells per image', fontsize=11)
    return fig


# ----------------------------------------------------------------------------------------------
# classification: ROC curve and confusion matrix
# ----------------------------------------------------------------------------------------------

def classification_arrays(preds: Sequence[dict]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(gt, prob, pred)`` of classification predictions: labels (N,) in {0, 1} (-1 where a
    sample has no ``gt_label``, e.g. the unlabelled final test), the probability of class 1
    (``pred_prob``, else ``pred_score[1]``) and the predicted labels (``pred_label``, else
    ``prob > 0.5``)."""
    gt, prob, pred = [], [], []
    for i, p in enumerate(preds):
        try:
            q = float(positive_prob(p))
        except ValueError as e:
            raise ValueError(f"sample {p.get('img_path', i)}: {e}; the ROC curve is drawn for "
                             f'binary models, dump their results with tools/test.py --out '
                             f'preds.pkl') from e
        prob.append(q)
        pred.append(int(to_numpy(p['pred_label']).reshape(-1)[0]) if 'pred_label' in p else
                    int(q > 0.5))
        gt.append(int(to_numpy(p['gt_label']).reshape(-1)[0]) if 'gt_label' in p else -1)
    return np.array(gt), np.array(prob, dtype=np.float64), np.array(pred)


def roc_curve(gt: np.ndarray, prob: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of the ROC curve, one point per distinct score (descending),
    starting at (0, 0) with threshold +inf: ``tpr = TP / P``, ``fpr = FP / N`` for the rule
    ``prob >= threshold``. Its trapezoidal area is the rank-sum AUC of
    :func:`mmbloodcell.evaluation.metrics.binary_metrics.roc_auc_score`."""
    gt = np.asarray(gt).reshape(-1)
    prob = np.asarray(prob, dtype=np.float64).reshape(-1)
    pos, neg = int((gt == 1).sum()), int((gt == 0).sum())
    if pos == 0 or neg == 0:
        raise ValueError(f'roc_curve: both classes are needed, got {pos} positive and {neg} '
                         f'negative samples')
    order = np.argsort(-prob, kind='mergesort')
    p, y = prob[order], gt[order]
    last = np.r_[np.nonzero(np.diff(p))[0], p.size - 1]  # last index of each distinct score
    tps = np.cumsum(y == 1)[last]
    fps = np.cumsum(y == 0)[last]
    tpr = np.r_[0.0, tps / pos]
    fpr = np.r_[0.0, fps / neg]
    thr = np.r_[np.inf, p[last]]
    return fpr, tpr, thr


def plot_roc_curve(gt: np.ndarray, prob: np.ndarray, threshold: float = 0.5,
                   title: str = '') -> Figure:
    """ROC curve of ``prob`` against ``gt`` (samples with ``gt == -1`` are left out), its AUC,
    the chance diagonal and the operating point ``prob > threshold``."""
    gt = np.asarray(gt)
    keep = gt >= 0
    gt, prob = gt[keep], np.asarray(prob)[keep]
    fpr, tpr, _ = roc_curve(gt, prob)
    auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, 'trapezoid') else float(np.trapz(tpr, fpr))
    pred = prob > threshold
    op_tpr = float((pred & (gt == 1)).sum()) / max(int((gt == 1).sum()), 1)
    op_fpr = float((pred & (gt == 0)).sum()) / max(int((gt == 0).sum()), 1)
    fig = _new_figure(5.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(fpr, tpr, color='tab:red', linewidth=2, drawstyle='default',
            label=f'ROC (AUC {100 * auc:.2f} %)')
    ax.plot([0, 1], [0, 1], color='grey', linestyle='--', linewidth=1, label='chance')
    ax.plot([op_fpr], [op_tpr], 'o', color='black', markersize=7,
            label=f'p(all) > {threshold:g}: TPR {op_tpr:.2f}, FPR {op_fpr:.2f}')
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel='false positive rate (1 - specificity)',
           ylabel='true positive rate (sensitivity)')
    ax.set_title(f'{_prefix(title)}ROC, all vs hem ({gt.size} cells)', fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='lower right')
    return fig


def detection_confusion_matrix(preds: Sequence[dict], num_classes: int,
                               score_thr: Union[float, Sequence[float]] = 0.3,
                               iou_thr: float = 0.5) -> np.ndarray:
    """The confusion matrix of detection predictions, ``(C + 1, C + 1)`` counts: rows = ground
    truth, columns = prediction, index ``C`` = background.

    Per image, the predicted boxes with ``score >= score_thr`` (one number, or one per class)
    are taken highest score first, each matched to the not yet matched ground-truth box (any
    class) of the largest IoU if that IoU is >= ``iou_thr``: a match counts at
    ``(gt label, predicted label)``, an unmatched prediction at ``(background, predicted
    label)`` (a false detection), a ground-truth box left unmatched at ``(gt label,
    background)`` (a missed cell). ``preds`` are in the form of the predictions pickle
    (``pred_instances`` and ``gt_instances`` with ``bboxes`` x1y1x2y2 and ``labels``).
    """
    import torch
    from mmdet.structures.bbox import bbox_overlaps
    thr = np.broadcast_to(np.asarray(score_thr, np.float64), (num_classes, ))
    cm = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    bg = num_classes
    for p in preds:
        pred, gt = p['pred_instances'], p.get('gt_instances') or {}
        boxes = to_numpy(pred['bboxes']).reshape(-1, 4).astype(np.float32)
        scores = to_numpy(pred['scores']).reshape(-1)
        labels = to_numpy(pred['labels']).reshape(-1).astype(np.int64)
        keep = scores >= thr[labels]
        order = np.argsort(-scores[keep], kind='stable')
        boxes, labels = boxes[keep][order], labels[keep][order]
        gt_boxes = to_numpy(gt.get('bboxes', np.zeros((0, 4)))).reshape(-1, 4).astype(np.float32)
        gt_labels = to_numpy(gt.get('labels', np.zeros(0))).reshape(-1).astype(np.int64)
        ious = bbox_overlaps(torch.from_numpy(boxes), torch.from_numpy(gt_boxes)).numpy() \
            if len(boxes) and len(gt_boxes) else np.zeros((len(boxes), len(gt_boxes)))
        matched = np.zeros(len(gt_boxes), bool)
        for i, label in enumerate(labels):
            cand = np.where(~matched, ious[i], -1.0) if len(gt_boxes) else np.zeros(0)
            j = int(cand.argmax()) if len(cand) else -1
            if j >= 0 and cand[j] >= iou_thr:
                matched[j] = True
                cm[gt_labels[j], label] += 1
            else:
                cm[bg, label] += 1
        for j in np.where(~matched)[0]:
            cm[gt_labels[j], bg] += 1
    return cm


def plot_confusion_matrix(cm, class_names: Sequence[str] = CNMC_CLASSES,
                          title: str = '') -> Figure:
    """The confusion matrix (rows = ground truth, columns = prediction), counts and row
    percentages in the cells (e.g. :func:`detection_confusion_matrix` with the class names
    and ``'background'``)."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(f'plot_confusion_matrix: a {len(class_names)}x{len(class_names)} '
                         f'matrix is needed, got shape {cm.shape}')
    n = len(class_names)
    fig = _new_figure(1.6 * n + 2.6, 1.4 * n + 1.8)
    ax = fig.add_subplot(1, 1, 1)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    im = ax.imshow(frac, cmap='Blues', vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f'{cm[i, j]}\n({100 * frac[i, j]:.1f} %)', ha='center', va='center',
                    color='white' if frac[i, j] > 0.5 else 'black', fontsize=11)
    ax.set(xticks=range(n), yticks=range(n), xticklabels=class_names, yticklabels=class_names,
           xlabel='prediction', ylabel='ground truth')
    ax.set_title(f'{_prefix(title)}confusion matrix ({int(cm.sum())} samples)', fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='fraction of the row')
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# sample predictions
# ----------------------------------------------------------------------------------------------

def _read_rgb(path: str) -> Optional[np.ndarray]:
    import cv2
    img = cv2.imread(path, cv2.IMREAD_COLOR) if path and osp.isfile(path) else None
    return None if img is None else img[:, :, ::-1]


def _grid(n: int, cols: int, cell_w: float, cell_h: float) -> Tuple[Figure, int, int]:
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    return _new_figure(cell_w * cols, cell_h * rows, layout='constrained'), rows, cols


def plot_detection_samples(preds: Sequence[dict], classes: Sequence[str],
                           score_thr: Union[float, Dict[str, float]] = 0.3, num: int = 6,
                           cols: int = 3, title: str = '') -> Figure:
    """A grid of the first ``num`` images with their predicted boxes (score >= ``score_thr``,
    one number or ``{class: threshold}``; coloured per class, with the per-class count banner
    of :func:`mmbloodcell.visualization.draw_detections`) over the ground-truth boxes (thin
    white). Images that cannot be read are listed in a text cell instead."""
    import cv2

    from mmbloodcell.structures import instances_to_detections
    from mmbloodcell.visualization import draw_detections
    if not preds:
        raise ValueError('plot_detection_samples: no predictions')
    chosen = list(preds[:num])
    if isinstance(score_thr, dict):
        thrs = {c: float(score_thr.get(c, 0.3)) for c in classes}
        thr_text = ', '.join(f'{c} {t:g}' for c, t in thrs.items())
    else:
        thrs = {c: float(score_thr) for c in classes}
        thr_text = f'{float(score_thr):g}'
    fig, rows, cols = _grid(len(chosen), cols, 5.0, 4.2)
    for i, p in enumerate(chosen):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axis('off')
        path = p.get('img_path', '')
        rgb = _read_rgb(path)
        if rgb is None:
            _no_data(ax, f'cannot read\n{path}', fontsize=8, wrap=True)
            continue
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        gt_counts = ''
        if 'gt_instances' in p:
            gt_boxes = to_numpy(p['gt_instances']['bboxes']).reshape(-1, 4)
            gt_labels = to_numpy(p['gt_instances']['labels']).reshape(-1)
            for x1, y1, x2, y2 in gt_boxes:
                cv2.rectangle(bgr, (int(x1), int(y1)), (int(x2), int(y2)), (255, 255, 255), 1)
            gt_counts = ', '.join(f'{c} {int((gt_labels == k).sum())}'
                                  for k, c in enumerate(classes))
        dets = [d for d in instances_to_detections(p['pred_instances'], classes)
                if d['score'] >= thrs.get(d['class'], 0.0)]
        drawn = draw_detections(bgr, dets, classes)
        ax.imshow(drawn[:, :, ::-1])
        caption = osp.basename(path)
        if gt_counts:
            caption += f'\nground truth: {gt_counts}'
        ax.set_title(caption, fontsize=8)
    fig.suptitle(f'{_prefix(title)}predictions with score >= {thr_text} (white: ground '
                 f'truth)', fontsize=10)
    return fig


def plot_classification_samples(preds: Sequence[dict], num: int = 8, cols: int = 4,
                                class_names: Sequence[str] = CNMC_CLASSES,
                                title: str = '') -> Figure:
    """A grid of the first ``num`` cells, each captioned with ``p(all)``, the predicted label
    and the ground truth (green when right, red when wrong, black when unlabelled)."""
    if not preds:
        raise ValueError('plot_classification_samples: no predictions')
    chosen = list(preds[:num])
    gt, prob, pred = classification_arrays(chosen)
    fig, rows, cols = _grid(len(chosen), cols, 2.6, 3.0)
    for i, p in enumerate(chosen):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axis('off')
        path = p.get('img_path', '')
        rgb = _read_rgb(path)
        if rgb is None:
            _no_data(ax, f'cannot read\n{osp.basename(path)}', fontsize=8)
        else:
            ax.imshow(rgb)
        caption = (f'{osp.basename(path)}\np({class_names[1]}) = {prob[i]:.3f}\n'
                   f'pred {class_names[pred[i]]}')
        color = 'black'
        if gt[i] >= 0:
            caption += f' | gt {class_names[gt[i]]}'
            color = 'green' if gt[i] == pred[i] else 'red'
        ax.set_title(caption, fontsize=8, color=color)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
