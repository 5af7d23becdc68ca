# Copyright (c) mmbloodcell contributors. All rights reserved.
"""The studies mmbloodcell re-runs, as data: what each paper says, its tables and their rows.

One YAML file per study (``<study>.yaml`` in this folder)::

    id, title, paper (file, authors, language), task (detection | classification)
    method:   every element of the study's method
      - element: Optimiser
        paper: what the paper says ('silent' when it says nothing)
        ours: what the configs do
        why: why they differ (when they do)
        check: {optimizer: Adam, lr: 1.0e-5, ...}   checked in every row's config
    tables:
      <table id>:            e.g. fhl-table2, the name `mmbloodcell reproduce` takes
        title, split, notes
        columns: [{key, name, paper_scale}]   our metric key, the column's name
        rows: [{id, label, config, paper: {column key: value}, check: {...}, ...}]

:func:`check_config` compares a config with the ``check`` values (see :data:`CHECKS` for the
names it knows; a dotted name is a config path).
"""
import glob
import math
import os.path as osp
from typing import Dict, List, Optional

__all__ = ['STUDY_DIR', 'load_studies', 'load_study', 'find_table', 'CHECKS', 'config_value',
           'check_config', 'row_checks', 'protocols_markdown', 'loader_pipelines']

STUDY_DIR = osp.dirname(osp.abspath(__file__))


def load_studies() -> Dict[str, dict]:
    """Every study file of :data:`STUDY_DIR`, by study id, in file-name order."""
    import yaml
    studies = {}
    for path in sorted(glob.glob(osp.join(STUDY_DIR, '*.yaml'))):
        with open(path, encoding='utf-8') as f:
            study = yaml.safe_load(f)
        study['file'] = path
        studies[study['id']] = study
    return studies


def load_study(study_id: str) -> dict:
    studies = load_studies()
    if study_id not in studies:
        raise KeyError(f'no study {study_id!r}; known: {", ".join(studies)}')
    return studies[study_id]


def find_table(table_id: str) -> tuple:
    """``(study, table)`` of a table id such as ``fhl-table2``."""
    studies = load_studies()
    for study in studies.values():
        if table_id in study.get('tables', {}):
            return study, study['tables'][table_id]
    known = [t for s in studies.values() for t in s.get('tables', {})]
    raise KeyError(f'no table {table_id!r}; the tables are: {", ".join(known)}')


def _optimizer(cfg) -> dict:
    return dict(cfg.get('optim_wrapper', {}).get('optimizer', {}) or {})


def loader_pipelines(cfg):
    """``(loader, dataset path, pipeline)`` of the train / val / test loaders that ``cfg`` has,
    dataset wrappers opened (e.g. ``('train_dataloader', 'train_dataloader.dataset.dataset',
    [...])`` for a wrapped dataset)."""
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(split)
        if not loader:
            continue
        path, dataset = f'{split}.dataset', loader.get('dataset', {}) or {}
        while 'pipeline' not in dataset and 'dataset' in dataset:  # dataset wrappers
            path, dataset = f'{path}.dataset', dataset['dataset']
        yield split, path, list(dataset.get('pipeline') or [])


def _train_pipeline(cfg) -> list:
    for split, _, pipeline in loader_pipelines(cfg):
        if split == 'train_dataloader':
            return pipeline
    return []


def _walk_types(node, out: list) -> list:
    """Transform types of a pipeline, wrappers (RandomApply, RandomChoice) opened."""
    for t in node:
        if isinstance(t, dict):
            out.append(t.get('type'))
            for key in ('transforms', ):
                if key in t:
                    sub = t[key]
                    flat = []
                    for s in sub:
                        flat.extend(s if isinstance(s, (list, tuple)) else [s])
                    _walk_types(flat, out)
    return out


def _input_size(cfg) -> Optional[list]:
    size = None
    for t in _train_pipeline(cfg):
        if isinstance(t, dict) and t.get('type') in ('Resize', 'RandomResize', 'RandomResizedCrop'):
            size = t.get('scale', t.get('size'))
    if size is None:
        return None
    return list(size) if isinstance(size, (list, tuple)) else [size, size]


def _losses(cfg) -> List[str]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key.startswith('loss') and isinstance(value, dict) and 'type' in value:
                    found.append(value['type'])
                else:
                    walk(value)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)

    walk(cfg.get('model', {}))
    return sorted(set(found))


def _backbone(cfg) -> Optional[str]:
    backbone = (cfg.get('model', {}) or {}).get('backbone') or {}
    if not backbone:
        return None
    kind = backbone.get('type')
    detail = backbone.get('arch', backbone.get('depth', backbone.get('model_name')))
    return f'{kind}-{detail}' if detail is not None else kind


def _path(cfg, dotted: str):
    node = cfg
    for part in dotted.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit():
            node = node[int(part)]
        elif hasattr(node, 'keys') and part in node.keys():
            node = node[part]
        else:
            return None
    return node


#: Names :func:`check_config` knows, with what they read from a config.
CHECKS = {
    'optimizer': ('optim_wrapper.optimizer.type', lambda c: _optimizer(c).get('type')),
    'lr': ('optim_wrapper.optimizer.lr', lambda c: _optimizer(c).get('lr')),
    'weight_decay': ('optim_wrapper.optimizer.weight_decay',
                     lambda c: _optimizer(c).get('weight_decay', 0.0)),
    'momentum': ('optim_wrapper.optimizer.momentum', lambda c: _optimizer(c).get('momentum')),
    'betas': ('optim_wrapper.optimizer.betas', lambda c: _optimizer(c).get('betas')),
    'epochs': ('train_cfg.max_epochs', lambda c: (c.get('train_cfg') or {}).get('max_epochs')),
    'batch_size': ('train_dataloader.batch_size',
                   lambda c: (c.get('train_dataloader') or {}).get('batch_size')),
    'input_size': ('the last Resize of the train pipeline (w, h)', _input_size),
    'losses': ('the loss types of the model (sorted)', _losses),
    'backbone': ('model.backbone type-arch/depth', _backbone),
    'train_transforms': ('transform types of the train pipeline (these must be present)',
                         lambda c: _walk_types(_train_pipeline(c), [])),
    'train_transform_types': ('transform types of the train pipeline, in order (exactly these)',
                              lambda c: _walk_types(_train_pipeline(c), [])),
    'sampler': ('train_dataloader.sampler.type',
                lambda c: ((c.get('train_dataloader') or {}).get('sampler') or {}).get('type')),
}


def config_value(cfg, name: str):
    """The value of check ``name`` (a :data:`CHECKS` name or a dotted config path) in ``cfg``."""
    if name in CHECKS:
        return CHECKS[name][1](cfg)
    if '.' in name or name in cfg:
        return _path(cfg, name)
    raise KeyError(f'unknown check {name!r}: use one of {", ".join(CHECKS)} or a dotted '
                   f'config path such as model.head.hidden_channels')


def _same(expected, actual) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(expected) == len(actual) and all(map(_same, expected, actual))
    return expected == actual


def check_config(cfg, expected: Dict[str, object], where: str = 'config') -> List[str]:
    """Where ``cfg`` differs from ``expected`` (check name -> value): one message each.

    ``train_transforms`` lists types that must all be in the train pipeline; every other name
    must equal its value (numbers to 1e-9 relative).
    """
    problems = []
    for name, want in expected.items():
        got = config_value(cfg, name)
        if name == 'train_transforms':
            missing = [t for t in want if t not in (got or [])]
            if missing:
                problems.append(f'{where}: the train pipeline lacks {missing} '
                                f'(has {got})')
            continue
        if not _same(want, got):
            label = CHECKS[name][0] if name in CHECKS else name
            problems.append(f'{where}: {name} ({label}) is {got!r}, the paper says {want!r}')
    return problems


def row_checks(study: dict, row: dict) -> Dict[str, object]:
    """The checks of a table row: the study's method checks, then the row's own (they win).

    A row lists ``skip_checks`` for method elements that do not apply to it (e.g. the
    optimiser of a test-only ensemble); a ``beyond_paper`` row (a model of the package shown
    beside the paper's) has only its own checks."""
    checks = {}
    for element in study.get('method', []) if not row.get('beyond_paper') else []:
        checks.update(element.get('check') or {})
    checks.update(row.get('check') or {})
    for name in row.get('skip_checks', []):
        checks.pop(name, None)
    return checks


def _cell(text) -> str:
    return ' '.join(str(text if text is not None else '').split()).replace('|', '\\|')


def protocols_markdown() -> str:
    """``docs/paper_protocols.md``: per study, every element of its method with what the paper
    says, what the configs do and why they differ, then its tables' rows and configs."""
    lines = ['# The studies and their protocols', '',
             'Generated from `mmbloodcell/studies/*.yaml` (the data the config checks of '
             '`tests/test_studies` read): `python -c "from mmbloodcell.studies import '
             'protocols_markdown as p; print(p(), end=\'\')" > docs/paper_protocols.md`. '
             '"silent" means the paper does not say: the choice is ours and stated. '
             'Re-run a table with `mmbloodcell reproduce TABLE` (README, "Reproducing the '
             'studies").', '']
    for study in load_studies().values():
        paper = study.get('paper', {})
        lines += [f"## {study['title']}", '',
                  f"Paper: `../shared/papers/{paper.get('file')}` ({paper.get('authors')}; "
                  f"{paper.get('language')}). Study id `{study['id']}`.", '',
                  '| Element | The paper says | The configs do | Why they differ |',
                  '| --- | --- | --- | --- |']
        for e in study.get('method', []):
            lines.append(f"| {_cell(e['element'])} | {_cell(e.get('paper'))} | "
                         f"{_cell(e.get('ours'))} | {_cell(e.get('why'))} |")
        for table_id, table in study.get('tables', {}).items():
            names = ', '.join(f"{c['name']} (`{c['key']}`)" for c in table['columns'])
            lines += ['', f"### `{table_id}`: {table['title']}", '',
                      f"Test split: {table.get('split')}. Columns: {names}.", '']
            if table.get('notes'):
                lines += [_cell(table['notes']), '']
            lines += ['| Row | Config | Paper |', '| --- | --- | --- |']
            for row in table['rows']:
                where = f"`{row['config']}`" if row.get('config') else _cell(
                    row.get('reason') or row.get('kind'))
                paper_values = ', '.join(f'{k} {v}' for k, v in (row.get('paper') or {}).items())
                lines.append(f"| {_cell(row.get('label', row['id']))} | {where} | "
                             f"{paper_values or '-'} |")
        lines.append('')
    return '\n'.join(lines)
