"""Cell counts of a detector against the annotated counts, per image and class.

A hematology user reads numbers of cells, not boxes: :class:`CellCountMetric` compares, for every
image and class, the number of predicted boxes with ``score >= threshold`` with the number of
annotated boxes, at a fixed threshold, at per-class calibrated thresholds when it has them, and
finds the per-class threshold that minimises the count error on the split it evaluates.
"""
import json
import math
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MessageHub, MMLogger

from mmbloodcell.registry import DET_METRICS
from mmbloodcell.structures import to_numpy

__all__ = ['CellCountMetric', 'count_errors', 'best_count_threshold', 'counts_at',
           'DEFAULT_THR_GRID']

#: The thresholds :class:`CellCountMetric` searches: 0.05, 0.06, ..., 0.95.
DEFAULT_THR_GRID = tuple(round(0.05 + 0.01 * i, 2) for i in range(91))


def counts_at(scores: Sequence[np.ndarray], thr: float) -> np.ndarray:
    """Number of scores ``>= thr`` of every image: ``scores`` is one 1-D array per image (one
    class), the result has shape (num_images, )."""
    return np.array([int((np.asarray(s) >= thr).sum()) for s in scores], dtype=np.int64)


def count_errors(pred: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    """Count error of one class over N images; ``pred`` and ``gt`` are (N, ) counts.

    With ``e_i = pred_i - gt_i``:

    - ``mae`` = mean |e_i|; ``rmse`` = sqrt(mean e_i^2);
    - ``rel_err`` = mean |e_i| / gt_i over the images with ``gt_i > 0`` (an image without an
      annotated cell of the class has no relative error and is left out; NaN when no image
      has one);
    - ``within1`` = share of images with |e_i| <= 1;
    - ``within10pct`` = share of images with |e_i| <= 0.1 gt_i (for ``gt_i = 0``: only an exact
      count of 0 is within).

    All NaN for N = 0.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if gt.size == 0:
        return dict(mae=math.nan, rmse=math.nan, rel_err=math.nan, within1=math.nan,
                    within10pct=math.nan)
    err = np.abs(pred - gt)
    positive = gt > 0
    return dict(
        mae=float(err.mean()),
        rmse=float(np.sqrt(((pred - gt) ** 2).mean())),
        rel_err=float((err[positive] / gt[positive]).mean()) if positive.any() else math.nan,
        within1=float((err <= 1).mean()),
        # a tolerance of 1e-9 so that e.g. 1 of 10 counts as within 10 %
        within10pct=float((err <= 0.1 * gt + 1e-9).mean()))


def best_count_threshold(scores: Sequence[np.ndarray], gt: np.ndarray,
                         grid: Sequence[float] = DEFAULT_THR_GRID) -> tuple:
    """The threshold of ``grid`` whose counts have the smallest MAE against ``gt``.

    ``scores``: one 1-D array of the class's predicted scores per image; ``gt``: (N, )
    annotated counts. Ties: the smaller RMSE wins; thresholds still tied (a plateau, e.g. where
    no score lies between them) give the middle one of them (the lower middle for an even
    number), which stays away from the scores at the plateau's ends.

    Returns:
        tuple: ``(threshold, mae at it)``; ``(nan, nan)`` for no image.
    """
    gt = np.asarray(gt, dtype=np.float64)
    if gt.size == 0:
        return math.nan, math.nan
    grid = [float(t) for t in grid]
    keys = []
    for thr in grid:
        pred = counts_at(scores, thr)
        err = pred - gt
        # rounded: float noise must not break a tie
        keys.append((round(float(np.abs(err).mean()), 12), round(float((err ** 2).mean()), 12)))
    best = min(keys)
    tied = [t for t, k in zip(grid, keys) if k == best]
    return tied[(len(tied) - 1) // 2], best[0]


@DET_METRICS.register_module()
class CellCountMetric(BaseMetric):
    """Predicted vs annotated cell counts per image and class (mmdet data samples).

    For every image and class: the annotated count (``gt_instances`` of the class; ignored
    instances are not in ``gt_instances`` and ``ignore_flags``, when present, are excluded) and
    the predicted count (``pred_instances`` of the class with ``score >= thr``). Metrics under
    ``<prefix>/`` (formulas: :func:`count_errors`), for each class ``C`` and for the mean over
    the classes (``mean_*``, NaN-skipping):

    - at the fixed ``score_thr``: ``C_mae``, ``C_rmse``, ``C_rel_err``, ``C_within1``,
      ``C_within10pct``;
    - at the calibrated per-class thresholds ``calibrated_thrs`` (when set: in the config or by
      :class:`~mmbloodcell.engine.hooks.CountCalibrationHook` at test time from the
      checkpoint): the same with ``_calibrated`` appended (``C_mae_calibrated``...), and the
      threshold used, ``C_thr_calibrated``; a class missing from ``calibrated_thrs`` uses
      ``score_thr``;
    - on every split: ``C_best_thr``, the threshold of ``thr_grid`` minimising the count MAE on
      this split (ties: :func:`best_count_threshold`), and ``C_best_mae``, the MAE there. On the
      validation split this is the calibration; on the test split an optimistic bound.

    The model's ``test_cfg.score_thr`` (0.05 in most configs) already dropped the boxes below
    it: a threshold under it counts the same boxes as it, so the search cannot go below it and
    ``thr_grid`` starts at 0.05. A best threshold at the grid's lowest value is logged: lower
    the model's ``test_cfg.score_thr`` and the grid to search lower.

    The per-image counts are written to ``<out_dir>/count_errors_<stage>.json`` (``stage``:
    ``val`` or ``test`` from the runner, ``eval`` outside one; ``out_dir`` defaults to the
    Runner's log dir, nothing is written without one): ``{"stage", "epoch", "iter",
    "classes", "score_thr", "calibrated_thrs", "calibration_source", "best_thrs",
    "images": [{"img_id", "img_path", "annotated": {C: n}, "predicted": {C: n},
    "predicted_calibrated": {C: n} | null, "abs_error": total over classes at score_thr,
    "abs_error_calibrated"}]}``.

    Args:
        score_thr (float): The fixed threshold. Defaults to 0.3.
        calibrated_thrs (dict, optional): ``{class: threshold}``. Defaults to None.
        thr_grid (Sequence[float], optional): Thresholds searched. Defaults to
            :data:`DEFAULT_THR_GRID` (0.05 to 0.95 in steps of 0.01).
        out_dir (str, optional): Folder of the per-image JSON. Defaults to the log dir.
        collect_device (str), prefix (str, optional): As ``BaseMetric``; prefix ``'count'``.
    """

    default_prefix = 'count'

    def __init__(self, score_thr: float = 0.3, calibrated_thrs: Optional[dict] = None,
                 thr_grid: Optional[Sequence[float]] = None, out_dir: Optional[str] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.score_thr = self._check_thr(score_thr, 'score_thr')
        self.calibration_source: Optional[str] = 'config' if calibrated_thrs else None
        self.calibrated_thrs = self._check_thrs(calibrated_thrs)
        self.thr_grid = tuple(sorted(float(t) for t in (thr_grid or DEFAULT_THR_GRID)))
        for t in self.thr_grid:
            self._check_thr(t, 'thr_grid')
        self.out_dir = out_dir
        #: the per-image records of the last :meth:`compute_metrics` (rank 0)
        self.records: List[dict] = []

    @staticmethod
    def _check_thr(thr, name: str) -> float:
        if not isinstance(thr, (int, float)) or not 0.0 <= float(thr) <= 1.0:
            raise ValueError(f'CellCountMetric: {name} must be a number in [0, 1], got {thr!r}')
        return float(thr)

    def _check_thrs(self, thrs: Optional[dict]) -> Optional[Dict[str, float]]:
        if not thrs:
            return None
        if not isinstance(thrs, dict):
            raise ValueError(f'CellCountMetric: calibrated_thrs must be a dict {{class: '
                             f'threshold}}, got {thrs!r}')
        return {str(k): self._check_thr(v, f'calibrated_thrs[{k!r}]') for k, v in thrs.items()}

    def set_calibrated_thrs(self, thrs: Optional[dict], source: Optional[str] = None) -> None:
        """Use ``thrs`` (``{class: threshold}``) as the calibrated thresholds; ``source`` says
        where they came from (written to the per-image JSON and the log)."""
        self.calibrated_thrs = self._check_thrs(thrs)
        self.calibration_source = source if self.calibrated_thrs else None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            gt = sample.get('gt_instances')
            if gt is None or 'labels' not in gt:
                raise ValueError(
                    f"CellCountMetric: image {sample.get('img_path')} has no gt_instances: the "
                    f"evaluated pipeline needs dict(type='LoadAnnotations', with_bbox=True) "
                    f'before PackDetInputs, or remove CellCountMetric from the evaluator of '
                    f'an unlabelled split')
            labels = to_numpy(gt['labels']).astype(np.int64).reshape(-1)
            flags = gt.get('ignore_flags')
            if flags is not None:
                labels = labels[~to_numpy(flags).astype(bool).reshape(-1)]
            pred = sample['pred_instances']
            self.results.append(dict(
                img_id=sample.get('img_id'), img_path=sample.get('img_path'),
                gt_labels=labels,
                labels=to_numpy(pred['labels']).astype(np.int64).reshape(-1),
                scores=to_numpy(pred['scores']).astype(np.float64).reshape(-1)))

    def _classes(self, results: List[dict]) -> List[str]:
        classes = (self.dataset_meta or {}).get('classes')
        if classes:
            return [str(c) for c in classes]
        top = max([-1] + [int(r['gt_labels'].max()) for r in results if r['gt_labels'].size] +
                  [int(r['labels'].max()) for r in results if r['labels'].size])
        return [str(i) for i in range(top + 1)]

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        classes = self._classes(results)
        calibrated = None
        if self.calibrated_thrs:
            calibrated = {c: self.calibrated_thrs.get(c, self.score_thr) for c in classes}
        metrics: 'OrderedDict[str, float]' = OrderedDict()
        per_class = {}
        best_thrs = {}
        gt_counts = {}
        pred_counts = {}
        cal_counts = {}
        for i, name in enumerate(classes):
            scores = [r['scores'][r['labels'] == i] for r in results]
            gt = np.array([int((r['gt_labels'] == i).sum()) for r in results], dtype=np.int64)
            gt_counts[name] = gt
            pred_counts[name] = counts_at(scores, self.score_thr)
            per_class[name] = dict(fixed=count_errors(pred_counts[name], gt))
            if calibrated is not None:
                cal_counts[name] = counts_at(scores, calibrated[name])
                per_class[name]['calibrated'] = count_errors(cal_counts[name], gt)
            best_thrs[name], per_class[name]['best_mae'] = best_count_threshold(
                scores, gt, self.thr_grid)
        stats = ('mae', 'rmse', 'rel_err', 'within1', 'within10pct')
        for name in classes:
            for s in stats:
                metrics[f'{name}_{s}'] = per_class[name]['fixed'][s]
            if calibrated is not None:
                for s in stats:
                    metrics[f'{name}_{s}_calibrated'] = per_class[name]['calibrated'][s]
                metrics[f'{name}_thr_calibrated'] = calibrated[name]
            metrics[f'{name}_best_thr'] = best_thrs[name]
            metrics[f'{name}_best_mae'] = per_class[name]['best_mae']
        for s in stats:
            metrics[f'mean_{s}'] = _nanmean([per_class[c]['fixed'][s] for c in classes])
            if calibrated is not None:
                metrics[f'mean_{s}_calibrated'] = _nanmean(
                    [per_class[c]['calibrated'][s] for c in classes])
        metrics['mean_best_mae'] = _nanmean([per_class[c]['best_mae'] for c in classes])

        logger = MMLogger.get_current_instance()
        low = [c for c in classes if best_thrs[c] == self.thr_grid[0]]
        if low and results:
            logger.info(f'CellCountMetric: the count error of {", ".join(low)} is smallest at '
                        f'the lowest threshold searched ({self.thr_grid[0]:g}); boxes below the '
                        f"model's test_cfg.score_thr are never seen: lower it and thr_grid to "
                        f'search further')
        self.records = self._records(results, classes, gt_counts, pred_counts,
                                     cal_counts if calibrated is not None else None)
        self._dump(classes, calibrated, best_thrs)
        return metrics

    @staticmethod
    def _records(results, classes, gt_counts, pred_counts, cal_counts) -> List[dict]:
        records = []
        for k, r in enumerate(results):
            ann = {c: int(gt_counts[c][k]) for c in classes}
            pred = {c: int(pred_counts[c][k]) for c in classes}
            rec = OrderedDict(img_id=r['img_id'], img_path=r['img_path'], annotated=ann,
                              predicted=pred,
                              abs_error=sum(abs(pred[c] - ann[c]) for c in classes),
                              predicted_calibrated=None, abs_error_calibrated=None)
            if cal_counts is not None:
                cal = {c: int(cal_counts[c][k]) for c in classes}
                rec.update(predicted_calibrated=cal,
                           abs_error_calibrated=sum(abs(cal[c] - ann[c]) for c in classes))
            records.append(rec)
        return records

    def _json_path(self, stage: str) -> Optional[str]:
        folder = self.out_dir
        if not folder:
            log_file = getattr(MMLogger.get_current_instance(), 'log_file', None)
            folder = osp.dirname(log_file) if log_file else None
        return osp.join(folder, f'count_errors_{stage}.json') if folder else None

    def _dump(self, classes, calibrated, best_thrs) -> None:
        hub = MessageHub.get_current_instance()
        stage = hub.get_info('loop_stage') or 'eval'
        path = self._json_path(stage)
        if path is None:
            return
        epoch, it = hub.get_info('epoch'), hub.get_info('iter')
        if stage == 'val':  # the hub's 0-based counters -> the count done (epoch_N.pth)
            epoch = None if epoch is None else int(epoch) + 1
            it = None if it is None else int(it) + 1
        doc = OrderedDict(stage=stage, epoch=epoch, iter=it, prefix=self.prefix,
                          classes=classes, score_thr=self.score_thr, calibrated_thrs=calibrated,
                          calibration_source=self.calibration_source,
                          best_thrs={c: (None if math.isnan(t) else t)
                                     for c, t in best_thrs.items()},
                          images=self.records)
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(doc, f, indent=1)
        MMLogger.get_current_instance().info(f'CellCountMetric: wrote {path}')


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan
