"""Milliseconds per cell of the start-up cell check (``CNMCDataset(check_cells=True)``).

    python benchmarks/cnmc_cell_check_speed.py CELL.bmp [CELL.bmp ...] [--repeats 50]

Times, per cell: decoding (``mmcv.imread``), the foreground mask (``foreground_mask``) and the
whole check (decode + ``cell_image_warnings``), and extrapolates the check to the 15,135 cells
of the C-NMC 2019 release.
"""
import argparse
import json
import sys
import time
from os import path as osp

import mmcv

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmbloodcell.datasets.transforms.cell import (cell_image_warnings,  # noqa: E402
                                                  foreground_mask)


def _ms(fn, items, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        for item in items:
            fn(item)
    return (time.perf_counter() - start) / (repeats * len(items)) * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('cells', nargs='+')
    parser.add_argument('--repeats', type=int, default=50)
    args = parser.parse_args(argv)
    imgs = [mmcv.imread(p) for p in args.cells]
    check = _ms(lambda p: cell_image_warnings(mmcv.imread(p), p), args.cells, args.repeats)
    out = dict(date=time.strftime('%Y-%m-%d'), command='python ' + ' '.join(sys.argv),
               decode_ms=round(_ms(mmcv.imread, args.cells, args.repeats), 3),
               foreground_mask_ms=round(_ms(foreground_mask, imgs, args.repeats), 3),
               check_ms=round(check, 3), release_s=round(check * 15135 / 1e3, 1))
    print(json.dumps(out, indent=1))
    return out


if __name__ == '__main__':
    main()
