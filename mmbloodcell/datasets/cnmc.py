"""C-NMC 2019 (ISBI 2019 challenge) leukemia cell classification dataset.

Official layout (the default ``subdirs``; every name can be changed)::

    C-NMC_Leukemia/                                  <- data_root
    ├── training_data/
    │   ├── fold_0/
    │   │   ├── all/UID_<patient>_<image>_<cell>_all.bmp      label 1 (malignant lymphoblast)
    │   │   └── hem/UID_H<patient>_<image>_<cell>_hem.bmp     label 0 (healthy, "normal")
    │   ├── fold_1/ ...
    │   └── fold_2/ ...
    ├── validation_data/                             <- preliminary test phase
    │   ├── C-NMC_test_prelim_phase_data/<N>.bmp
    │   └── C-NMC_test_prelim_phase_data_labels.csv  (Patient_ID,new_names,labels)
    └── testing_data/
        └── C-NMC_test_final_phase_data/<N>.bmp      (unlabelled)

CSV columns: ``Patient_ID`` (original ``UID_...`` name), ``new_names`` (numbered file) and
``labels`` (1 = all, 0 = hem).
"""
import csv
import os
import os.path as osp
import re
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmengine.logging import MMLogger
from mmpretrain.datasets import BaseDataset

from mmbloodcell.registry import CLS_DATASETS
from mmbloodcell.utils.paths import IMAGE_EXTENSIONS, natural_key, strip_image_ext
from .image_checks import check_image_file
from .skipping import ON_ERROR_CHOICES, SkipOrRaiseMixin, dataset_option_hint
from .transforms.cell import cell_image_warnings

CNMC_CLASSES = ('hem', 'all')

#: Defaults of ``CNMCDataset(subdirs=...)``, relative to ``data_root``. ``{fold}`` in
#: ``fold`` is replaced by the fold number. ``final_csv`` is unset in the official release
#: (its labels are hidden); set it to a CSV in the ``labels_csv`` format to score the final set.
DEFAULT_SUBDIRS = dict(
    train='training_data',
    fold='fold_{fold}',
    prelim='validation_data/C-NMC_test_prelim_phase_data',
    prelim_csv='validation_data/C-NMC_test_prelim_phase_data_labels.csv',
    final='testing_data/C-NMC_test_final_phase_data',
    final_csv=None,
)

#: Where a labels CSV of the final test (``labels_csv`` format) goes when one is at hand:
#: ``CNMCDataset(split='final_test', subdirs=dict(final_csv=FINAL_LABELS_CSV),
#: labels_optional=True)`` scores the final set when the file exists and predicts otherwise.
FINAL_LABELS_CSV = 'testing_data/C-NMC_test_final_phase_data_labels.csv'

CSV_HEADER = ('Patient_ID', 'new_names', 'labels')

#: Training-set file names; case is free, as the release also spells ``UID_h3_1_1_hem.bmp``.
CNMC_NAME_PATTERN = re.compile(
    r'^UID_(?P<patient>H?\d+)_(?P<image>\d+)_(?P<cell>\d+)_(?P<cls>all|hem)$', re.IGNORECASE)
CNMC_NAME_HELP = ("'UID_<patient>_<image>_<cell>_all.bmp' (e.g. UID_1_3_1_all.bmp) or "
                  "'UID_H<patient>_<image>_<cell>_hem.bmp' (e.g. UID_H6_14_1_hem.bmp)")
NUMBERED_PATTERN = re.compile(r'^(?P<number>\d+)$')


class CNMCDataError(ValueError):
    """A C-NMC file, folder or labels CSV that cannot be used as it is."""


def canonical_patient_id(patient: str) -> str:
    """The one spelling of a C-NMC patient id: ``'h3'`` and ``'H3'`` are both ``'H3'``."""
    patient = str(patient).strip()
    return 'H' + patient[1:] if patient[:1] in ('h', 'H') else patient


def parse_cnmc_name(name: str, suffix: str = '.bmp') -> Dict[str, str]:
    """Parse a C-NMC training file name (or path; ``suffix`` in any case).

    Returns ``patient_id`` (canonical: '1', 'H6'), ``image_id``, ``cell_id`` (strings) and
    ``class_name`` ('all' | 'hem'). Raises :class:`CNMCDataError` for a name off the official
    pattern or a patient prefix that contradicts the class (``H`` patients have ``hem`` cells).
    """
    base = osp.basename(name)
    if not base.lower().endswith(suffix.lower()):
        raise CNMCDataError(f'{name}: expected a {suffix} file named {CNMC_NAME_HELP}')
    match = CNMC_NAME_PATTERN.match(base[:len(base) - len(suffix)])
    if match is None:
        raise CNMCDataError(f'{name}: cannot parse the C-NMC file name; expected '
                            f'{CNMC_NAME_HELP}; rename the file')
    patient, cls = canonical_patient_id(match['patient']), match['cls'].lower()
    if patient.startswith('H') != (cls == 'hem'):
        raise CNMCDataError(
            f'{name}: patient {patient!r} contradicts class {cls!r} (healthy patients are '
            f'"H<n>" with "_hem" cells, leukemia patients "<n>" with "_all" cells); expected '
            f'{CNMC_NAME_HELP}; rename the file or move it to the right class')
    return dict(patient_id=patient, image_id=match['image'], cell_id=match['cell'],
                class_name=cls)


@CLS_DATASETS.register_module()
class CNMCDataset(SkipOrRaiseMixin, BaseDataset):
    """C-NMC 2019 leukemia dataset: ``hem`` (label 0) vs ``all`` (label 1).

    Splits of the official layout (module docstring): ``'train'`` reads
    ``training_data/fold_<k>/{all,hem}`` for ``folds`` (labels from the class folder, which
    must agree with the name); ``'prelim_test'`` the numbered images labelled by their CSV;
    ``'final_test'`` the numbered images, unlabelled (no ``gt_label``; for prediction, e.g.
    ``DumpResults``) unless ``subdirs['final_csv']`` names a labels CSV. With
    ``labels_optional=True`` that CSV may be missing: the final set is labelled when the file
    exists and unlabelled otherwise (one info log names the file), so that one config scores
    the final set where its labels are at hand (:data:`FINAL_LABELS_CSV`) and writes the
    challenge's submission file (``BinaryClassificationMetric(submission_file=...)``) where not.

    Sample infos hold ``img_path``, ``gt_label``, ``patient_id`` ('1', 'H6'; None when
    unknown), ``image_id``, ``cell_id``, ``fold`` (-1 outside the training folds) and
    ``file_name`` (list them in ``PackInputs(meta_keys=...)`` for metrics). ``metainfo`` adds
    ``split`` and the sorted ``patients``.

    ``patient_split=dict(ratio=0.8, subset='train', seed=0)`` keeps the cells of ``ratio`` of
    the patients (``subset='train'``) or of the others (``'val'``), drawn per class
    (:func:`split_patients`): for one seed the subsets are complementary.
    ``patient_split=dict(num_folds=5, fold=0, subset='train', seed=0)`` is a patient-wise
    k-fold stratified by class (:func:`patient_folds`): ``'val'`` keeps the patients of fold
    ``fold``, ``'train'`` those of the other ``num_folds - 1`` folds. C-NMC holds
    near-identical cells under different patients: ``group_duplicates=True`` finds them at
    start-up (:func:`~mmbloodcell.datasets.duplicates.find_duplicates`, RMS thumbnail distance
    ``<= duplicate_distance``) and keeps the patients they link on one side;
    ``group_duplicates='pairs.csv'`` reads the pairs of ``tools/analysis/cnmc_duplicates.py``.

    A wrong root, a missing or empty class folder, a missing or malformed labels CSV raise
    :class:`CNMCDataError`. Problems of single files (unparseable name, class folder against
    the name, CSV row with a missing image or a label not 0/1, test image without a CSV row,
    with ``check_images`` a bad image file) raise with ``on_error='raise'``; with ``'skip'``
    the sample is dropped, logged and kept in :attr:`skipped` (reason -> messages).

    Args:
        data_root (str): The C-NMC root. Defaults to 'data/C-NMC_Leukemia'.
        split (str): 'train', 'prelim_test' or 'final_test'. Defaults to 'train'.
        folds (Sequence[int]): Training folds to read. Defaults to (0, 1, 2).
        subdirs (dict, optional): Overrides of :data:`DEFAULT_SUBDIRS`.
        patient_split (dict, optional): ``ratio`` (0..1, default 0.8) or ``num_folds`` (>= 2)
            with ``fold`` (in ``[0, num_folds)``, default 0), ``subset`` ('train' | 'val'),
            ``seed`` (0), ``group_duplicates`` (False, True or a pairs CSV) and
            ``duplicate_distance`` (0.02). Defaults to None (all patients).
        on_error (str): 'raise' or 'skip'. Defaults to 'raise'.
        check_images (bool): Check that every file is a complete image (BMP: header only).
        max_image_size (int, optional): With ``check_images``, the largest width or height.
        labels_optional (bool): For ``split='final_test'``: a missing
            ``subdirs['final_csv']`` reads the set unlabelled instead of raising. Defaults to
            False (the prelim CSV, part of the release, is always required).
        class_subsample (dict, optional): ``num_per_class``, ``offset`` (0), ``seed`` (0):
            keep ``num_per_class`` random cells of every class, e.g. balanced, disjoint train
            (offset 0) and validation (offset = the train's num_per_class) sets drawn from the
            same folds. Applied after ``patient_split``. Defaults to None (every cell).
        check_cells (bool): Decode every image at start-up and warn about what makes it unlike
            C-NMC's cells (:func:`~mmbloodcell.datasets.transforms.cell.cell_image_warnings`);
            the samples are kept, the findings are in :attr:`cell_warnings` (path -> list).
        img_suffix (str): Image extension. Defaults to '.bmp'.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`.
    """

    error_cls = CNMCDataError

    METAINFO = {'classes': CNMC_CLASSES}
    SPLITS = ('train', 'prelim_test', 'final_test')

    def __init__(self,
                 data_root: str = 'data/C-NMC_Leukemia',
                 split: str = 'train',
                 folds: Sequence[int] = (0, 1, 2),
                 subdirs: Optional[dict] = None,
                 patient_split: Optional[dict] = None,
                 on_error: str = 'raise',
                 check_images: bool = False,
                 max_image_size: Optional[int] = None,
                 check_cells: bool = False,
                 img_suffix: str = '.bmp',
                 labels_optional: bool = False,
                 class_subsample: Optional[dict] = None,
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'CNMCDataset: split={split!r}, expected one of {self.SPLITS}')
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"CNMCDataset: on_error={on_error!r}, expected 'raise' or 'skip'")
        if isinstance(folds, int):
            folds = (folds, )
        if split == 'train' and not folds:
            raise ValueError('CNMCDataset: folds is empty; give at least one training fold')
        unknown = set(subdirs or {}) - set(DEFAULT_SUBDIRS)
        if unknown:
            raise ValueError(f'CNMCDataset: unknown subdirs keys {sorted(unknown)}; valid keys '
                             f'are {sorted(DEFAULT_SUBDIRS)}')
        self.split = split
        self.folds = tuple(int(f) for f in folds)
        self.subdirs = {**DEFAULT_SUBDIRS, **(subdirs or {})}
        self.patient_split = self._check_patient_split(patient_split)
        self.on_error = on_error
        self.check_images = check_images
        self.max_image_size = max_image_size
        self.check_cells = check_cells
        self.img_suffix = img_suffix
        self.labels_optional = bool(labels_optional)
        self.class_subsample = self._check_class_subsample(class_subsample)
        self.skipped: Dict[str, List[str]] = defaultdict(list)
        self.cell_warnings: Dict[str, List[str]] = {}
        self.duplicate_groups: Dict[str, str] = {}
        for key in ('ann_file', 'data_prefix'):
            if kwargs.pop(key, None):
                raise ValueError(f'CNMCDataset does not use {key}; set data_root and subdirs')
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def load_data_list(self) -> List[dict]:
        self.skipped = defaultdict(list)
        root = self.data_root
        if not root or not osp.isdir(root):
            raise CNMCDataError(
                f'C-NMC root {root!r} does not exist: set data_root to the folder that holds '
                f"{self.subdirs['train']}/, validation_data/ and testing_data/ "
                f'(the C-NMC_Leukemia folder of the official release)')
        if self.split == 'train':
            data_list = self._load_train()
        else:
            key = self.split.replace('_test', '')
            data_list = self._load_numbered(self.subdirs[key], self.subdirs[key + '_csv'],
                                            csv_required=key == 'prelim',
                                            csv_optional=key == 'final' and self.labels_optional)
        if self.patient_split is not None:
            data_list = self._apply_patient_split(data_list)
        if self.class_subsample is not None:
            data_list = self._apply_class_subsample(data_list)
        if self.check_images:
            data_list = [info for info in data_list if self._image_ok(info['img_path'])]
        if self.check_cells:
            self._check_cells(data_list)
        if not data_list:
            raise CNMCDataError(f'C-NMC {self.split} split under {root!r} has no usable image'
                                + (f' (skipped: {self.skip_counts})' if self.skipped else ''))
        if self.skipped:
            MMLogger.get_current_instance().warning(
                f'CNMCDataset({self.split}): skipped {self.num_skipped} sample(s) '
                f'{self.skip_counts}; see dataset.skipped for the files')
        self.skipped = dict(self.skipped)
        self._metainfo['split'] = self.split
        self._metainfo['patients'] = tuple(
            sorted({d['patient_id'] for d in data_list if d['patient_id'] is not None},
                   key=_patient_sort_key))
        return data_list

    def _load_train(self) -> List[dict]:
        root = self.data_root
        train_dir = osp.join(root, self.subdirs['train'])
        if not osp.isdir(train_dir):
            raise CNMCDataError(
                f'{root!r} is not a C-NMC root: expected {train_dir!r} holding '
                f"{self.subdirs['fold'].format(fold=0)}/{{all,hem}}/*{self.img_suffix}; set "
                f"data_root to the C-NMC_Leukemia folder or subdirs['train']")
        data_list = []
        for fold in self.folds:
            fold_dir = osp.join(train_dir, self.subdirs['fold'].format(fold=fold))
            if not osp.isdir(fold_dir):
                raise CNMCDataError(
                    f'C-NMC fold {fold} not found: expected {fold_dir!r} with all/ and hem/ '
                    f'(folds={self.folds}; check data_root, folds and subdirs["fold"])')
            for label, cls in enumerate(CNMC_CLASSES):
                cls_dir = osp.join(fold_dir, cls)
                if not osp.isdir(cls_dir):
                    raise CNMCDataError(f'C-NMC class folder {cls_dir!r} is missing: each fold '
                                        f'needs all/ and hem/')
                files = sorted(os.listdir(cls_dir), key=natural_key)
                images = [f for f in files if f.lower().endswith(self.img_suffix.lower())]
                if not images:
                    raise CNMCDataError(
                        f'C-NMC class folder {cls_dir!r} has no *{self.img_suffix} image'
                        f'{_other_files(files, self.img_suffix)}; it should hold the {cls} '
                        f'cells of fold {fold}: copy them there or drop the fold from folds')
                others = [f for f in files if f not in set(images)]
                if others:
                    MMLogger.get_current_instance().warning(
                        f'CNMCDataset: ignored {len(others)} file(s) that are not '
                        f'*{self.img_suffix} in {cls_dir}: {_first(others)}')
                for name in images:
                    path = osp.join(cls_dir, name)
                    try:
                        parsed = parse_cnmc_name(path, self.img_suffix)
                    except CNMCDataError as e:
                        self._fail('unparseable_name', str(e))
                        continue
                    if parsed['class_name'] != cls:
                        self._fail('label_mismatch',
                                   f'{path}: a {parsed["class_name"]!r} cell in the {cls!r} '
                                   f'folder; move it to {parsed["class_name"]}/')
                        continue
                    data_list.append(
                        dict(img_path=path, gt_label=label, patient_id=parsed['patient_id'],
                             image_id=parsed['image_id'], cell_id=parsed['cell_id'],
                             fold=fold, file_name=name))
        return data_list

    def _load_numbered(self, img_subdir: str, csv_subdir: Optional[str],
                       csv_required: bool, csv_optional: bool = False) -> List[dict]:
        root = self.data_root
        img_dir = osp.join(root, img_subdir)
        if not osp.isdir(img_dir):
            raise CNMCDataError(
                f'{root!r} has no C-NMC {self.split} images: expected {img_dir!r} with numbered '
                f'files (1{self.img_suffix}, 2{self.img_suffix}, ...); check data_root and '
                f'subdirs')
        if csv_subdir:
            csv_path = osp.join(root, csv_subdir)
            if osp.isfile(csv_path):
                return self._load_csv(csv_path, img_dir)
            if not csv_optional:
                raise CNMCDataError(
                    f'C-NMC {self.split} labels {csv_path!r} not found: expected a CSV with '
                    f'header {",".join(CSV_HEADER)}; check subdirs'
                    + (' or set labels_optional=True to read the set unlabelled when the file '
                       'is missing' if self.split == 'final_test' else ''))
            MMLogger.get_current_instance().info(
                f'CNMCDataset({self.split}): labels CSV {csv_path} not found; the set is read '
                f'unlabelled (labels_optional=True): predictions only, no scores')
        if csv_required:
            raise CNMCDataError(f'C-NMC {self.split} needs a labels CSV (subdirs)')
        data_list = []
        listing = sorted(os.listdir(img_dir), key=natural_key)
        files = [f for f in listing if f.lower().endswith(self.img_suffix.lower())]
        for name in files:
            match = NUMBERED_PATTERN.match(name[:len(name) - len(self.img_suffix)])
            if match is None:
                self._fail('unparseable_name',
                           f'{osp.join(img_dir, name)}: expected a numbered test image '
                           f'<N>{self.img_suffix} (e.g. 1{self.img_suffix}); rename it or move '
                           f'it out of the folder')
                continue
            data_list.append(
                dict(img_path=osp.join(img_dir, name), patient_id=None, image_id=None,
                     cell_id=None, fold=-1, file_name=name, number=int(match['number'])))
        if not data_list and not self.skipped:
            raise CNMCDataError(f'C-NMC {self.split} folder {img_dir!r} has no '
                                f'*{self.img_suffix} image{_other_files(listing, self.img_suffix)}')
        data_list.sort(key=lambda d: d['number'])
        return data_list

    def _load_csv(self, csv_path: str, img_dir: str) -> List[dict]:
        """Rows of an official labels CSV. Its ``new_names`` (``1.bmp``) and ``Patient_ID``
        (``UID_..._all.bmp``) carry the release's ``.bmp``; the image looked up is
        ``<number><img_suffix>``, so cells re-saved in another format (``img_suffix='.png'``)
        use the official CSV unchanged."""
        with open(csv_path, newline='', encoding='utf-8-sig') as f:
            rows = list(csv.reader(f))
        if not rows:
            raise CNMCDataError(f'{csv_path}: empty labels CSV; expected the header '
                                f'{",".join(CSV_HEADER)}')
        header = tuple(c.strip() for c in rows[0])
        if header != CSV_HEADER:
            raise CNMCDataError(f'{csv_path}: header is {",".join(header)!r}, expected '
                                f'{",".join(CSV_HEADER)!r} (Patient_ID = original UID_ name, '
                                f'new_names = numbered file, labels = 1 all / 0 hem)')
        data_list, seen = [], {}
        for line_no, row in enumerate(rows[1:], start=2):
            if not any(c.strip() for c in row):
                continue
            where = f'{csv_path} line {line_no}'
            if len(row) != 3:
                self._fail('bad_csv_row', f'{where}: expected 3 fields '
                           f'({",".join(CSV_HEADER)}), got {len(row)}: {row}; fix the row')
                continue
            uid, new_name, label_str = (c.strip() for c in row)
            file_name = strip_image_ext(new_name) + self.img_suffix
            if file_name in seen:
                self._fail('bad_csv_row', f'{where}: {new_name} is already listed on line '
                           f'{seen[file_name]}; remove one of the two rows')
                continue
            seen[file_name] = line_no
            if label_str not in ('0', '1'):
                self._fail('bad_csv_row', f'{where}: label {label_str!r} of {new_name} is not '
                           f'0 (hem) or 1 (all); fix the row')
                continue
            label = int(label_str)
            try:
                parsed = parse_cnmc_name(strip_image_ext(uid) + self.img_suffix, self.img_suffix)
            except CNMCDataError:
                self._fail('unparseable_name', f'{where}: Patient_ID {uid!r} is not a C-NMC '
                           f'file name ({CNMC_NAME_HELP}); fix the row')
                continue
            if parsed['class_name'] != CNMC_CLASSES[label]:
                self._fail('label_mismatch', f'{where}: label {label} ({CNMC_CLASSES[label]}) '
                           f'contradicts Patient_ID {uid} ({parsed["class_name"]}); fix the row')
                continue
            img_path = osp.join(img_dir, file_name)
            if not osp.isfile(img_path):
                self._fail('missing_image', f'{where}: image {img_path!r} ({uid}) named in the '
                           f'labels CSV does not exist; restore it or remove the row'
                           + _other_format_hint(img_dir, file_name, self.img_suffix))
                continue
            number = NUMBERED_PATTERN.match(strip_image_ext(new_name))
            data_list.append(
                dict(img_path=img_path, gt_label=label, patient_id=parsed['patient_id'],
                     image_id=parsed['image_id'], cell_id=parsed['cell_id'], fold=-1,
                     file_name=file_name, original_name=uid,
                     number=int(number['number']) if number else None))
        # an image without a row would be silently left out of the evaluation
        for name in sorted(os.listdir(img_dir), key=natural_key):
            if name.lower().endswith(self.img_suffix.lower()) and name not in seen:
                self._fail('unlabelled_image',
                           f'{osp.join(img_dir, name)}: image has no row in the labels CSV '
                           f'{csv_path}; add its row ({",".join(CSV_HEADER)}) or move the file '
                           f'out of the folder')
        return data_list

    @staticmethod
    def _check_patient_split(cfg: Optional[dict]) -> Optional[dict]:
        if cfg is None:
            return None
        cfg = dict(cfg)
        known = ('ratio', 'num_folds', 'fold', 'subset', 'seed', 'group_duplicates',
                 'duplicate_distance')
        unknown = set(cfg) - set(known)
        if unknown:
            raise ValueError(f'patient_split: unknown keys {sorted(unknown)}; use '
                             f'{", ".join(known)}')
        num_folds, fold, ratio = cfg.get('num_folds'), cfg.get('fold'), None
        if num_folds is not None:
            if 'ratio' in cfg:
                raise ValueError(
                    f'patient_split: ratio={cfg["ratio"]} and num_folds={num_folds} are two '
                    f'ways to split; give ratio for one train/val split or num_folds and fold '
                    f'for a k-fold, not both')
            if isinstance(num_folds, bool) or not isinstance(num_folds, int) or num_folds < 2:
                raise ValueError(f'patient_split: num_folds={num_folds!r}, expected an integer '
                                 f'>= 2')
            fold = 0 if fold is None else fold
            if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < num_folds:
                raise ValueError(f'patient_split: fold={fold!r}, expected an integer in '
                                 f'[0, {num_folds}) (the validation fold of num_folds='
                                 f'{num_folds})')
        elif fold is not None:
            raise ValueError(f'patient_split: fold={fold!r} needs num_folds (e.g. '
                             f'patient_split=dict(num_folds=5, fold={fold}, subset=...))')
        else:
            ratio = cfg.get('ratio', 0.8)
            if not 0 < ratio < 1:
                raise ValueError(f'patient_split: ratio={ratio} must be between 0 and 1 '
                                 f'(exclusive)')
            ratio = float(ratio)
        subset = cfg.get('subset', 'train')
        if subset not in ('train', 'val'):
            raise ValueError(f"patient_split: subset={subset!r}, expected 'train' or 'val'")
        group = cfg.get('group_duplicates', False)
        if not isinstance(group, (bool, str)):
            raise ValueError(f'patient_split: group_duplicates={group!r}, expected True, False '
                             f'or the pairs CSV of tools/analysis/cnmc_duplicates.py')
        out = dict(ratio=ratio, subset=subset, seed=int(cfg.get('seed', 0)),
                   group_duplicates=group,
                   duplicate_distance=float(cfg.get('duplicate_distance', 0.02)))
        if num_folds is not None:
            del out['ratio']
            out.update(num_folds=num_folds, fold=fold)
        return out

    @staticmethod
    def _check_class_subsample(cfg: Optional[dict]) -> Optional[dict]:
        if cfg is None:
            return None
        cfg = dict(cfg)
        unknown = set(cfg) - {'num_per_class', 'offset', 'seed'}
        if unknown or 'num_per_class' not in cfg:
            raise ValueError(f'class_subsample: expected num_per_class (and offset, seed), got '
                             f'{sorted(cfg)}')
        num, offset = int(cfg['num_per_class']), int(cfg.get('offset', 0))
        if num < 1 or offset < 0:
            raise ValueError(f'class_subsample: num_per_class={num} must be >= 1 and '
                             f'offset={offset} >= 0')
        return dict(num_per_class=num, offset=offset, seed=int(cfg.get('seed', 0)))

    def _apply_class_subsample(self, data_list: List[dict]) -> List[dict]:
        """``num_per_class`` cells of every class: positions ``offset .. offset + num - 1``
        of the class's cells shuffled with ``seed`` (one shuffle per class, the same for
        every ``offset``: two offsets that do not overlap give disjoint sets)."""
        cfg = self.class_subsample
        if any('gt_label' not in d for d in data_list):
            raise CNMCDataError(f'class_subsample needs labels; the {self.split} split has none')
        rng = np.random.default_rng(cfg['seed'])
        keep = []
        for label in sorted({d['gt_label'] for d in data_list}):
            idx = [i for i, d in enumerate(data_list) if d['gt_label'] == label]
            end = cfg['offset'] + cfg['num_per_class']
            if end > len(idx):
                raise CNMCDataError(
                    f'class_subsample: the {self.split} split under {self.data_root!r} has '
                    f'{len(idx)} {CNMC_CLASSES[label]} cells, fewer than offset + '
                    f'num_per_class = {end}; lower num_per_class (e.g. --cfg-options '
                    f'train_dataloader.dataset.class_subsample.num_per_class={len(idx)})')
            order = rng.permutation(len(idx))
            keep.extend(idx[i] for i in order[cfg['offset']:end])
        return [data_list[i] for i in sorted(keep)]

    def _apply_patient_split(self, data_list: List[dict]) -> List[dict]:
        if any(d['patient_id'] is None or 'gt_label' not in d for d in data_list):
            raise CNMCDataError(f'patient_split needs patient ids and labels; the {self.split} '
                                f'split has none (use it on train or prelim_test)')
        groups = None
        if self.patient_split['group_duplicates']:
            groups = self._duplicate_patient_groups(data_list)
        self.duplicate_groups = groups or {}
        patients = [d['patient_id'] for d in data_list]
        labels = [d['gt_label'] for d in data_list]
        cfg = self.patient_split
        if 'num_folds' in cfg:
            folds = patient_folds(patients, labels, cfg['num_folds'], cfg['seed'], groups=groups)
            train_patients = {p for p, f in folds.items() if f != cfg['fold']}
            val_labels = {d['gt_label'] for d in data_list if folds[d['patient_id']] == cfg['fold']}
            if len(val_labels) < len(set(labels)):
                MMLogger.get_current_instance().warning(
                    f'CNMCDataset({self.split}): validation fold {cfg["fold"]} of '
                    f'{cfg["num_folds"]} holds class(es) {sorted(val_labels)} only: a class '
                    f'has fewer patients than folds; lower patient_split.num_folds')
        else:
            train_patients = split_patients(patients, labels, cfg['ratio'], cfg['seed'],
                                            groups=groups)
        keep_train = cfg['subset'] == 'train'
        return [d for d in data_list if (d['patient_id'] in train_patients) == keep_train]

    def _duplicate_patient_groups(self, data_list: List[dict]) -> Dict[str, str]:
        """Patients linked by duplicate cells -> their group (see :func:`split_patients`)."""
        from .duplicates import duplicate_groups, find_duplicates, read_duplicate_pairs
        source = self.patient_split['group_duplicates']
        if isinstance(source, str):
            rows = read_duplicate_pairs(source)
            links = [(canonical_patient_id(r['patient_a']), canonical_patient_id(r['patient_b']))
                     for r in rows if r.get('patient_a') and r.get('patient_b')]
        else:
            paths = tuple(d['img_path'] for d in data_list)
            key = (paths, self.patient_split['duplicate_distance'])
            if key not in _DUPLICATE_CACHE:  # the train and val datasets share one search
                _DUPLICATE_CACHE.clear()
                _DUPLICATE_CACHE[key] = find_duplicates(
                    paths, max_distance=self.patient_split['duplicate_distance'])
            links = [(data_list[p['i']]['patient_id'], data_list[p['j']]['patient_id'])
                     for p in _DUPLICATE_CACHE[key]]
        links = [(a, b) for a, b in links if a != b]
        groups = duplicate_groups(links)
        if groups:
            sizes = Counter(groups.values())
            MMLogger.get_current_instance().info(
                f'CNMCDataset({self.split}): {len(links)} duplicate pair(s) across patients '
                f'join {len(groups)} patients into {len(sizes)} group(s) that the patient split '
                f'keeps on one side')
        return groups

    def _image_ok(self, path: str) -> bool:
        problem = check_image_file(path, self.max_image_size)
        if problem is None:
            return True
        self._fail('bad_image', f'{path}: {problem}; replace or remove the file')
        return False

    def _check_cells(self, data_list: List[dict], num_logged: int = 20) -> None:
        logger = MMLogger.get_current_instance()
        self.cell_warnings = {}
        for info in data_list:
            path = info['img_path']
            img = mmcv.imread(path, flag='color')
            found = ['cannot be decoded'] if img is None else cell_image_warnings(img, path)
            if found:
                self.cell_warnings[path] = found
                if len(self.cell_warnings) <= num_logged:
                    logger.warning(f'CNMCDataset({self.split}): {path}: ' + '; '.join(found))
        if self.cell_warnings:
            logger.warning(
                f'CNMCDataset({self.split}): {len(self.cell_warnings)} of {len(data_list)} '
                f'image(s) unlike C-NMC cells (one stained cell on black)'
                + (f', the first {num_logged} listed above' if len(self.cell_warnings) >
                   num_logged else '') + '; see dataset.cell_warnings for all of them')

    def get_gt_labels(self) -> np.ndarray:
        """Ground-truth labels of all samples (raises for the unlabelled final test)."""
        self._require_labels()
        return super().get_gt_labels()

    def get_cat_ids(self, idx: int) -> List[int]:
        """The label of sample ``idx`` as a one-element list."""
        self._require_labels()
        return super().get_cat_ids(idx)

    def get_patient_ids(self) -> List[Optional[str]]:
        """Patient id of every sample, in dataset order."""
        return [self.get_data_info(i)['patient_id'] for i in range(len(self))]

    def _require_labels(self) -> None:
        if len(self) and 'gt_label' not in self.get_data_info(0):
            raise CNMCDataError(f'CNMCDataset({self.split}) is unlabelled: use it for '
                                f'prediction, or set subdirs["final_csv"] to its labels CSV')

    def extra_repr(self) -> List[str]:
        """Extra lines of ``repr``."""
        body = [f'Root: \t{self.data_root}', f'Split: \t{self.split}']
        if self.split == 'train':
            body.append(f'Folds: \t{self.folds}')
        if self.patient_split is not None:
            body.append(f'Patient split: \t{self.patient_split}')
        if self.skipped:
            body.append(f'Skipped: \t{self.skip_counts}')
        return body


#: find_duplicates results of the last patient split with group_duplicates=True, so that the
#: train and val datasets of one config (the two sides of one split) search once.
_DUPLICATE_CACHE: Dict[tuple, list] = {}


def _patient_sort_key(pid: str) -> Tuple[int, int, str]:
    digits = pid.lstrip('H')
    return (pid.startswith('H'), int(digits) if digits.isdigit() else -1, pid)


def _units_by_class(patients: Sequence[str], labels: Sequence[int],
                    groups: Optional[Dict[str, str]]) -> Tuple[Dict[int, list], Dict[str, set]]:
    """The units of a patient split (patients, or the groups of ``groups``) per class, each
    unit under the class most of its cells have (ties: the smaller label), and their
    patients: ``(label -> [unit], unit -> {patient})``."""
    groups = groups or {}
    votes = defaultdict(Counter)
    members_of = defaultdict(set)
    for pid, label in zip(patients, labels):
        unit = groups.get(pid, pid)
        votes[unit][int(label)] += 1
        members_of[unit].add(pid)
    by_class = defaultdict(list)
    for unit, counter in votes.items():
        # most common class; ties go to the smaller label so the result is order-free
        label = min(counter, key=lambda c: (-counter[c], c))
        by_class[label].append(unit)
    return by_class, members_of


def split_patients(patients: Sequence[str],
                   labels: Sequence[int],
                   ratio: float = 0.8,
                   seed: int = 0,
                   groups: Optional[Dict[str, str]] = None) -> set:
    """The training patients of a patient-wise split, stratified by class.

    ``patients`` and ``labels`` are given per sample. The units of the split are the patients,
    or the groups of ``groups`` (patient id -> group id, e.g. patients sharing duplicate
    cells; a patient absent from it is its own unit). Each unit takes the class most of its
    cells have. Within each class the sorted units are shuffled with ``seed`` and the first
    ``round(ratio * n)`` train, clamped to ``[1, n - 1]`` when ``n >= 2`` so that both sides
    get every class with two units or more; a class's only unit trains.
    """
    by_class, members_of = _units_by_class(patients, labels, groups)
    rng = np.random.default_rng(seed)
    train = set()
    for label in sorted(by_class):
        units = sorted(by_class[label], key=_patient_sort_key)
        n = len(units)
        k = int(round(ratio * n))
        k = min(max(k, 1), n - 1) if n >= 2 else n  # a lone unit trains
        order = rng.permutation(n)
        for i in order[:k]:
            train.update(members_of[units[i]])
    return train


def patient_folds(patients: Sequence[str],
                  labels: Sequence[int],
                  num_folds: int = 5,
                  seed: int = 0,
                  groups: Optional[Dict[str, str]] = None) -> Dict[str, int]:
    """The fold in ``[0, num_folds)`` of every patient of a patient-wise stratified k-fold.

    ``patients``, ``labels`` and ``groups`` are as in :func:`split_patients`: the units are the
    patients or the groups of ``groups``, each under its majority class, and all patients of a
    unit share its fold. Per class (in label order) the sorted units are shuffled with
    ``seed`` and dealt round-robin into the folds, the deal of a class continuing where the
    previous class stopped: unit ``i`` of the whole deal goes to fold ``i mod num_folds``.
    Every fold thus gets ``floor(n_c / k)`` or ``ceil(n_c / k)`` units of class ``c`` (each
    fold has both classes when both have ``>= num_folds`` units) and the fold sizes differ by
    at most one unit; the deal balances the number of patients, not of cells.

    Returns:
        dict: patient id -> fold.

    Raises:
        ValueError: ``num_folds < 2``, or fewer units than folds (a fold would be empty).
    """
    num_folds = int(num_folds)
    if num_folds < 2:
        raise ValueError(f'patient_folds: num_folds={num_folds}, expected 2 or more')
    by_class, members_of = _units_by_class(patients, labels, groups)
    num_units = sum(len(v) for v in by_class.values())
    if num_units < num_folds:
        raise ValueError(
            f'patient_folds: {num_units} patient unit(s) (patients, or groups of patients '
            f'linked by duplicates) cannot fill {num_folds} folds; set patient_split.num_folds '
            f'to {max(num_units, 2)} or less')
    rng = np.random.default_rng(seed)
    folds, position = {}, 0
    for label in sorted(by_class):
        units = sorted(by_class[label], key=_patient_sort_key)
        for i in rng.permutation(len(units)):
            for pid in members_of[units[i]]:
                folds[pid] = position % num_folds
            position += 1
    return folds


def _first(names: Sequence[str], num: int = 5) -> str:
    """``a, b, c`` or ``a, b, c, ... (12 in all)``."""
    shown = ', '.join(names[:num])
    return shown + (f', ... ({len(names)} in all)' if len(names) > num else '')


def _other_files(files: Sequence[str], img_suffix: str) -> str:
    """What a folder without ``*img_suffix`` files holds instead (and the fix for images)."""
    if not files:
        return ' (the folder is empty)'
    by_ext = Counter(osp.splitext(f)[1].lower() for f in files)
    found = ', '.join(f'{n} *{ext or "(no extension)"}' for ext, n in by_ext.most_common())
    images = [ext for ext, _ in by_ext.most_common() if ext in IMAGE_EXTENSIONS]
    if not images:
        return f' (it holds {found}: {_first(list(files))})'
    return (f" but {found} file(s); if the cells are stored as {images[0]}, set "
            f"img_suffix='{images[0]}' ({dataset_option_hint('img_suffix', images[0])})")


def _other_format_hint(img_dir: str, file_name: str, img_suffix: str) -> str:
    """The ``img_suffix`` fix when ``img_dir`` holds ``file_name`` in another image format."""
    stem = strip_image_ext(file_name)
    for ext in IMAGE_EXTENSIONS:
        if ext != img_suffix.lower() and osp.isfile(osp.join(img_dir, stem + ext)):
            return (f"; the folder holds {stem + ext}: if the cells are stored as {ext}, set "
                    f"img_suffix='{ext}' ({dataset_option_hint('img_suffix', ext)})")
    return ''
