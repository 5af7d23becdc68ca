"""Train BCCD detectors for a fixed wall-clock budget, score the test split with the package's
COCO evaluator (mmdet ``CocoMetric``), and print them side by side (the records of
``benchmarks/README.md`` and ``benchmarks/bccd_detection.md``).

    python benchmarks/bccd_budget.py CONFIG [CONFIG ...] [--budget 240] [--amp]
        [--data-root data/bccd] [--split-prefix imagesets_] [--work-dir work_dirs/bccd_budget]
        [--parallel] [--yolo yolov8n.yaml] [--out-json F] [--out-md F] [--cfg-options k=v ...]

For every config the script writes a derived config into ``<work-dir>/<name>/`` with

* the data paths of ``--data-root`` / ``--split-prefix`` (``imagesets_`` is BCCD's own
  ImageSets split 205 / 87 / 72, ``''`` the study's 256 / 74 / 34 split);
* ``TimeBudgetHook(budget_s=--budget)`` (an existing one keeps its lr schedule), so training
  ends at the first epoch boundary past the budget and the last checkpoint is kept;
* with ``--from-scratch`` (the default, since no pretrained weights are reachable here) no
  backbone ``init_cfg``, and no frozen stages / frozen BN statistics (freezing random weights
  would be meaningless);

then runs ``tools/train.py`` and ``tools/test.py`` on it in subprocesses and reads the metrics
JSON that ``tools/test.py`` wrote. ``--yolo MODEL_YAML`` adds the ultralytics peer trained
through ``tools/yolo_baseline.py run --time-budget`` on the same split and scored by the same
evaluator. ``--parallel`` trains all configs at once (they share the GPU: say so when quoting
such numbers).
"""
import argparse
import datetime
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmbloodcell.analysis.logs import YOLO_METRICS_FILE, final_metrics  # noqa: E402

KEYS = [('mAP', 'coco/bbox_mAP'), ('mAP50', 'coco/bbox_mAP_50'),
        ('mAP75', 'coco/bbox_mAP_75'), ('RBC', 'coco/RBC_precision'),
        ('WBC', 'coco/WBC_precision'), ('Platelets', 'coco/Platelets_precision'),
        ('ms/img', 'speed/latency_ms')]


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('configs', nargs='*', help='detection configs to train')
    p.add_argument('--budget', type=float, default=240.0, help='training seconds per model')
    p.add_argument('--data-root', default='data/bccd', help="the converter's output folder")
    p.add_argument('--split-prefix', default='imagesets_',
                   help="'imagesets_' (BCCD's ImageSets split) or '' (256/74/34)")
    p.add_argument('--work-dir', default='work_dirs/bccd_budget')
    p.add_argument('--amp', action='store_true', help='train with AMP (tools/train.py --amp)')
    p.add_argument('--pretrained', dest='from_scratch', action='store_false',
                   help="keep the configs' pretrained init_cfg (default: from scratch)")
    p.add_argument('--parallel', action='store_true', help='train all configs at once')
    p.add_argument('--yolo', metavar='MODEL_YAML',
                   help='also run the ultralytics peer, e.g. yolov8n.yaml')
    p.add_argument('--yolo-batch', type=int, default=16)
    p.add_argument('--yolo-imgsz', type=int, default=640)
    p.add_argument('--device', default=None, help="ultralytics device ('0', 'cpu')")
    p.add_argument('--out-json', help='write the results here (default: <work-dir>/results.json)')
    p.add_argument('--out-md', help='write a markdown table here')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='applied to every derived config')
    return p.parse_args(argv)


def _unfreeze(backbone: dict) -> None:
    backbone['init_cfg'] = None
    if 'frozen_stages' in backbone:
        backbone['frozen_stages'] = -1
    if 'norm_eval' in backbone:
        backbone['norm_eval'] = False
    norm = backbone.get('norm_cfg')
    if isinstance(norm, dict) and norm.get('requires_grad') is False:
        norm['requires_grad'] = True


def derive_config(config: str, args, out_dir: str) -> str:
    """Write the budgeted config for ``config`` into ``out_dir`` and return its path."""
    from mmengine.config import Config

    from mmbloodcell.apis.tool_config import set_evaluator_ann_file
    cfg = Config.fromfile(config)
    if cfg.get('default_scope') != 'mmdet':
        raise SystemExit(f'{config}: not a detection config (default_scope must be mmdet)')
    root = args.data_root.rstrip('/') + '/'
    ann = {s: f'annotations/{args.split_prefix}{s}.json' for s in ('train', 'val', 'test')}
    for split, key in (('train', 'train_dataloader'), ('val', 'val_dataloader'),
                       ('test', 'test_dataloader')):
        ds = cfg[key]['dataset']
        while 'dataset' in ds and 'ann_file' not in ds:  # RepeatDataset & co.
            ds = ds['dataset']
        ds['data_root'] = root
        ds['ann_file'] = ann[split]
    set_evaluator_ann_file(cfg, 'val_evaluator', root + ann['val'])
    set_evaluator_ann_file(cfg, 'test_evaluator', root + ann['test'])
    if args.from_scratch:
        _unfreeze(cfg.model['backbone'])
    hooks = [dict(h) for h in cfg.get('custom_hooks', [])]
    budget = [h for h in hooks if h['type'] == 'TimeBudgetHook']
    if budget:
        budget[0]['budget_s'] = args.budget
    else:
        hooks.append(dict(type='TimeBudgetHook', budget_s=args.budget))
    cfg.custom_hooks = hooks
    # one checkpoint at the end, one validation at the end: the budget goes to training
    cfg.default_hooks['checkpoint'] = dict(type='CheckpointHook', interval=100000,
                                           save_last=True, max_keep_ckpts=1, save_best=None)
    max_epochs = cfg.train_cfg.get('max_epochs', 1000)
    cfg.train_cfg['val_interval'] = max_epochs
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, osp.basename(config))
    cfg.dump(path)
    return path


def _epochs_done(work_dir: str) -> int:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        name = osp.basename(f.read().strip())
    return int(name.split('_')[-1].split('.')[0]) if name.startswith('epoch_') else -1


def start_training(cfg_path: str, work_dir: str, amp: bool) -> subprocess.Popen:
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), cfg_path, '--work-dir', work_dir]
    if amp:
        cmd.append('--amp')
    log = open(osp.join(work_dir, 'train_stdout.log'), 'w')
    print('+', ' '.join(cmd), flush=True)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def test_model(cfg_path: str, work_dir: str) -> dict:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    test_dir = osp.join(work_dir, 'test')
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'test.py'), cfg_path, ckpt,
           '--work-dir', test_dir]
    print('+', ' '.join(cmd), flush=True)
    with open(osp.join(work_dir, 'test_stdout.log'), 'w') as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    return final_metrics(test_dir, prefer='test')[0]


def _dump(args, rows) -> None:
    """Results so far (a run cut short still leaves the finished models on disk)."""
    with open(args.out_json or osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(results=rows, partial=True), f, indent=2)


def run_configs(args) -> list:
    rows, jobs = [], []
    for config in args.configs:
        name = osp.splitext(osp.basename(config))[0]
        work_dir = osp.join(args.work_dir, name)
        cfg_path = derive_config(config, args, work_dir)
        jobs.append((name, cfg_path, work_dir))
    running = []
    for name, cfg_path, work_dir in jobs:
        proc = start_training(cfg_path, work_dir, args.amp)
        running.append((name, cfg_path, work_dir, proc, time.perf_counter()))
        if not args.parallel:
            rows.append(_finish(*running.pop()))
            _dump(args, rows)
    for job in running:
        rows.append(_finish(*job))
        _dump(args, rows)
    return rows


def _finish(name, cfg_path, work_dir, proc, t0) -> dict:
    rc = proc.wait()
    train_s = time.perf_counter() - t0
    row = dict(model=name, config=cfg_path, train_wall_s=round(train_s, 1))
    if rc != 0:
        row['error'] = f'training exited with {rc}: see {work_dir}/train_stdout.log'
        with open(osp.join(work_dir, 'train_stdout.log')) as f:
            row['log_tail'] = f.read()[-1500:]
        print(f'{name}: {row["error"]}\n{row["log_tail"]}', flush=True)
        return row
    row['epochs'] = _epochs_done(work_dir)
    try:
        row['metrics'] = test_model(cfg_path, work_dir)
        if 'coco/bbox_mAP' not in row['metrics']:
            row['error'] = 'no detections on the test split (the COCO metric is empty)'
    except Exception as e:  # noqa: BLE001  (recorded, the other models still run)
        row['error'] = f'test failed: {e!r}: see {work_dir}/test_stdout.log'
    print(f'{name}: {json.dumps(row.get("metrics", row.get("error")))}', flush=True)
    return row


def run_yolo(args) -> dict:
    work_dir = osp.join(args.work_dir, 'yolo')
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'yolo_baseline.py'), 'run', '--data-root',
           args.data_root, '--split-prefix', args.split_prefix, '--work-dir', work_dir,
           '--model', args.yolo, '--epochs', '1000', '--time-budget', str(args.budget),
           '--imgsz', str(args.yolo_imgsz), '--batch', str(args.yolo_batch), '--quiet']
    if args.device:
        cmd += ['--device', args.device]
    if args.amp:
        cmd += ['--amp', 'fp16']
    os.makedirs(work_dir, exist_ok=True)
    print('+', ' '.join(cmd), flush=True)
    t0 = time.perf_counter()
    with open(osp.join(work_dir, 'stdout.log'), 'w') as log:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    row = dict(model=osp.splitext(args.yolo)[0] + ' (ultralytics)',
               wall_s_with_test=round(time.perf_counter() - t0, 1))
    files = glob.glob(osp.join(work_dir, '*', YOLO_METRICS_FILE))
    if rc != 0 or not files:
        row['error'] = f'yolo_baseline exited with {rc}: see {work_dir}/stdout.log'
        return row
    with open(files[0]) as f:
        row['metrics'] = json.load(f)['metrics']
    return row


def count_mae(metrics: dict, cls: str):
    """``(MAE, threshold)`` of a class's cell count per test image (``CellCountMetric``): at
    the thresholds calibrated on the validation split when the model has them, else at the
    fixed 0.3; ``(None, None)`` without count metrics."""
    for key, thr in ((f'count/{cls}_mae_calibrated', f'count/{cls}_thr_calibrated'),
                     (f'count/{cls}_mae', None)):
        if isinstance(metrics.get(key), (int, float)):
            return metrics[key], (metrics.get(thr) if thr else 0.3)
    return None, None


COUNT_CLASSES = ('RBC', 'WBC', 'Platelets')


def table(rows: list) -> str:
    """The markdown table: COCO metrics, latency, and the count MAE per class (calibrated
    thresholds, else 0.3: the threshold is printed beside it)."""
    names = [k for k, _ in KEYS] + [f'count MAE {c} (thr)' for c in COUNT_CLASSES]
    head = '| model | epochs | ' + ' | '.join(names) + ' |'
    lines = [head, '|' + ' --- |' * (len(names) + 2)]
    for r in rows:
        m = r.get('metrics')
        if m is None or 'error' in r:
            lines.append(f"| {r['model']} | - | {r.get('error', '?')} |")
            continue
        vals = [f'{m[k]:.3f}' if isinstance(m.get(k), (int, float)) else '-' for _, k in KEYS]
        for c in COUNT_CLASSES:
            mae, thr = count_mae(m, c)
            vals.append('-' if mae is None else f'{mae:.2f} ({thr:.2f})')
        lines.append(f"| {r['model']} | {r.get('epochs', '-')} | " + ' | '.join(vals) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if not args.configs and not args.yolo:
        raise SystemExit('nothing to run: name configs and/or --yolo MODEL_YAML')
    split = osp.join(args.data_root, 'annotations', f'{args.split_prefix}test.json')
    if not osp.isfile(split):
        raise SystemExit(f'{split} not found: run tools/dataset_converters/bccd_to_coco.py '
                         f'first (or pass --data-root / --split-prefix)')
    os.makedirs(args.work_dir, exist_ok=True)
    rows = run_configs(args) if args.configs else []
    if args.yolo:
        rows.append(run_yolo(args))
    import torch
    env = dict(date=datetime.date.today().isoformat(), torch=torch.__version__,
               gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu',
               budget_s=args.budget, amp=args.amp, split_prefix=args.split_prefix,
               from_scratch=args.from_scratch, parallel=args.parallel,
               command=' '.join([osp.relpath(sys.argv[0], ROOT)] + sys.argv[1:]))
    out_json = args.out_json or osp.join(args.work_dir, 'results.json')
    with open(out_json, 'w') as f:
        json.dump(dict(env=env, results=rows), f, indent=2)
    md = table(rows)
    print(md)
    if args.out_md:
        with open(args.out_md, 'w') as f:
            f.write(f"<!-- {env['date']} {env['gpu']} torch {env['torch']} budget "
                    f"{args.budget:.0f} s amp={args.amp} -->\n{md}\n")
    return rows


if __name__ == '__main__':
    main()
