"""What Reinhard stain normalisation does to the cells' colour statistics, per reference.

    python benchmarks/cnmc_stain_norm_stats.py CELL.bmp [CELL.bmp ...] [--reference REF ...]

For every cell: its CIELAB standard deviation (L, a, b) before and after
``StainNormalize(method='reinhard')`` towards each reference, and the number of cell pixels
that end up black (they would join the background). The references are the median of the
given cells (what ``tools/analysis/cnmc_stain_reference.py`` writes for a training set) and
each ``--reference`` image.
"""
import argparse
import json
import os.path as osp
import sys
import time

import mmcv
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmbloodcell.datasets.transforms.cell import (StainNormalize, foreground_mask,  # noqa: E402
                                                  reinhard_stats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('cells', nargs='+')
    parser.add_argument('--reference', nargs='*', default=[],
                        help='reference cell images (besides the median of the cells)')
    args = parser.parse_args(argv)
    imgs = {osp.basename(p): mmcv.imread(p) for p in args.cells}
    stats = {k: reinhard_stats(v) for k, v in imgs.items()}
    refs = {'median of the cells': StainNormalize(
        ref_mean=np.median([m for m, _ in stats.values()], axis=0),
        ref_std=np.median([s for _, s in stats.values()], axis=0))}
    for path in args.reference:
        refs[osp.basename(path)] = StainNormalize(reference=path)
    out = dict(date=time.strftime('%Y-%m-%d'), command='python ' + ' '.join(sys.argv),
               cells={k: dict(lab_mean=np.round(m, 2).tolist(), lab_std=np.round(s, 2).tolist())
                      for k, (m, s) in stats.items()}, references={})
    for name, norm in refs.items():
        ratios, black = [], 0
        for key, img in imgs.items():
            res = norm(dict(img=img.copy()))['img']
            fg = foreground_mask(img)
            black += int((fg & ~foreground_mask(res)).sum())
            ratios.append(reinhard_stats(res)[1] / stats[key][1])
        out['references'][name] = dict(
            ref_std=np.round(norm.ref_std, 3).tolist(),
            std_after_over_before_mean=np.round(np.mean(ratios, axis=0), 3).tolist(),
            std_after_over_before_max=np.round(np.max(ratios, axis=0), 3).tolist(),
            cell_pixels_turned_black=black)
    print(json.dumps(out, indent=1))
    return out


if __name__ == '__main__':
    main()
