# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Re-run a results table of a study: train and test every row, then our numbers beside the paper's.

``mmbloodcell reproduce TABLE`` (:mod:`mmbloodcell.apis.cli`) calls :func:`reproduce`. The
tables, their rows (a config each) and the papers' numbers are the data of
:mod:`mmbloodcell.studies`. For every row::

    python tools/train.py CONFIG --work-dir <work_dir>/<table>/<row>     (not for test-only rows)
    python tools/test.py CONFIG <its checkpoint> --work-dir <work_dir>/<table>/<row>/test

then ``<row dir>/result.json`` holds the row's metrics; a row whose ``result.json`` exists is not
run again (delete it to re-run). The table goes to ``<work_dir>/<table>/table.md`` and
``table.json``: per column our value and the paper's, the metric named, the protocol's
deviations (the study's method elements where the configs differ from the paper) and the
command of every row.

Runs need the checkout (``configs/`` and ``tools/`` under ``root``). With ``launcher='none'``
the tools run in this process (the same code as the printed commands); with ``'pytorch'`` /
``'slurm'`` each command is started through ``tools/dist_train.sh`` / ``srun``.
``smoke=True`` runs each row for one short epoch on a few images at a small input size (the
test suite does this for every table); ``from_scratch=True`` leaves out every pretrained weight
(the table says so).
"""
import json
import os
import os.path as osp
import runpy
import shlex
import subprocess
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional, Sequence

from mmbloodcell.studies import find_table, load_studies

__all__ = ['reproduce', 'plan_table', 'table_markdown', 'relative_to_mean', 'smoke_options',
           'scratch_options', 'RESULT_FILE', 'ReproduceError']

RESULT_FILE = 'result.json'


class ReproduceError(RuntimeError):
    """A table that cannot be run as asked (missing checkout, member row, data)."""


def relative_to_mean(values: Sequence[Optional[float]]) -> List[Optional[float]]:
    """``100 (v - mean) / mean`` per value, the mean over the values given (None: skipped).

    The six-backbone study's dF1 %: each model's F1 relative to the mean F1 of the table."""
    present = [v for v in values if v is not None]
    if not present:
        return [None for _ in values]
    mean = sum(present) / len(present)
    return [None if v is None or mean == 0 else 100.0 * (v - mean) / mean for v in values]


def _options_list(options: Dict[str, object]) -> List[str]:
    out = []
    for key, value in options.items():
        if isinstance(value, str):
            text = value
        elif isinstance(value, (tuple, list)):
            text = '(' + ','.join(str(v) for v in value) + (',)' if len(value) == 1 else ')')
        else:
            text = str(value)
        out.append(f'{key}={text}')
    return out


def scratch_options(cfg) -> Dict[str, object]:
    """cfg-options that drop every pretrained weight of ``cfg`` (``init_cfg=None``,
    timm ``pretrained=False``)."""
    from mmbloodcell.apis.tool_config import remote_weights
    options = {}
    for key, _ in remote_weights(cfg):
        if key.endswith('.init_cfg.checkpoint'):
            options[key[:-len('.checkpoint')]] = 'None'
        elif key.endswith('.pretrained'):
            options[key] = 'False'
        elif key == 'load_from':
            options[key] = 'None'
    return options


def _pipelines(cfg):
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(split)
        if not loader:
            continue
        path, dataset = f'{split}.dataset', loader.get('dataset', {})
        while 'pipeline' not in dataset and 'dataset' in dataset:
            path, dataset = f'{path}.dataset', dataset['dataset']
        yield split, path, dataset.get('pipeline') or []


def smoke_options(cfg, task: str, size: int = 64, images: int = 4) -> Dict[str, object]:
    """cfg-options for a smoke run: one epoch of ``images`` training images, 2 val / test
    images, batch 2, no workers; classification inputs resized to ``size`` (detectors keep
    their size: their priors depend on it)."""
    options: Dict[str, object] = {'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1}
    for split, path, pipeline in _pipelines(cfg):
        n = images if split == 'train_dataloader' else 2
        options[f'{path}.indices'] = n
        options[f'{split}.batch_size'] = 2 if split == 'train_dataloader' else 1
        options[f'{split}.num_workers'] = 0
        options[f'{split}.persistent_workers'] = False
        if task == 'classification':
            for i, t in enumerate(pipeline):
                if isinstance(t, dict) and t.get('type') == 'Resize':
                    options[f'{path}.pipeline.{i}.scale'] = (size, size)
    if cfg.get('param_scheduler'):
        options['param_scheduler'] = '[]'
    return options


def _checkpoint_of(row_dir: str, which: str = 'best') -> Optional[str]:
    """The row's checkpoint: ``best_*.pth`` (``which='best'``, else the last) or the last."""
    if not osp.isdir(row_dir):
        return None
    names = os.listdir(row_dir)
    best = sorted(n for n in names if n.startswith('best_') and n.endswith('.pth'))
    if which == 'best' and best:
        return osp.join(row_dir, best[-1])
    last_file = osp.join(row_dir, 'last_checkpoint')
    if osp.isfile(last_file):
        with open(last_file) as f:
            path = f.read().strip()
        if path and osp.isfile(path):
            return path
    epochs = sorted((n for n in names if n.startswith('epoch_') and n.endswith('.pth')),
                    key=lambda n: int(n[6:-4]) if n[6:-4].isdigit() else -1)
    return osp.join(row_dir, epochs[-1]) if epochs else None


def _row_ref(table_id: str, ref: str) -> tuple:
    return tuple(ref.split('/', 1)) if '/' in ref else (table_id, ref)


def plan_table(table_id: str, work_dir: str = 'work_dirs/reproduce', rows=None,
               data_root: Optional[str] = None, smoke: bool = False, from_scratch: bool = False,
               launcher: str = 'none', gpus: int = 1, root: str = '.') -> List[dict]:
    """The steps of a table, in run order (rows another row needs come first).

    Each step: ``table``, ``row`` (id), ``spec`` (the row's data), ``dir``, and ``kind``
    (``'config'``, ``'yolo'`` or ``'missing'``); config rows also have ``config``."""
    study, table = find_table(table_id)
    specs = table['rows']
    ids = [r['id'] for r in specs]
    if rows:
        unknown = [r for r in rows if r not in ids]
        if unknown:
            raise ReproduceError(f'{table_id} has no row {unknown}; its rows are: '
                                 f'{", ".join(ids)}')
    wanted = [r for r in specs if not rows or r['id'] in rows]
    steps, seen = [], set()

    def add(tid, spec):
        key = (tid, spec['id'])
        if key in seen:
            return
        for ref in list(spec.get('members', [])) + [spec[k] for k in ('resume_from', 'load_from')
                                                     if spec.get(k)]:
            dep_table, dep_row = _row_ref(tid, ref)
            _, dep_tab = find_table(dep_table)
            dep = [r for r in dep_tab['rows'] if r['id'] == dep_row]
            if not dep:
                raise ReproduceError(f'{tid}/{spec["id"]} needs row {ref}, which does not exist')
            add(dep_table, dep[0])
        seen.add(key)
        kind = spec.get('kind', 'config')
        step = dict(table=tid, row=spec['id'], spec=spec, kind=kind,
                    dir=osp.join(work_dir, tid, spec['id']),
                    task=find_table(tid)[0]['task'])
        if kind == 'config':
            step['config'] = spec['config']
        steps.append(step)

    for spec in wanted:
        add(table_id, spec)
    return steps


def _python(script: str, args: List[str], launcher: str, gpus: int) -> List[str]:
    if launcher == 'pytorch':
        dist = {'train.py': 'tools/dist_train.sh', 'test.py': 'tools/dist_test.sh'}[script]
        return ['bash', dist, args[0], str(gpus)] + args[1:]
    cmd = ['python', f'tools/{script}'] + args
    if launcher == 'slurm':
        return ['srun', f'--ntasks={gpus}', f'--gpus={gpus}'] + cmd + ['--launcher', 'slurm']
    return cmd


def _commands(step: dict, cfg, checkpoint: str, member_ckpts: List[str], resume: Optional[str],
              load_from: Optional[str], data_root: Optional[str], smoke: bool,
              from_scratch: bool, launcher: str, gpus: int) -> Dict[str, List[str]]:
    spec, row_dir = step['spec'], step['dir']
    options: Dict[str, object] = {}
    if from_scratch or smoke:
        options.update(scratch_options(cfg))
    if smoke:
        options.update(smoke_options(cfg, step['task']))
    options.update(spec.get('cfg_options') or {})
    if load_from:
        options['load_from'] = load_from
    extra = ['--data-root', data_root] if data_root else []
    train = None
    if not spec.get('test_only'):
        args = [step['config'], '--work-dir', row_dir] + extra
        if resume:
            args += ['--resume', resume]
        if options:
            args += ['--cfg-options'] + _options_list(options)
        train = _python('train.py', args, launcher, gpus)
    test_options = {k: v for k, v in options.items()
                    if not k.startswith(('train_dataloader', 'train_cfg', 'load_from'))}
    for i, ckpt in enumerate(member_ckpts):
        test_options[f'model.members.{i}.checkpoint'] = ckpt
    args = [step['config'], checkpoint, '--work-dir', osp.join(row_dir, 'test')] + extra
    if test_options:
        args += ['--cfg-options'] + _options_list(test_options)
    return dict(train=train, test=_python('test.py', args, launcher, gpus))


@contextmanager
def _cwd(path: str):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _run_tool(root: str, cmd: List[str], launcher: str, log: Callable[[str], None]) -> None:
    log('$ ' + ' '.join(shlex.quote(c) for c in cmd))
    if launcher != 'none' or cmd[0] != 'python':
        with _cwd(root):
            subprocess.run(cmd, check=True)
        return
    script = osp.join(root, cmd[1])
    tool = runpy.run_path(script, run_name='mmbloodcell_reproduce')
    with _cwd(root):
        tool['main'](cmd[2:])


def _row_metrics(step: dict) -> Dict[str, object]:
    from mmbloodcell.analysis.logs import YOLO_METRICS_FILE, final_metrics
    if step['kind'] == 'yolo':
        for dirpath, _, files in os.walk(step['dir']):
            if YOLO_METRICS_FILE in files:
                with open(osp.join(dirpath, YOLO_METRICS_FILE)) as f:
                    return json.load(f)['metrics']
        raise ReproduceError(f'{step["dir"]}: no {YOLO_METRICS_FILE} after the YOLO run')
    metrics, _, _ = final_metrics(osp.join(step['dir'], 'test'), prefer='test')
    return metrics


def _yolo_command(step: dict, data_root: Optional[str], smoke: bool) -> List[str]:
    spec = step['spec']
    args = ['python', 'tools/yolo_baseline.py', 'run', '--work-dir', step['dir']]
    if data_root:
        args += ['--data-root', data_root]
    opts = dict(spec.get('yolo_args') or {})
    if smoke:
        opts.update(epochs=1, imgsz=64, batch=2, workers=0)
    for key, value in opts.items():
        args += [f'--{key.replace("_", "-")}', str(value)]
    return args


def _prepare(study: dict, table: dict, root: str, data_root: Optional[str], dry_run: bool,
             log) -> None:
    """The table's one-time data steps (``prepare: [{creates, command}]``) whose file is
    missing, e.g. the training set's mean / std."""
    base = data_root or table.get('data_root') or study.get('data_root')
    for item in table.get('prepare', study.get('prepare', [])) or []:
        target = osp.join(base, item['creates']) if base else item['creates']
        cmd = [c.replace('{data_root}', base or '') for c in item['command']]
        if osp.exists(osp.join(root, target)) and not dry_run:
            continue
        if dry_run:
            log('$ ' + ' '.join(shlex.quote(c) for c in cmd) + f'   # if {target} is missing')
            continue
        _run_tool(root, cmd, 'none', log)


def reproduce(table_id: str, work_dir: str = 'work_dirs/reproduce', rows=None,
              data_root: Optional[str] = None, dry_run: bool = False, smoke: bool = False,
              from_scratch: bool = False, launcher: str = 'none', gpus: int = 1,
              root: Optional[str] = None, log: Callable[[str], None] = print) -> dict:
    """Run (or with ``dry_run`` print) a table; returns the table document (``table.json``).

    Args:
        table_id: e.g. ``'fhl-table2'`` (:func:`mmbloodcell.studies.find_table`).
        work_dir: Rows go to ``<work_dir>/<table>/<row>``.
        rows: Row ids to run (their dependencies too); None: all.
        data_root: The dataset folder, for every row (``tools/train.py --data-root``).
        smoke / from_scratch / launcher / gpus: see the module docstring.
        root: The checkout with ``configs/`` and ``tools/``; default: the current folder.
    """
    from mmengine.config import Config
    root = osp.abspath(root or '.')
    if not (osp.isdir(osp.join(root, 'configs')) and osp.isdir(osp.join(root, 'tools'))):
        raise ReproduceError(f'{root} is not an mmbloodcell checkout (no configs/ and tools/): '
                             f'run `mmbloodcell reproduce` from the repository root or pass '
                             f'--root /path/to/mmbloodcell')
    if launcher not in ('none', 'pytorch', 'slurm'):
        raise ReproduceError(f"launcher {launcher!r}: use 'none', 'pytorch' or 'slurm'")
    study, table = find_table(table_id)
    work_dir = osp.abspath(osp.join(root, work_dir)) if not osp.isabs(work_dir) else work_dir
    if data_root and not osp.isabs(data_root):
        data_root = osp.abspath(data_root)
    steps = plan_table(table_id, work_dir, rows, data_root, smoke, from_scratch, launcher, gpus,
                       root)
    _prepare(study, table, root, data_root, dry_run, log)
    results: Dict[tuple, dict] = {}
    for step in steps:
        key = (step['table'], step['row'])
        spec = step['spec']
        result_path = osp.join(step['dir'], RESULT_FILE)
        if step['kind'] == 'missing':
            results[key] = dict(status='missing', reason=spec.get('reason', ''), commands=[])
            log(f'# {step["table"]}/{step["row"]}: not available: {spec.get("reason", "")}')
            continue
        if osp.isfile(result_path) and not dry_run:
            with open(result_path) as f:
                results[key] = json.load(f)
            log(f'# {step["table"]}/{step["row"]}: done before ({result_path})')
            continue
        if step['kind'] == 'yolo':
            cmd = _yolo_command(step, data_root, smoke)
            commands = [cmd]
            if dry_run:
                log('$ ' + ' '.join(shlex.quote(c) for c in cmd))
                results[key] = dict(status='planned', commands=[' '.join(cmd)])
                continue
            try:
                import ultralytics  # noqa: F401
            except ImportError:
                results[key] = dict(status='skipped', commands=[' '.join(cmd)],
                                    reason='ultralytics is not installed: pip install ultralytics')
                log(f'# {step["table"]}/{step["row"]}: skipped: {results[key]["reason"]}')
                continue
            _run_tool(root, cmd, 'subprocess', log)
        else:
            cfg = Config.fromfile(osp.join(root, step['config']))

            def ckpt_of(ref, which='best'):
                t, r = _row_ref(step['table'], ref)
                path = _checkpoint_of(osp.join(work_dir, t, r), which)
                if path is None:
                    if dry_run:
                        return osp.join(work_dir, t, r, f'{which}_*.pth')
                    raise ReproduceError(f'{step["table"]}/{step["row"]} needs the checkpoint '
                                         f'of {t}/{r}; run `mmbloodcell reproduce {t} --rows '
                                         f'{r}` first')
                return path

            members = [ckpt_of(m) for m in spec.get('members', [])]
            resume = ckpt_of(spec['resume_from'], 'last') if spec.get('resume_from') else None
            load_from = ckpt_of(spec['load_from'], 'last') if spec.get('load_from') else None
            which = spec.get('checkpoint', 'best')
            if spec.get('test_only'):
                checkpoint = members[0] if members else spec.get('checkpoint_file', '-')
            else:
                checkpoint = _checkpoint_of(step['dir'], which) or osp.join(
                    step['dir'], f'{which}_*.pth')
            cmds = _commands(step, cfg, checkpoint, members, resume, load_from, data_root,
                             smoke, from_scratch, launcher, gpus)
            commands = [c for c in (cmds['train'], cmds['test']) if c]
            if dry_run:
                for c in commands:
                    log('$ ' + ' '.join(shlex.quote(x) for x in c))
                results[key] = dict(status='planned', commands=[' '.join(c) for c in commands])
                continue
            if cmds['train']:
                _run_tool(root, cmds['train'], launcher, log)
                checkpoint = _checkpoint_of(step['dir'], which)
                if checkpoint is None:
                    raise ReproduceError(f'{step["dir"]}: training wrote no checkpoint')
                cmds = _commands(step, cfg, checkpoint, members, resume, load_from, data_root,
                                 smoke, from_scratch, launcher, gpus)
                commands = [cmds['train'], cmds['test']]
            _run_tool(root, cmds['test'], launcher, log)
        metrics = _row_metrics(step)
        results[key] = dict(status='done', commands=[' '.join(c) for c in commands],
                            metrics={k: v for k, v in metrics.items()
                                     if isinstance(v, (int, float))})
        os.makedirs(step['dir'], exist_ok=True)
        with open(result_path, 'w') as f:
            json.dump(results[key], f, indent=1)
    doc = _table_doc(study, table_id, table, results, smoke=smoke, from_scratch=from_scratch,
                     data_root=data_root)
    if not dry_run:
        out_dir = osp.join(work_dir, table_id)
        os.makedirs(out_dir, exist_ok=True)
        with open(osp.join(out_dir, 'table.json'), 'w') as f:
            json.dump(doc, f, indent=1)
        with open(osp.join(out_dir, 'table.md'), 'w') as f:
            f.write(table_markdown(doc))
        log(f'# {table_id}: {osp.join(out_dir, "table.md")}')
    return doc


def _deviations(study: dict) -> List[dict]:
    return [dict(element=e['element'], paper=e.get('paper'), ours=e.get('ours'),
                 why=e.get('why')) for e in study.get('method', []) if e.get('why')]


def _table_doc(study, table_id, table, results, smoke, from_scratch, data_root) -> dict:
    columns = table['columns']
    rows = []
    for spec in table['rows']:
        res = results.get((table_id, spec['id']), dict(status='not run', commands=[]))
        metrics = res.get('metrics', {})
        values = {}
        for col in columns:
            ours = metrics.get(col['key'])
            values[col['key']] = dict(ours=ours, paper=(spec.get('paper') or {}).get(col['key']))
        rows.append(dict(id=spec['id'], label=spec.get('label', spec['id']),
                         config=spec.get('config'), status=res['status'],
                         reason=res.get('reason'), commands=res.get('commands', []),
                         values=values))
    for derived in table.get('derived', []):
        ours = relative_to_mean([r['values'][derived['from']]['ours'] for r in rows])
        for r, value in zip(rows, ours):
            spec = next(s for s in table['rows'] if s['id'] == r['id'])
            r['values'][derived['key']] = dict(ours=value,
                                               paper=(spec.get('paper') or {}).get(derived['key']))
    cols = [dict(key=c['key'], name=c['name'], digits=c.get('digits', 2)) for c in columns]
    cols += [dict(key=d['key'], name=d['name'], digits=d.get('digits', 1))
             for d in table.get('derived', [])]
    notes = [table['notes']] if table.get('notes') else []
    if smoke:
        notes.append('SMOKE RUN: one short epoch on a few images at a small input size; the '
                     'numbers only show that every row runs.')
    if from_scratch or smoke:
        notes.append('Trained from scratch (no pretrained weights), unlike the paper.')
    return dict(table=table_id, study=study['id'], title=table['title'],
                paper=study.get('paper'), split=table.get('split'), columns=cols, rows=rows,
                deviations=_deviations(study), notes=notes, data_root=data_root)


def _fmt(value, digits: int) -> str:
    if value is None:
        return '-'
    return f'{value:.{digits}f}'


def table_markdown(doc: dict) -> str:
    """``table.md``: the table (ours | paper per column), notes, deviations and commands."""
    head = ['Row']
    for col in doc['columns']:
        head += [f"{col['name']} ours", f"{col['name']} paper"]
    lines = [f"# {doc['title']}", '',
             f"Study: {doc['study']} ({(doc.get('paper') or {}).get('file', '')}); "
             f"test split: {doc.get('split')}", '',
             '| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for row in doc['rows']:
        cells = [row['label'] + ('' if row['status'] == 'done' else f" ({row['status']})")]
        for col in doc['columns']:
            v = row['values'][col['key']]
            cells += [_fmt(v['ours'], col['digits']), _fmt(v['paper'], col['digits'])]
        lines.append('| ' + ' | '.join(cells) + ' |')
    for note in doc['notes']:
        lines += ['', note]
    if doc['deviations']:
        lines += ['', '## Where the configs differ from the paper', '',
                  '| Element | Paper | Ours | Why |', '| --- | --- | --- | --- |']
        for d in doc['deviations']:
            lines.append(f"| {d['element']} | {d['paper']} | {d['ours']} | {d['why']} |")
    lines += ['', '## Commands', '']
    for row in doc['rows']:
        if row.get('reason'):
            lines.append(f"- {row['id']}: {row['status']}: {row['reason']}")
        for c in row['commands']:
            lines.append(f"- {row['id']}: `{c}`")
    return '\n'.join(lines) + '\n'


def list_tables() -> List[str]:
    return [t for s in load_studies().values() for t in s.get('tables', {})]

