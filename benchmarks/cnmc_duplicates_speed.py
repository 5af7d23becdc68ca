"""Time the duplicate-cell search on a release-sized set of cells (C-NMC 2019: 15,135 cells).

    python benchmarks/cnmc_duplicates_speed.py [--num 15135] [--size 450] [--data-root DIR]
                                               [--threads 2] [--keep DIR]

Without ``--data-root`` it writes ``--num`` generated 450x450 BMP cells (``draw_synthetic_cell``)
to a temporary folder, with 20 planted duplicates (10 exact copies, 10 copies with +-1 grey
level of noise), and reports the seconds of ``find_duplicates`` (decode and thumbnail every
cell, compare all pairs), the pairs found and whether every planted pair was among them.
With ``--data-root`` it searches the images of that folder instead (e.g. a real release) and reports the pairs.
"""
import argparse
import glob
import json
import os
import os.path as osp
import platform
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools',
                            'dataset_converters'))

from make_synthetic_cnmc import draw_synthetic_cell  # noqa: E402

from mmbloodcell.datasets.duplicates import find_duplicates  # noqa: E402


def write_cells(folder: str, num: int, size: int, seed: int = 0):
    """``num`` cells, the last 20 of them copies of earlier ones; returns paths and the
    planted pairs (as index pairs)."""
    rng = np.random.default_rng(seed)
    paths, planted = [], []
    unique = num - 20
    for i in range(unique):
        cls = 'all' if i % 2 else 'hem'
        path = osp.join(folder, f'{i:05d}_{cls}.bmp')
        cv2.imwrite(path, draw_synthetic_cell(rng, cls, size, rng.normal(0, 10, size=3)))
        paths.append(path)
    sources = rng.choice(unique, size=20, replace=False)  # distinct: copies pair only once
    for k, src in enumerate(sources.tolist()):
        path = osp.join(folder, f'copy{k:02d}.bmp')
        if k < 10:
            shutil.copyfile(paths[src], path)
        else:
            img = cv2.imread(paths[src]).astype(int)
            noisy = np.clip(img + rng.integers(-1, 2, size=img.shape), 1, 255)
            cv2.imwrite(path, np.where(img > 0, noisy, 0).astype(np.uint8))
        planted.append((src, len(paths)))
        paths.append(path)
    return paths, planted


def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num', type=int, default=15135)
    parser.add_argument('--size', type=int, default=450)
    parser.add_argument('--data-root', help='search the images of this folder instead')
    parser.add_argument('--threads', type=int, default=None, help='BLAS / OpenCV threads')
    parser.add_argument('--keep', help='write the generated cells here and keep them')
    args = parser.parse_args(argv)
    if args.threads:
        cv2.setNumThreads(args.threads)
        import torch
        torch.set_num_threads(args.threads)
    record = dict(date=time.strftime('%Y-%m-%d'), cpu=_cpu_name(), cores=os.cpu_count(),
                  command='python ' + ' '.join(sys.argv))
    tmp = None
    if args.data_root:
        paths = sorted(p for p in glob.glob(osp.join(args.data_root, '**', '*'), recursive=True)
                       if p.lower().endswith(('.bmp', '.png', '.jpg', '.jpeg', '.tif', '.tiff')))
        planted = []
    else:
        folder = args.keep or tempfile.mkdtemp(prefix='cnmc_dup_speed_')
        tmp = None if args.keep else folder
        os.makedirs(folder, exist_ok=True)
        start = time.perf_counter()
        paths, planted = write_cells(folder, args.num, args.size)
        record['write_s'] = round(time.perf_counter() - start, 1)
    try:
        start = time.perf_counter()
        pairs = find_duplicates(paths)
        record['search_s'] = round(time.perf_counter() - start, 1)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    found = {(p['i'], p['j']) for p in pairs}
    record.update(images=len(paths), pairs=len(pairs),
                  exact=sum(p['kind'] == 'exact' for p in pairs),
                  near=sum(p['kind'] == 'near' for p in pairs))
    if planted:
        record['planted_found'] = f'{sum(pair in found for pair in planted)}/{len(planted)}'
        record['other_pairs'] = len(found - set(planted))
    print(json.dumps(record, indent=1))
    return record


if __name__ == '__main__':
    main()
