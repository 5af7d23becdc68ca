# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Read what an mmengine run leaves in its work dir: scalar logs, test metrics, the config.

Layout written by mmengine's ``Runner`` (``LoggerHook`` + ``LocalVisBackend``)::

    <work_dir>/
    ├── <config name>.py             the config, dumped at every train / test run
    ├── <timestamp>/                 one folder per run (``YYYYmmdd_HHMMSS``)
    │   ├── <timestamp>.log          the text log
    │   ├── <timestamp>.json         test runs only: the test metrics (one JSON dict)
    │   ├── binary_metrics.json      classification: BinaryClassificationMetric's file
    │   └── vis_data/
    │       ├── config.py            the config of this run
    │       ├── scalars.json         one JSON dict per line: training records (``lr``,
    │       │                        ``loss*``, ``epoch``, ``iter``, ``step``) and validation
    │       │                        records (metrics, ``step`` = epoch or iteration)
    │       └── <timestamp>.json     the same records (LoggerHook's JSON log)
    └── epoch_N.pth, best_*.pth, last_checkpoint

A YOLO baseline run dir of ``tools/yolo_baseline.py`` holds ``args.yaml`` and
:data:`YOLO_METRICS_FILE` (``{"metrics": {...}, "settings": {...}}``).
"""
import glob
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

__all__ = [
    'TIMESTAMP_RE', 'RunLog', 'load_json_lines', 'split_records', 'find_run_logs',
    'latest_training_log', 'final_metrics', 'find_config', 'is_yolo_run', 'load_yolo_run',
    'scalar_items', 'YOLO_METRICS_FILE'
]

TIMESTAMP_RE = re.compile(r'^\d{8}_\d{6}$')
#: The metrics file of a YOLO baseline run dir (written by ``tools/yolo_baseline.py test``).
YOLO_METRICS_FILE = 'test_metrics.json'


class RunLog:
    """One ``<work_dir>/<timestamp>/`` folder ``log_dir`` (name: ``timestamp``).

    Attributes (None when absent):
        scalars (str | None): ``vis_data/scalars.json``, else LoggerHook's ``vis_data/<ts>.json``.
        test_json (str | None): ``<ts>.json`` beside the text log (test runs only).
        config (str | None): ``vis_data/config.py``.
        binary_metrics (str | None): ``binary_metrics.json``.
    """

    def __init__(self, log_dir: str):
        self.log_dir = log_dir
        self.timestamp = ts = osp.basename(log_dir.rstrip('/'))

        def existing(*parts) -> Optional[str]:
            path = osp.join(log_dir, *parts)
            return path if osp.isfile(path) else None

        self.scalars = existing('vis_data', 'scalars.json') or existing('vis_data', f'{ts}.json')
        self.test_json = existing(f'{ts}.json')
        self.config = existing('vis_data', 'config.py')
        self.binary_metrics = existing('binary_metrics.json')
        self._records: Optional[List[dict]] = None

    @property
    def records(self) -> List[dict]:
        """The scalar records (empty without a scalars file)."""
        if self._records is None:
            self._records = load_json_lines(self.scalars) if self.scalars else []
        return self._records

    @property
    def train_records(self) -> List[dict]:
        return split_records(self.records)[0]

    @property
    def val_records(self) -> List[dict]:
        return split_records(self.records)[1]

    def __repr__(self) -> str:
        return (f'RunLog({self.log_dir!r}, scalars={bool(self.scalars)}, '
                f'test_json={bool(self.test_json)})')


def load_json_lines(path: str) -> List[dict]:
    """The dicts of a JSON-lines file (blank lines skipped), or ``[doc]`` of a file holding
    one JSON dict (a test JSON); a line that is not JSON is a ValueError naming it."""
    with open(path) as f:
        text = f.read()
    stripped = text.strip()
    if not stripped:
        return []
    try:  # a single JSON document (mmengine's dump of the test metrics)
        doc = json.loads(stripped)
        if isinstance(doc, dict):
            return [doc]
    except json.JSONDecodeError:
        pass
    out = []
    for num, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}, line {num}: not JSON ({e}); is this an mmengine scalar '
                             f'log (vis_data/scalars.json)?') from None
        if isinstance(rec, dict):
            out.append(rec)
    return out


def split_records(records: List[dict]) -> Tuple[List[dict], List[dict]]:
    """``(train, val)`` scalar records: those with an ``iter`` key (``LoggerHook``'s training
    records) and the others (validation, ``step`` = epoch or iteration)."""
    train, val = [], []
    for rec in records:
        (train if 'iter' in rec else val).append(rec)
    return train, val


def scalar_items(record: dict) -> Dict[str, float]:
    """The numeric entries of a record as floats (lists, strings, None and bools left out)."""
    return {key: float(value) for key, value in record.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def find_run_logs(work_dir: str) -> List[RunLog]:
    """All ``<work_dir>/<timestamp>/`` folders, oldest first."""
    if not osp.isdir(work_dir):
        raise FileNotFoundError(f'{work_dir}: no such work dir (pass the --work-dir of '
                                f'tools/train.py or tools/test.py)')
    dirs = [d for d in sorted(os.listdir(work_dir))
            if TIMESTAMP_RE.match(d) and osp.isdir(osp.join(work_dir, d))]
    return [RunLog(osp.join(work_dir, d)) for d in dirs]


def latest_training_log(work_dir: str) -> RunLog:
    """The newest run of ``work_dir`` whose scalar log holds training records."""
    logs = find_run_logs(work_dir)
    for log in reversed(logs):
        if log.scalars and log.train_records:
            return log
    raise FileNotFoundError(
        f'{work_dir}: no training log found (looked for <timestamp>/vis_data/scalars.json with '
        f'training records in {len(logs)} run folder(s)); the scalars are written by '
        f"mmengine's LocalVisBackend: keep `vis_backends = [dict(type='LocalVisBackend')]` in "
        f'the config and train with tools/train.py')


def final_metrics(work_dir: str, prefer: str = 'test') -> Tuple[Dict[str, object], str, RunLog]:
    """The metrics that sum a work dir up.

    With ``prefer='test'``: the newest test run's ``<ts>.json``, else the last validation
    record of the newest run that has one. With ``prefer='val'``: the other way round.

    Returns:
        tuple: ``(metrics, source, log)``; ``source`` is ``'test'`` or ``'val (epoch N)'``
        (``'val (iter N)'`` for iter-based runs); ``metrics`` keeps non-scalar entries such as
        ``binary/confusion_matrix`` of the test JSON.
    """
    if prefer not in ('test', 'val'):
        raise ValueError(f"prefer must be 'test' or 'val', got {prefer!r}")
    logs = find_run_logs(work_dir)

    def from_test():
        for log in reversed(logs):
            if log.test_json:
                recs = load_json_lines(log.test_json)
                if recs:
                    return recs[-1], 'test', log
        return None

    def from_val():
        for log in reversed(logs):
            train, val = split_records(log.records) if log.scalars else ([], [])
            if val:
                rec = val[-1]
                unit = 'epoch' if not train or 'epoch' in train[-1] else 'iter'
                return rec, f"val ({unit} {rec.get('step', '?')})", log
        return None

    order = (from_test, from_val) if prefer == 'test' else (from_val, from_test)
    for fn in order:
        found = fn()
        if found:
            return found
    raise FileNotFoundError(
        f'{work_dir}: no metrics found: neither a test run (<timestamp>/<timestamp>.json, '
        f'written by tools/test.py --work-dir {work_dir}) nor a validation record in '
        f'<timestamp>/vis_data/scalars.json')


def find_config(work_dir: str, log: Optional[RunLog] = None) -> Tuple[str, str]:
    """``(path, name)`` of a run's config: ``<log>/vis_data/config.py`` when ``log`` has one,
    else the newest ``<work_dir>/*.py`` (mmengine's dump), else another run's. The name is the
    stem of the newest ``<work_dir>/*.py``, else the work dir's name."""
    dumped = sorted(glob.glob(osp.join(work_dir, '*.py')), key=osp.getmtime)
    name = (osp.splitext(osp.basename(dumped[-1]))[0] if dumped else
            osp.basename(osp.abspath(work_dir)))
    if log is not None and log.config:
        return log.config, name
    if dumped:
        return dumped[-1], name
    for other in reversed(find_run_logs(work_dir)):
        if other.config:
            return other.config, name
    raise FileNotFoundError(f'{work_dir}: no config found (mmengine dumps it as '
                            f'<work_dir>/<config name>.py and <timestamp>/vis_data/config.py)')


def is_yolo_run(path: str) -> bool:
    """Whether ``path`` is a YOLO baseline run dir (holds ``test_metrics.json``)."""
    return osp.isfile(osp.join(path, YOLO_METRICS_FILE))


def load_yolo_run(run_dir: str) -> Tuple[Dict[str, float], dict, Optional[str]]:
    """``(metrics, settings, model)`` of a YOLO baseline run dir; ``model`` is the ``model``
    entry of ultralytics' ``args.yaml`` (e.g. ``yolov8n.yaml``) when present, else the weights'
    path from the settings."""
    path = osp.join(run_dir, YOLO_METRICS_FILE)
    with open(path) as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or not isinstance(doc.get('metrics'), dict):
        raise ValueError(f'{path}: expected {{"metrics": {{...}}, "settings": {{...}}}} as '
                         f'written by tools/yolo_baseline.py test')
    metrics = {k: (float('nan') if v is None else v) for k, v in doc['metrics'].items()}
    settings = doc.get('settings') or {}
    model = None
    args_yaml = osp.join(run_dir, 'args.yaml')
    if osp.isfile(args_yaml):
        with open(args_yaml) as f:
            for line in f:
                m = re.match(r'^model:\s*(\S+)', line)
                if m:
                    model = m.group(1).strip('\'"')
                    break
    if model is None and settings.get('weights'):
        model = settings['weights']
    return metrics, settings, model
