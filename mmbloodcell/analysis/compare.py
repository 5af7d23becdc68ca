# Copyright (c) mmbloodcell contributors. All rights reserved.
"""The papers' comparison tables from several work dirs, as markdown.

- **Detection** (BCCD): one row per detector, mAP, mAP50, mAP75 and ms per image, each beside
  the BCCD study's number (a YOLO baseline run dir of ``tools/yolo_baseline.py`` is a row too),
  and, when the runs have them (``CellCountMetric``), the count MAE per class at the calibrated
  and at the fixed threshold.
- **Classification** (C-NMC): the loss study's loss x backbone F1 table (ours beside the
  paper's), and one line per run with the backbone comparison's columns.

Each work dir is described by its dumped config (:func:`.describe.describe_config`) and the
metrics of its newest test run, else its last validation (:mod:`.logs`).
"""
import math
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

from .describe import describe_config
from .logs import final_metrics, find_config, find_run_logs, is_yolo_run, load_yolo_run

__all__ = ['REFERENCE', 'summarize_run', 'detection_rows', 'count_classes', 'classification_matrix',
           'classification_rows', 'detection_markdown', 'classification_markdown',
           'compare_markdown', 'LOSS_ORDER']

DET_KEYS = OrderedDict([('mAP', 'coco/bbox_mAP'), ('mAP50', 'coco/bbox_mAP_50'),
                        ('mAP75', 'coco/bbox_mAP_75'), ('ms', 'speed/latency_ms')])


def _reference() -> Dict[str, dict]:
    """The papers' numbers from :mod:`mmbloodcell.studies` (one source with
    ``mmbloodcell reproduce``): ``detection`` = the BCCD study's Table 1 per model (mAP,
    mAP50, mAP75, ms), ``classification`` = the FHL study's Table 2 per (backbone, loss): its
    F1 on the challenge's final test set (which ranks by weighted F1)."""
    from mmbloodcell.studies import find_table
    _, det = find_table('bccd-table1')
    _, cls = find_table('fhl-table2')
    keys = {v: k for k, v in DET_KEYS.items()}
    return {
        'detection': OrderedDict(
            (row['model'], {keys[k]: v for k, v in (row.get('paper') or {}).items() if k in keys})
            for row in det['rows'] if row.get('paper')),
        'classification': OrderedDict(
            ((row['backbone'], row['loss']), row['paper']['binary/weighted_f1'])
            for row in cls['rows']),
    }


#: The papers' numbers, shown beside ours (see :func:`_reference`). Missing entries are '-'.
REFERENCE: Dict[str, dict] = _reference()

#: Column order of the loss x backbone table (others follow in order of appearance).
LOSS_ORDER = ('BCE', 'WBCE', 'Focal', 'Hinge', 'FHL')

CLS_KEYS = ('f1', 'weighted_f1', 'precision', 'recall', 'specificity', 'accuracy', 'auc')


def _yolo_family(model: Optional[str]) -> str:
    m = re.search(r'yolo[_-]?v?(\d+)', str(model or ''), re.IGNORECASE)
    return f'YOLOv{m.group(1)}' if m else 'YOLO'


def summarize_run(path: str, prefer: str = 'test',
                  require_metrics: bool = True) -> Dict[str, object]:
    """One work dir (or YOLO baseline run dir): ``path``, ``name`` (config name), ``metrics``
    (as logged), ``source`` (``'test'`` or ``'val (epoch N)'``), ``config`` (path or None)
    and the fields of :func:`~mmbloodcell.analysis.describe.describe_config`.

    A work dir without metrics (trained without validation, never tested) is a
    FileNotFoundError, or with ``require_metrics=False`` the summary of its newest run with
    ``metrics={}`` and ``source='none'``."""
    if is_yolo_run(path):
        metrics, settings, model = load_yolo_run(path)
        arch = osp.splitext(osp.basename(model))[0] if model else '-'
        return dict(path=path, name=osp.basename(osp.abspath(path)), task='detection',
                    model=_yolo_family(model), backbone=arch, loss='-', metrics=metrics,
                    source='test (tools/yolo_baseline.py)', config=None, settings=settings)
    try:
        metrics, source, log = final_metrics(path, prefer=prefer)
    except FileNotFoundError:
        logs = find_run_logs(path)  # a missing work dir stays an error
        if require_metrics or not logs:
            raise
        metrics, source, log = {}, 'none', logs[-1]
    cfg_path, name = find_config(path, log)
    cfg = Config.fromfile(cfg_path)
    info = describe_config(cfg, base_dir=osp.dirname(cfg_path))
    if info['task'] == 'unknown':
        if any(str(k).startswith('coco/') for k in metrics):
            info['task'] = 'detection'
        elif any(str(k).startswith('binary/') for k in metrics):
            info['task'] = 'classification'
    return dict(path=path, name=name, metrics=metrics, source=source, config=cfg_path,
                log_dir=log.log_dir, **info)


def _num(value) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _fmt(value, digits: int) -> str:
    v = _num(value)
    return '-' if v is None else f'{v:.{digits}f}'


def _md_row(cells) -> str:
    return '| ' + ' | '.join(str(c) for c in cells) + ' |'


_COUNT_MAE = re.compile(r'^count/(.+)_mae$')


def count_classes(runs: Sequence[dict]) -> List[str]:
    """The classes with a count MAE (``count/<class>_mae`` of ``CellCountMetric``) in the
    metrics of any of ``runs``, in first-seen order."""
    found: List[str] = []
    for run in runs:
        for key in run.get('metrics') or {}:
            m = _COUNT_MAE.match(key)
            name = m.group(1) if m else None
            if name and name != 'mean' and not name.endswith('_best') and name not in found:
                found.append(name)
    return found


def detection_rows(runs: Sequence[dict], reference: bool = True) -> List[Dict[str, object]]:
    """One row per detection run (``model``, ``backbone``, ``loss``, ``name``, ``source``,
    ``mAP``, ``mAP50``, ``mAP75``, ``ms`` and the paper's ``ref_<key>``; with count metrics,
    ``count_mae`` = ``{class: (MAE at the calibrated thresholds, MAE at the fixed one)}``, None
    where absent), then, with ``reference``, one row per reference model that no run matched
    (our cells None). COCO's -1 (no ground truth) is None."""
    rows = []
    seen = set()
    ref = REFERENCE['detection']
    for run in runs:
        if run['task'] != 'detection':
            continue
        row = dict(model=run['model'], backbone=run.get('backbone', '-'),
                   loss=run.get('loss', '-'), name=run['name'], source=run['source'],
                   path=run['path'])
        for key, metric in DET_KEYS.items():
            v = _num(run['metrics'].get(metric))
            row[key] = None if v is None or (key != 'ms' and v < 0) else v
            row[f'ref_{key}'] = ref.get(run['model'], {}).get(key) if reference else None
        metrics = run['metrics']
        row['count_mae'] = {c: (_num(metrics.get(f'count/{c}_mae_calibrated')),
                                _num(metrics.get(f'count/{c}_mae')))
                            for c in count_classes([run])}
        rows.append(row)
        seen.add(run['model'])
    if reference:
        for model, nums in ref.items():
            if model in seen:
                continue
            row = dict(model=model, backbone='-', loss='-', name='(paper only)', source='-',
                       path=None)
            for key in DET_KEYS:
                row[key] = None
                row[f'ref_{key}'] = nums.get(key)
            row['count_mae'] = {}
            rows.append(row)
    return rows


def detection_markdown(rows: Sequence[dict]) -> str:
    """The detector table as markdown (3 decimals for mAPs, 1 for milliseconds); with count
    metrics one column per class, ``calibrated / fixed`` count MAE (2 decimals)."""
    classes: List[str] = []
    for r in rows:
        classes += [c for c in r.get('count_mae') or {} if c not in classes]
    head = ('| Model | Backbone | Losses | Run | mAP | mAP (paper) | mAP50 | mAP50 (paper) | '
            'mAP75 | mAP75 (paper) | ms / image | ms / image (paper) | ' +
            ''.join(f'Count MAE {c} (cal. / 0.3) | ' for c in classes) + 'Metrics from |')
    lines = [head, '|' + '---|' * (13 + len(classes))]
    for r in rows:
        cells = [r['model'], r['backbone'], r['loss'], r['name']]
        for key in DET_KEYS:
            digits = 1 if key == 'ms' else 3
            cells += [_fmt(r[key], digits), _fmt(r[f'ref_{key}'], digits)]
        for c in classes:
            cal, fixed = (r.get('count_mae') or {}).get(c, (None, None))
            cells.append('-' if cal is None and fixed is None else
                         f'{_fmt(cal, 2)} / {_fmt(fixed, 2)}')
        cells.append(r['source'])
        lines.append(_md_row(cells))
    return '\n'.join(lines)


def _cls_value(run: dict, metric: str) -> Optional[float]:
    return _num(run['metrics'].get(f'binary/{metric}'))


def classification_matrix(runs: Sequence[dict], metric: str = 'weighted_f1',
                          reference: bool = True
                          ) -> Tuple[List[str], List[str], Dict[Tuple[str, str], dict]]:
    """The loss x backbone table: ``(backbones, losses, cells)``, ``cells[(backbone, loss)] =
    dict(ours=value or None, ref=paper or None, name=run name, names=all runs of the cell)``
    (the last run of a cell is shown). With ``reference``, the paper's backbones and losses
    are rows / columns too."""
    cells: Dict[Tuple[str, str], dict] = OrderedDict()
    backbones: List[str] = []
    losses: List[str] = []

    def add(backbone, loss):
        if backbone not in backbones:
            backbones.append(backbone)
        if loss not in losses:
            losses.append(loss)

    for run in runs:
        if run['task'] != 'classification':
            continue
        key = (str(run['backbone']), str(run['loss']))
        add(*key)
        replaced = cells[key]['names'] if key in cells else []
        cells[key] = dict(ours=_cls_value(run, metric), ref=None, name=run['name'],
                          names=replaced + [run['name']])
    ref = REFERENCE['classification'] if reference else {}
    for key in ref:
        add(*key)
        cells.setdefault(key, dict(ours=None, ref=None, name=None, names=[]))
    for key, cell in cells.items():
        cell['ref'] = ref.get(key)
    ordered = [x for x in LOSS_ORDER if x in losses]
    return backbones, ordered + [x for x in losses if x not in LOSS_ORDER], cells


def classification_markdown(backbones: Sequence[str], losses: Sequence[str],
                            cells: Dict[Tuple[str, str], dict]) -> str:
    """The loss x backbone table as markdown: per loss, our value and the paper's."""
    head = ['Backbone']
    for loss in losses:
        head += [loss, f'{loss} (paper)']
    lines = [_md_row(head), '|' + '---|' * len(head)]
    for b in backbones:
        row = [b]
        for loss in losses:
            cell = cells.get((b, loss), {})
            row += [_fmt(cell.get('ours'), 2), _fmt(cell.get('ref'), 2)]
        lines.append(_md_row(row))
    for (b, loss), cell in cells.items():
        if len(cell.get('names') or []) > 1:
            lines += ['', f"{b} / {loss}: {len(cell['names'])} runs "
                      f"({', '.join(cell['names'])}); the table shows the last, "
                      f'{cell["name"]}; all are listed under Runs.']
    return '\n'.join(lines)


def classification_rows(runs: Sequence[dict]) -> List[Dict[str, object]]:
    """One row per classification run: ``name``, ``backbone``, ``loss``, the rates of
    :data:`CLS_KEYS` (percent, as logged), ``ms`` and ``source``."""
    rows = []
    for run in runs:
        if run['task'] != 'classification':
            continue
        row = dict(name=run['name'], backbone=run['backbone'], loss=run['loss'],
                   source=run['source'], path=run['path'], split=_test_split(run))
        for key in CLS_KEYS:
            row[key] = _cls_value(run, key)
        row['ms'] = _num(run['metrics'].get('speed/latency_ms'))
        rows.append(row)
    return rows


def _test_split(run: dict) -> str:
    """The set a classification run's test metrics come from, e.g. ``final_test`` or
    ``train (patient_split val)``."""
    if not run.get('config') or not str(run.get('source', '')).startswith('test'):
        return 'val' if run.get('source') else '-'
    dataset = (Config.fromfile(run['config']).get('test_dataloader') or {}).get('dataset', {})
    split = dataset.get('split', '-')
    if dataset.get('patient_split'):
        split += f" (patients: {dataset['patient_split'].get('subset', '?')})"
    return split


def _cls_runs_markdown(rows: Sequence[dict]) -> str:
    head = ('| Run | Backbone | Loss | Test split | F1 of ALL | weighted F1 | Precision | Recall '
            '| Specificity | Accuracy | AUC | ms / image | Metrics from |')
    lines = [head, '|' + '---|' * 13]
    for r in rows:
        cells = [r['name'], r['backbone'], r['loss'], r['split']] + [
            _fmt(r[k], 2) for k in CLS_KEYS]
        lines.append(_md_row(cells + [_fmt(r['ms'], 1), r['source']]))
    return '\n'.join(lines)


def compare_markdown(paths: Sequence[str], prefer: str = 'test', metric: str = 'weighted_f1',
                     reference: bool = True) -> str:
    """The whole comparison: a detection section and / or a classification section, for the
    work dirs ``paths`` (each summarised by :func:`summarize_run`)."""
    runs = [summarize_run(p, prefer=prefer) for p in paths]
    out = []
    det = [r for r in runs if r['task'] == 'detection']
    cls = [r for r in runs if r['task'] == 'classification']
    other = [r for r in runs if r['task'] not in ('detection', 'classification')]
    if det:
        out += ['## Detection (BCCD)', '',
                detection_markdown(detection_rows(det, reference=reference)), '',
                'mAP = COCO mAP@[0.50:0.95]; ms / image = batch-1 latency after warm-up '
                '(LatencyHook / tools/yolo_baseline.py). The paper\'s times are seconds per '
                'image on its own hardware, converted to ms; "-" = not reported / not run.' +
                (' Count MAE = mean |predicted - annotated| cells per image (CellCountMetric), '
                 'at the per-class thresholds calibrated on the validation split / at score '
                 '0.3.' if count_classes(det) else ''),
                '']
    if cls:
        names = {'weighted_f1': 'weighted F1 (%)', 'f1': 'F1 of class all (%)'}
        out += [f'## Classification (C-NMC): loss x backbone, {names.get(metric, metric)}',
                '', classification_markdown(*classification_matrix(cls, metric, reference)),
                '', '### Runs', '', _cls_runs_markdown(classification_rows(cls)), '',
                'Paper: the FHL study\'s Table 2, F1 on the challenge\'s final test set (the '
                'challenge ranks by weighted F1), and its DenseNet-201 + EfficientNet-B2 '
                'ensemble (91.94). Ours: the metric of the title on each run\'s own test split '
                '(Runs, "Test split"): beside the paper only when that is final_test. "-" = not '
                'reported / not run. `mmbloodcell reproduce fhl-table2` runs the table on the '
                'study\'s protocol.', '']
    for r in other:
        out.append(f"- {r['path']}: task not recognised (default_scope of {r['config']})")
    return '\n'.join(out).rstrip() + '\n'
