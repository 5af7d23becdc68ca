"""Per-class count thresholds calibrated on the validation split, carried to test time."""
import io
import json
import math
import os.path as osp
import re
from typing import Dict, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmbloodcell.registry import HOOKS

#: ``checkpoint['meta']`` key of the thresholds (``{class: threshold}``)
META_KEY = 'count_thresholds'
#: the work dir's file of the thresholds
THRESHOLDS_FILE = 'count_thresholds.json'


def _count_metrics(evaluator) -> list:
    from mmbloodcell.evaluation.metrics import CellCountMetric
    return [m for m in getattr(evaluator, 'metrics', None) or []
            if isinstance(m, CellCountMetric)]


def read_count_thresholds(path: str) -> Optional[Dict[str, float]]:
    """The ``thresholds`` of a ``count_thresholds.json`` (:class:`CountCalibrationHook`), or
    None when the file does not exist."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        doc = json.load(f)
    thrs = doc.get('thresholds') if isinstance(doc, dict) else None
    if not isinstance(thrs, dict):
        raise ValueError(f'{path}: no "thresholds" dict {{class: threshold}}; delete it or '
                         f'write it again by training (python tools/train.py CONFIG)')
    return {str(k): float(v) for k, v in thrs.items()}


@HOOKS.register_module()
class CountCalibrationHook(Hook):
    """Calibrate the count threshold of every class on the validation split and hand it to
    the test run and to ``mmbloodcell detect``.

    After each validation it takes ``<prefix>/<class>_best_thr`` of the val evaluator's
    :class:`~mmbloodcell.evaluation.metrics.CellCountMetric` (the threshold minimising the
    count MAE on the validation split) and

    - writes ``<work_dir>/count_thresholds.json``: ``{"thresholds": {class: thr}, "mae":
      {class: count MAE at thr}, "split": "val", "epoch", "iter", "thr_grid": [lo, hi]}``;
    - stores ``checkpoint['meta']['count_thresholds'] = {class: thr}`` (and
      ``meta['count_thresholds_from'] = {"split", "epoch", "iter"}``) in every checkpoint
      saved afterwards (``save_best`` checkpoints of this validation included: the hook runs
      before ``CheckpointHook``). A checkpoint written just before this validation for the same
      weights (the epoch checkpoint, which mmengine saves before validating) is rewritten with
      the new meta, so its thresholds are those of its own weights.

    At test time (``tools/test.py CONFIG CKPT``) it gives the test evaluator's
    ``CellCountMetric`` its calibrated thresholds, unless the config set them: from the loaded
    checkpoint's ``meta['count_thresholds']``, else from ``count_thresholds.json`` beside the
    checkpoint, else from the work dir's; the test metrics then show the count error at the
    fixed and the calibrated thresholds side by side. Without any, the test reports the fixed
    threshold only (logged).
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW) in after_val_epoch

    def __init__(self) -> None:
        self.thresholds: Optional[Dict[str, float]] = None
        self._calibrated_at: Optional[dict] = None
        self._unpatched: Optional[tuple] = None  # (iter, path) saved before its calibration
        self._loaded: Optional[tuple] = None  # (thresholds, checkpoint path)
        self._warned = False

    # ---- training: calibrate on val ------------------------------------------------------
    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        found = _count_metrics(runner.val_loop.evaluator) if runner.val_loop else []
        if not found:
            if not self._warned:
                runner.logger.warning('CountCalibrationHook: the val evaluator has no '
                                      'CellCountMetric; no count thresholds are calibrated '
                                      "(add dict(type='CellCountMetric') to val_evaluator)")
                self._warned = True
            return
        prefix = found[0].prefix
        pattern = re.compile(rf'^{re.escape(prefix)}/(.+)_best_thr$')
        thrs, mae = {}, {}
        for key, value in (metrics or {}).items():
            match = pattern.match(key)
            if match and isinstance(value, (int, float)) and not math.isnan(value):
                name = match.group(1)
                thrs[name] = float(value)
                mae[name] = metrics.get(f'{prefix}/{name}_best_mae')
        if not thrs:
            return
        self.thresholds = thrs
        self._calibrated_at = dict(split='val', epoch=runner.epoch, iter=runner.iter)
        if not is_main_process():
            return
        grid = found[0].thr_grid
        doc = dict(thresholds=thrs, mae=mae, **self._calibrated_at,
                   thr_grid=[grid[0], grid[-1]])
        path = osp.join(runner.work_dir, THRESHOLDS_FILE)
        with open(path, 'w') as f:
            json.dump(doc, f, indent=2)
        runner.logger.info('CountCalibrationHook: count thresholds '
                           + ', '.join(f'{k} {v:g}' for k, v in thrs.items())
                           + f' (val count MAE minimised), written to {path}')
        if self._unpatched is not None and self._unpatched[0] == runner.iter:
            self._patch(runner, self._unpatched[1])
        self._unpatched = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # the training step of the saved weights (CheckpointHook's meta), else the runner's
        step = (checkpoint.get('meta') or {}).get('iter', runner.iter)
        if self._calibrated_at is None or self._calibrated_at['iter'] != step:
            # mmengine saves the epoch checkpoint before validating it: fix it afterwards
            path = runner.message_hub.get_info('last_ckpt')
            self._unpatched = (step, path) if path else None
        if self.thresholds:
            meta = checkpoint.setdefault('meta', {})
            meta[META_KEY] = dict(self.thresholds)
            meta[META_KEY + '_from'] = dict(self._calibrated_at)

    def _patch(self, runner, path: str) -> None:
        """Rewrite ``path`` (a checkpoint of the current weights) with the current thresholds
        in its meta, atomically."""
        from mmengine.runner.checkpoint import _load_checkpoint

        from mmbloodcell.utils.fileio import atomic_write_bytes
        if not osp.isfile(path):
            return
        ckpt = _load_checkpoint(path, map_location='cpu')
        meta = ckpt.setdefault('meta', {})
        if meta.get('iter') != runner.iter:
            return
        meta[META_KEY] = dict(self.thresholds)
        meta[META_KEY + '_from'] = dict(self._calibrated_at)
        buffer = io.BytesIO()
        torch.save(ckpt, buffer)
        atomic_write_bytes(buffer.getvalue(), path)
        runner.logger.info(f'CountCalibrationHook: count thresholds added to {path}')

    # ---- testing: use the calibration ----------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta') or {}
        thrs = meta.get(META_KEY)
        self._loaded = (dict(thrs) if isinstance(thrs, dict) else None,
                        getattr(runner, '_load_from', None))
        if getattr(runner, '_resume', False) and self._loaded[0] and \
                isinstance(meta.get(META_KEY + '_from'), dict):
            # --resume: the checkpoints saved before the next validation keep the calibration
            self.thresholds = dict(self._loaded[0])
            self._calibrated_at = dict(meta[META_KEY + '_from'])

    def before_test_epoch(self, runner) -> None:
        found = [m for m in _count_metrics(runner.test_loop.evaluator)
                 if not m.calibrated_thrs or m.calibration_source != 'config']
        if not found:
            return
        thrs, source = self._test_thresholds(runner)
        if thrs is None:
            runner.logger.warning(
                'CountCalibrationHook: no calibrated count thresholds (neither in the '
                f"checkpoint's meta['{META_KEY}'] nor in a {THRESHOLDS_FILE}): the test "
                'reports the counts at the fixed score_thr only; train with '
                'CountCalibrationHook and a CellCountMetric in val_evaluator to calibrate')
        else:
            runner.logger.info('CountCalibrationHook: calibrated count thresholds from '
                               f'{source}: ' + ', '.join(f'{k} {v:g}' for k, v in thrs.items()))
        for metric in found:
            metric.set_calibrated_thrs(thrs, source)

    def _test_thresholds(self, runner) -> tuple:
        loaded, ckpt = self._loaded or (None, getattr(runner, '_load_from', None))
        if loaded:
            return loaded, f"checkpoint meta ({ckpt})"
        folders = [osp.dirname(ckpt)] if ckpt else []
        folders.append(runner.work_dir)
        for folder in folders:
            path = osp.join(folder, THRESHOLDS_FILE)
            thrs = read_count_thresholds(path)
            if thrs:
                return thrs, path
        return None, None
