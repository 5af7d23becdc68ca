"""Write a synthetic C-NMC 2019 dataset in the official layout (for tests and demos).

    python tools/dataset_converters/make_synthetic_cnmc.py OUT_DIR [--img-size 450]
        [--folds 3] [--patients-per-fold ALL HEM] [--cells-per-patient 4]
        [--prelim-patients ALL HEM] [--final-patients ALL HEM] [--seed 0]

OUT_DIR then works as ``CNMCDataset(data_root=OUT_DIR)``.

Each image is one cell on black: an elliptic cytoplasm with a darker nucleus, both textured,
at a random size, position and orientation, with a per-patient stain tint. The classes differ
the way lymphoblasts differ from normal lymphocytes, exaggerated so that a small CNN learns
them in a few iterations:

- ``all`` (label 1): larger nucleus (78-92 % of the cell), bluer and coarser chromatin;
- ``hem`` (label 0): smaller nucleus (45-62 %), pinker cytoplasm, smoother texture.

Patients are ``1, 2, ...`` (all) and ``H1, H2, ...`` (hem), each in one split only.
The output is a pure function of the arguments (same seed, same bytes).
"""
import argparse
import csv
import os
import os.path as osp
import sys
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.datasets.cnmc import CSV_HEADER, DEFAULT_SUBDIRS  # noqa: E402

#: Base BGR colours (cytoplasm, nucleus) per class; patients and cells vary around them.
_COLOURS = {
    'all': (np.array([170., 105., 140.]), np.array([125., 35., 80.])),
    'hem': (np.array([180., 130., 195.]), np.array([120., 60., 125.])),
}


def draw_synthetic_cell(rng: np.random.Generator,
                        cls: str,
                        img_size: int = 450,
                        tint: Optional[np.ndarray] = None) -> np.ndarray:
    """Draw one cell on black.

    Args:
        rng (np.random.Generator): Random source.
        cls (str): 'all' or 'hem'.
        img_size (int): Side of the square image. Defaults to 450.
        tint (np.ndarray, optional): BGR offset of the patient's stain. Defaults to None.

    Returns:
        np.ndarray: ``img_size x img_size x 3`` ``uint8`` BGR image; background exactly 0.
    """
    if cls not in _COLOURS:
        raise ValueError(f"cls={cls!r}, expected 'all' or 'hem'")
    s = img_size
    radius = s * rng.uniform(0.2, 0.36)
    axes = np.array([radius, radius * rng.uniform(0.72, 1.0)])
    angle = rng.uniform(0, 180)
    free = s / 2 - radius - 1
    center = s / 2 + rng.uniform(-free, free, size=2) * 0.8

    def ellipse_mask(c, ax, ang):
        mask = np.zeros((s, s), np.uint8)
        cv2.ellipse(mask, (int(round(c[0])), int(round(c[1]))),
                    (max(int(round(ax[0])), 1), max(int(round(ax[1])), 1)), ang, 0, 360, 1, -1)
        return mask.astype(bool)

    cell = ellipse_mask(center, axes, angle)
    n_ratio = rng.uniform(0.78, 0.92) if cls == 'all' else rng.uniform(0.45, 0.62)
    shift = (1 - n_ratio) * radius * rng.uniform(-0.6, 0.6, size=2)
    nucleus = ellipse_mask(center + shift, axes * n_ratio, angle + rng.uniform(-30, 30)) & cell

    cyto_col, nuc_col = (c + rng.normal(0, 6, size=3) for c in _COLOURS[cls])
    if tint is not None:
        cyto_col, nuc_col = cyto_col + tint, nuc_col + tint
    img = np.zeros((s, s, 3), np.float32)
    img[cell] = cyto_col
    img[nucleus] = nuc_col
    # chromatin texture: blurred noise, coarser and stronger for lymphoblasts
    grain = max(s / (40 if cls == 'all' else 90), 0.6)
    noise = cv2.GaussianBlur(rng.normal(0, 1, size=(s, s)).astype(np.float32), (0, 0), grain)
    noise /= noise.std() + 1e-6
    amp = 0.16 if cls == 'all' else 0.07
    img *= (1 + amp * noise)[..., None]
    img = np.clip(img, 8, 255)
    img[~cell] = 0
    return np.rint(img).astype(np.uint8)


def make_synthetic_cnmc(out_dir: str,
                        img_size: int = 450,
                        num_folds: int = 3,
                        patients_per_fold: Tuple[int, int] = (2, 2),
                        cells_per_patient: int = 4,
                        prelim_patients: Tuple[int, int] = (1, 1),
                        final_patients: Tuple[int, int] = (1, 1),
                        final_labels: bool = True,
                        seed: int = 0,
                        subdirs: Optional[dict] = None) -> Dict[str, int]:
    """Write a synthetic C-NMC dataset in the official layout under ``out_dir``.

    Training folds get ``patients_per_fold = (n_all, n_hem)`` new patients each; the
    preliminary and final tests get their own patients, with images renamed ``1.bmp`` ... in a
    shuffled order. The preliminary labels CSV has the official header; with
    ``final_labels=True`` the (officially hidden) final labels are written to
    ``testing_data/C-NMC_test_final_phase_data_labels.csv`` so that
    ``CNMCDataset(split='final_test', subdirs=dict(final_csv=...))`` can score predictions.

    Args:
        out_dir (str): The dataset root to create (the ``C-NMC_Leukemia`` folder).
        img_size (int): Image side. Defaults to 450 as in C-NMC.
        num_folds (int): Training folds (``fold_0`` ...). Defaults to 3.
        patients_per_fold (tuple[int, int]): (all, hem) patients per fold. Defaults to (2, 2).
        cells_per_patient (int): Images per patient. Defaults to 4.
        prelim_patients (tuple[int, int]): (all, hem) patients of the preliminary test.
        final_patients (tuple[int, int]): (all, hem) patients of the final test.
        final_labels (bool): Also write the final test's labels CSV. Defaults to True.
        seed (int): Random seed. Defaults to 0.
        subdirs (dict, optional): Overrides of :data:`~mmbloodcell.datasets.cnmc.DEFAULT_SUBDIRS`.

    Returns:
        dict: Image counts: ``train_all``, ``train_hem``, ``prelim``, ``final``.
    """
    if img_size < 16:
        raise ValueError(f'img_size={img_size} is too small for a cell; use 16 or more')
    if cells_per_patient < 1 or num_folds < 1:
        raise ValueError('cells_per_patient and num_folds must be >= 1')
    sub = {**DEFAULT_SUBDIRS, **(subdirs or {})}
    rng = np.random.default_rng(seed)
    next_patient = {'all': 1, 'hem': 1}
    counts = dict(train_all=0, train_hem=0, prelim=0, final=0)

    def new_patients(n_all: int, n_hem: int):
        for cls, n in (('all', n_all), ('hem', n_hem)):
            for _ in range(n):
                num = next_patient[cls]
                next_patient[cls] += 1
                pid = str(num) if cls == 'all' else f'H{num}'
                yield cls, pid, rng.normal(0, 10, size=3)

    def cells(cls: str, pid: str, tint: np.ndarray):
        image_ids = np.sort(rng.choice(np.arange(1, 10 * cells_per_patient + 1),
                                       cells_per_patient, replace=False))
        for image_id in image_ids:
            name = f'UID_{pid}_{image_id}_{int(rng.integers(1, 4))}_{cls}.bmp'
            yield name, draw_synthetic_cell(rng, cls, img_size, tint)

    for fold in range(num_folds):
        fold_dir = osp.join(out_dir, sub['train'], sub['fold'].format(fold=fold))
        for cls in ('all', 'hem'):
            os.makedirs(osp.join(fold_dir, cls), exist_ok=True)
        for cls, pid, tint in new_patients(*patients_per_fold):
            for name, img in cells(cls, pid, tint):
                _write(osp.join(fold_dir, cls, name), img)
                counts[f'train_{cls}'] += 1

    for key, patients, csv_key, write_csv in (
            ('prelim', prelim_patients, 'prelim_csv', True),
            ('final', final_patients, 'final_csv', final_labels)):
        samples = [(name, cls, img) for cls, pid, tint in new_patients(*patients)
                   for name, img in cells(cls, pid, tint)]
        order = rng.permutation(len(samples))
        img_dir = osp.join(out_dir, sub[key])
        os.makedirs(img_dir, exist_ok=True)
        rows = []
        for number, i in enumerate(order, start=1):
            name, cls, img = samples[i]
            _write(osp.join(img_dir, f'{number}.bmp'), img)
            rows.append((name, f'{number}.bmp', 1 if cls == 'all' else 0))
        counts[key] = len(rows)
        if write_csv:
            csv_rel = sub[csv_key] or (sub[key] + '_labels.csv')
            with open(osp.join(out_dir, csv_rel), 'w', newline='') as f:
                writer = csv.writer(f, lineterminator='\n')
                writer.writerow(CSV_HEADER)
                writer.writerows(rows)
    return counts


def _write(path: str, img: np.ndarray) -> None:
    if not cv2.imwrite(path, img):
        raise OSError(f'cannot write {path}')


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
