"""Write a synthetic C-NMC 2019 dataset in the official layout (for tests and demos).

    python tools/dataset_converters/make_synthetic_cnmc.py OUT_DIR [--img-size 450]
        [--folds 3] [--patients-per-fold ALL HEM] [--cells-per-patient 4]
        [--prelim-patients ALL HEM] [--final-patients ALL HEM] [--seed 0]

OUT_DIR then works as ``CNMCDataset(data_root=OUT_DIR)``. The same arguments always give the
same bytes.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.datasets.synthetic import make_synthetic_cnmc  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='dataset root to create (C-NMC_Leukemia folder)')
    parser.add_argument('--img-size', type=int, default=450, help='image side (default 450)')
    parser.add_argument('--folds', type=int, default=3, help='number of training folds')
    parser.add_argument('--patients-per-fold', type=int, nargs=2, default=[2, 2],
                        metavar=('ALL', 'HEM'), help='patients per fold and class')
    parser.add_argument('--cells-per-patient', type=int, default=4)
    parser.add_argument('--prelim-patients', type=int, nargs=2, default=[1, 1],
                        metavar=('ALL', 'HEM'))
    parser.add_argument('--final-patients', type=int, nargs=2, default=[1, 1],
                        metavar=('ALL', 'HEM'))
    parser.add_argument('--no-final-labels', action='store_true',
                        help='do not write the final test labels CSV (hidden in C-NMC)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    counts = make_synthetic_cnmc(
        args.out_dir, img_size=args.img_size, num_folds=args.folds,
        patients_per_fold=tuple(args.patients_per_fold),
        cells_per_patient=args.cells_per_patient,
        prelim_patients=tuple(args.prelim_patients), final_patients=tuple(args.final_patients),
        final_labels=not args.no_final_labels, seed=args.seed)
    print(f'wrote {args.out_dir}: ' + ', '.join(f'{k} {v}' for k, v in counts.items()))
    return counts


if __name__ == '__main__':
    main()
