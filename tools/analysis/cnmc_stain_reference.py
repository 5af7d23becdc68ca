"""Write the stain normalisation reference of the C-NMC training cells (the median cell).

    python tools/analysis/cnmc_stain_reference.py data/C-NMC_Leukemia
        [--out data/C-NMC_Leukemia/stain_reference.json] [--folds 0 1 2]
        [--patient-split-ratio 0.8 --seed 0] [--max-images N]

The JSON holds the Reinhard (CIELAB mean / std) and Macenko (stain matrix, concentrations)
statistics that ``StainNormalize(reference='...json')`` reads; the stain-norm configs read
``<data_root>/stain_reference.json``. Use only the training patients when you hold some out
(``--patient-split-ratio``, as the config's patient split).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # the shared arguments of cnmc_mean_std

from cnmc_mean_std import patient_split_of, training_set_parser  # noqa: E402

from mmbloodcell.datasets.stats import cnmc_stain_reference, write_stain_reference  # noqa: E402


def parse_args(argv=None):
    parser = training_set_parser(__doc__.split('\n')[0])
    parser.add_argument('--out', help='the JSON file (default: DATA_ROOT/stain_reference.json)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    stats = cnmc_stain_reference(args.data_root, folds=args.folds,
                                 patient_split=patient_split_of(args),
                                 max_images=args.max_images)
    out = args.out or osp.join(args.data_root, 'stain_reference.json')
    write_stain_reference(stats, out)
    rh = stats['reinhard']
    print(f"wrote {out}: median of {stats['num_images']} cells, LAB mean {rh['mean']}, "
          f"std {rh['std']}; typical cell {stats['typical_cell']}")
    return stats


if __name__ == '__main__':
    main()
