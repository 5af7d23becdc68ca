"""Write the stain normalisation reference of the C-NMC training cells (the median cell).

    python tools/analysis/cnmc_stain_reference.py data/C-NMC_Leukemia
        [--out data/C-NMC_Leukemia/stain_reference.json] [--folds 0 1 2]
        [--patient-split-ratio 0.8 --seed 0] [--max-images N]

The JSON holds the Reinhard (CIELAB mean / std) and Macenko (stain matrix, concentrations)
statistics that ``StainNormalize(reference='...json')`` reads; the stain-norm configs read
``<data_root>/stain_reference.json``. Use only the training patients when you hold some out
(``--patient-split-ratio``, as the config's patient split).
"""
import json
import os.path as osp
import sys
from typing import Dict, Optional, Sequence

import mmcv
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # the shared arguments of cnmc_mean_std

from cnmc_mean_std import patient_split_of, training_set_parser  # noqa: E402

from mmbloodcell.datasets import CNMCDataset  # noqa: E402
from mmbloodcell.datasets.transforms.cell import macenko_stains, reinhard_stats  # noqa: E402
from mmbloodcell.utils.fileio import atomic_write_bytes  # noqa: E402


def cnmc_stain_reference(data_root: str,
                         folds: Sequence[int] = (0, 1, 2),
                         subdirs: Optional[dict] = None,
                         patient_split: Optional[dict] = None,
                         max_images: Optional[int] = None,
                         threshold: float = 0) -> Dict[str, object]:
    """The stain reference of :class:`~mmbloodcell.datasets.transforms.StainNormalize`: the
    median cell of the training set.

    Per cell (background excluded): the CIELAB mean and standard deviation
    (:func:`~mmbloodcell.datasets.transforms.cell.reinhard_stats`) and the Macenko stain matrix
    and 99th-percentile concentrations (:func:`~mmbloodcell.datasets.transforms.cell.
    macenko_stains`). The reference is the per-value median over the cells (stain vectors
    re-normalised to unit length), so that normalisation moves every cell towards a typical
    one instead of towards one chosen cell's contrast. The quartiles of the per-cell values
    and the cell closest to the median are reported beside it.

    Args:
        data_root (str): The C-NMC root.
        folds (Sequence[int]): Training folds. Defaults to (0, 1, 2).
        subdirs (dict, optional): ``CNMCDataset`` subdirs.
        patient_split (dict, optional): ``CNMCDataset`` patient split (the training side, so
            that validation patients do not shape the reference).
        max_images (int, optional): Use N images evenly spread over the set. Defaults to all.
        threshold (float): Background threshold. Defaults to 0.

    Returns:
        dict: ``reinhard`` (``mean``, ``std``: L, a, b), ``macenko`` (``stains`` 3x2 RGB OD,
        ``max_conc`` (2,)), ``spread`` (25th / 75th percentiles of the per-cell Reinhard
        values), ``typical_cell``, ``num_images``, ``num_macenko`` and the source settings.
    """
    dataset = CNMCDataset(data_root=data_root, split='train', folds=folds, subdirs=subdirs,
                          patient_split=patient_split, serialize_data=False)
    index = np.arange(len(dataset))
    if max_images is not None and max_images < len(index):
        index = np.unique(np.linspace(0, len(index) - 1, max_images).round().astype(int))
    means, stds, stains, concs, paths = [], [], [], [], []
    for i in index:
        path = dataset.get_data_info(int(i))['img_path']
        img = mmcv.imread(path, flag='color')
        if img is None:
            raise OSError(f'{path}: cannot be read as an image; check the file')
        try:
            mean, std = reinhard_stats(img, threshold)
        except ValueError:
            continue  # an all-black image has no colour to learn from
        means.append(mean)
        stds.append(std)
        paths.append(path)
        try:
            st, mc = macenko_stains(img, threshold)
        except ValueError:
            continue
        stains.append(st)
        concs.append(mc)
    if not means:
        raise ValueError(f'{data_root}: no training cell with colour pixels to take a stain '
                         f'reference from')
    means, stds = np.stack(means), np.stack(stds)
    ref_mean, ref_std = np.median(means, axis=0), np.median(stds, axis=0)
    # the cell whose statistics are closest to the median, in units of their spread
    scale = np.concatenate([means.std(axis=0), stds.std(axis=0)]) + 1e-6
    dist = np.abs(np.concatenate([means - ref_mean, stds - ref_std], axis=1) / scale).sum(axis=1)
    out: Dict[str, object] = dict(
        reinhard=dict(mean=_r(ref_mean), std=_r(ref_std)),
        spread=dict(mean_q25=_r(np.percentile(means, 25, axis=0)),
                    mean_q75=_r(np.percentile(means, 75, axis=0)),
                    std_q25=_r(np.percentile(stds, 25, axis=0)),
                    std_q75=_r(np.percentile(stds, 75, axis=0))),
        typical_cell=osp.relpath(paths[int(dist.argmin())], data_root),
        num_images=len(means), num_macenko=len(stains), statistic='median over cells',
        folds=list(folds), patient_split=patient_split, threshold=threshold)
    if stains:
        ref_stains = np.median(np.stack(stains), axis=0)
        ref_stains /= np.linalg.norm(ref_stains, axis=0, keepdims=True)
        out['macenko'] = dict(stains=_r(ref_stains),
                              max_conc=_r(np.median(np.stack(concs), axis=0)))
    return out


def write_stain_reference(stats: Dict[str, object], path: str) -> str:
    """Write :func:`cnmc_stain_reference`'s result as the JSON ``StainNormalize`` reads."""
    atomic_write_bytes((json.dumps(stats, indent=2) + '\n').encode(), path)
    return path


def _r(x: np.ndarray, digits: int = 4):
    return np.round(np.asarray(x, dtype=np.float64), digits).tolist()


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
