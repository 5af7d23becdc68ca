"""Find exact and near-duplicate cells of a C-NMC release, per split (train/val/prelim/final).

    python tools/analysis/cnmc_duplicates.py data/C-NMC_Leukemia [--out-dir DIR]
        [--max-distance 0.02] [--patient-split-ratio 0.8 --seed 0] [--max-pairs 40]

Writes ``DIR/duplicates.csv`` (one row per pair: kind, distance, the two splits, patients,
classes and paths; pairs across splits first) and ``DIR/duplicates.png`` (a contact sheet of
the first pairs), and prints the number of pairs per split pair. ``train`` / ``val`` are the
two sides of the configs' patient split (``--patient-split-ratio``, ``--seed``). Train with
``patient_split=dict(..., group_duplicates='DIR/duplicates.csv')`` (or ``True``) to keep the
patients of a duplicate on one side. DIR defaults to ``work_dirs/cnmc_duplicates``.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.datasets.duplicates import (cnmc_duplicates, contact_sheet,  # noqa: E402
                                             write_pairs_csv)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root', help='the C-NMC root (holding training_data/)')
    parser.add_argument('--out-dir', default='work_dirs/cnmc_duplicates',
                        help='output folder (default: %(default)s)')
    parser.add_argument('--max-distance', type=float, default=0.02,
                        help='largest RMS thumbnail difference of a near duplicate, 0..1 '
                        '(default: %(default)s)')
    parser.add_argument('--patient-split-ratio', type=float, default=0.8,
                        help='patient split of the training folds (default: %(default)s, the '
                        "configs')")
    parser.add_argument('--seed', type=int, default=0, help='patient split seed')
    parser.add_argument('--img-suffix', default='.bmp', help='image extension (default .bmp)')
    parser.add_argument('--max-pairs', type=int, default=40,
                        help='pairs drawn in the contact sheet (default: %(default)s)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    rows, summary = cnmc_duplicates(
        args.data_root, patient_split=dict(ratio=args.patient_split_ratio, seed=args.seed),
        max_distance=args.max_distance, img_suffix=args.img_suffix)
    seconds = time.perf_counter() - start
    os.makedirs(args.out_dir, exist_ok=True)
    csv_path = write_pairs_csv(rows, osp.join(args.out_dir, 'duplicates.csv'))
    sheet = contact_sheet(rows, osp.join(args.out_dir, 'duplicates.png'),
                          max_pairs=args.max_pairs)
    summary['seconds'] = round(seconds, 2)
    print(json.dumps(summary, indent=1))
    print(f'wrote {csv_path}' + (f' and {sheet}' if sheet else ' (no pair: no contact sheet)'))
    return rows, summary


if __name__ == '__main__':
    main()
