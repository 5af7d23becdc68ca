"""How fast a detection config's training pipeline produces samples on this machine's CPU
(with a small detector on a GPU, the loader can bound the step).

    python benchmarks/bccd_loader_speed.py CONFIG [CONFIG ...] [--data-root data/bccd]
        [--split-prefix imagesets_] [--samples 200] [--workers 0] [--batch 32] [--out F]

``--workers 0`` times ``dataset[i]`` in this process: samples per second of ONE loader worker
(multiply by the workers a machine can run; the GPU machine has 16 cores). ``--workers N``
times a ``DataLoader`` with N worker processes and mmengine's ``pseudo_collate`` instead
(samples per second of the whole loader, after the first batch). The per-transform split of the
time is printed for ``--workers 0``.
"""
import argparse
import json
import os.path as osp
import sys
import time
from collections import defaultdict

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('configs', nargs='+')
    p.add_argument('--data-root', default='data/bccd')
    p.add_argument('--split-prefix', default='imagesets_')
    p.add_argument('--samples', type=int, default=200)
    p.add_argument('--workers', type=int, default=0)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--out', help='write the results as JSON here')
    return p.parse_args(argv)


def build_train_dataset(config: str, data_root: str, split_prefix: str):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import DATASETS

    import mmbloodcell  # noqa: F401
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    ds = cfg.train_dataloader.dataset
    inner = ds
    while 'dataset' in inner and 'ann_file' not in inner:
        inner = inner['dataset']
    inner['data_root'] = data_root.rstrip('/') + '/'
    inner['ann_file'] = f'annotations/{split_prefix}train.json'
    return DATASETS.build(ds)


class _Timed:
    """A pipeline step that adds its own run time to ``acc[name]``."""

    def __init__(self, transform, acc):
        self.transform, self.acc = transform, acc
        self.name = type(transform).__name__

    def __call__(self, results):
        t0 = time.perf_counter()
        try:
            return self.transform(results)
        finally:
            self.acc[self.name] += time.perf_counter() - t0


def time_in_process(dataset, samples: int) -> dict:
    """Samples/s of one process, and the milliseconds each transform took per sample."""
    pipeline = dataset.pipeline if hasattr(dataset, 'pipeline') else dataset.dataset.pipeline
    per_step = defaultdict(float)
    pipeline.transforms = [_Timed(t, per_step) for t in pipeline.transforms]
    for i in range(min(10, len(dataset))):  # warm-up: fills the mosaic / mixup caches
        dataset[i]
    per_step.clear()
    t0 = time.perf_counter()
    for i in range(samples):
        dataset[i % len(dataset)]
    wall = time.perf_counter() - t0
    return dict(samples_per_s=round(samples / wall, 1),
                ms_per_sample=round(1000 * wall / samples, 2),
                ms_per_transform={k: round(1000 * v / samples, 2) for k, v in per_step.items()})


def time_loader(dataset, samples: int, workers: int, batch: int) -> dict:
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                        collate_fn=pseudo_collate, persistent_workers=False, drop_last=True)
    it = iter(loader)
    next(it)  # workers started, first batch out
    n, t0 = 0, time.perf_counter()
    while n < samples:
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            continue
        n += batch
    wall = time.perf_counter() - t0
    return dict(samples_per_s=round(n / wall, 1), workers=workers, batch=batch)


def main(argv=None):
    args = parse_args(argv)
    import torch
    rows = []
    for config in args.configs:
        dataset = build_train_dataset(config, args.data_root, args.split_prefix)
        if args.workers:
            row = time_loader(dataset, args.samples, args.workers, args.batch)
        else:
            row = time_in_process(dataset, args.samples)
        row['config'] = osp.relpath(config, ROOT)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        env = dict(torch=torch.__version__, threads=torch.get_num_threads(),
                   command=' '.join(['benchmarks/bccd_loader_speed.py'] + sys.argv[1:]))
        with open(args.out, 'w') as f:
            json.dump(dict(env=env, results=rows), f, indent=2)
    return rows


if __name__ == '__main__':
    main()
