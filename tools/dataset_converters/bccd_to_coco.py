"""Convert BCCD (Pascal VOC layout) to COCO json for mmdet, with checked annotations and a fixed
split::

    python tools/dataset_converters/bccd_to_coco.py [SRC] [-o data/bccd] [--split 256 74 34]
        [--seed 0] [--on-error raise|skip] [--copy] [--clip-tolerance 16] [--verify-decode]
        [--max-image-size 4096] [--download [--cache-dir data/downloads]]

SRC defaults to ``../shared/data/BCCD``; with ``--download`` a missing SRC is fetched from
https://github.com/Shenggan/BCCD_Dataset. Exit status 0 when the files are written, 1 (with
every problem listed) when the data has problems. SRC holds::

    BCCD/
      Annotations/BloodImage_00000.xml ...     one VOC XML per image
      JPEGImages/BloodImage_00000.jpg ...      the images (BCCD: 364 JPEGs, 640x480)
      ImageSets/Main/{train,val,test,trainval}.txt   the dataset's own split (optional)

and writes into the output folder (``-o``, default ``data/bccd``)::

    annotations/train.json, val.json, test.json     the seeded, stratified 256 / 74 / 34 split
    annotations/imagesets_{train,val,test,trainval}.json   the dataset's own ImageSets split
    JPEGImages -> <src>/JPEGImages                   a symlink (``--copy`` copies)

COCO ``file_name`` is the bare image name, so a config reads ``data_root='data/bccd/'``,
``data_prefix=dict(img='JPEGImages/')``, ``ann_file='annotations/train.json'``.

Categories are written in the fixed order ``RBC``, ``WBC``, ``Platelets`` with ids 1, 2, 3.
mmdet's ``CocoDataset`` and ``CocoMetric`` map labels by the order of the json's categories
(``COCO.get_cat_ids`` keeps file order), so that order must equal the classes order of
:class:`mmbloodcell.datasets.BCCDDataset` (this tool reads them from its ``METAINFO``); label
``i`` is category id ``i + 1``.

Boxes
-----
VOC ``xmin, ymin, xmax, ymax`` are read as continuous pixel-edge coordinates and written as COCO
``[x, y, w, h] = [xmin, ymin, xmax - xmin, ymax - ymin]`` (BCCD boxes span 1..640 x 1..480, so
``xmax == width`` is inside the image). Each box is checked against the image size read from
the image file's header (the XML ``<size>`` must agree with it), with the checks
:class:`~mmbloodcell.datasets.BCCDDataset` applies to the COCO boxes
(:func:`mmbloodcell.datasets.image_checks.box_problem`):

=====================================  ===============================================
case                                   result
=====================================  ===============================================
past the right/bottom edge by at most  clipped to the image, logged as a warning naming
``clip_tolerance`` px (default 16)     the file and the box, counted as *clipped*
zero area (``xmax == xmin`` or         dropped, logged as a warning, counted as
``ymax == ymin``)                      *dropped* (BCCD has two: single-pixel RBC "boxes"
                                       in BloodImage_00338.xml and BloodImage_00343.xml)
negative coordinate, inverted          problem (see below)
(``xmax < xmin``), fully outside,
past the edge by more than the
tolerance, missing, non-numeric or
non-finite coordinates, unknown
class name
=====================================  ===============================================

Images and files
----------------
Problems at image level: unreadable XML, an XML whose image is missing on disk, an image that
no XML references, two XMLs naming the same image (duplicate file names) or two images with the
same stem, a zero-byte file, a file that is not an image (PIL cannot identify it), a truncated
JPEG/PNG/BMP (no end-of-image marker, fewer pixel rows than the BMP header announces;
``--verify-decode`` decodes every non-BMP image fully), an image wider or taller than
``--max-image-size`` (default 4096 px), an XML ``<size>`` that disagrees with the image, an image
with no (valid) object, and an ImageSets id without annotation. The image files are checked by
:func:`mmbloodcell.datasets.image_checks.inspect_image_file`, as ``BCCDDataset`` checks them
with ``check_images=True``.

With ``--on-error raise`` (default; ``on_error='raise'`` of :func:`convert`) all problems are
collected and raised together in one :class:`BCCDConversionError` that lists each as
``annotation BloodImage_00123.xml: box (600, 10, 700, 50) extends 60 px past image 640x480 ...;
fix: ...``. With ``--on-error skip`` each is logged and skipped (the box, or the whole image for
image-level problems) and counted in the summary. The real BCCD converts with the default
policy (2 zero-area boxes dropped).

Split algorithm (``train`` / ``val`` / ``test`` = 256 / 74 / 34 by default)
--------------------------------------------------------------------------
1. Each class's *frequency* is the number of images that contain it. Each image's *stratum* is
   the rarest class it contains (fewest images first; ties by class order). For BCCD that puts
   all images with platelets in one stratum, then images with RBC, then the few WBC-only ones.
2. Images are sorted by name within each stratum and shuffled with ``random.Random(seed)``
   (strata in rarity order, one generator), and the strata are concatenated, rarest first.
3. Walking that list, each image goes to the split whose count lags furthest behind its
   proportional target (``target * i / n`` after ``i`` images; ties to the earlier split), so
   every stratum is spread over the splits in proportion to their sizes and the split sizes are
   exact.
4. If a split still lacks a class (only possible on tiny data), an image carrying the class is
   swapped in from the split that has the most images with it, in exchange for an image whose
   classes the receiving split holds at least twice; if no swap exists an error says so.

If the requested sizes do not add up to the number of valid images (e.g. after skips), they are
scaled proportionally (largest remainder) with a warning. Image and annotation ids are global
(1-based, in annotation-file name order), so the same image has the same id in every json.

Image formats: grayscale, RGBA, palette and 16-bit images are accepted (their header is
checked like any other); ``LoadImageFromFile`` (``color_type='color'``, the default) reads each
of them as 8-bit 3-channel BGR, so the training pipeline sees the same kind of array for all.

Determinism: the same input gives the same bytes out (keys sorted, fixed separators, no
timestamps, files written to a temporary name and renamed).
"""
import argparse
import json
import logging
import os
import os.path as osp
import random
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.datasets.bccd import BCCDDataset  # noqa: E402
from mmbloodcell.datasets.image_checks import (box_problem, compact,  # noqa: E402
                                               inspect_image_file)
from mmbloodcell.datasets.skipping import ON_ERROR_CHOICES  # noqa: E402
from mmbloodcell.utils.fileio import atomic_write_bytes  # noqa: E402
from mmbloodcell.utils.paths import IMAGE_EXTENSIONS  # noqa: E402

CLASSES: Tuple[str, ...] = tuple(BCCDDataset.METAINFO['classes'])
CATEGORY_IDS: Dict[str, int] = {name: i + 1 for i, name in enumerate(CLASSES)}
SPLIT_NAMES: Tuple[str, ...] = ('train', 'val', 'test')
DEFAULT_SPLIT: Tuple[int, int, int] = (256, 74, 34)
IMAGESET_NAMES: Tuple[str, ...] = ('train', 'val', 'test', 'trainval')
DEFAULT_CLIP_TOLERANCE = 16.0
#: Images wider or taller than this are problems (``image_too_large``): BCCD's are 640x480, and
#: a far larger file is a wrong export (a whole slide, an upscaled copy) that would only cost
#: memory and time after the pipeline's Resize. ``max_image_size=None`` turns the check off.
DEFAULT_MAX_IMAGE_SIZE = 4096
BCCD_REPO_URL = 'https://github.com/Shenggan/BCCD_Dataset'
BCCD_ARCHIVE_URL = BCCD_REPO_URL + '/archive/refs/heads/master.zip'

logger = logging.getLogger(__name__)

# Problems that concern one box (skip mode drops the box); all others drop the whole image.
BOX_KINDS = frozenset({'unknown_class', 'bad_box', 'negative_box', 'inverted_box', 'outside_box'})


@dataclass(frozen=True)
class Problem:
    """One finding about one file.

    Args:
        subject (str): What the file is: ``'annotation'``, ``'image'`` or ``'image set'``.
        file (str): The file's name (for images and annotations the bare name, e.g.
            ``BloodImage_00123.xml``; for image sets the path under the dataset root).
        kind (str): A short key, e.g. ``'outside_box'``, used for the counts in the summary.
        reason (str): What is wrong and how to fix it.
    """
    subject: str
    file: str
    kind: str
    reason: str

    def __str__(self) -> str:
        return f'{self.subject} {self.file}: {self.reason}'


class BCCDConversionError(ValueError):
    """Raised with ``on_error='raise'`` when the dataset has problems; lists every one."""

    def __init__(self, problems: Sequence[Problem], root: str, max_listed: int = 50):
        self.problems = list(problems)
        lines = [f'  - {p}' for p in self.problems[:max_listed]]
        if len(self.problems) > max_listed:
            lines.append(f'  ... and {len(self.problems) - max_listed} more')
        super().__init__(
            f'{len(self.problems)} problem(s) in the BCCD data at {root}:\n' + '\n'.join(lines) +
            '\nFix the files listed, or rerun with --on-error skip (on_error="skip") to skip '
            'them; each skip is logged and counted.')


@dataclass
class Box:
    """A checked box in pixel-edge coordinates ``(x1, y1, x2, y2)``."""
    label: str
    x1: float
    y1: float
    x2: float
    y2: float

    def coco_bbox(self) -> List[float]:
        return [compact(self.x1), compact(self.y1), compact(self.x2 - self.x1),
                compact(self.y2 - self.y1)]


@dataclass
class ImageRecord:
    """One image with its checked boxes.

    ``stem`` is the annotation file's stem (the VOC id used by ImageSets). ``image_id`` and
    ``first_ann_id`` (the id of its first box) are global, 1-based, in annotation-name order.
    """
    stem: str
    xml_name: str
    file_name: str
    width: int
    height: int
    boxes: List[Box]
    image_id: int = 0
    first_ann_id: int = 0

    @property
    def classes(self) -> frozenset:
        return frozenset(b.label for b in self.boxes)


@dataclass
class ConversionReport:
    """What a conversion found and did.

    Attributes:
        records: The valid images, in annotation-name order.
        problems: Problems (fatal with ``on_error='raise'``; skipped with ``'skip'``).
        warnings: Non-fatal findings (clipped and dropped boxes, XML without ``<size>``).
        splits: Split name -> records, for ``train``/``val``/``test`` (filled by ``convert``).
        imagesets: ImageSets name (``train``, ``val``, ``test``, ``trainval``) -> records.
        outputs: Written file paths (filled by ``convert``).
    """
    root: str
    on_error: str = 'raise'
    records: List[ImageRecord] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    warnings: List[Problem] = field(default_factory=list)
    skipped_images: Counter = field(default_factory=Counter)
    skipped_boxes: Counter = field(default_factory=Counter)
    splits: Dict[str, List[ImageRecord]] = field(default_factory=dict)
    imagesets: Dict[str, List[ImageRecord]] = field(default_factory=dict)
    outputs: List[str] = field(default_factory=list)

    @property
    def clipped_boxes(self) -> int:
        return sum(1 for w in self.warnings if w.kind == 'clipped_box')

    @property
    def dropped_boxes(self) -> int:
        return sum(1 for w in self.warnings if w.kind == 'zero_area_box')

    def summary(self) -> str:
        """A table of images and boxes per class per split, and the clip/drop/skip counts."""
        return format_summary(self)


def _fmt_box(coords: Sequence[float]) -> str:
    return '(' + ', '.join(str(compact(c)) for c in coords) + ')'


# --------------------------------------------------------------------------------------------
# Reading and checking
# --------------------------------------------------------------------------------------------

@dataclass
class _RawObject:
    index: int
    name: str
    coords: Optional[Tuple[float, float, float, float]]
    coords_text: str


@dataclass
class _RawAnnotation:
    xml_name: str
    filename: str
    size: Optional[Tuple[int, int]]
    objects: List[_RawObject]


def _parse_xml(path: str) -> _RawAnnotation:
    """Parse one VOC XML. Raises ``ValueError`` with the reason if it cannot be read."""
    xml_name = osp.basename(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f'not valid XML ({e}); fix: repair or remove the file') from None
    if root.tag != 'annotation':
        raise ValueError(f'root element is <{root.tag}>, not <annotation>; fix: use Pascal VOC '
                         'XML')
    filename = (root.findtext('filename') or '').strip()
    size = None
    width_text = root.findtext('size/width')
    height_text = root.findtext('size/height')
    if width_text is not None and height_text is not None:
        try:
            w, h = int(float(width_text)), int(float(height_text))
        except ValueError:
            raise ValueError(f'<size> {width_text!r}x{height_text!r} is not a number; fix: '
                             'correct <size>') from None
        if w > 0 and h > 0:
            size = (w, h)
    objects = []
    for index, obj in enumerate(root.findall('object')):
        name = (obj.findtext('name') or '').strip()
        bnd = obj.find('bndbox')
        texts = [None if bnd is None else bnd.findtext(k) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
        coords_text = '(' + ', '.join(str(t).strip() if t is not None else '?' for t in texts) + ')'
        try:
            coords = tuple(float(t) for t in texts)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            coords = None
        objects.append(_RawObject(index, name, coords, coords_text))  # type: ignore[arg-type]
    return _RawAnnotation(xml_name, filename, size, objects)


_BOX_FIXES = {
    'bad_box': '; fix: write xmin, ymin, xmax, ymax as numbers',
    'negative_box': '; fix: correct the box (coordinates are pixels inside the image)',
    'inverted_box': '; fix: swap the coordinates',
    'zero_area_box': '; dropped (fix: redraw it)',
    'outside_box': '; fix: correct the box or the <size>',
}


def _check_box(obj: _RawObject, width: int, height: int,
               clip_tolerance: float) -> Tuple[Optional[Box], Optional[Problem]]:
    """Check one object. Returns ``(box, None)``, ``(None, problem)``, or ``(box, warning)``
    for a clipped box, or ``(None, warning)`` for a dropped zero-area box (``subject`` and
    ``file`` of the returned problem are filled by the caller)."""
    what = f'object #{obj.index + 1} ({obj.name or "no name"})'
    if obj.name not in CATEGORY_IDS:
        return None, Problem('', '', 'unknown_class',
                             f'{what} has unknown class {obj.name!r} (known: '
                             f'{", ".join(CLASSES)}); fix: rename it in the XML or rerun with '
                             '--on-error skip to drop it')
    if obj.coords is None:
        return None, Problem('', '', 'bad_box',
                             f'{what}: <bndbox> {obj.coords_text} is missing or not numeric; '
                             'fix: write xmin, ymin, xmax, ymax as numbers')
    x1, y1, x2, y2 = obj.coords
    found = box_problem(x1, y1, x2, y2, width, height, clip_tolerance)
    if found is None:
        return Box(obj.name, x1, y1, x2, y2), None
    kind, fact = found
    text = f'{what}: box {_fmt_box(obj.coords)} {fact}'
    if kind == 'clipped_box':
        clipped = (x1, y1, min(x2, width), min(y2, height))
        return Box(obj.name, *clipped), Problem('', '', kind,
                                                f'{text}; clipped to {_fmt_box(clipped)}')
    if kind == 'outside_box' and x1 < width and y1 < height:  # past the edge, not clipped
        fix = (f' (clip tolerance {compact(clip_tolerance)} px); fix: correct the box, or raise '
               '--clip-tolerance to clip it')
    else:
        fix = _BOX_FIXES[kind]
    return None, Problem('', '', kind, text + fix)


def _with_file(p: Problem, subject: str, file: str) -> Problem:
    return Problem(subject, file, p.kind, p.reason)


def load_voc(root: str,
             on_error: str = 'raise',
             clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
             verify_decode: bool = False,
             max_image_size: Optional[int] = DEFAULT_MAX_IMAGE_SIZE) -> ConversionReport:
    """Read and check a VOC-layout BCCD tree.

    Args:
        root (str): Folder holding ``Annotations/`` and ``JPEGImages/``.
        on_error (str): ``'raise'`` raises :class:`BCCDConversionError` listing all problems;
            ``'skip'`` logs each, skips the box or image, and counts it.
        clip_tolerance (float): Boxes past the right/bottom edge by at most this many pixels are
            clipped with a warning; further out they are problems.
        verify_decode (bool): Decode every image fully (slower) instead of checking the header
            and end marker.
        max_image_size (int, optional): Images wider or taller than this are problems
            (``image_too_large``). None turns the check off. Defaults to 4096.

    Returns:
        ConversionReport: ``records`` holds the valid images (ids assigned in name order),
        ``imagesets`` the dataset's own split (from ``ImageSets/Main``, if present).
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f'on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}')
    ann_dir, img_dir = osp.join(root, 'Annotations'), osp.join(root, 'JPEGImages')
    for d in (ann_dir, img_dir):
        if not osp.isdir(d):
            raise FileNotFoundError(
                f'{d} not found: pass the BCCD folder that holds Annotations/ and JPEGImages/ '
                '(Pascal VOC layout), or use --download')
    report = ConversionReport(root=root, on_error=on_error)

    def problem(p: Problem) -> None:
        report.problems.append(p)
        if on_error == 'skip':
            (report.skipped_boxes if p.kind in BOX_KINDS else report.skipped_images)[p.kind] += 1
            logger.warning('skipped: %s', p)

    def warn(p: Problem) -> None:
        report.warnings.append(p)
        logger.warning('%s', p)

    xml_names = sorted(n for n in os.listdir(ann_dir) if n.lower().endswith('.xml'))
    image_names = sorted(n for n in os.listdir(img_dir)
                         if osp.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
    image_set = set(image_names)

    # Two images with the same stem (a.jpg and a.png, or a.jpg and a.JPG) are ambiguous.
    by_stem: Dict[str, List[str]] = defaultdict(list)
    for n in image_names:
        by_stem[osp.splitext(n)[0].lower()].append(n)
    ambiguous = set()
    for names in by_stem.values():
        if len(names) > 1:
            ambiguous.update(names)
            for n in names:
                problem(Problem('image', n, 'duplicate_file_name',
                                f'duplicate file name: {", ".join(names)} share the stem; fix: '
                                'keep one of them'))

    # Parse the XMLs and resolve the image each names.
    parsed: List[Tuple[_RawAnnotation, str]] = []
    unreadable_stems = set()
    for xml_name in xml_names:
        try:
            raw = _parse_xml(osp.join(ann_dir, xml_name))
        except ValueError as e:
            problem(Problem('annotation', xml_name, 'xml_unreadable', str(e)))
            unreadable_stems.add(osp.splitext(xml_name)[0].lower())
            continue
        stem = osp.splitext(xml_name)[0]
        wanted = osp.basename(raw.filename.replace('\\', '/')) or stem + '.jpg'
        image_name = wanted
        if wanted not in image_set and not osp.splitext(wanted)[1]:
            candidates = by_stem.get(wanted.lower(), [])
            image_name = candidates[0] if len(candidates) == 1 else wanted
        if image_name not in image_set:
            source = 'its <filename>' if raw.filename else 'its name'
            problem(Problem('annotation', xml_name, 'image_missing',
                            f'image {wanted} (from {source}) not found in {img_dir}; fix: add '
                            'the image or remove the annotation'))
            continue
        parsed.append((raw, image_name))

    # Two XMLs naming the same image: keep the one whose stem matches, else the first.
    by_image: Dict[str, List[_RawAnnotation]] = defaultdict(list)
    for raw, image_name in parsed:
        by_image[image_name].append(raw)
    referenced = set(by_image)
    kept: List[Tuple[_RawAnnotation, str]] = []
    for raw, image_name in parsed:
        claimants = by_image[image_name]
        if len(claimants) > 1:
            stem = osp.splitext(image_name)[0]
            matching = [r for r in claimants if osp.splitext(r.xml_name)[0] == stem]
            keeper = matching[0] if matching else claimants[0]
            if raw is not keeper:
                others = ', '.join(r.xml_name for r in claimants if r is not raw)
                problem(Problem('annotation', raw.xml_name, 'duplicate_file_name',
                                f'duplicate file name: names image {image_name}, as {others} '
                                'does; fix: correct its <filename>'))
                continue
        kept.append((raw, image_name))

    for n in image_names:
        if (n not in referenced and n not in ambiguous
                and osp.splitext(n)[0].lower() not in unreadable_stems):
            problem(Problem('image', n, 'annotation_missing',
                            f'no annotation names it (expected Annotations/'
                            f'{osp.splitext(n)[0]}.xml); fix: annotate it or remove it'))

    for raw, image_name in kept:
        if image_name in ambiguous:
            continue  # reported above
        xml_name = raw.xml_name
        check = inspect_image_file(osp.join(img_dir, image_name), max_image_size or None,
                                   verify_decode, max_size_option='--max-image-size')
        if check.problem is not None:
            problem(Problem('image', image_name, check.kind, check.with_fix()))
            continue
        width, height = check.width, check.height
        if raw.size is None:
            warn(Problem('annotation', xml_name, 'size_from_image',
                         f'no usable <size>; using the image size {width}x{height}'))
        elif raw.size != (width, height):
            problem(Problem('annotation', xml_name, 'size_mismatch',
                            f'<size> {raw.size[0]}x{raw.size[1]} disagrees with image '
                            f'{image_name} {width}x{height}; fix: correct <size> and check '
                            'the boxes were drawn on this image'))
            continue
        boxes: List[Box] = []
        box_errors = 0
        for obj in raw.objects:
            box, finding = _check_box(obj, width, height, clip_tolerance)
            if finding is not None:
                finding = _with_file(finding, 'annotation', xml_name)
                if finding.kind in ('clipped_box', 'zero_area_box'):
                    warn(finding)
                else:
                    problem(finding)
                    box_errors += 1
            if box is not None:
                boxes.append(box)
        if not boxes:
            if box_errors and on_error == 'raise':
                continue  # the bad boxes are reported; "no valid object" would repeat them
            if not raw.objects:
                reason = 'no objects (image without boxes); fix: annotate it or remove the pair'
            else:
                reason = (f'no valid object left of {len(raw.objects)}; fix: correct the boxes '
                          'listed for this file')
            problem(Problem('annotation', xml_name, 'no_objects', reason))
            continue
        if box_errors and on_error == 'raise':
            continue  # already reported; the error is raised below
        report.records.append(
            ImageRecord(osp.splitext(xml_name)[0], xml_name, image_name, width, height, boxes))

    next_ann_id = 1
    for i, rec in enumerate(report.records):
        rec.image_id, rec.first_ann_id = i + 1, next_ann_id
        next_ann_id += len(rec.boxes)
    xml_stems = {osp.splitext(n)[0] for n in xml_names}
    report.imagesets = _read_imagesets(root, report.records, xml_stems, problem)
    if report.problems and on_error == 'raise':
        raise BCCDConversionError(report.problems, root)
    return report


def _read_imagesets(root: str, records: Sequence[ImageRecord], xml_stems: set,
                    problem) -> Dict[str, List[ImageRecord]]:
    """Map ``ImageSets/Main/{train,val,test,trainval}.txt`` ids to ``records``.

    Ids of images skipped for other problems are left out (they are reported already); ids with
    no annotation file at all are problems. Returns ``{}`` when the folder is absent.
    """
    main = osp.join(root, 'ImageSets', 'Main')
    if not osp.isdir(main):
        logger.info('%s not found: no imagesets_*.json written', main)
        return {}
    by_stem = {r.stem: r for r in records}
    sets: Dict[str, List[ImageRecord]] = {}
    for name in IMAGESET_NAMES:
        path = osp.join(main, f'{name}.txt')
        if not osp.isfile(path):
            continue
        rel = f'ImageSets/Main/{name}.txt'
        found, seen, left_out = [], set(), 0
        with open(path) as f:
            for line in f:
                parts = line.split()
                if not parts or parts[0] in seen:
                    continue
                stem = parts[0]
                seen.add(stem)
                if stem in by_stem:
                    found.append(by_stem[stem])
                elif stem in xml_stems:
                    left_out += 1
                else:
                    problem(Problem('image set', rel, 'imageset_unknown_id',
                                    f'id {stem!r} has no Annotations/{stem}.xml; fix: remove the '
                                    'line or add the annotation'))
        if left_out:
            logger.warning('image set %s: %d id(s) of skipped images left out', rel, left_out)
        sets[name] = sorted(found, key=lambda r: r.image_id)
    return sets


# --------------------------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------------------------

def _scale_sizes(sizes: Sequence[int], total: int) -> List[int]:
    """Scale ``sizes`` to sum to ``total`` (largest remainder, ties to the earlier split)."""
    s = sum(sizes)
    raw = [n * total / s for n in sizes]
    out = [int(r) for r in raw]
    order = sorted(range(len(sizes)), key=lambda i: (-(raw[i] - out[i]), i))
    for i in order[:total - sum(out)]:
        out[i] += 1
    return out


def stratified_split(records: Sequence[ImageRecord],
                     sizes: Sequence[int] = DEFAULT_SPLIT,
                     seed: int = 0,
                     names: Sequence[str] = SPLIT_NAMES) -> Dict[str, List[ImageRecord]]:
    """Split records into ``names`` with the given sizes, stratified on each image's rarest
    class, so that every split contains every class (see the module docstring).

    Args:
        records: The images; each must have at least one box.
        sizes: One size per split, each >= 1. If they do not add up to ``len(records)`` they
            are scaled proportionally (with a warning).
        seed: Seed of the shuffle.
        names: Split names.

    Returns:
        dict: split name -> records sorted by image id.

    Raises:
        ValueError: Bad sizes, or a class that cannot be put into every split.
    """
    if len(sizes) != len(names):
        raise ValueError(f'need {len(names)} split sizes ({"/".join(names)}), got {list(sizes)}')
    if any(n < 1 for n in sizes):
        raise ValueError(f'split sizes must be >= 1, got {list(sizes)}')
    total = len(records)
    if total < len(names):
        raise ValueError(f'{total} valid images cannot fill {len(names)} splits')
    sizes = list(sizes)
    if sum(sizes) != total:
        scaled = _scale_sizes(sizes, total)
        logger.warning('split sizes %s add up to %d but there are %d valid images; scaled to %s',
                       '/'.join(map(str, sizes)), sum(sizes), total, '/'.join(map(str, scaled)))
        if min(scaled) < 1:
            raise ValueError(f'split sizes {sizes} scaled to {scaled} for {total} images leave '
                             'a split empty; fix: choose other sizes')
        sizes = scaled

    freq = Counter(c for r in records for c in r.classes)
    rarity = sorted(freq, key=lambda c: (freq[c], CLASSES.index(c) if c in CLASSES else 99, c))
    strata: Dict[str, List[ImageRecord]] = {c: [] for c in rarity}
    for r in sorted(records, key=lambda r: r.stem):
        strata[next(c for c in rarity if c in r.classes)].append(r)
    rng = random.Random(seed)
    ordered: List[ImageRecord] = []
    for c in rarity:
        group = strata[c]
        rng.shuffle(group)
        ordered.extend(group)

    assigned: List[List[ImageRecord]] = [[] for _ in names]
    for i, rec in enumerate(ordered, start=1):
        open_splits = [k for k in range(len(names)) if len(assigned[k]) < sizes[k]]
        # deficit of split k after i images, scaled by ``total`` to stay in exact integers
        k = max(open_splits, key=lambda k: (sizes[k] * i - len(assigned[k]) * total, -k))
        assigned[k].append(rec)

    _ensure_class_coverage(assigned, rarity, names)
    return {name: sorted(group, key=lambda r: r.image_id) for name, group in zip(names, assigned)}


def _ensure_class_coverage(splits: List[List[ImageRecord]], classes: Sequence[str],
                           names: Sequence[str]) -> None:
    """Swap images between splits (in place) until every split holds every class."""

    def count(split: List[ImageRecord], c: str) -> int:
        return sum(1 for r in split if c in r.classes)

    for c in classes:
        n_images = sum(count(s, c) for s in splits)
        if n_images < len(splits):
            raise ValueError(f'class {c!r} appears in only {n_images} image(s), fewer than the '
                             f'{len(splits)} splits; fix: annotate more images or change the '
                             'split')
    changed = True
    while changed:
        changed = False
        for k, split in enumerate(splits):
            for c in classes:
                if count(split, c) > 0:
                    continue
                donors = sorted((t for t in range(len(splits)) if t != k),
                                key=lambda t: (-count(splits[t], c), t))
                swapped = False
                for t in donors:
                    if count(splits[t], c) < 2:
                        continue
                    give = sorted((r for r in splits[t] if c in r.classes), key=lambda r: r.stem)
                    take = sorted((r for r in split
                                   if all(count(split, d) >= 2 for d in r.classes)),
                                  key=lambda r: (len(r.classes), r.stem))
                    for g in give:
                        # the donor must keep every class it gives away at least once
                        lost = [d for d in g.classes if count(splits[t], d) < 2]
                        for r in take:
                            if all(d in r.classes for d in lost):
                                splits[t].remove(g)
                                split.remove(r)
                                splits[t].append(r)
                                split.append(g)
                                swapped = changed = True
                                break
                        if swapped:
                            break
                    if swapped:
                        break
                if not swapped:
                    raise ValueError(f'cannot give split {names[k]!r} an image with class '
                                     f'{c!r} without taking a class from another split; fix: '
                                     'change the split sizes')


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def categories() -> List[dict]:
    """COCO categories in the fixed order of :data:`CLASSES` (ids 1, 2, 3)."""
    return [{'id': CATEGORY_IDS[n], 'name': n, 'supercategory': 'blood_cell'} for n in CLASSES]


def build_coco(records: Sequence[ImageRecord], split: str) -> dict:
    """COCO detection dict for ``records`` (image and annotation ids are global)."""
    images, annotations = [], []
    for rec in sorted(records, key=lambda r: r.image_id):
        images.append({'id': rec.image_id, 'file_name': rec.file_name,
                       'width': rec.width, 'height': rec.height})
        for j, box in enumerate(rec.boxes):
            x, y, w, h = box.coco_bbox()
            annotations.append({'id': rec.first_ann_id + j, 'image_id': rec.image_id,
                                'category_id': CATEGORY_IDS[box.label], 'bbox': [x, y, w, h],
                                'area': compact(w * h), 'iscrowd': 0})
    return {
        'info': {'description': 'BCCD blood cell detection, converted by mmbloodcell '
                                '(tools/dataset_converters/bccd_to_coco.py)',
                 'url': BCCD_REPO_URL, 'split': split},
        'licenses': [{'id': 1, 'name': 'MIT', 'url': BCCD_REPO_URL + '/blob/master/LICENSE'}],
        'images': images,
        'annotations': annotations,
        'categories': categories(),
    }


def dump_json(obj: dict, path: str) -> None:
    """Write ``obj`` deterministically (sorted keys, fixed separators), atomically."""
    text = json.dumps(obj, sort_keys=True, separators=(',', ':'), ensure_ascii=True) + '\n'
    atomic_write_bytes(text.encode('ascii'), path)


def _place_images(src_img_dir: str, dst: str, records: Sequence[ImageRecord],
                  copy_images: bool) -> None:
    src_img_dir = osp.abspath(src_img_dir)
    if osp.islink(dst):
        os.remove(dst)
    elif osp.exists(dst) and not copy_images:
        if osp.samefile(dst, src_img_dir):
            return
        raise FileExistsError(f'{dst} exists and is not a symlink; fix: remove it, or pass '
                              '--copy to refresh the copied images')
    if not copy_images:
        os.symlink(src_img_dir, dst, target_is_directory=True)
        return
    os.makedirs(dst, exist_ok=True)
    for rec in records:
        target = osp.join(dst, rec.file_name)
        source = osp.join(src_img_dir, rec.file_name)
        if not (osp.exists(target) and osp.getsize(target) == osp.getsize(source)):
            shutil.copyfile(source, target)


def convert(src: str,
            out_dir: str = 'data/bccd',
            split_sizes: Sequence[int] = DEFAULT_SPLIT,
            seed: int = 0,
            on_error: str = 'raise',
            copy_images: bool = False,
            clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
            verify_decode: bool = False,
            max_image_size: Optional[int] = DEFAULT_MAX_IMAGE_SIZE) -> ConversionReport:
    """Check ``src``, split it, and write the COCO files and the image folder into ``out_dir``.

    Args:
        src (str): BCCD folder in VOC layout.
        out_dir (str): Output folder (``annotations/`` and ``JPEGImages`` go there).
        split_sizes (Sequence[int]): train / val / test sizes. Defaults to 256 / 74 / 34.
        seed (int): Seed of the split. Defaults to 0.
        on_error (str): ``'raise'`` (default) or ``'skip'``, see :func:`load_voc`.
        copy_images (bool): Copy the valid images instead of symlinking ``JPEGImages``.
        clip_tolerance (float): See :func:`load_voc`.
        verify_decode (bool): See :func:`load_voc`.
        max_image_size (int, optional): See :func:`load_voc`.

    Returns:
        ConversionReport: with ``splits``, ``imagesets`` and ``outputs`` filled.
    """
    report = load_voc(src, on_error, clip_tolerance, verify_decode, max_image_size)
    if not report.records:
        raise ValueError(f'no valid images in {src}; see the problems logged above')
    report.splits = stratified_split(report.records, split_sizes, seed)
    os.makedirs(out_dir, exist_ok=True)
    _place_images(osp.join(src, 'JPEGImages'), osp.join(out_dir, 'JPEGImages'), report.records,
                  copy_images)
    ann_dir = osp.join(out_dir, 'annotations')
    for name, recs in report.splits.items():
        path = osp.join(ann_dir, f'{name}.json')
        dump_json(build_coco(recs, name), path)
        report.outputs.append(path)
    for name, recs in report.imagesets.items():
        path = osp.join(ann_dir, f'imagesets_{name}.json')
        dump_json(build_coco(recs, f'imagesets_{name}'), path)
        report.outputs.append(path)
    report.outputs.append(osp.join(out_dir, 'JPEGImages'))
    return report


def format_summary(report: ConversionReport) -> str:
    """Images and boxes per class per split, then the clipped / dropped / skipped counts."""
    header = f'{"split":<20}{"images":>7}' + ''.join(f'{c + " boxes (imgs)":>24}'
                                                     for c in CLASSES) + f'{"boxes":>8}'
    lines = [header, '-' * len(header)]
    groups = [(n, r) for n, r in report.splits.items()]
    groups += [(f'imagesets_{n}', r) for n, r in report.imagesets.items()]
    groups.append(('all', report.records))
    for name, recs in groups:
        boxes = Counter(b.label for r in recs for b in r.boxes)
        imgs = Counter(c for r in recs for c in r.classes)
        cells = ''.join(f'{f"{boxes[c]} ({imgs[c]})":>24}' for c in CLASSES)
        lines.append(f'{name:<20}{len(recs):>7}{cells}{sum(boxes.values()):>8}')
    lines.append(f'clipped boxes: {report.clipped_boxes}; dropped zero-area boxes: '
                 f'{report.dropped_boxes}; skipped images: {sum(report.skipped_images.values())}'
                 f'{_fmt_counter(report.skipped_images)}; skipped boxes: '
                 f'{sum(report.skipped_boxes.values())}{_fmt_counter(report.skipped_boxes)}')
    return '\n'.join(lines)


def _fmt_counter(counter: Counter) -> str:
    if not counter:
        return ''
    return ' (' + ', '.join(f'{k}: {v}' for k, v in sorted(counter.items())) + ')'


# --------------------------------------------------------------------------------------------
# Download and CLI
# --------------------------------------------------------------------------------------------

def _find_voc_root(top: str) -> Optional[str]:
    for dirpath, dirnames, _ in sorted(os.walk(top)):
        if 'Annotations' in dirnames and 'JPEGImages' in dirnames:
            return dirpath
    return None


def download_bccd(cache_dir: str, url: str = BCCD_ARCHIVE_URL, timeout: float = 60.0) -> str:
    """Download and unpack the BCCD GitHub archive into ``cache_dir`` (once); return the folder
    holding ``Annotations/`` and ``JPEGImages/``."""
    os.makedirs(cache_dir, exist_ok=True)
    extract_dir = osp.join(cache_dir, 'BCCD_Dataset-master')
    root = _find_voc_root(extract_dir) if osp.isdir(extract_dir) else None
    if root:
        return root
    zip_path = osp.join(cache_dir, 'BCCD_Dataset-master.zip')
    if not osp.isfile(zip_path):
        logger.info('downloading %s to %s', url, zip_path)
        part = zip_path + '.part'
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, 'wb') as f:
                shutil.copyfileobj(resp, f, length=1 << 20)
        except (urllib.error.URLError, OSError) as e:
            if osp.exists(part):
                os.remove(part)
            raise RuntimeError(f'could not download BCCD from {url} ({e}); fix: download it by '
                               f'hand and pass the folder holding Annotations/ and '
                               'JPEGImages/') from e
        os.replace(part, zip_path)
    tmp_dir = tempfile.mkdtemp(prefix='.bccd_extract', dir=cache_dir)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            top = osp.realpath(tmp_dir)
            for member in zf.namelist():
                target = osp.realpath(osp.join(tmp_dir, member))
                if target != top and not target.startswith(top + os.sep):
                    raise RuntimeError(f'{zip_path}: unsafe path {member!r} in archive')
            zf.extractall(tmp_dir)
        inner = [osp.join(tmp_dir, n) for n in os.listdir(tmp_dir)]
        src = inner[0] if len(inner) == 1 and osp.isdir(inner[0]) else tmp_dir
        os.replace(src, extract_dir)
    except zipfile.BadZipFile as e:
        os.remove(zip_path)
        raise RuntimeError(f'{zip_path} is not a valid zip ({e}); it was removed, rerun to '
                           'download it again') from e
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    root = _find_voc_root(extract_dir)
    if root is None:
        raise RuntimeError(f'no folder with Annotations/ and JPEGImages/ in {extract_dir}')
    return root


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert BCCD (Pascal VOC layout) to COCO json: a seeded, stratified '
        'train/val/test split plus the dataset\'s own ImageSets split, with every annotation '
        'checked.')
    parser.add_argument('src', nargs='?', default='../shared/data/BCCD',
                        help='BCCD folder holding Annotations/ and JPEGImages/ '
                        '(default: %(default)s)')
    parser.add_argument('-o', '--out-dir', default='data/bccd',
                        help='output folder (default: %(default)s)')
    parser.add_argument('--split', nargs=3, type=int, default=list(DEFAULT_SPLIT),
                        metavar=('TRAIN', 'VAL', 'TEST'),
                        help='split sizes (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='split seed (default: 0)')
    parser.add_argument('--on-error', choices=ON_ERROR_CHOICES, default='raise',
                        help='raise: stop and list every problem (default); skip: log, skip '
                        'and count each')
    parser.add_argument('--copy', action='store_true',
                        help='copy the images instead of symlinking JPEGImages')
    parser.add_argument('--clip-tolerance', type=float, default=DEFAULT_CLIP_TOLERANCE,
                        help='clip boxes past the image edge by at most this many pixels '
                        '(default: %(default)s)')
    parser.add_argument('--verify-decode', action='store_true',
                        help='decode every image fully (slower; default reads headers and '
                        'checks end markers)')
    parser.add_argument('--max-image-size', type=int, default=DEFAULT_MAX_IMAGE_SIZE,
                        help='images wider or taller than this are problems; 0 turns the '
                        'check off (default: %(default)s)')
    parser.add_argument('--download', action='store_true',
                        help=f'if SRC does not exist, download {BCCD_ARCHIVE_URL} into '
                        '--cache-dir and convert that')
    parser.add_argument('--cache-dir', default='data/downloads',
                        help='download cache (default: %(default)s)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """CLI entry point; returns the exit status (0 ok, 1 problems in the data)."""
    args = parse_args(argv)
    if not logging.getLogger().handlers and not logger.handlers:
        logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    src = args.src
    if not osp.isdir(osp.join(src, 'Annotations')):
        if not args.download:
            print(f'error: {src} has no Annotations/ folder; pass the BCCD folder, or add '
                  '--download to fetch it', file=sys.stderr)
            return 1
        try:
            src = download_bccd(args.cache_dir)
        except RuntimeError as e:
            print(f'error: {e}', file=sys.stderr)
            return 1
    try:
        report = convert(src, args.out_dir, args.split, args.seed, args.on_error, args.copy,
                         args.clip_tolerance, args.verify_decode, args.max_image_size or None)
    except (BCCDConversionError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(report.summary())
    print('wrote ' + ', '.join(report.outputs))
    return 0


if __name__ == '__main__':
    sys.exit(main())
