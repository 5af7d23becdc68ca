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
import csv
import json
import os
import os.path as osp
import sys
import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.datasets import CNMCDataError, CNMCDataset  # noqa: E402
from mmbloodcell.datasets.cnmc import CNMC_CLASSES  # noqa: E402
from mmbloodcell.datasets.duplicates import (PAIR_FIELDS, cell_thumbnail,  # noqa: E402
                                             find_duplicates)


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
            cell = (cell_thumbnail(mmcv.imread(row[key]), thumb) * 255).round().astype(np.uint8)
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
