"""Exact and near-duplicate cell images, e.g. the same cell filed under two patients (C-NMC
2019 has such cells; a patient-wise split then leaks copies into validation).

Cells are compared as the classifiers see them: cropped to a square around the cell
(:class:`~.transforms.CropToCell`) and reduced to a ``size x size`` colour thumbnail in
[0, 1]. Exact duplicates have identical pixels (SHA-1), near duplicates an RMS thumbnail
difference ``<= max_distance``. All pairs are compared by blocked matrix products on the
``size / 4`` block means first (averaging never increases the RMS difference, so no pair is
missed), then the candidates on the full thumbnails.
"""
import csv
import hashlib
import os.path as osp
from collections import defaultdict
from typing import Dict, Iterable, List, Sequence, Tuple

import cv2
import mmcv
import numpy as np

from .transforms.cell import CropToCell

__all__ = ['cell_thumbnail', 'find_duplicates', 'duplicate_groups', 'read_duplicate_pairs',
           'PAIR_FIELDS']

#: Columns of the pairs CSV written by ``tools/analysis/cnmc_duplicates.py`` (and read back by
#: :func:`read_duplicate_pairs`).
PAIR_FIELDS = ('kind', 'distance', 'mean_abs_diff', 'split_a', 'split_b', 'patient_a',
               'patient_b', 'class_a', 'class_b', 'path_a', 'path_b')

_CROP = CropToCell(margin=0, square=True)


def cell_thumbnail(img: np.ndarray, size: int = 32) -> np.ndarray:
    """The cell cropped to a square and reduced to ``size x size x 3`` float32 in [0, 1]."""
    crop = _CROP(dict(img=img))['img']
    if crop.ndim == 2:
        crop = np.repeat(crop[..., None], 3, axis=2)
    thumb = cv2.resize(np.ascontiguousarray(crop[..., :3]), (size, size),
                       interpolation=cv2.INTER_AREA)
    return thumb.astype(np.float32) / 255.0


def find_duplicates(paths: Sequence[str],
                    max_distance: float = 0.02,
                    size: int = 32,
                    block: int = 2048) -> List[dict]:
    """Pairs of exact and near-duplicate images among ``paths`` (decoded as BGR).

    ``max_distance`` is the largest RMS thumbnail difference (0..1 scale) of a near duplicate,
    ``size`` the thumbnail side (a multiple of 4), ``block`` the rows per matrix product
    (memory: ``block x N`` floats). Returns dicts ``i``, ``j`` (indices into ``paths``,
    ``i < j``), ``kind`` ('exact' | 'near'), ``distance`` (RMS) and ``mean_abs_diff`` of the
    thumbnails, sorted by distance.
    """
    if size % 4:
        raise ValueError(f'find_duplicates: size={size} must be a multiple of 4')
    n = len(paths)
    thumbs = np.empty((n, size * size * 3), np.float32)
    digests: Dict[bytes, List[int]] = defaultdict(list)
    for k, path in enumerate(paths):
        img = mmcv.imread(path, flag='color')
        if img is None:
            raise OSError(f'{path}: cannot be read as an image; replace or remove the file')
        digests[hashlib.sha1(img.tobytes() + str(img.shape).encode()).digest()].append(k)
        thumbs[k] = cell_thumbnail(img, size).reshape(-1)
    exact = {(a, b) for group in digests.values() for x, a in enumerate(group)
             for b in group[x + 1:]}
    # coarse thumbnails: means of 4x4 blocks, so that RMS_coarse <= RMS_full
    c = size // 4
    coarse = thumbs.reshape(n, c, 4, c, 4, 3).mean(axis=(2, 4)).reshape(n, -1)
    sq = (coarse**2).sum(axis=1)
    limit = (max_distance**2) * coarse.shape[1] + 1e-4  # squared L2 bound (float32 slack)
    pairs = {}
    for start in range(0, n, block):
        stop = min(start + block, n)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (coarse[start:stop] @ coarse.T)
        rows, cols = np.nonzero(d2 <= limit)
        for r, col in zip(rows + start, cols):
            if r < col:
                diff = thumbs[r] - thumbs[col]
                rms = float(np.sqrt(np.mean(diff.astype(np.float64)**2)))
                if rms <= max_distance or (r, col) in exact:
                    pairs[(int(r), int(col))] = (rms, float(np.abs(diff).mean()))
    out = [dict(i=i, j=j, kind='exact' if (i, j) in exact else 'near', distance=round(d, 6),
                mean_abs_diff=round(m, 6)) for (i, j), (d, m) in pairs.items()]
    out.sort(key=lambda p: (p['distance'], p['i'], p['j']))
    return out


def duplicate_groups(pairs: Iterable[Tuple[str, str]]) -> Dict[str, str]:
    """Connected components of linked items (union-find): item -> the smallest item of its
    component in natural order. Items in no pair are absent."""
    parent: Dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            parent[hi] = lo
    return {x: root(x) for x in list(parent)}


def read_duplicate_pairs(csv_path: str) -> List[dict]:
    """The pairs of a CSV written by ``tools/analysis/cnmc_duplicates.py``."""
    if not osp.isfile(csv_path):
        raise FileNotFoundError(f'{csv_path}: duplicate pairs CSV not found; write it with '
                                f'python tools/analysis/cnmc_duplicates.py DATA_ROOT --out-dir '
                                f'{osp.dirname(csv_path) or "."}, or set group_duplicates=True '
                                f'to compute the pairs at start-up')
    with open(csv_path, newline='') as f:
        reader = csv.DictReader(f)
        missing = [k for k in ('path_a', 'path_b') if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f'{csv_path}: columns {missing} missing; expected the CSV of '
                             f'tools/analysis/cnmc_duplicates.py ({",".join(PAIR_FIELDS)})')
        return list(reader)
