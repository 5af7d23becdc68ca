"""Print the data preprocessor's mean/std of the C-NMC training set after cropping to the cell.

    python tools/analysis/cnmc_mean_std.py data/C-NMC_Leukemia [--folds 0 1 2] [--size 224]
        [--margin 0] [--threshold 0] [--max-images N]

The statistics are computed on the images as the model sees them (CropToCell, then Resize to
SIZE x SIZE) and printed in RGB order for ``data_preprocessor = dict(..., to_rgb=True)``.
Use only the training patients when you hold some out (``--patient-split-ratio``).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.datasets.stats import cnmc_mean_std, format_preprocessor_lines  # noqa: E402


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
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    stats = cnmc_mean_std(args.data_root, folds=args.folds, size=args.size,
                          threshold=args.threshold, margin=args.margin,
                          patient_split=patient_split_of(args), max_images=args.max_images)
    print('\n'.join(format_preprocessor_lines(stats)))
    return stats


if __name__ == '__main__':
    main()
