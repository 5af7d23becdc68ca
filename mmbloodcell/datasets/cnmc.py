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

In the labels CSV ``Patient_ID`` is the original ``UID_...`` file name, ``new_names`` the
numbered file (``1.bmp``) and ``labels`` 1 = all, 0 = hem.
"""
import csv
import os
import os.path as osp
import re
import struct
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import MMLogger
from mmpretrain.datasets import BaseDataset

from mmbloodcell.registry import CLS_DATASETS
from .skipping import SkipOrRaiseMixin

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

CSV_HEADER = ('Patient_ID', 'new_names', 'labels')

#: Training-set file names: ``UID_<patient>_<image>_<cell>_all.bmp`` (patients are numbers)
#: and ``UID_H<patient>_<image>_<cell>_hem.bmp`` (healthy patients carry an ``H``).
CNMC_NAME_PATTERN = re.compile(
    r'^UID_(?P<patient>H?\d+)_(?P<image>\d+)_(?P<cell>\d+)_(?P<cls>all|hem)$')
CNMC_NAME_HELP = ("'UID_<patient>_<image>_<cell>_all.bmp' (e.g. UID_1_3_1_all.bmp) or "
                  "'UID_H<patient>_<image>_<cell>_hem.bmp' (e.g. UID_H6_14_1_hem.bmp)")
NUMBERED_PATTERN = re.compile(r'^(?P<number>\d+)$')


class CNMCDataError(ValueError):
    """A C-NMC file, folder or labels CSV that cannot be used as it is."""


def parse_cnmc_name(name: str, suffix: str = '.bmp') -> Dict[str, str]:
    """Parse a C-NMC training file name.

    Args:
        name (str): The file name (a path is reduced to its base name).
        suffix (str): The expected extension. Defaults to '.bmp'.

    Returns:
        dict: ``patient_id`` ('1', 'H6'), ``image_id``, ``cell_id`` (strings as in the name) and
        ``class_name`` ('all' or 'hem').

    Raises:
        CNMCDataError: the name does not follow the official pattern, or its patient prefix
            contradicts its class (``H`` marks healthy patients, whose cells are ``hem``).
    """
    base = osp.basename(name)
    if not base.lower().endswith(suffix.lower()):
        raise CNMCDataError(f'{name}: expected a {suffix} file named {CNMC_NAME_HELP}')
    match = CNMC_NAME_PATTERN.match(base[:-len(suffix)])
    if match is None:
        raise CNMCDataError(f'{name}: cannot parse the C-NMC file name; expected '
                            f'{CNMC_NAME_HELP}. Rename the file or use on_error="skip"')
    patient, cls = match['patient'], match['cls']
    if patient.startswith('H') != (cls == 'hem'):
        raise CNMCDataError(
            f'{name}: patient {patient!r} contradicts class {cls!r} (healthy patients are '
            f'"H<n>" with "_hem" cells, leukemia patients "<n>" with "_all" cells); expected '
            f'{CNMC_NAME_HELP}')
    return dict(patient_id=patient, image_id=match['image'], cell_id=match['cell'],
                class_name=cls)


def check_image_file(path: str, max_size: Optional[int] = None) -> Optional[str]:
    """Check that an image file can be read, without decoding it when it is a BMP.

    BMP files (the C-NMC format) are checked from their header: signature, dimensions and,
    for uncompressed bitmaps, that the file holds every pixel row the header announces.
    Other formats are decoded in full with Pillow.

    Args:
        path (str): The image file.
        max_size (int, optional): Reject images whose width or height exceeds it.

    Returns:
        str | None: None when the file is usable, else what is wrong with it (without the
        path).
    """
    try:
        size = osp.getsize(path)
    except OSError as e:
        return f'cannot be read ({e.strerror})'
    if size == 0:
        return 'is empty (0 bytes)'
    with open(path, 'rb') as f:
        head = f.read(54)
    if head[:2] == b'BM':
        problem, width, height = _check_bmp_header(head, size)
    else:
        problem, width, height = _check_by_decoding(path)
        if problem is not None and path.lower().endswith('.bmp'):
            problem = f'is not a BMP image (starts with {head[:8]!r}) and {problem}'
    if problem is None and max_size is not None and max(width, height) > max_size:
        problem = (f'is {width}x{height}, larger than max_image_size={max_size}; resize it '
                   f'or raise max_image_size')
    return problem


def _check_bmp_header(head: bytes, file_size: int) -> Tuple[Optional[str], int, int]:
    if len(head) < 26:
        return f'is truncated: {file_size} bytes is shorter than a BMP header', 0, 0
    pixel_offset, dib_size = struct.unpack_from('<II', head, 10)
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height, _, bpp = struct.unpack_from('<hhHH', head, 18)
        compression = 0
    elif dib_size >= 40 and len(head) >= 54:
        width, height, _, bpp, compression = struct.unpack_from('<iiHHI', head, 18)
    else:
        return f'has a corrupt BMP header (DIB header size {dib_size})', 0, 0
    height = abs(height)
    if width <= 0 or height == 0 or bpp not in (1, 4, 8, 16, 24, 32):
        return (f'has a corrupt BMP header (width {width}, height {height}, '
                f'{bpp} bits per pixel)'), max(width, 0), height
    if compression in (0, 3, 6):  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: rows are stored raw
        row_bytes = (width * bpp + 31) // 32 * 4
        needed = pixel_offset + row_bytes * height
        if file_size < needed:
            return (f'is truncated: {file_size} bytes, but its {width}x{height} {bpp}-bit '
                    f'BMP header needs {needed}'), width, height
    return None, width, height


def _check_by_decoding(path: str) -> Tuple[Optional[str], int, int]:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            img.load()
            return None, img.width, img.height
    except UnidentifiedImageError:
        return 'is not a readable image', 0, 0
    except (OSError, SyntaxError, ValueError) as e:
        return f'cannot be decoded ({e})', 0, 0


@CLS_DATASETS.register_module()
class CNMCDataset(SkipOrRaiseMixin, BaseDataset):
    """C-NMC 2019 leukemia dataset: ``hem`` (label 0) vs ``all`` (label 1).

    Reads the official folder layout (see the module docstring) for three splits:

    - ``split='train'``: ``training_data/fold_<k>/{all,hem}`` for the folds in ``folds`` (any
      subset of 0, 1, 2); labels come from the class folder and must agree with the name.
    - ``split='prelim_test'``: the numbered preliminary-test images, labelled by their CSV.
    - ``split='final_test'``: the numbered final-test images, unlabelled (no ``gt_label``
      key; use it for prediction, e.g. with ``DumpResults``), unless ``subdirs['final_csv']``
      names a labels CSV.

    Each sample's info holds ``img_path``, ``gt_label`` (absent when unlabelled), ``patient_id``
    ('1', 'H6'; ``None`` when unknown), ``image_id``, ``cell_id`` (strings from the name),
    ``fold`` (-1 outside the training folds) and ``file_name``. To have them in the data
    samples given to metrics, list them in ``PackInputs(meta_keys=...)``.
    The dataset's ``metainfo`` adds ``split`` and the sorted ``patients``.

    Patient-wise split: ``patient_split=dict(ratio=0.8, subset='train', seed=0)`` keeps the
    cells of ``ratio`` of the patients (``subset='train'``) or of the others
    (``subset='val'``). Patients are drawn per class (stratified), so both sides hold both
    classes whenever a class has at least two patients; for one seed the two subsets are
    complementary and never share a patient.

    Errors: a wrong root, a missing or empty class folder, a missing or badly formed labels
    CSV always raise :class:`CNMCDataError`. Problems of single files - a name that does not
    parse, a class folder that contradicts the name, a CSV row whose image is missing or whose
    label is not 0/1, an image of a labelled test folder that has no CSV row, and (with ``check_images=True``) an empty, truncated or non-image file -
    raise too with ``on_error='raise'``; with ``on_error='skip'`` the sample is dropped, a
    warning is logged and the count is kept in :attr:`skipped` (reason -> list of messages).

    Args:
        data_root (str): The C-NMC root (holding ``training_data`` etc.).
            Defaults to 'data/C-NMC_Leukemia'.
        split (str): 'train', 'prelim_test' or 'final_test'. Defaults to 'train'.
        folds (Sequence[int]): Training folds to read. Defaults to (0, 1, 2).
        subdirs (dict, optional): Overrides of :data:`DEFAULT_SUBDIRS`.
        patient_split (dict, optional): ``ratio`` (0..1), ``subset`` ('train' | 'val') and
            ``seed`` (default 0). Defaults to None (all patients).
        on_error (str): 'raise' or 'skip'. Defaults to 'raise'.
        check_images (bool): Check that every file is a readable, complete image (header only
            for BMP). Defaults to False.
        max_image_size (int, optional): With ``check_images``, reject images larger than this
            (width or height). Defaults to None.
        img_suffix (str): Image extension. Defaults to '.bmp'.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset` (``pipeline``,
            ``test_mode``, ``indices``, ``lazy_init``...).
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
                 img_suffix: str = '.bmp',
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'CNMCDataset: split={split!r}, expected one of {self.SPLITS}')
        if on_error not in ('raise', 'skip'):
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
        self.img_suffix = img_suffix
        self.skipped: Dict[str, List[str]] = defaultdict(list)
        for key in ('ann_file', 'data_prefix'):
            if kwargs.get(key):
                raise ValueError(f'CNMCDataset does not use {key}; set data_root and subdirs')
        kwargs.pop('ann_file', None)
        kwargs.pop('data_prefix', None)
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        """Collect the samples of the split (see the class docstring)."""
        self.skipped = defaultdict(list)
        root = self.data_root
        if not root or not osp.isdir(root):
            raise CNMCDataError(
                f'C-NMC root {root!r} does not exist: set data_root to the folder that holds '
                f"{self.subdirs['train']}/, validation_data/ and testing_data/ "
                f'(the C-NMC_Leukemia folder of the official release)')
        if self.split == 'train':
            data_list = self._load_train()
        elif self.split == 'prelim_test':
            data_list = self._load_numbered(self.subdirs['prelim'], self.subdirs['prelim_csv'],
                                            csv_required=True)
        else:
            data_list = self._load_numbered(self.subdirs['final'], self.subdirs['final_csv'],
                                            csv_required=False)
        if self.patient_split is not None:
            data_list = self._apply_patient_split(data_list)
        if self.check_images:
            data_list = [info for info in data_list if self._image_ok(info['img_path'])]
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
                files = sorted(os.listdir(cls_dir))
                images = [f for f in files if f.lower().endswith(self.img_suffix.lower())]
                if not images:
                    raise CNMCDataError(
                        f'C-NMC class folder {cls_dir!r} has no *{self.img_suffix} image '
                        f'({len(files)} other file(s)); it should hold the {cls} cells of fold '
                        f'{fold}: copy them there or drop the fold from folds')
                others = len(files) - len(images)
                if others:
                    MMLogger.get_current_instance().warning(
                        f'CNMCDataset: ignored {others} non-{self.img_suffix} file(s) in '
                        f'{cls_dir}')
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
                       csv_required: bool) -> List[dict]:
        root = self.data_root
        img_dir = osp.join(root, img_subdir)
        if not osp.isdir(img_dir):
            raise CNMCDataError(
                f'{root!r} has no C-NMC {self.split} images: expected {img_dir!r} with numbered '
                f'files (1{self.img_suffix}, 2{self.img_suffix}, ...); check data_root and '
                f'subdirs')
        if csv_subdir:
            csv_path = osp.join(root, csv_subdir)
            if not osp.isfile(csv_path):
                raise CNMCDataError(f'C-NMC {self.split} labels {csv_path!r} not found: expected '
                                    f'a CSV with header {",".join(CSV_HEADER)}; check subdirs')
            return self._load_csv(csv_path, img_dir)
        if csv_required:
            raise CNMCDataError(f'C-NMC {self.split} needs a labels CSV (subdirs)')
        data_list = []
        files = [f for f in os.listdir(img_dir) if f.lower().endswith(self.img_suffix.lower())]
        for name in files:
            match = NUMBERED_PATTERN.match(name[:-len(self.img_suffix)])
            if match is None:
                self._fail('unparseable_name',
                           f'{osp.join(img_dir, name)}: expected a numbered test image '
                           f'<N>{self.img_suffix} (e.g. 1{self.img_suffix})')
                continue
            data_list.append(
                dict(img_path=osp.join(img_dir, name), patient_id=None, image_id=None,
                     cell_id=None, fold=-1, file_name=name, number=int(match['number'])))
        if not data_list and not self.skipped:
            raise CNMCDataError(f'C-NMC {self.split} folder {img_dir!r} has no '
                                f'*{self.img_suffix} image')
        data_list.sort(key=lambda d: d['number'])
        return data_list

    def _load_csv(self, csv_path: str, img_dir: str) -> List[dict]:
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
                           f'({",".join(CSV_HEADER)}), got {len(row)}: {row}')
                continue
            uid, new_name, label_str = (c.strip() for c in row)
            if new_name in seen:
                self._fail('bad_csv_row', f'{where}: {new_name} is already listed on line '
                           f'{seen[new_name]}')
                continue
            seen[new_name] = line_no
            if label_str not in ('0', '1'):
                self._fail('bad_csv_row', f'{where}: label {label_str!r} of {new_name} is not '
                           f'0 (hem) or 1 (all)')
                continue
            label = int(label_str)
            name = uid if uid.lower().endswith(self.img_suffix.lower()) else uid + self.img_suffix
            try:
                parsed = parse_cnmc_name(name, self.img_suffix)
            except CNMCDataError as e:
                self._fail('unparseable_name', f'{where}: {e}')
                continue
            if parsed['class_name'] != CNMC_CLASSES[label]:
                self._fail('label_mismatch', f'{where}: label {label} ({CNMC_CLASSES[label]}) '
                           f'contradicts Patient_ID {uid} ({parsed["class_name"]})')
                continue
            img_path = osp.join(img_dir, new_name)
            if not osp.isfile(img_path):
                self._fail('missing_image', f'{where}: image {img_path!r} ({uid}) named in the '
                           f'labels CSV does not exist; restore it or remove the row')
                continue
            number = NUMBERED_PATTERN.match(osp.splitext(new_name)[0])
            data_list.append(
                dict(img_path=img_path, gt_label=label, patient_id=parsed['patient_id'],
                     image_id=parsed['image_id'], cell_id=parsed['cell_id'], fold=-1,
                     file_name=new_name, original_name=name,
                     number=int(number['number']) if number else None))
        # an image without a row would be silently left out of the evaluation
        for name in sorted(os.listdir(img_dir)):
            if name.lower().endswith(self.img_suffix.lower()) and name not in seen:
                self._fail('unlabelled_image',
                           f'{osp.join(img_dir, name)}: image has no row in the labels CSV '
                           f'{csv_path}; add its row ({",".join(CSV_HEADER)}) or move the file '
                           f'out of the folder')
        return data_list

    # ------------------------------------------------------------------ patient split
    @staticmethod
    def _check_patient_split(cfg: Optional[dict]) -> Optional[dict]:
        if cfg is None:
            return None
        cfg = dict(cfg)
        unknown = set(cfg) - {'ratio', 'subset', 'seed'}
        if unknown:
            raise ValueError(f'patient_split: unknown keys {sorted(unknown)}; use ratio, subset, '
                             f'seed')
        ratio = cfg.get('ratio', 0.8)
        if not 0 < ratio < 1:
            raise ValueError(f'patient_split: ratio={ratio} must be between 0 and 1 (exclusive)')
        subset = cfg.get('subset', 'train')
        if subset not in ('train', 'val'):
            raise ValueError(f"patient_split: subset={subset!r}, expected 'train' or 'val'")
        return dict(ratio=float(ratio), subset=subset, seed=int(cfg.get('seed', 0)))

    def _apply_patient_split(self, data_list: List[dict]) -> List[dict]:
        if any(d['patient_id'] is None or 'gt_label' not in d for d in data_list):
            raise CNMCDataError(f'patient_split needs patient ids and labels; the {self.split} '
                                f'split has none (use it on train or prelim_test)')
        train_patients = split_patients(
            [d['patient_id'] for d in data_list], [d['gt_label'] for d in data_list],
            self.patient_split['ratio'], self.patient_split['seed'])
        keep_train = self.patient_split['subset'] == 'train'
        return [d for d in data_list if (d['patient_id'] in train_patients) == keep_train]

    # ------------------------------------------------------------------ errors
    def _image_ok(self, path: str) -> bool:
        problem = check_image_file(path, self.max_image_size)
        if problem is None:
            return True
        self._fail('bad_image', f'{path}: {problem}; replace or remove the file')
        return False


    # ------------------------------------------------------------------ labels
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


def _patient_sort_key(pid: str) -> Tuple[int, int, str]:
    digits = pid.lstrip('H')
    return (pid.startswith('H'), int(digits) if digits.isdigit() else -1, pid)


def split_patients(patients: Sequence[str],
                   labels: Sequence[int],
                   ratio: float = 0.8,
                   seed: int = 0) -> set:
    """Choose the training patients of a patient-wise split, stratified by class.

    Each patient is assigned to the class most of its cells have (in C-NMC every patient has
    one class). Within each class the patients, sorted, are shuffled with ``seed`` and the first
    ``round(ratio * n)`` go to training, clamped to ``[1, n - 1]`` when ``n >= 2`` so that both
    sides get every class that has two patients or more; a class's only patient trains.

    Args:
        patients (Sequence[str]): The patient id of each sample.
        labels (Sequence[int]): The label of each sample.
        ratio (float): Fraction of each class's patients on the training side.
        seed (int): Shuffle seed; the same seed gives the same split.

    Returns:
        set: The patient ids on the training side; the others form the validation side.
    """
    votes = defaultdict(Counter)
    for pid, label in zip(patients, labels):
        votes[pid][int(label)] += 1
    by_class = defaultdict(list)
    for pid, counter in votes.items():
        # most common class; ties go to the smaller label so the result is order-free
        label = min(counter, key=lambda c: (-counter[c], c))
        by_class[label].append(pid)
    rng = np.random.default_rng(seed)
    train = set()
    for label in sorted(by_class):
        members = sorted(by_class[label], key=_patient_sort_key)
        n = len(members)
        k = int(round(ratio * n))
        k = min(max(k, 1), n - 1) if n >= 2 else n  # a lone patient trains
        order = rng.permutation(n)
        train.update(members[i] for i in order[:k])
    return train
