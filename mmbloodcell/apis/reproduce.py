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
import math
import os
import os.path as osp
import runpy
import shlex
import subprocess
import sys
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional, Sequence

from mmbloodcell.studies import find_table, load_studies, loader_pipelines

__all__ = ['reproduce', 'crossval', 'plan_table', 'table_markdown', 'relative_to_mean',
           'smoke_options', 'scratch_options', 'list_tables', 'RESULT_FILE', 'ReproduceError']

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


def smoke_options(cfg, task: str, size: int = 64, images: int = 4) -> Dict[str, object]:
    """cfg-options for a smoke run: one epoch of ``images`` training images, 2 val / test
    images, batch 2, no workers, no lr schedule, the last checkpoint instead of the best,
    latency without warm-up; classification inputs resized to ``size`` (detectors keep their
    size: their priors depend on it)."""
    options: Dict[str, object] = {'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1}
    for split, path, pipeline in loader_pipelines(cfg):
        n = images if split == 'train_dataloader' else 2
        options[f'{path}.indices'] = n
        options[f'{split}.batch_size'] = 2 if split == 'train_dataloader' else 1
        options[f'{split}.num_workers'] = 0
        options[f'{split}.persistent_workers'] = False
        subsample = (cfg.get(split) or {}).get('dataset', {}).get('class_subsample')
        if subsample:  # a few cells per class, train and val still disjoint
            options[f'{path}.class_subsample.num_per_class'] = 2 if n == images else 1
            if subsample.get('offset'):
                options[f'{path}.class_subsample.offset'] = 2
        if task == 'classification':
            for i, t in enumerate(pipeline):
                if isinstance(t, dict) and t.get('type') == 'Resize':
                    options[f'{path}.pipeline.{i}.scale'] = (size, size)
    if cfg.get('param_scheduler'):
        options['param_scheduler'] = '[]'
    # a barely trained detector may predict nothing: no metric to select a best epoch by
    if (cfg.get('default_hooks') or {}).get('checkpoint', {}).get('save_best'):
        options['default_hooks.checkpoint.save_best'] = 'None'
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(hook, dict) and hook.get('type') == 'LatencyHook':
            options[f'custom_hooks.{i}.warmup'] = 0  # 2 test images: time them
    return options


def _checkpoint_of(row_dir: str, which: str = 'best') -> Optional[str]:
    """The row's checkpoint: ``best_*.pth`` (``which='best'``, when there is one), else the
    last complete one (:func:`~mmbloodcell.apis.tool_config.find_resume_checkpoint`)."""
    from mmbloodcell.apis.tool_config import find_resume_checkpoint
    if not osp.isdir(row_dir):
        return None
    best = sorted(n for n in os.listdir(row_dir) if n.startswith('best_') and n.endswith('.pth'))
    if which == 'best' and best:
        return osp.join(row_dir, best[-1])
    return find_resume_checkpoint(row_dir)


def _row_ref(table_id: str, ref: str) -> tuple:
    return tuple(ref.split('/', 1)) if '/' in ref else (table_id, ref)


def plan_table(table_id: str, work_dir: str = 'work_dirs/reproduce', rows=None) -> List[dict]:
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
        needs = [spec[k] for k in ('resume_from', 'load_from') if spec.get(k)]
        for ref in list(spec.get('members', [])) + needs:
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
        if script == 'train.py':  # dist_train.sh CONFIG NPROC ..., dist_test.sh CONFIG CKPT NPROC
            return ['bash', 'tools/dist_train.sh', args[0], str(gpus)] + args[1:]
        return ['bash', 'tools/dist_test.sh', args[0], args[1], str(gpus)] + args[2:]
    cmd = ['python', f'tools/{script}'] + args
    if launcher == 'slurm':
        return ['srun', f'--ntasks={gpus}', f'--gpus={gpus}'] + cmd + ['--launcher', 'slurm']
    return cmd


def _commands(step: dict, cfg, checkpoint: str, member_ckpts: List[str], resume: Optional[str],
              load_from: Optional[str], data_root: Optional[str], smoke: bool,
              from_scratch: bool, launcher: str, gpus: int,
              user_options: Optional[dict] = None) -> Dict[str, List[str]]:
    spec, row_dir = step['spec'], step['dir']
    options: Dict[str, object] = {}
    if from_scratch or smoke:
        options.update(scratch_options(cfg))
    if smoke:
        options.update(smoke_options(cfg, step['task']))
    options.update(spec.get('cfg_options') or {})
    options.update(user_options or {})
    if load_from:
        options['load_from'] = load_from
    if resume and smoke:  # one more epoch than the resumed run's
        options['train_cfg.max_epochs'] = 2
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


def _shown(root: str, cmd: List[str]) -> List[str]:
    """``cmd`` with paths inside the checkout relative to it (the tools run there)."""
    prefix = root.rstrip(os.sep) + os.sep
    return [c.replace(prefix, '') for c in cmd]


def _run_tool(root: str, cmd: List[str], launcher: str, log: Callable[[str], None]) -> None:
    cmd = _shown(root, cmd)
    log('$ ' + ' '.join(shlex.quote(c) for c in cmd))
    if launcher != 'none' or cmd[0] != 'python':
        # this interpreter for `python` (and for the dist scripts' $PYTHON)
        run = [sys.executable] + cmd[1:] if cmd[0] == 'python' else cmd
        env = dict(os.environ, PYTHON=sys.executable)
        subprocess.run(run, check=True, cwd=root, env=env)
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
              root: Optional[str] = None, cfg_options: Optional[Dict[str, object]] = None,
              log: Callable[[str], None] = print) -> dict:
    """Run (or with ``dry_run`` print) a table; returns the table document (``table.json``).

    Args:
        table_id: e.g. ``'fhl-table2'`` (:func:`mmbloodcell.studies.find_table`).
        work_dir: Rows go to ``<work_dir>/<table>/<row>``.
        rows: Row ids to run (their dependencies too); None: all.
        data_root: The dataset folder, for every row (``tools/train.py --data-root``).
        smoke / from_scratch / launcher / gpus: see the module docstring.
        root: The checkout with ``configs/`` and ``tools/``; default: the current folder.
        cfg_options: Config overrides for every training and test run of the rows (e.g.
            ``{'train_cfg.max_epochs': 2}`` for a shorter budget); the table lists them.
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
    steps = plan_table(table_id, work_dir, rows)
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
            cmd = _shown(root, cmd)
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
            save_best = ((cfg.get('default_hooks') or {}).get('checkpoint') or {}).get(
                'save_best')
            selected_by = ('the members\' checkpoints' if spec.get('test_only') else
                           f'best {save_best} on the validation split'
                           if which == 'best' and save_best and not smoke else 'the last epoch')
            if spec.get('test_only'):
                checkpoint = members[0] if members else spec.get('checkpoint_file', '-')
            else:
                checkpoint = _checkpoint_of(step['dir'], which) or osp.join(
                    step['dir'], f'{which}_*.pth')
            cmds = _commands(step, cfg, checkpoint, members, resume, load_from, data_root,
                             smoke, from_scratch, launcher, gpus, cfg_options)
            commands = [_shown(root, c) for c in (cmds['train'], cmds['test']) if c]
            if dry_run:
                for c in commands:
                    log('$ ' + ' '.join(shlex.quote(x) for x in c))
                results[key] = dict(status='planned', selected_by=selected_by,
                                    commands=[' '.join(c) for c in commands])
                continue
            if cmds['train']:
                _run_tool(root, cmds['train'], launcher, log)
                checkpoint = _checkpoint_of(step['dir'], which)
                if checkpoint is None:
                    raise ReproduceError(f'{step["dir"]}: training wrote no checkpoint')
                if not osp.basename(checkpoint).startswith('best_'):
                    selected_by = 'the last epoch'  # no validation ran (or none was best)
                cmds = _commands(step, cfg, checkpoint, members, resume, load_from, data_root,
                                 smoke, from_scratch, launcher, gpus, cfg_options)
                commands = [_shown(root, c) for c in (cmds['train'], cmds['test'])]
            _run_tool(root, cmds['test'], launcher, log)
        metrics = _row_metrics(step)
        results[key] = dict(status='done', commands=[' '.join(c) for c in commands],
                            selected_by=(selected_by if step['kind'] == 'config'
                                         else 'ultralytics best.pt'),
                            metrics={k: v for k, v in metrics.items()
                                     if isinstance(v, (int, float))})
        os.makedirs(step['dir'], exist_ok=True)
        with open(result_path, 'w') as f:
            json.dump(results[key], f, indent=1)
    for spec in table['rows']:  # rows not asked for this time: what an earlier run left
        path = osp.join(root, work_dir, table_id, spec['id'], RESULT_FILE)
        if (table_id, spec['id']) not in results and osp.isfile(path) and not dry_run:
            with open(path) as f:
                results[(table_id, spec['id'])] = json.load(f)
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
        res = results.get((table_id, spec['id']))
        if res is None:
            res = (dict(status='missing', reason=spec.get('reason', ''), commands=[])
                   if spec.get('kind') == 'missing' else dict(status='not run', commands=[]))
        metrics = res.get('metrics', {})
        values = {}
        for col in columns:
            ours = metrics.get(col['key'])
            values[col['key']] = dict(ours=ours, paper=(spec.get('paper') or {}).get(col['key']))
        rows.append(dict(id=spec['id'], label=spec.get('label', spec['id']),
                         config=spec.get('config'), status=res['status'],
                         selected_by=res.get('selected_by'),
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
    head.append('checkpoint tested')
    lines = [f"# {doc['title']}", '',
             f"Study: {doc['study']} ({(doc.get('paper') or {}).get('file', '')}); "
             f"test split: {doc.get('split')}", '',
             '| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for row in doc['rows']:
        cells = [row['label'] + ('' if row['status'] == 'done' else f" ({row['status']})")]
        for col in doc['columns']:
            v = row['values'][col['key']]
            cells += [_fmt(v['ours'], col['digits']), _fmt(v['paper'], col['digits'])]
        cells.append(row.get('selected_by') or '-')
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


#: Metrics of the cross-validation report (those a fold's test run has).
CV_METRICS = ('binary/f1', 'binary/weighted_f1', 'binary/precision', 'binary/recall',
              'binary/specificity', 'binary/accuracy', 'binary/auc')


def crossval(config: str, num_folds: int = 5, work_dir: Optional[str] = None, seed: int = 0,
             data_root: Optional[str] = None, smoke: bool = False, from_scratch: bool = False,
             cfg_options: Optional[Dict[str, object]] = None, root: Optional[str] = None,
             log: Callable[[str], None] = print) -> dict:
    """Patient-wise stratified k-fold cross-validation of a C-NMC config.

    Fold ``k`` trains on the patients of the other folds and validates and tests on those of
    fold ``k`` (``patient_split=dict(num_folds, fold=k, seed)`` on the training folds, see
    :func:`mmbloodcell.datasets.cnmc.patient_folds`), with the config's model selection.
    Writes ``<work_dir>/fold_<k>/`` per fold (resumable like :func:`reproduce`) and
    ``<work_dir>/crossval.md`` + ``.json``: each fold's metrics and their mean +- std
    (sample standard deviation, ``ddof=1``). ``work_dir`` defaults to
    ``work_dirs/crossval/<config name>``.
    """
    import statistics

    from mmengine.config import Config

    from mmbloodcell.analysis.logs import final_metrics
    root = osp.abspath(root or '.')
    data_root = osp.abspath(data_root) if data_root else None
    name = osp.splitext(osp.basename(config))[0]
    work_dir = work_dir or osp.join('work_dirs', 'crossval', name)
    cfg = Config.fromfile(osp.join(root, config) if not osp.isabs(config) else config)
    if num_folds < 2:
        raise ReproduceError(f'crossval: --folds {num_folds}: need at least 2 folds')
    for split in ('train_dataloader', 'val_dataloader'):
        if (cfg.get(split) or {}).get('dataset', {}).get('type') != 'CNMCDataset':
            raise ReproduceError(f'{config}: {split} is not a CNMCDataset: cross-validation '
                                 f'splits C-NMC training patients (a classification config)')
    folds = []
    for k in range(num_folds):
        fold_dir = osp.join(work_dir, f'fold_{k}')
        result_path = osp.join(root, fold_dir, RESULT_FILE)
        if osp.isfile(result_path):
            with open(result_path) as f:
                folds.append(json.load(f))
            log(f'# fold {k}: done before ({result_path})')
            continue
        options: Dict[str, object] = {}
        if from_scratch or smoke:
            options.update(scratch_options(cfg))
        if smoke:
            options.update(smoke_options(cfg, 'classification'))
        options.update(cfg_options or {})
        val = cfg.val_dataloader.dataset

        def fold_split(split: str, subset: str) -> Dict[str, object]:
            prefix = f'{split}.dataset'
            current = ((cfg.get(split) or {}).get('dataset') or {}).get('patient_split')
            # replace a patient_split dict whole (_delete_: none of its ratio is left); a
            # missing one (or None) is simply set
            options = {f'{prefix}.patient_split._delete_': True} if current else {}
            options.update({f'{prefix}.patient_split.num_folds': num_folds,
                            f'{prefix}.patient_split.fold': k,
                            f'{prefix}.patient_split.seed': seed,
                            f'{prefix}.patient_split.subset': subset,
                            f'{prefix}.split': 'train'})
            return options

        options.update(fold_split('train_dataloader', 'train'))
        options.update(fold_split('val_dataloader', 'val'))
        options['val_dataloader.dataset.folds'] = tuple(val.get('folds') or (0, 1, 2))
        # the fold's test set: its validation patients (the val loader's dataset settings)
        test_options = {k2: v for k2, v in options.items() if k2.startswith('test_')}
        test_options.update(fold_split('test_dataloader', 'val'))
        test_options['test_dataloader.dataset.folds'] = options['val_dataloader.dataset.folds']
        test_options.update({k2: v for k2, v in options.items()
                             if not k2.startswith(('train_', 'val_', 'test_'))})
        test_options.update({'test_dataloader.dataset.subdirs': 'None',
                             'test_dataloader.dataset.labels_optional': False})
        if isinstance(cfg.get('test_evaluator'), dict) and \
                cfg.test_evaluator.get('submission_file'):
            test_options['test_evaluator.submission_file'] = 'None'
        extra = ['--data-root', data_root] if data_root else []
        train = ['python', 'tools/train.py', config, '--work-dir', fold_dir] + extra + [
            '--cfg-options'] + _options_list(options)
        _run_tool(root, train, 'none', log)
        ckpt = _checkpoint_of(osp.join(root, fold_dir), 'best')
        if ckpt is None:
            raise ReproduceError(f'{fold_dir}: training wrote no checkpoint')
        test = ['python', 'tools/test.py', config, ckpt, '--work-dir',
                osp.join(fold_dir, 'test')] + extra + ['--cfg-options'] + _options_list(
                    test_options)
        _run_tool(root, test, 'none', log)
        metrics, _, _ = final_metrics(osp.join(root, fold_dir, 'test'), prefer='test')
        result = dict(fold=k, metrics={m: metrics[m] for m in CV_METRICS if m in metrics},
                      commands=[' '.join(_shown(root, c)) for c in (train, test)])
        with open(result_path, 'w') as f:
            json.dump(result, f, indent=1)
        folds.append(result)
    summary = {}
    for m in CV_METRICS:
        values = [f['metrics'][m] for f in folds
                  if isinstance(f['metrics'].get(m), (int, float))
                  and not math.isnan(f['metrics'][m])]
        if values:
            summary[m] = dict(mean=statistics.fmean(values),
                              std=statistics.stdev(values) if len(values) > 1 else 0.0,
                              n=len(values))
    doc = dict(config=config, num_folds=num_folds, seed=seed, smoke=smoke, folds=folds,
               summary=summary)
    head = ['fold'] + [m.split('/', 1)[1] for m in CV_METRICS if m in summary]
    lines = [f'# Patient-wise {num_folds}-fold cross-validation of `{config}`', '',
             'Folds of patients, stratified by class (seed %d); each fold trains on the others '
             'and is tested on its own patients. Metrics in percent; F1 = F1 of ALL.' % seed]
    if smoke:
        lines += ['', 'SMOKE RUN: one short epoch on a few images; the numbers only show the '
                  'path.']
    lines += ['', '| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for f in folds:
        lines.append('| ' + ' | '.join([str(f['fold'])] + [
            _fmt(f['metrics'].get(m), 2) for m in CV_METRICS if m in summary]) + ' |')
    lines.append('| mean +- std | ' + ' | '.join(
        f"{summary[m]['mean']:.2f} +- {summary[m]['std']:.2f}" for m in CV_METRICS
        if m in summary) + ' |')
    out = osp.join(root, work_dir)
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, 'crossval.json'), 'w') as f:
        json.dump(doc, f, indent=1)
    with open(osp.join(out, 'crossval.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    log(f'# cross-validation: {osp.join(out, "crossval.md")}')
    return doc
