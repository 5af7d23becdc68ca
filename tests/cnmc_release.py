"""C-NMC test data: the generator of tools/dataset_converters/make_synthetic_cnmc.py, the stain
reference of tools/analysis/cnmc_stain_reference.py, and a generated C-NMC 2019 release laid
out and named like the real one, with its oddities.

The real release, beside the layout of ``make_synthetic_cnmc``, has:

- healthy patients spelled with a lower-case ``h`` in some file names (``UID_h3_1_1_hem.bmp``
  next to ``UID_H3_2_1_hem.bmp``: one patient), in the training folds and in the prelim CSV;
- numbered test images past 10 (``1.bmp`` ... ``16.bmp`` here);
- near-identical cells under different patients (and across splits);
- files that are not cells among the cells (``Thumbs.db``).

:func:`make_release` writes all of them; :func:`odd_cells` writes cells that are unlike
C-NMC's (white background, transparent PNG, grayscale, JPEG).
"""
import csv
import glob
import os
import os.path as osp
import shutil

import cv2
import numpy as np

from script_loader import load_script

_SYNTHETIC = load_script('tools/dataset_converters/make_synthetic_cnmc.py')
_STAIN = load_script('tools/analysis/cnmc_stain_reference.py')
#: The generators of tools/dataset_converters/make_synthetic_cnmc.py.
make_synthetic_cnmc = _SYNTHETIC.make_synthetic_cnmc
draw_synthetic_cell = _SYNTHETIC.draw_synthetic_cell
#: The statistics of tools/analysis/cnmc_stain_reference.py.
cnmc_stain_reference = _STAIN.cnmc_stain_reference

PRELIM = 'validation_data/C-NMC_test_prelim_phase_data'
PRELIM_CSV = 'validation_data/C-NMC_test_prelim_phase_data_labels.csv'
FINAL = 'testing_data/C-NMC_test_final_phase_data'


def make_release(root: str, img_size: int = 64, seed: int = 0) -> dict:
    """Write the release under ``root`` (the ``C-NMC_Leukemia`` folder).

    Returns:
        dict: what was planted: ``lower`` (the renamed ``UID_h3_...`` paths), ``near`` /
        ``exact`` / ``cross_split`` (pairs of paths that are duplicates), ``stray``.
    """
    make_synthetic_cnmc(root, img_size=img_size, num_folds=3, patients_per_fold=(2, 2),
                        cells_per_patient=4, prelim_patients=(2, 2), final_patients=(2, 2),
                        seed=seed)
    train = osp.join(root, 'training_data')
    # patient H3 (fold 1): half of its cells spelled 'h3', as in the release
    h3 = sorted(glob.glob(osp.join(train, 'fold_*', 'hem', 'UID_H3_*_hem.bmp')))
    assert len(h3) == 4, h3
    lower = []
    for path in h3[:2]:
        new = osp.join(osp.dirname(path), osp.basename(path).replace('UID_H3_', 'UID_h3_'))
        os.rename(path, new)
        lower.append(new)
    # the prelim CSV names one healthy patient in lower case too
    csv_path = osp.join(root, PRELIM_CSV)
    with open(csv_path, newline='') as f:
        rows = list(csv.reader(f))
    hem_row = next(i for i, r in enumerate(rows[1:], 1) if r[2] == '0')
    rows[hem_row][0] = rows[hem_row][0].replace('UID_H', 'UID_h')
    with open(csv_path, 'w', newline='') as f:
        csv.writer(f, lineterminator='\n').writerows(rows)
    # duplicates: a near copy (+-1 grey level) of patient 1's cell filed under patient 3, an
    # exact copy of H1's cell under H5, and a training cell of patient 2 as prelim image 5
    rng = np.random.default_rng(seed)
    src_near = sorted(glob.glob(osp.join(train, 'fold_0', 'all', 'UID_1_*_all.bmp')))[0]
    img = cv2.imread(src_near)
    noise = rng.integers(-1, 2, size=img.shape)
    near = np.where(img > 0, np.clip(img.astype(int) + noise, 1, 255), 0).astype(np.uint8)
    dst_near = osp.join(train, 'fold_1', 'all', 'UID_3_99_1_all.bmp')
    cv2.imwrite(dst_near, near)
    src_exact = sorted(glob.glob(osp.join(train, 'fold_0', 'hem', 'UID_H1_*_hem.bmp')))[0]
    dst_exact = osp.join(train, 'fold_2', 'hem', 'UID_H5_98_1_hem.bmp')
    shutil.copyfile(src_exact, dst_exact)
    src_cross = sorted(glob.glob(osp.join(train, 'fold_0', 'all', 'UID_2_*_all.bmp')))[0]
    dst_cross = osp.join(root, PRELIM, '5.bmp')
    shutil.copyfile(src_cross, dst_cross)
    stray = osp.join(train, 'fold_0', 'all', 'Thumbs.db')
    with open(stray, 'wb') as f:
        f.write(b'\0' * 64)
    return dict(lower=lower, near=(src_near, dst_near), exact=(src_exact, dst_exact),
                cross_split=(src_cross, dst_cross), stray=stray)


def to_png(src_root: str, dst_root: str) -> str:
    """A copy of the release with every cell re-saved as PNG; the CSVs stay as they are."""
    for path in glob.glob(osp.join(src_root, '**', '*'), recursive=True):
        rel = osp.relpath(path, src_root)
        out = osp.join(dst_root, rel)
        if osp.isdir(path):
            os.makedirs(out, exist_ok=True)
        elif path.endswith('.bmp'):
            os.makedirs(osp.dirname(out), exist_ok=True)
            assert cv2.imwrite(out[:-4] + '.png', cv2.imread(path))
        elif path.endswith('.csv'):
            os.makedirs(osp.dirname(out), exist_ok=True)
            shutil.copyfile(path, out)
    return dst_root


def odd_cells(src_bmp: str, out_dir: str) -> dict:
    """A C-NMC cell and copies unlike C-NMC's: ``white`` (BMP on white), ``transparent``
    (RGBA PNG whose transparent background is white), ``gray`` (grayscale BMP), ``jpeg``."""
    os.makedirs(out_dir, exist_ok=True)
    img = cv2.imread(src_bmp)
    cell = img.max(axis=2) > 0
    stem = osp.splitext(osp.basename(src_bmp))[0]
    paths = dict(original=osp.join(out_dir, f'{stem}.bmp'))
    shutil.copyfile(src_bmp, paths['original'])
    white = img.copy()
    white[~cell] = 255
    paths['white'] = osp.join(out_dir, f'{stem}_white.bmp')
    cv2.imwrite(paths['white'], white)
    rgba = np.dstack([white, np.where(cell, 255, 0).astype(np.uint8)])
    paths['transparent'] = osp.join(out_dir, f'{stem}_transparent.png')
    cv2.imwrite(paths['transparent'], rgba)
    paths['gray'] = osp.join(out_dir, f'{stem}_gray.bmp')
    cv2.imwrite(paths['gray'], cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    paths['jpeg'] = osp.join(out_dir, f'{stem}_jpeg.jpg')
    cv2.imwrite(paths['jpeg'], img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return paths


def write_stain_reference(root: str) -> str:
    """``<root>/stain_reference.json`` as ``tools/analysis/cnmc_stain_reference.py ROOT``
    writes it (the stain-norm configs read it)."""
    return _STAIN.write_stain_reference(_STAIN.cnmc_stain_reference(root),
                                        osp.join(root, 'stain_reference.json'))
