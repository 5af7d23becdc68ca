"""Helpers of the reliability tests: tiny configs on synthetic / real data, running the tools
as separate processes (as users do), reading their metrics and checkpoints."""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import torch
from mmengine.config import Config

from mmbloodcell.apis.tool_config import set_evaluator_ann_file

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
TOOLS = osp.join(REPO, 'tools')
CONFIGS = osp.join(HERE, 'configs')


def make_cnmc_data(root: str) -> str:
    """24 training cells (one fold, 3 + 3 patients x 4) and 16 labelled test cells, 48x48."""
    from cnmc_release import make_synthetic_cnmc
    counts = make_synthetic_cnmc(root, img_size=48, num_folds=1, patients_per_fold=(3, 3),
                                 cells_per_patient=4, prelim_patients=(2, 2),
                                 final_patients=(1, 1), seed=0)
    assert counts['train_all'] + counts['train_hem'] == 24 and counts['prelim'] == 16
    return root


def cnmc_config(data_root: str, **options) -> Config:
    cfg = Config.fromfile(osp.join(CONFIGS, 'cnmc_tiny.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = data_root
    cfg.merge_from_dict(options)
    return cfg


def bccd_config(mini: dict, **options) -> Config:
    """The tiny detector on the real BCCD subsets of ``tests/conftest.py::bccd_mini``."""
    cfg = Config.fromfile(osp.join(CONFIGS, 'bccd_tiny.py'))
    for key, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'),
                       ('test_dataloader', 'test')):
        cfg[key].dataset.data_root = mini['data_root']
        cfg[key].dataset.ann_file = mini[split]
    set_evaluator_ann_file(cfg, 'val_evaluator', mini['val'])
    set_evaluator_ann_file(cfg, 'test_evaluator', mini['test'])
    cfg.merge_from_dict(options)
    return cfg


def dump(cfg: Config, path: str) -> str:
    cfg.dump(path)
    return path


def tool_env(**extra) -> dict:
    """Environment of a tool process: the checkout and this folder importable, one thread per
    process (runs side by side on a 2-core machine; torchrun sets the same per worker)."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([REPO, HERE] + [p for p in [env.get('PYTHONPATH')] if p])
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_tool(args, log_path: str, **env) -> subprocess.Popen:
    """Start ``python <args>`` (a tool path first), output into ``log_path``."""
    log = open(log_path, 'w')
    return subprocess.Popen([sys.executable] + list(args), stdout=log,
                            stderr=subprocess.STDOUT, env=tool_env(**env), cwd=REPO)


def run_tool(args, log_path: str, timeout: float = 300, **env) -> str:
    proc = start_tool(args, log_path, **env)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    text = open(log_path).read()
    assert rc == 0, f'{args} exited with {rc}:\n{text[-4000:]}'
    return text


def run_script(script: str, args, log_path: str, timeout: float = 300) -> str:
    """Run a shell script of tools/ (dist_train.sh, dist_test.sh) with the test's Python on a
    free port; once more on another port if a process of the machine took it meanwhile."""
    for attempt in range(2):
        env = tool_env(PYTHON=sys.executable, PORT=free_port())
        with open(log_path, 'w') as log:
            proc = subprocess.run(['bash', osp.join(TOOLS, script)] + list(args), stdout=log,
                                  stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                  timeout=timeout)
        text = open(log_path).read()
        if proc.returncode == 0 or 'address already in use' not in text.lower():
            break
    assert proc.returncode == 0, f'{script} {args} exited with {proc.returncode}:\n' \
                                 f'{text[-4000:]}'
    return text


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def metric_lines(work_dir: str, prefix: str):
    """The metric records (``prefix/...`` keys) of every run in ``work_dir``, oldest run first,
    read from LoggerHook's ``<timestamp>/vis_data/scalars.json``."""
    out = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if any(k.startswith(prefix + '/') for k in record):
                    out.append({k: v for k, v in record.items()
                                if k.startswith(prefix + '/') and 'latency' not in k
                                and 'fps' not in k})
    return out


def read_test_metrics(work_dir: str, prefix: str) -> dict:
    """The metrics a tools/test.py run wrote to ``<work_dir>/<timestamp>/<timestamp>.json``."""
    paths = [p for p in glob.glob(osp.join(work_dir, '*', '*.json'))
             if osp.basename(p)[:-5] == osp.basename(osp.dirname(p))]
    assert len(paths) == 1, paths
    with open(paths[0]) as f:
        record = json.load(f)
    return {k: v for k, v in record.items() if k.startswith(prefix + '/')}


def weights(path: str) -> dict:
    return torch.load(path, map_location='cpu')['state_dict']


def assert_same_weights(a: str, b: str) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f'{a} and {b} differ in {different}'


def assert_same_metrics(a: dict, b: dict) -> None:
    """Equal metric dicts, NaN equal to NaN (COCO reports NaN for a class without boxes)."""
    import math
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        assert x == y, (key, x, y)
