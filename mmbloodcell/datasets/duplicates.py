"""Exact and near-duplicate cell images, e.g. the same cell filed under two patients.

C-NMC 2019 holds near-identical cells under different patient ids; a patient-wise split then
puts copies of one cell on both sides and the validation score leaks. The check compares cells
as the classifiers see them: cropped to the cell (:class:`~.transforms.CropToCell`, square)
and reduced to a ``size x size`` colour thumbnail (area interpolation, values in [0, 1]).

- exact duplicates: identical decoded pixels (a SHA-1 of the array);
- near duplicates: thumbnails whose RMS difference is at most ``max_distance``.

All pairs are compared through one matrix product per block: first on ``size / 4`` thumbnails
(the 4x4 block means of the full ones; block averaging never increases the RMS difference, so
no pair within ``max_distance`` is missed), then the candidates on the full thumbnails.
"""
import csv
import hashlib
import os.path as osp
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

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


def _read(path: str) -> np.ndarray:
    img = mmcv.imread(path, flag='color')
    if img is None:
        raise OSError(f'{path}: cannot be read as an image; replace or remove the file')
    return img


def find_duplicates(paths: Sequence[str],
                    max_distance: float = 0.02,
                    size: int = 32,
                    block: int = 2048) -> List[dict]:
    """Pairs of exact and near-duplicate images among ``paths``.

    Args:
        paths (Sequence[str]): Image files (decoded as BGR, like the configs' loader).
        max_distance (float): Largest RMS difference of two thumbnails (0..1 scale) for a near
            duplicate. Defaults to 0.02.
        size (int): Thumbnail side, a multiple of 4. Defaults to 32.
        block (int): Rows per matrix product (memory: ``block x N`` floats). Defaults to 2048.

    Returns:
        list[dict]: ``i``, ``j`` (indices into ``paths``, ``i < j``), ``kind`` ('exact' or
        'near'), ``distance`` (RMS) and ``mean_abs_diff`` of the thumbnails, sorted by distance.
    """
    if size % 4:
        raise ValueError(f'find_duplicates: size={size} must be a multiple of 4')
    n = len(paths)
    thumbs = np.empty((n, size * size * 3), np.float32)
    digests: Dict[bytes, List[int]] = defaultdict(list)
    for k, path in enumerate(paths):
        img = _read(path)
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
    """The pairs of a CSV written by ``tools/analysis/cnmc_duplicates.py``.

    Raises:
        FileNotFoundError / ValueError: naming the file and the fix.
    """
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


def pair_records(pairs: Sequence[dict], samples: Sequence[dict]) -> List[dict]:
    """Pairs of :func:`find_duplicates` with the two samples' ``split``, ``patient_id``,
    ``class`` and path (the rows of the pairs CSV, :data:`PAIR_FIELDS`)."""
    rows = []
    for p in pairs:
        a, b = samples[p['i']], samples[p['j']]
        rows.append(dict(kind=p['kind'], distance=p['distance'],
                         mean_abs_diff=p['mean_abs_diff'], split_a=a.get('split'),
                         split_b=b.get('split'), patient_a=a.get('patient_id'),
                         patient_b=b.get('patient_id'), class_a=a.get('class'),
                         class_b=b.get('class'), path_a=a['img_path'], path_b=b['img_path']))
    return rows


def contact_sheet(rows: Sequence[dict], out_file: str, thumb: int = 96,
                  max_pairs: int = 40) -> Optional[str]:
    """A PNG with one line per pair: the two cells side by side (as cropped for the models)
    and ``split patient / split patient, distance``. Returns the path, or None without
    pairs."""
    rows = list(rows)[:max_pairs]
    if not rows:
        return None
    text_w, pad = 420, 4
    line_h = thumb + 2 * pad
    sheet = np.full((line_h * len(rows), 2 * thumb + text_w + 4 * pad, 3), 255, np.uint8)
    for k, row in enumerate(rows):
        y = k * line_h + pad
        for m, key in enumerate(('path_a', 'path_b')):
            cell = (cell_thumbnail(_read(row[key]), thumb) * 255).round().astype(np.uint8)
            x = pad + m * (thumb + pad)
            sheet[y:y + thumb, x:x + thumb] = cell
        label = (f"{row['kind']} d={float(row['distance']):.4f}  "
                 f"{row['split_a']} {row['patient_a']} / {row['split_b']} {row['patient_b']}")
        names = f"{osp.basename(row['path_a'])} | {osp.basename(row['path_b'])}"
        x = 2 * thumb + 3 * pad
        cv2.putText(sheet, label, (x, y + thumb // 2 - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(sheet, names, (x, y + thumb // 2 + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (90, 90, 90), 1, cv2.LINE_AA)
    if not cv2.imwrite(out_file, sheet):
        raise OSError(f'cannot write {out_file}')
    return out_file


def cnmc_duplicates(data_root: str,
                    patient_split: Optional[dict] = None,
                    max_distance: float = 0.02,
                    subdirs: Optional[dict] = None,
                    img_suffix: str = '.bmp') -> Tuple[List[dict], Dict[str, int]]:
    """Duplicate cells of a C-NMC release, each side named by its split.

    The splits are the config's: ``train`` and ``val`` (the two sides of the patient split of
    the training folds, ``patient_split`` default ``ratio=0.8, seed=0``), ``prelim`` (the
    labelled preliminary test) and ``final`` (the final test; no patient ids); a split whose
    folder is missing is left out.

    Returns:
        tuple: the pair rows (:data:`PAIR_FIELDS`; pairs across patients or splits first,
        then by distance) and a summary: number of pairs per ``"<split>-<split>"`` and
        ``cross_patient``, ``cross_split``, ``num_images``.
    """
    from .cnmc import CNMC_CLASSES, CNMCDataError, CNMCDataset
    split_cfg = {**dict(ratio=0.8, seed=0), **(patient_split or {})}
    split_cfg.pop('subset', None)
    samples: List[dict] = []
    parts = [('train', dict(split='train', patient_split=dict(split_cfg, subset='train'))),
             ('val', dict(split='train', patient_split=dict(split_cfg, subset='val'))),
             ('prelim', dict(split='prelim_test')), ('final', dict(split='final_test'))]
    for name, kwargs in parts:
        try:
            ds = CNMCDataset(data_root=data_root, subdirs=subdirs, img_suffix=img_suffix,
                             serialize_data=False, **kwargs)
        except CNMCDataError:
            if name in ('train', 'val'):
                raise
            continue  # a test split that is not there
        for k in range(len(ds)):
            info = ds.get_data_info(k)
            label = info.get('gt_label')
            samples.append(dict(img_path=info['img_path'], split=name,
                                patient_id=info.get('patient_id'),
                                **{'class': None if label is None else CNMC_CLASSES[label]}))
    pairs = find_duplicates([s['img_path'] for s in samples], max_distance=max_distance)
    rows = pair_records(pairs, samples)

    def cross_patient(r):
        return bool(r['patient_a'] and r['patient_b'] and r['patient_a'] != r['patient_b'])

    rows.sort(key=lambda r: (r['split_a'] == r['split_b'], not cross_patient(r),
                             r['distance']))
    summary: Dict[str, int] = defaultdict(int)
    for r in rows:
        summary['-'.join(sorted((r['split_a'], r['split_b'])))] += 1
    summary = dict(sorted(summary.items()))
    summary.update(pairs=len(rows), cross_patient=sum(map(cross_patient, rows)),
                   cross_split=sum(r['split_a'] != r['split_b'] for r in rows),
                   num_images=len(samples))
    return rows, summary


def write_pairs_csv(rows: Sequence[dict], path: str) -> str:
    """Write pair rows (:data:`PAIR_FIELDS`)."""
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=PAIR_FIELDS, lineterminator='\n')
        writer.writeheader()
        for r in rows:
            writer.writerow({k: '' if r.get(k) is None else r[k] for k in PAIR_FIELDS})
    return path
