# Copyright (c) mmbloodcell contributors. All rights reserved.
"""From a run's files to its figures: training curves of a work dir, and the result figures of
a predictions pickle (detection: precision-recall curves and sample boxes; classification: ROC
curve, confusion matrix and sample cells)."""
import glob
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config

from mmbloodcell.datasets.cnmc import CNMC_CLASSES
from .logs import latest_training_log
from .plots import (classification_arrays, coco_pr_curves, detection_confusion_matrix,
                    is_classification_preds, is_detection_preds, plot_classification_samples,
                    plot_confusion_matrix, plot_detection_samples, plot_pr_curves,
                    plot_roc_curve, plot_training_curves, save_figure)

__all__ = ['load_predictions', 'check_predictions', 'find_predictions', 'det_ann_file',
           'det_classes', 'cls_threshold', 'curve_figures', 'result_figures', 'save_figures']


def load_predictions(path: str) -> List[dict]:
    """Read a predictions pickle of ``tools/test.py --out`` (a list of dicts)."""
    from mmengine.fileio import load
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: predictions file not found (write it with '
                                f'`python tools/test.py CONFIG CKPT --out {path}`)')
    return check_predictions(load(path), path)


def check_predictions(preds, path: str = 'predictions') -> List[dict]:
    """``preds`` if it is the list of per-sample dicts of ``tools/test.py --out`` (detection
    or classification samples), else a ValueError naming ``path``."""
    if not isinstance(preds, list) or (preds and not isinstance(preds[0], dict)):
        raise ValueError(f'{path}: expected the list of per-sample dicts that tools/test.py '
                         f'--out writes, got {type(preds).__name__}')
    if preds and not (is_detection_preds(preds) or is_classification_preds(preds)):
        raise ValueError(f'{path}: the samples have neither pred_instances (detection) nor '
                         f'pred_prob / pred_score (classification); keys: {sorted(preds[0])}')
    return preds


def find_predictions(work_dir: str) -> Optional[str]:
    """The newest ``<work_dir>/*.pkl`` (e.g. written by ``tools/test.py ... --work-dir
    WORK_DIR --out WORK_DIR/preds.pkl``), or None."""
    found = sorted(glob.glob(osp.join(work_dir, '*.pkl')) +
                   glob.glob(osp.join(work_dir, '*.pickle')), key=osp.getmtime)
    return found[-1] if found else None


def _evaluator_ann_file(cfg: Config, split: str = 'test') -> Optional[str]:
    from mmbloodcell.apis.tool_config import evaluator_metrics
    keys = ('test_evaluator', 'val_evaluator') if split == 'test' else (f'{split}_evaluator',)
    for key in keys:
        for metric in evaluator_metrics(cfg.get(key)):
            if metric.get('ann_file'):
                return metric['ann_file']
    return None


def det_ann_file(cfg: Config, split: str = 'test') -> str:
    """The COCO ground truth of a detection config's test set (``split='val'``: validation
    set): the test evaluator's ``ann_file`` (as mmdet's ``CocoMetric`` reads it), else the test
    dataset's ``data_root`` + ``ann_file``.
    """
    ann = _evaluator_ann_file(cfg, split)
    ds = (cfg.get(f'{split}_dataloader') or {}).get('dataset', {}) or {}
    root = ds.get('data_root') or ''
    candidates = []
    if ann:
        candidates += [ann, osp.join(root, ann)]
    if ds.get('ann_file'):
        candidates.append(osp.join(root, ds['ann_file']))
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'no COCO annotation file of the {split} set found (tried '
                            f'{candidates}); pass it with --ann-file')


def det_classes(cfg: Config, split: str = 'test') -> Sequence[str]:
    """Class names of a detection config's test dataset (``split='val'``: validation
    dataset): its ``metainfo['classes']``, else the dataset class's ``METAINFO``
    (``BCCDDataset``: RBC, WBC, Platelets)."""
    ds = (cfg.get(f'{split}_dataloader') or {}).get('dataset', {}) or {}
    meta = ds.get('metainfo') or {}
    if meta.get('classes'):
        return tuple(meta['classes'])
    import mmbloodcell  # noqa: F401  (registers BCCDDataset)
    from mmdet.registry import DATASETS
    cls = DATASETS.get(ds.get('type', 'CocoDataset'))
    if cls is None or not getattr(cls, 'METAINFO', {}).get('classes'):
        raise ValueError(f"cannot tell the class names of dataset {ds.get('type')!r}: set "
                         f'{split}_dataloader.dataset.metainfo.classes in the config')
    return tuple(cls.METAINFO['classes'])


def cls_threshold(cfg: Optional[Config]) -> float:
    """The decision threshold of a classification config: ``model.head.threshold``
    (``BinaryClsHead``) or ``model.threshold`` (``EnsembleClassifier``), else 0.5."""
    if cfg is None:
        return 0.5
    model = cfg.get('model') or {}
    for value in ((model.get('head') or {}).get('threshold'), model.get('threshold')):
        if isinstance(value, (int, float)):
            return float(value)
    return 0.5


def curve_figures(work_dir: str, title: str = '') -> 'OrderedDict[str, object]':
    """Training-curve figures of the newest training run of ``work_dir`` (see
    :func:`~mmbloodcell.analysis.plots.plot_training_curves`)."""
    log = latest_training_log(work_dir)
    return plot_training_curves(log.train_records, log.val_records, title=title)


def result_figures(preds: Sequence[dict], cfg: Optional[Config] = None,
                   ann_file: Optional[str] = None, classes: Optional[Sequence[str]] = None,
                   score_thr: float = 0.3, num_samples: int = 6, title: str = '',
                   binary_metrics_json: Optional[str] = None) -> 'OrderedDict[str, object]':
    """Figures of a predictions pickle.

    Detection: ``'pr_curves'`` (needs the COCO file: ``ann_file`` or the config's),
    ``'confusion_matrix'`` (:func:`~mmbloodcell.analysis.plots.detection_confusion_matrix` at
    ``score_thr``, IoU 0.5, with a background row and column) and ``'samples'``.
    Classification: ``'roc'`` (when both classes are labelled), ``'confusion_matrix'`` (from
    the predictions, or from ``binary_metrics_json`` when there are none) and ``'samples'``.
    """
    figs: 'OrderedDict[str, object]' = OrderedDict()
    if preds and is_detection_preds(preds):
        if ann_file is None:
            if cfg is None:
                raise ValueError('detection predictions need the COCO ann_file (or the config '
                                 'that names it)')
            ann_file = det_ann_file(cfg)
        if classes is None and cfg is not None:
            classes = det_classes(cfg)
        pr = coco_pr_curves(ann_file, preds, classes)
        classes = classes or pr['classes']
        figs['pr_curves'] = plot_pr_curves(pr, title=title)
        cm = detection_confusion_matrix(preds, len(classes), score_thr=score_thr)
        figs['confusion_matrix'] = plot_confusion_matrix(cm, list(classes) + ['background'],
                                                         title=title)
        figs['samples'] = plot_detection_samples(preds, classes, score_thr=score_thr,
                                                 num=num_samples, title=title)
        return figs
    if preds:
        gt, prob, pred = classification_arrays(preds)
        labelled = gt >= 0
        thr = cls_threshold(cfg)
        if (gt[labelled] == 1).any() and (gt[labelled] == 0).any():
            figs['roc'] = plot_roc_curve(gt, prob, threshold=thr, title=title)
        if labelled.any():
            import numpy as np
            cm = np.bincount(2 * gt[labelled] + pred[labelled], minlength=4).reshape(2, 2)
            figs['confusion_matrix'] = plot_confusion_matrix(cm, CNMC_CLASSES, title=title)
        figs['samples'] = plot_classification_samples(preds, num=num_samples, title=title)
        return figs
    if binary_metrics_json:
        with open(binary_metrics_json) as f:
            doc = json.load(f)
        figs['confusion_matrix'] = plot_confusion_matrix(doc['confusion_matrix']['matrix'],
                                                         CNMC_CLASSES, title=title)
    return figs


def save_figures(figs: Dict[str, object], out_dir: str, prefix: str = '') -> Dict[str, str]:
    """Write every figure as ``<out_dir>/<prefix><name>.png``; returns name -> path."""
    return {name: save_figure(fig, osp.join(out_dir, f'{prefix}{name}.png'))
            for name, fig in figs.items()}
