# Copyright (c) mmbloodcell contributors. All rights reserved.
"""One self-contained HTML page per run: the config summary, the metrics (the newest test run,
else the last validation), the training curves, the result plots and sample predictions of a
predictions pickle, and the full config. Figures are embedded as ``data:image/png;base64``
URIs, so the page needs no other file.
"""
import base64
import datetime
import html
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

from .compare import count_classes, summarize_run
from .logs import is_yolo_run
from .plots import figure_to_png, plot_count_scatter, plot_detection_samples
from .results import (check_predictions, curve_figures, find_predictions, is_detection_preds,
                      load_predictions, result_figures)

__all__ = ['build_report', 'write_report', 'png_data_uri', 'counts_section']

_CAPTIONS = {
    'loss': 'Training loss per iteration (total and parts).',
    'lr': 'Learning rate per iteration.',
    'val_metrics': 'Validation metrics after each evaluation.',
    'pr_curves': 'Per-class precision-recall curves of the test predictions (COCOeval).',
    'roc': 'ROC curve of p(all) on the test predictions, with the operating point.',
    'confusion_matrix': 'Confusion matrix (rows: ground truth, columns: prediction).',
    'samples': 'Sample predictions.',
    'count_scatter': 'Predicted vs annotated cells per image and class (dashed: equal).',
    'count_worst': 'The images with the largest count errors, their boxes at the thresholds '
                   'of the ranking (calibrated when there are), ground truth in white.',
}

_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd;
     padding-bottom: 0.2em; margin-top: 1.6em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-family: monospace; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
"""


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return 'data:image/png;base64,' + base64.b64encode(png).decode('ascii')


def _esc(value) -> str:
    return html.escape(str(value))


def _fmt(value) -> str:
    """Numbers for the tables: 4 decimals, trailing zeros dropped; small and large values in
    4 significant digits (a learning rate of 1e-05 is '1e-05', never '0')."""
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f'{value:.4g}'
        return f'{value:.4f}'.rstrip('0').rstrip('.')
    return str(value)


def _table(rows: List[tuple], header: Optional[tuple] = None) -> str:
    out = ['<table>']
    if header:
        out.append('<tr>' + ''.join(f'<th>{_esc(h)}</th>' for h in header) + '</tr>')
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i > 0 and isinstance(cell, (int, float)) else ''
            cells.append(f'<td{cls}>{_esc(_fmt(cell))}</td>')
        out.append('<tr>' + ''.join(cells) + '</tr>')
    out.append('</table>')
    return '\n'.join(out)


def _render(figs: Dict[str, object], fig_dir: Optional[str] = None) -> Dict[str, bytes]:
    """The PNG bytes of every figure, each also written as ``<fig_dir>/<name>.png`` when
    ``fig_dir`` is given."""
    pngs = {name: figure_to_png(fig) for name, fig in figs.items()}
    if fig_dir:
        os.makedirs(fig_dir, exist_ok=True)
        for name, png in pngs.items():
            with open(osp.join(fig_dir, f'{name}.png'), 'wb') as f:
                f.write(png)
    return pngs


def _figure(name: str, png: bytes, title: str) -> str:
    uri = png_data_uri(png)
    caption = _CAPTIONS.get(name, name)
    return (f'<figure id="fig-{_esc(name)}"><img alt="{_esc(title)}: {_esc(name)}" '
            f'src="{uri}"><figcaption>{_esc(caption)}</figcaption></figure>')


def _metrics_rows(metrics: Dict[str, object]) -> List[tuple]:
    rows = []
    for key, value in metrics.items():
        if key in ('data_time', 'time', 'step') or isinstance(value, (list, dict)):
            continue
        rows.append((key, 'n/a' if value is None else value))
    return rows


def _predictions(work_dir: str, preds_path: Optional[str], preds: Optional[Sequence[dict]],
                 notes: List[str]) -> Tuple[Optional[List[dict]], Optional[str]]:
    """``(preds, preds_path)`` of :func:`build_report`: ``preds`` as given (checked), else
    the pickle ``preds_path``, else the newest ``<work_dir>/*.pkl``; a note when none."""
    if preds is not None:
        if not preds:
            notes.append('No predictions: the run had no validation or test loop, so the '
                         'page has the training curves only.')
            return None, preds_path
        return check_predictions(list(preds), preds_path or 'predictions'), preds_path
    preds_path = preds_path or find_predictions(work_dir)
    if not preds_path:
        notes.append(f'No predictions pickle in {work_dir}: for result plots run '
                     f'`python tools/test.py CONFIG CKPT --work-dir {work_dir} --out '
                     f'{osp.join(work_dir, "preds.pkl")}` (or pass --preds).')
        return None, None
    return load_predictions(preds_path), preds_path


def _count_errors_file(log_dir: Optional[str], source: str) -> Optional[str]:
    stage = 'test' if str(source).startswith('test') else 'val'
    path = osp.join(log_dir, f'count_errors_{stage}.json') if log_dir else None
    return path if path and osp.isfile(path) else None


def counts_section(metrics: Dict[str, object], log_dir: Optional[str], source: str = 'test',
                   title: str = '', worst: int = 6, fig_dir: Optional[str] = None,
                   preds: Optional[Sequence[dict]] = None) -> str:
    """The report's "Counts" section ('' when ``metrics`` has no ``count/`` keys of
    ``CellCountMetric``): the per-class count error at the calibrated and at the fixed
    threshold (MAE, RMSE, mean relative error, share of images within +-1 and +-10 %) and the
    split's best threshold; from ``<log_dir>/count_errors_<test|val>.json`` the ``worst``
    images by count error (at the calibrated thresholds when there are, else the fixed one)
    and the predicted vs annotated scatter per class, and with the split's detection
    ``preds`` (the predictions pickle's form) those images drawn with their boxes at the
    ranking's thresholds (figures also ``<fig_dir>/count_scatter.png`` and
    ``count_worst.png`` when ``fig_dir`` is given)."""
    classes = count_classes([dict(metrics=metrics)])
    if not classes:
        return ''
    path = _count_errors_file(log_dir, source)
    doc = {}
    if path:
        with open(path) as f:
            doc = json.load(f)
    fixed = doc.get('score_thr', 0.3)
    calibrated = f'count/{classes[0]}_mae_calibrated' in metrics
    stats = ('mae', 'rmse', 'rel_err', 'within1', 'within10pct')

    def value(key):
        v = metrics.get(key)
        return 'n/a' if v is None or (isinstance(v, float) and v != v) else v

    rows = []
    for c in classes + ['mean']:
        if calibrated:
            thr = metrics.get(f'count/{c}_thr_calibrated')
            rows.append((c, 'calibrated' + (f' ({_fmt(thr)})' if thr is not None else ''),
                         *[value(f'count/{c}_{s}_calibrated') for s in stats]))
        rows.append((c, f'fixed ({_fmt(fixed)})', *[value(f'count/{c}_{s}') for s in stats]))
        best = metrics.get(f'count/{c}_best_thr')
        rows.append((c, 'best on this split' + (f' ({_fmt(best)})' if best is not None else ''),
                     value(f'count/{c}_best_mae'), '', '', '', ''))
    where = 'test' if str(source).startswith('test') else 'validation'
    parts = [f'<h2>Counts</h2>\n<p class="meta">Cells per image on the {where} split '
             f'(CellCountMetric, {_esc(source)}): predicted = boxes with score &gt;= the '
             'threshold, annotated = ground-truth boxes. Calibrated: the per-class thresholds '
             'that minimised the count MAE on the validation split'
             + (f' ({_esc(doc.get("calibration_source"))})' if doc.get('calibration_source')
                else '') + '; best on this split: the threshold minimising it here '
             '(optimistic on the test split). Relative error: |error| / annotated over the '
             'images with at least one annotated cell.</p>',
             _table(rows, ('class', 'threshold', 'MAE', 'RMSE', 'mean rel. error',
                           'within +-1', 'within +-10 %'))]
    if not calibrated:
        parts.append('<p class="note">No calibrated thresholds for this split: train with '
                     'CountCalibrationHook and a CellCountMetric in val_evaluator, then test '
                     'the checkpoint (python tools/test.py CONFIG CKPT).</p>')
    images = doc.get('images') or []
    if not path:
        parts.append(f'<p class="note">No per-image counts (count_errors_*.json) in '
                     f'{_esc(log_dir)}: they are written by CellCountMetric during '
                     f'tools/test.py / validation.</p>')
    elif images:
        key = 'abs_error_calibrated' if images[0].get('abs_error_calibrated') is not None \
            else 'abs_error'
        ranked = sorted(images, key=lambda r: -r[key])[:worst]
        cal = key == 'abs_error_calibrated'
        head = ['image'] + [f'{c} (annotated / ' + ('calibrated / ' if cal else '') + 'fixed)'
                            for c in classes] + ['|error| total' + (' (cal. / fixed)'
                                                                    if cal else '')]
        table = []
        for r in ranked:
            cells = [osp.basename(str(r.get('img_path')))]
            for c in classes:
                nums = [r['annotated'][c]] + ([r['predicted_calibrated'][c]] if cal else []) + \
                    [r['predicted'][c]]
                cells.append(' / '.join(str(n) for n in nums))
            cells.append(f"{r['abs_error_calibrated']} / {r['abs_error']}" if cal
                         else r['abs_error'])
            table.append(tuple(cells))
        parts.append(f'<h3>Largest count errors ({len(ranked)} of {len(images)} images)</h3>\n'
                     + _table(table, tuple(head)))
        figs = OrderedDict(count_scatter=plot_count_scatter(
            images, doc.get('classes') or classes, title=title))
        by_path = {str(p.get('img_path')): p for p in preds or []}
        drawn = [by_path[str(r.get('img_path'))] for r in ranked
                 if str(r.get('img_path')) in by_path]
        if drawn:
            thrs = doc.get('calibrated_thrs') if cal else None
            figs['count_worst'] = plot_detection_samples(
                drawn, doc.get('classes') or classes, score_thr=thrs or fixed, num=len(drawn),
                title=title)
        pngs = _render(figs, fig_dir)
        parts.extend(_figure(name, pngs[name], title) for name in figs)
    return '\n'.join(parts)


def build_report(work_dir: str, preds_path: Optional[str] = None,
                 ann_file: Optional[str] = None, score_thr: float = 0.3,
                 num_samples: int = 6, prefer: str = 'test',
                 preds: Optional[Sequence[dict]] = None,
                 classes: Optional[Sequence[str]] = None,
                 fig_dir: Optional[str] = None) -> str:
    """The HTML page of the run in ``work_dir``.

    Args:
        preds_path (str, optional): Predictions pickle of ``tools/test.py --out``. Defaults to
            the newest ``<work_dir>/*.pkl``; without one the page has no result plots.
        ann_file (str, optional): COCO ground truth for detection predictions. Defaults to
            the config's test evaluator's ``ann_file``.
        score_thr (float): Score threshold of the drawn boxes.
        num_samples (int): Images in the sample grid.
        prefer (str): ``'test'`` or ``'val'`` metrics first.
        preds (list[dict], optional): The predictions themselves, in the pickle's form
            (``preds_path`` then only names their file on the page); ``[]``: none, no pickle
            is looked for and the page has no result plots.
        classes (list[str], optional): Class names of detection labels. Defaults to the
            config's test dataset's.
        fig_dir (str, optional): Also write every figure as ``<fig_dir>/<name>.png``.
    """
    if is_yolo_run(work_dir):
        raise ValueError(f'{work_dir} is a YOLO baseline run (ultralytics); report.py reads '
                         f'mmengine work dirs. Its metrics are in test_metrics.json and '
                         f'tools/analysis/compare.py tabulates them.')
    run = summarize_run(work_dir, prefer=prefer, require_metrics=False)
    cfg = Config.fromfile(run['config'])
    title = str(run['name'])
    notes: List[str] = []
    sections: List[str] = []

    # config summary
    summary_keys = ('task', 'model', 'model_type', 'backbone', 'neck', 'head', 'loss',
                    'dataset', 'input_size', 'batch_size', 'optimizer', 'lr', 'max_epochs')
    rows = [(k, run.get(k, '-')) for k in summary_keys]
    rows += [('work dir', osp.abspath(work_dir)), ('config', run['config'])]
    sections.append('<h2>Configuration</h2>\n' + _table(rows, ('field', 'value')))

    # metrics
    metrics = run['metrics']
    if not metrics:
        notes.append('No metrics: the run has neither a validation record nor a test run.')
    parts = [f'<h2>Metrics</h2>\n<p class="meta">From: {_esc(run["source"])} '
             f'({_esc(run.get("log_dir", ""))})</p>',
             _table(_metrics_rows(metrics), ('metric', 'value'))]
    if run['task'] == 'detection':
        per_class = [(k[len('coco/'):-len('_precision')], v) for k, v in metrics.items()
                     if k.startswith('coco/') and k.endswith('_precision')]
        if per_class:
            parts.append('<h3>Per-class AP (IoU 0.50:0.95)</h3>\n' +
                         _table(per_class, ('class', 'AP')))
    cm = metrics.get('binary/confusion_matrix')
    if isinstance(cm, list) and len(cm) == 2:
        (tn, fp), (fn, tp) = cm
        parts.append('<h3>Confusion matrix</h3>\n' + _table(
            [('gt hem', tn, fp), ('gt all', fn, tp)], ('', 'pred hem', 'pred all')))
    sections.append('\n'.join(parts))
    counts_at = len(sections)  # the Counts section follows the metrics (it needs the preds)

    # training curves
    figs: 'OrderedDict[str, object]' = OrderedDict()
    try:
        figs.update(curve_figures(work_dir, title=title))
    except FileNotFoundError as e:
        notes.append(f'No training curves: {e}')

    # result plots
    preds, preds_path = _predictions(work_dir, preds_path, preds, notes)
    binary_json = None
    log_dir = run.get('log_dir')
    if log_dir and osp.isfile(osp.join(log_dir, 'binary_metrics.json')):
        binary_json = osp.join(log_dir, 'binary_metrics.json')
    try:
        figs.update(result_figures(preds or [], cfg=cfg, ann_file=ann_file, classes=classes,
                                   score_thr=score_thr, num_samples=num_samples, title=title,
                                   binary_metrics_json=binary_json))
    except (FileNotFoundError, ValueError, KeyError) as e:
        notes.append(f'No result plots: {e}')

    counts = counts_section(metrics, run.get('log_dir'), run['source'], title,
                            fig_dir=fig_dir,
                            preds=preds if preds and is_detection_preds(preds) else None)
    if counts:
        sections.insert(counts_at, counts)

    pngs = _render(figs, fig_dir)
    curves = [n for n in ('loss', 'lr', 'val_metrics') if n in figs]
    results = [n for n in figs if n not in curves and n != 'samples']
    if curves:
        sections.append('<h2>Training curves</h2>\n' +
                        '\n'.join(_figure(n, pngs[n], title) for n in curves))
    if results:
        src = f' ({_esc(preds_path)})' if preds_path else ''
        sections.append(f'<h2>Results</h2>\n<p class="meta">Predictions{src}</p>\n' +
                        '\n'.join(_figure(n, pngs[n], title) for n in results))
    if 'samples' in figs:
        sections.append('<h2>Sample predictions</h2>\n' +
                        _figure('samples', pngs['samples'], title))

    with open(run['config']) as f:
        cfg_text = f.read()
    sections.append('<h2>Full config</h2>\n<details><summary>show</summary><pre>'
                    f'{_esc(cfg_text)}</pre></details>')

    note_html = ''.join(f'<p class="note">{_esc(n)}</p>' for n in notes)
    now = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{_esc(title)} - mmbloodcell report</title><style>{_CSS}</style></head>'
            f'<body><h1>{_esc(title)}</h1><p class="meta">{_esc(run["task"])} run '
            f'&middot; {_esc(osp.abspath(work_dir))} &middot; report generated {now} by '
            f'tools/analysis/report.py</p>{note_html}\n' + '\n'.join(sections) +
            '\n</body></html>\n')


def write_report(work_dir: str, out_file: Optional[str] = None, **kwargs) -> str:
    """Write :func:`build_report` to ``out_file`` (default ``<work_dir>/report.html``);
    returns the path."""
    out_file = out_file or osp.join(work_dir, 'report.html')
    page = build_report(work_dir, **kwargs)
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    with open(out_file, 'w', encoding='utf-8') as f:
        f.write(page)
    return out_file
