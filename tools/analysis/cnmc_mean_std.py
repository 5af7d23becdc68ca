"""Write the data preprocessor's mean/std of the C-NMC training set after cropping to the cell.

    python tools/analysis/cnmc_mean_std.py data/C-NMC_Leukemia
        [--out data/C-NMC_Leukemia/mean_std.json] [--folds 0 1 2] [--size 224]
        [--margin 0] [--threshold 0] [--max-images N] [--patient-split-ratio 0.8 --seed 0]

The statistics are computed on the images as the model sees them (CropToCell, then Resize to
SIZE x SIZE), in RGB order for ``data_preprocessor = dict(..., to_rgb=True)``. They are printed
as config lines and written to ``--out`` (default ``DATA_ROOT/mean_std.json``), the file that
``StatsFileClsDataPreprocessor(stats_file=...)`` reads:
``{"mean": [r, g, b], "std": [r, g, b], "size": ..., "num_images": ..., "folds": [...],
"command": "..."}``. Use only the training patients when you hold some out
(``--patient-split-ratio``).
"""
import argparse
import json
import os.path as osp
import shlex
import sys
from typing import Dict, List, Optional, Sequence

import mmcv
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.datasets import CNMCDataset  # noqa: E402
from mmbloodcell.datasets.transforms import CropToCell  # noqa: E402
from mmbloodcell.utils.fileio import atomic_write_bytes  # noqa: E402


def cnmc_mean_std(data_root: str,
                  folds: Sequence[int] = (0, 1, 2),
                  size: int = 224,
                  threshold: float = 0,
                  margin: int = 0,
                  subdirs: Optional[dict] = None,
                  patient_split: Optional[dict] = None,
                  max_images: Optional[int] = None) -> Dict[str, object]:
    """Mean and standard deviation per channel of the training images as the model sees them.

    Every image is read as BGR (``mmcv.imread``), cropped by :class:`CropToCell` (square
    padding included) and resized to ``size x size`` with bilinear interpolation, as
    ``CropToCell`` + ``Resize(scale=size)`` do in a pipeline. All pixels of the result count,
    black padding and background included, because the network sees them too.

    Args:
        data_root (str): The C-NMC root.
        folds (Sequence[int]): Training folds. Defaults to (0, 1, 2).
        size (int): Resize side. Defaults to 224.
        threshold (float): ``CropToCell`` threshold. Defaults to 0.
        margin (int): ``CropToCell`` margin. Defaults to 0.
        subdirs (dict, optional): ``CNMCDataset`` subdirs.
        patient_split (dict, optional): ``CNMCDataset`` patient split (use the training side
            only, so that validation patients do not leak into the statistics).
        max_images (int, optional): Use the first N images only. Defaults to None (all).

    Returns:
        dict: ``mean`` and ``std`` (lists of 3 floats in RGB order, 0..255 scale),
        ``num_images``, ``num_pixels``.
    """
    dataset = CNMCDataset(data_root=data_root, split='train', folds=folds, subdirs=subdirs,
                          patient_split=patient_split, serialize_data=False)
    crop = CropToCell(threshold=threshold, margin=margin)
    total = np.zeros(3, np.float64)
    total_sq = np.zeros(3, np.float64)
    n_pix = 0
    n_img = len(dataset) if max_images is None else min(max_images, len(dataset))
    for i in range(n_img):
        path = dataset.get_data_info(i)['img_path']
        img = mmcv.imread(path, flag='color')
        if img is None:
            raise OSError(f'{path}: cannot be read as an image; check the file')
        img = crop(dict(img=img))['img']
        img = mmcv.imresize(img, (size, size), interpolation='bilinear').astype(np.float64)
        pix = img.reshape(-1, 3)
        total += pix.sum(axis=0)
        total_sq += (pix**2).sum(axis=0)
        n_pix += len(pix)
    mean = total / n_pix
    std = np.sqrt(np.maximum(total_sq / n_pix - mean**2, 0))
    return dict(mean=mean[::-1].tolist(), std=std[::-1].tolist(), num_images=n_img,
                num_pixels=n_pix)


def write_mean_std(stats: Dict[str, object], path: str, **source) -> Dict[str, object]:
    """Write :func:`cnmc_mean_std`'s ``stats`` and the ``source`` settings (``size``,
    ``folds``, ``command``, ...) as the JSON ``StatsFileClsDataPreprocessor`` reads; the file
    is replaced atomically. Returns the written document."""
    doc = dict(mean=[float(v) for v in stats['mean']], std=[float(v) for v in stats['std']],
               **source, num_images=stats['num_images'], num_pixels=stats['num_pixels'],
               order='RGB', scale='0..255')
    atomic_write_bytes((json.dumps(doc, indent=2) + '\n').encode(), path)
    return doc


def format_preprocessor_lines(stats: Dict[str, object], digits: int = 2) -> List[str]:
    """The config lines for mmpretrain's ``data_preprocessor`` (RGB order, ``to_rgb=True``)."""
    mean = ', '.join(f'{v:.{digits}f}' for v in stats['mean'])
    std = ', '.join(f'{v:.{digits}f}' for v in stats['std'])
    return [
        f'# {stats["num_images"]} C-NMC training images after CropToCell + Resize; RGB order '
        f'(images are loaded BGR and flipped by to_rgb=True)',
        'data_preprocessor = dict(',
        f'    mean=[{mean}],',
        f'    std=[{std}],',
        '    to_rgb=True)',
    ]


def training_set_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of the tools that read the C-NMC training set (this one and
    cnmc_stain_reference.py): DATA_ROOT, the folds, the patient split, a subset."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('data_root', help='the C-NMC root (holding training_data/)')
    parser.add_argument('--folds', type=int, nargs='+', default=[0, 1, 2],
                        help='training folds (default: 0 1 2)')
    parser.add_argument('--max-images', type=int, default=None,
                        help='use only N images (quick estimate)')
    parser.add_argument('--patient-split-ratio', type=float, default=None,
                        help='use only the training side of CNMCDataset\'s patient split '
                        'with this ratio (and --seed), as in the training config')
    parser.add_argument('--seed', type=int, default=0, help='patient split seed')
    return parser


def patient_split_of(args):
    """``CNMCDataset``'s ``patient_split`` for the training side, or None."""
    if args.patient_split_ratio is None:
        return None
    return dict(ratio=args.patient_split_ratio, subset='train', seed=args.seed)


def parse_args(argv=None):
    parser = training_set_parser(__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=224, help='resize side (default: 224)')
    parser.add_argument('--margin', type=int, default=0, help='CropToCell margin in pixels')
    parser.add_argument('--threshold', type=float, default=0,
                        help='CropToCell threshold: a pixel is cell when a channel exceeds it')
    parser.add_argument('--out', help='the JSON file (default: DATA_ROOT/mean_std.json)')
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    patient_split = patient_split_of(args)
    stats = cnmc_mean_std(args.data_root, folds=args.folds, size=args.size,
                          threshold=args.threshold, margin=args.margin,
                          patient_split=patient_split, max_images=args.max_images)
    print('\n'.join(format_preprocessor_lines(stats)))
    out = args.out or osp.join(args.data_root, 'mean_std.json')
    write_mean_std(stats, out, size=args.size, folds=list(args.folds),
                   patient_split=patient_split, margin=args.margin, threshold=args.threshold,
                   max_images=args.max_images,
                   command=shlex.join(['python', 'tools/analysis/cnmc_mean_std.py'] + argv))
    print(f'# wrote {out}: data_preprocessor = dict(type=\'StatsFileClsDataPreprocessor\', '
          f'stats_file=\'{out}\') reads it')
    return stats


if __name__ == '__main__':
    main()
