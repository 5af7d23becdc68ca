"""Write the stain normalisation reference of the C-NMC training cells (the median cell).

    python tools/analysis/cnmc_stain_reference.py data/C-NMC_Leukemia
        [--out data/C-NMC_Leukemia/stain_reference.json] [--folds 0 1 2]
        [--patient-split-ratio 0.8 --seed 0] [--max-images N]

The JSON holds the Reinhard (CIELAB mean / std) and Macenko (stain matrix, concentrations)
statistics that ``StainNormalize(reference='...json')`` reads; the stain-norm configs read
``<data_root>/stain_reference.json``. Use only the training patients when you hold some out
(``--patient-split-ratio``, as the config's patient split).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.datasets.stats import cnmc_stain_reference, write_stain_reference  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root', help='the C-NMC root (holding training_data/)')
    parser.add_argument('--out', help='the JSON file (default: DATA_ROOT/stain_reference.json)')
    parser.add_argument('--folds', type=int, nargs='+', default=[0, 1, 2],
                        help='training folds (default: 0 1 2)')
    parser.add_argument('--patient-split-ratio', type=float, default=None,
                        help="use only the training side of CNMCDataset's patient split with "
                        'this ratio (and --seed), as in the training config')
    parser.add_argument('--seed', type=int, default=0, help='patient split seed')
    parser.add_argument('--max-images', type=int, default=None,
                        help='use N cells spread over the set (quick estimate)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    patient_split = None
    if args.patient_split_ratio is not None:
        patient_split = dict(ratio=args.patient_split_ratio, subset='train', seed=args.seed)
    stats = cnmc_stain_reference(args.data_root, folds=args.folds, patient_split=patient_split,
                                 max_images=args.max_images)
    out = args.out or osp.join(args.data_root, 'stain_reference.json')
    write_stain_reference(stats, out)
    rh = stats['reinhard']
    print(f"wrote {out}: median of {stats['num_images']} cells, LAB mean {rh['mean']}, "
          f"std {rh['std']}; typical cell {stats['typical_cell']}")
    return stats


if __name__ == '__main__':
    main()
