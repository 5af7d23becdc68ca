"""YOLOv8 baseline for BCCD through the ``ultralytics`` package, scored like the mmdet models.

    python tools/yolo_baseline.py export [--data-root data/bccd] [--split-prefix imagesets_]
                                         [--out work_dirs/yolo_bccd/dataset] [--copy]
    python tools/yolo_baseline.py train  [--data work_dirs/yolo_bccd/dataset/data.yaml]
                                         [--model yolov8n.yaml] [--epochs 100] [--imgsz 640]
                                         [--batch 16] [--device cpu|0] [--time-budget SECONDS]
    python tools/yolo_baseline.py test   --weights work_dirs/yolo_bccd/train/weights/best.pt
    python tools/yolo_baseline.py run    [export + train + test options]

The study compares its OpenMMLab detectors with YOLOv8. To make that comparison fair, this script

1. **exports** (``export``) the COCO json written by ``tools/dataset_converters/bccd_to_coco.py``
   (the same 256 / 74 / 34 split, or the ImageSets split) to the YOLO layout: ``images/{split}/``
   (symlinks to, or copies of, the JPEGs), ``labels/{split}/*.txt`` with one ``class cx cy w h``
   line per box (normalised by the image size) and ``data.yaml``. YOLO class ``i`` is the
   ``i``-th category of the COCO file, which is also mmdet's label ``i`` (``RBC``, ``WBC``,
   ``Platelets``);
2. **trains** (``train``) a model from an ultralytics model yaml (default ``yolov8n.yaml``:
   random initialisation, nothing is downloaded);
3. **tests** (``test``): predicts every image of the COCO test file at batch 1 (confidence
   threshold 0.001, at most 100 boxes, as for mAP evaluation), converts the predictions to
   mmdet's ``pred_instances`` and scores them with mmdet's own
   :class:`mmdet.evaluation.CocoMetric` on the COCO test json, so the keys and the numbers are
   those of ``tools/test.py`` (``coco/bbox_mAP``, ``coco/bbox_mAP_50``, ``coco/bbox_mAP_75``,
   ``coco/bbox_mAP_s/m/l``, ``coco/<class>_precision``). It also reports ``speed/latency_ms``
   and ``speed/fps`` (the :class:`~mmbloodcell.engine.hooks.LatencyHook` keys): mean wall-clock
   milliseconds of one ``predict`` call on one decoded image (letterbox, forward, NMS, box
   rescaling), after ``warmup`` calls that are not counted, CUDA synchronised. ``test`` (and
   ``run``, which does all three) print the metrics table and write
   ``<run dir>/test_metrics.json`` (:data:`mmbloodcell.analysis.logs.YOLO_METRICS_FILE`, read
   by ``tools/analysis/compare.py``).

Offline by construction: ultralytics otherwise downloads a font (``Arial.ttf``) when it checks a
dataset, a ``yolo26n.pt`` for its AMP self-check, looks for package updates and sends usage
events. :func:`ultralytics_offline` sets ``YOLO_OFFLINE=1`` and ``YOLO_CONFIG_DIR`` (default:
``<work_dir>/.ultralytics``, so nothing is written under ``$HOME``) before ultralytics is imported,
turns events and every logging integration off in memory (the settings file is not rewritten)
and replaces the font and AMP checks with local ones. Training uses ``plots=False``.

Only the export and the scoring need no ultralytics; :func:`train_yolo` and :func:`run_yolo_test`
need the optional extra: ``pip install -e .[yolo]``.
"""
import argparse
import contextlib
import json
import logging
import os
import os.path as osp
import shutil
import sys
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmbloodcell.analysis.logs import YOLO_METRICS_FILE  # noqa: E402
from mmbloodcell.utils import synchronize  # noqa: E402

SPLITS: Tuple[str, ...] = ('train', 'val', 'test')
DEFAULT_DATA_ROOT = 'data/bccd'
DEFAULT_WORK_DIR = 'work_dirs/yolo_bccd'
DEFAULT_MODEL = 'yolov8n.yaml'

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Export: COCO json -> YOLO dataset (no ultralytics needed)
# ----------------------------------------------------------------------------------------------

def coco_ann_file(data_root: str, split: str, split_prefix: str = '') -> str:
    """``<data_root>/annotations/<split_prefix><split>.json``, the converter's layout."""
    return osp.join(data_root, 'annotations', f'{split_prefix}{split}.json')


def load_coco(path: str) -> dict:
    """Read a COCO detection json and check the keys this module uses."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: convert BCCD first, e.g. '
            f'`python tools/dataset_converters/bccd_to_coco.py ../shared/data/BCCD -o data/bccd`')
    with open(path) as f:
        coco = json.load(f)
    for key in ('images', 'annotations', 'categories'):
        if key not in coco:
            raise ValueError(f'{path}: no "{key}" list, this is not a COCO detection file')
    if not coco['categories']:
        raise ValueError(f'{path}: the "categories" list is empty')
    return coco


def coco_classes(coco: dict) -> Tuple[str, ...]:
    """Class names in the order of the file's ``categories`` list: YOLO class ``i`` and mmdet
    label ``i`` are its ``i``-th entry (as ``CocoMetric`` maps label ``i`` to ``cat_ids[i]``)."""
    return tuple(c['name'] for c in coco['categories'])


def yolo_label_line(cls: int, bbox: Sequence[float], width: int, height: int) -> str:
    """One YOLO label line for a COCO box.

    Args:
        cls (int): The class index (position of the category in the COCO file).
        bbox (Sequence[float]): COCO ``[x, y, w, h]`` in pixels (top-left corner, size).
        width (int): Image width in pixels.
        height (int): Image height in pixels.

    Returns:
        str: ``"cls cx cy w h"`` with ``cx = (x + w / 2) / width``, ``cy = (y + h / 2) / height``,
        ``w / width`` and ``h / height``, each with 6 decimals.
    """
    x, y, w, h = (float(v) for v in bbox)
    cx, cy = (x + w / 2.0) / width, (y + h / 2.0) / height
    return f'{cls} {cx:.6f} {cy:.6f} {w / width:.6f} {h / height:.6f}'


def coco_to_yolo_labels(coco: dict, source: str = 'annotations') -> Dict[int, List[str]]:
    """YOLO label lines of every image of a COCO dict, keyed by image id (sorted by id; images
    without boxes map to ``[]``: YOLO reads them as background). Crowd boxes are left out
    (``CocoMetric`` ignores them too).

    Raises:
        ValueError: on a box that refers to an unknown image or category, has no area, or lies
            outside its image; the message names ``source``, the image and the box.
    """
    cls_of = {c['id']: i for i, c in enumerate(coco['categories'])}
    images = {im['id']: im for im in coco['images']}
    lines: Dict[int, List[str]] = {img_id: [] for img_id in sorted(images)}
    for ann in sorted(coco['annotations'], key=lambda a: (a['image_id'], a.get('id', 0))):
        if ann.get('iscrowd', 0):
            continue
        im = images.get(ann['image_id'])
        if im is None:
            raise ValueError(f'{source}: annotation {ann.get("id")} refers to image id '
                             f'{ann["image_id"]}, which is not in "images"')
        if ann['category_id'] not in cls_of:
            raise ValueError(f'{source}: annotation {ann.get("id")} of {im["file_name"]} has '
                             f'category id {ann["category_id"]}, not in "categories"')
        x, y, w, h = (float(v) for v in ann['bbox'])
        W, H = im['width'], im['height']
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > W or y + h > H:
            raise ValueError(
                f'{source}: annotation {ann.get("id")} of {im["file_name"]}: box '
                f'[x={x:g}, y={y:g}, w={w:g}, h={h:g}] is empty or outside the {W}x{H} image; '
                f'fix: re-run tools/dataset_converters/bccd_to_coco.py, which clips and checks '
                f'boxes')
        cls = cls_of[ann['category_id']]
        lines[ann['image_id']].append(yolo_label_line(cls, ann['bbox'], W, H))
    return lines


def _fresh_dir(path: str) -> None:
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def export_yolo_dataset(data_root: str = DEFAULT_DATA_ROOT,
                        out_dir: str = osp.join(DEFAULT_WORK_DIR, 'dataset'),
                        split_prefix: str = '',
                        img_dir: Optional[str] = None,
                        copy: bool = False,
                        splits: Sequence[str] = SPLITS) -> str:
    """Write the YOLO dataset of the COCO split files under ``data_root``.

    Output (deterministic: the same input gives byte-identical label files and ``data.yaml``)::

        out_dir/data.yaml                 train/val/test folders (relative to the yaml), nc, names
        out_dir/images/<split>/<file>     symlink to <img_dir>/<file> (a copy with ``copy``)
        out_dir/labels/<split>/<stem>.txt one "cls cx cy w h" line per box, may be empty

    ``images/<split>``, ``labels/<split>`` and ultralytics' ``labels/<split>.cache`` are replaced
    on every export, so a re-export never mixes in stale files.

    The label files are written here, not by
    ``ultralytics.data.converter.convert_coco(labels_dir, save_dir, cls91to80=False)``, whose
    files differ in their text. On the converted BCCD it finds the same label file names, and in
    each the same lines in the same order with the same class, but writes the numbers otherwise;
    in general it differs in more:

    * numbers: it prints ``%g`` (6 significant digits, no trailing zeros) where
      :func:`yolo_label_line` prints 6 decimals; the same BCCD platelet is
      ``2 0.550781 0.590625 0.0546875 0.0645833`` there and
      ``2 0.550781 0.590625 0.054688 0.064583`` here (at most 5e-7 apart), and ``0.206250`` /
      ``0.750000`` here are ``0.20625`` / ``0.75`` there;
    * class: ``category_id - 1`` there, the category's position in the file here;
    * files: no file for an image without boxes (here an empty one), repeated boxes of an image
      written once, the file's annotation order (here sorted by image and annotation id), no
      check that boxes lie inside the image (here an error naming the box);
    * layout: every ``*.json`` of a folder goes to ``labels/<json stem>/`` of a new
      ``save_dir`` (``save_dir2``, ... when it exists); it leaves ``images/`` empty and writes no
      ``data.yaml``.

    Args:
        data_root (str): The converter's output folder (``annotations/``, ``JPEGImages/``).
        out_dir (str): Where to write the YOLO dataset.
        split_prefix (str): ``''`` for the study's 256/74/34 split (``annotations/train.json``),
            ``'imagesets_'`` for the dataset's own ImageSets split.
        img_dir (str, optional): The images' folder. Defaults to ``<data_root>/JPEGImages``.
        copy (bool): Copy the images instead of linking them.
        splits (Sequence[str]): The splits to export.

    Returns:
        str: The path of ``data.yaml``.
    """
    img_dir = img_dir or osp.join(data_root, 'JPEGImages')
    classes: Optional[Tuple[str, ...]] = None
    sources = {}
    for split in splits:
        ann_file = coco_ann_file(data_root, split, split_prefix)
        coco = load_coco(ann_file)
        if classes is None:
            classes = coco_classes(coco)
        elif coco_classes(coco) != classes:
            raise ValueError(f'{ann_file}: categories {coco_classes(coco)} differ from the other '
                             f'splits\' {classes}; all splits must list the same categories')
        sources[split] = ann_file
        labels = coco_to_yolo_labels(coco, source=ann_file)
        images = {im['id']: im for im in coco['images']}

        split_img_dir = osp.join(out_dir, 'images', split)
        split_lbl_dir = osp.join(out_dir, 'labels', split)
        _fresh_dir(split_img_dir)
        _fresh_dir(split_lbl_dir)
        cache = osp.join(out_dir, 'labels', f'{split}.cache')
        if osp.exists(cache):
            os.remove(cache)
        stems: Dict[str, str] = {}
        for img_id, img_lines in labels.items():
            file_name = images[img_id]['file_name']
            base = osp.basename(file_name)
            stem = osp.splitext(base)[0]
            if stem in stems:
                raise ValueError(f'{ann_file}: images {stems[stem]} and {file_name} would share '
                                 f'the YOLO label file {stem}.txt; fix: give them distinct names')
            stems[stem] = file_name
            src = osp.abspath(osp.join(img_dir, file_name))
            if not osp.isfile(src):
                raise FileNotFoundError(f'{ann_file}: image {file_name} not found at {src}; fix: '
                                        f'point --img-dir (or --data-root) at the JPEG folder')
            dst = osp.join(split_img_dir, base)
            if copy:
                shutil.copyfile(src, dst)
            else:
                os.symlink(src, dst)
            with open(osp.join(split_lbl_dir, stem + '.txt'), 'w') as f:
                f.write(''.join(line + '\n' for line in img_lines))

    yaml_path = osp.join(out_dir, 'data.yaml')
    lines = [f'# YOLO view of {", ".join(sources[s] for s in splits)}',
             '# written by tools/yolo_baseline.py export (export_yolo_dataset); class i is the',
             '# i-th COCO category (= mmdet label i). Folders are relative to this file.']
    lines += [f'{split}: images/{split}' for split in splits]
    lines += [f'nc: {len(classes)}', 'names:']
    lines += [f'  {i}: {json.dumps(name)}' for i, name in enumerate(classes)]
    with open(yaml_path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return yaml_path


# ----------------------------------------------------------------------------------------------
# Scoring with mmdet's CocoMetric (no ultralytics needed)
# ----------------------------------------------------------------------------------------------

Detections = Mapping[int, Mapping[str, np.ndarray]]


def evaluate_detections(ann_file: str, detections: Detections,
                        calibrated_thrs: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """Score detections with the evaluators of the mmdet BCCD configs, mmdet's ``CocoMetric``
    (``metric='bbox'``, ``classwise=True``) and the package's ``CellCountMetric`` (annotated
    counts: the file's boxes without ``iscrowd``), so the keys and values match
    ``tools/test.py``.

    Args:
        ann_file (str): The COCO json of the evaluated split (the ground truth).
        detections (Mapping[int, Mapping[str, np.ndarray]]): Per COCO image id, ``bboxes``
            (N, 4) ``x1, y1, x2, y2`` in pixels of the original image, ``scores`` (N,) and
            ``labels`` (N,) (label ``i`` = the ``i``-th category of ``ann_file``). Images of
            ``ann_file`` without an entry count as having no detections.

        calibrated_thrs (dict, optional): ``{class: threshold}`` for the calibrated counts
            (``count/<class>_mae_calibrated``...), e.g. the validation split's best ones.

    Returns:
        dict: ``coco/bbox_mAP``, ``coco/bbox_mAP_50``, ``coco/bbox_mAP_75``,
        ``coco/bbox_mAP_s``, ``coco/bbox_mAP_m``, ``coco/bbox_mAP_l`` and
        ``coco/<class>_precision`` per class; the ``count/*`` keys of ``CellCountMetric``.
    """
    import torch
    from mmdet.evaluation import CocoMetric

    from mmbloodcell.evaluation.metrics import CellCountMetric

    coco = load_coco(ann_file)
    classes = coco_classes(coco)
    images = {im['id']: im for im in coco['images']}
    unknown = sorted(set(detections) - set(images))
    if unknown:
        raise KeyError(f'{ann_file}: detections for image ids {unknown[:10]} that the file does '
                       f'not list; score predictions against the json they were made for')

    metric = CocoMetric(ann_file=ann_file, metric='bbox', classwise=True)
    metric.dataset_meta = dict(classes=classes)
    counts = CellCountMetric(calibrated_thrs=calibrated_thrs)
    counts.dataset_meta = dict(classes=classes)
    label_of = {c['id']: i for i, c in enumerate(coco['categories'])}  # as coco_classes
    gt_labels = {i: [] for i in images}
    for a in coco['annotations']:
        if not a.get('iscrowd', 0):
            gt_labels[a['image_id']].append(label_of[a['category_id']])
    empty = dict(bboxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32),
                 labels=np.zeros(0, np.int64))
    for img_id in sorted(images):
        det = detections.get(img_id, empty)
        bboxes = np.asarray(det['bboxes'], np.float32).reshape(-1, 4)
        scores = np.asarray(det['scores'], np.float32).reshape(-1)
        labels = np.asarray(det['labels'], np.int64).reshape(-1)
        if not len(bboxes) == len(scores) == len(labels):
            raise ValueError(f'image id {img_id}: {len(bboxes)} boxes, {len(scores)} scores and '
                             f'{len(labels)} labels; they must have the same length')
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f'image id {img_id}: labels must lie in [0, {len(classes)}) '
                             f'({classes}), got {sorted(set(labels.tolist()))}')
        im = images[img_id]
        pred = dict(bboxes=torch.from_numpy(bboxes), scores=torch.from_numpy(scores),
                    labels=torch.from_numpy(labels))
        metric.process({}, [dict(img_id=img_id, ori_shape=(im['height'], im['width']),
                                 pred_instances=pred)])
        counts.process({}, [dict(img_id=img_id, img_path=im['file_name'], pred_instances=pred,
                                 gt_instances=dict(labels=torch.tensor(gt_labels[img_id],
                                                                       dtype=torch.int64)))])
    results = metric.evaluate(len(images))
    results.update(counts.evaluate(len(images)))
    return results


def format_metrics_table(metrics: Mapping[str, float], title: str = 'YOLO baseline') -> str:
    """A plain-text two-column table of ``metrics`` (in insertion order)."""
    rows = [(k, f'{v:.3f}' if isinstance(v, float) else str(v)) for k, v in metrics.items()]
    kw = max([len(title)] + [len(k) for k, _ in rows])
    vw = max([5] + [len(v) for _, v in rows])
    rule = f'+-{"-" * kw}-+-{"-" * vw}-+'
    out = [rule, f'| {title:<{kw}} | {"value":>{vw}} |', rule]
    out += [f'| {k:<{kw}} | {v:>{vw}} |' for k, v in rows]
    out.append(rule)
    return '\n'.join(out)


# ----------------------------------------------------------------------------------------------
# ultralytics: offline set-up, training, prediction
# ----------------------------------------------------------------------------------------------

_LOGGING_INTEGRATIONS = ('clearml', 'comet', 'dvc', 'mlflow', 'raytune', 'tensorboard', 'wandb')


def _no_font_download(font: str = 'Arial.ttf'):
    """Stand-in for ultralytics' ``check_font``: plots are off, so no font is fetched; the
    (unused) plotting code falls back to PIL's default font."""
    return None


def _local_amp_check(model) -> bool:
    """Stand-in for ultralytics' ``check_amp``, whose self-test downloads ``yolo26n.pt``: AMP is
    used on CUDA (as the check concludes on working GPUs) and never on CPU / MPS."""
    import torch
    device = next(model.parameters()).device
    ok = device.type == 'cuda'
    logger.info('AMP: %s (ultralytics\' download-based AMP self-check is skipped offline)',
                'on' if ok else 'off, not a CUDA device')
    return ok and bool(torch.cuda.is_available())


def _restore_pil_open() -> None:
    """Undo ultralytics' process-wide patch of ``PIL.Image.open`` (set when it is imported).

    The patch retries every unidentifiable file after installing ``pi-heif`` with pip: in this
    process that would reach the network and turn the clear "cannot identify image file" of
    the package's image checks into a ``ModuleNotFoundError``. BCCD has no HEIF images.
    """
    try:
        from PIL import Image
        from ultralytics.utils import patches
    except ImportError:
        return
    original = getattr(patches, '_image_open', None)
    if original is not None and Image.open is not original:
        Image.open = original


@contextlib.contextmanager
def ultralytics_offline(config_dir: Optional[str] = None):
    """Import ultralytics with every network access switched off; yields the module.

    * ``YOLO_OFFLINE=1`` (no online check, update check, usage events or auto-installs) and
      ``YOLO_CONFIG_DIR`` (``config_dir``, default ``work_dirs/yolo_bccd/.ultralytics``, unless
      the variable is already set) are set before the first import; ultralytics reads both
      once, at import, and keeps its ``settings.json`` there;
    * settings ``sync`` and the logging integrations (ClearML, Comet, DVC, MLflow, Ray Tune,
      TensorBoard, W&B) are turned off for this process only (the settings file is not
      rewritten), and ``ULTRALYTICS_API_KEY`` is hidden while the block runs;
    * the dataset check's font download and the AMP check's model download are replaced by
      :func:`_no_font_download` and :func:`_local_amp_check` while the block runs.

    Raises:
        ImportError: with the install command, when ultralytics is missing.
    """
    os.environ['YOLO_OFFLINE'] = '1'
    config_dir = config_dir or osp.join(DEFAULT_WORK_DIR, '.ultralytics')
    if not os.environ.get('YOLO_CONFIG_DIR'):
        os.makedirs(config_dir, exist_ok=True)
        os.environ['YOLO_CONFIG_DIR'] = osp.abspath(config_dir)
    try:
        import ultralytics
        import ultralytics.data.utils as ul_data_utils
        import ultralytics.engine.trainer as ul_trainer
        import ultralytics.utils as ul_utils
        import ultralytics.utils.plotting as ul_plotting
    except ImportError as e:
        raise ImportError('the YOLO baseline needs the optional `ultralytics` package: '
                          '`pip install -e .[yolo]` (or `pip install ultralytics`)') from e
    _restore_pil_open()
    if ul_utils.ONLINE:
        logger.warning('ultralytics was imported before YOLO_OFFLINE was set and believes it is '
                       'online; set it before the import to keep it offline '
                       '(YOLO_OFFLINE=1 python ...)')
    # dict.update: change the settings in memory without rewriting the user's settings file
    dict.update(ul_utils.SETTINGS, {'sync': False, **{k: False for k in _LOGGING_INTEGRATIONS}})

    patches = [(ul_data_utils, 'check_font', _no_font_download),
               (ul_plotting, 'check_font', _no_font_download),
               (ul_trainer, 'check_amp', _local_amp_check)]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    api_key = os.environ.pop('ULTRALYTICS_API_KEY', None)
    try:
        for mod, name, new in patches:
            setattr(mod, name, new)
        yield ultralytics
    finally:
        for mod, name, old in saved:
            setattr(mod, name, old)
        if api_key is not None:
            os.environ['ULTRALYTICS_API_KEY'] = api_key


def train_yolo(data_yaml: str,
               model: str = DEFAULT_MODEL,
               epochs: int = 100,
               imgsz: int = 640,
               batch: int = 16,
               device: Optional[str] = None,
               seed: int = 0,
               workers: int = 8,
               time_budget: Optional[float] = None,
               amp: str = 'off',
               project: str = DEFAULT_WORK_DIR,
               name: str = 'train',
               exist_ok: bool = False,
               config_dir: Optional[str] = None,
               verbose: bool = True,
               **overrides) -> str:
    """Train an ultralytics detector on an exported dataset, offline.

    Args:
        data_yaml (str): ``data.yaml`` of :func:`export_yolo_dataset`.
        model (str): An ultralytics model yaml (e.g. ``yolov8n.yaml``, ``yolov8s.yaml``; the
            letter picks the scale) or a local ``.pt`` to fine-tune. A yaml starts from random
            weights (``pretrained=False``); nothing is downloaded.
        epochs (int): Training epochs. Ignored when ``time_budget`` is given.
        imgsz (int): Training (letterbox) image size.
        batch (int): Batch size.
        device (str, optional): ``'cpu'``, ``'0'``, ... ``None``: the first GPU if any, else CPU.
        seed (int): Random seed (with ``deterministic=True``).
        workers (int): Dataloader workers.
        time_budget (float, optional): Wall-clock training budget in seconds (ultralytics'
            ``time`` argument, in hours): ultralytics re-estimates the number of epochs after
            each epoch to fill it and stretches the learning-rate schedule accordingly.
        amp (str): ``'off'`` (fp32), ``'fp16'`` (CUDA only) or ``'bf16'``.
        project (str): Parent folder of the run (made absolute, so it stays inside the work dir).
        name (str): Run name: the run goes to ``<project>/<name>`` (``<name>2``, ... if it exists
            and ``exist_ok`` is False).
        exist_ok (bool): Reuse ``<project>/<name>``.
        config_dir (str, optional): ``YOLO_CONFIG_DIR``. Defaults to ``<project>/.ultralytics``.
        verbose (bool): ultralytics' console output.
        **overrides: More ultralytics training arguments (e.g. ``patience``, ``lr0``, ``mosaic``).

    Returns:
        str: The run folder (``weights/best.pt`` and ``weights/last.pt`` inside).
    """
    if amp not in ('off', 'fp16', 'bf16'):
        raise ValueError(f"amp must be 'off', 'fp16' or 'bf16', got {amp!r}")
    if not osp.isfile(data_yaml):
        raise FileNotFoundError(f'{data_yaml} not found: run `python tools/yolo_baseline.py '
                                f'export` first')
    if model.endswith('.pt') and not osp.isfile(model):
        raise FileNotFoundError(f'{model} not found: give a local checkpoint or a model yaml '
                                f'such as {DEFAULT_MODEL} (weights are never downloaded)')
    project = osp.abspath(project)
    with ultralytics_offline(config_dir or osp.join(project, '.ultralytics')) as ul:
        yolo = ul.YOLO(model, task='detect')
        args = dict(data=osp.abspath(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch,
                    seed=seed, deterministic=True, workers=workers, project=project, name=name,
                    exist_ok=exist_ok, plots=False, pretrained=model.endswith('.pt'),
                    amp={'off': False, 'fp16': True, 'bf16': 'bf16'}[amp], verbose=verbose)
        if device is not None:
            args['device'] = device
        if time_budget is not None:
            if time_budget <= 0:
                raise ValueError(f'time_budget must be > 0 seconds, got {time_budget}')
            args['time'] = time_budget / 3600.0
        args.update(overrides)
        yolo.train(**args)
        return str(yolo.trainer.save_dir)


def best_weights(run_dir: str) -> str:
    """``<run_dir>/weights/best.pt``, else ``last.pt``; raises naming the run if neither exists."""
    for name in ('best.pt', 'last.pt'):
        path = osp.join(run_dir, 'weights', name)
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'no weights/best.pt or weights/last.pt in {run_dir}: did the '
                            f'training finish? (python tools/yolo_baseline.py train ...)')


def run_dir_of(weights: str) -> str:
    """The run folder of a checkpoint: ``<run>/weights/best.pt`` -> ``<run>``; otherwise the
    checkpoint's own folder."""
    weights_dir = osp.dirname(osp.abspath(weights))
    return osp.dirname(weights_dir) if osp.basename(weights_dir) == 'weights' else weights_dir


def predict_coco_images(weights: str,
                        ann_file: str,
                        img_dir: str,
                        imgsz: int = 640,
                        conf: float = 0.001,
                        iou: float = 0.7,
                        max_det: int = 100,
                        device: Optional[str] = None,
                        warmup: int = 5,
                        config_dir: Optional[str] = None
                        ) -> Tuple[Dict[int, dict], Dict[str, float]]:
    """Predict every image of a COCO file at batch 1 and time it.

    Args:
        weights (str): A trained ultralytics checkpoint (``best.pt``).
        ann_file (str): The COCO json listing the images (file names relative to ``img_dir``).
        img_dir (str): The images' folder.
        imgsz (int): Inference size (use the training size).
        conf (float): Confidence threshold (0.001: keep low scores, as mAP needs).
        iou (float): NMS IoU threshold (ultralytics' default 0.7).
        max_det (int): Boxes kept per image (100, as COCO's AP@100 and mmdet's ``max_per_img``).
        device (str, optional): ``'cpu'``, ``'0'``, ...; ``None`` picks the GPU if any.
        warmup (int): Untimed ``predict`` calls on the first image before the timed pass.
        config_dir (str, optional): ``YOLO_CONFIG_DIR`` (see :func:`ultralytics_offline`).

    Returns:
        tuple: ``detections`` (per image id: ``bboxes`` (N, 4) xyxy pixels, ``scores`` (N,),
        ``labels`` (N,)) and ``speed`` (``speed/latency_ms``, ``speed/fps`` and ultralytics'
        own mean ``speed/yolo_{preprocess,inference,postprocess}_ms``).
    """
    import cv2

    if not osp.isfile(weights):
        raise FileNotFoundError(f'{weights} not found: train first (python tools/yolo_baseline.py '
                                f'train) or pass --weights')
    coco = load_coco(ann_file)
    if not coco['images']:
        raise ValueError(f'{ann_file}: no images to predict')
    ncls = len(coco['categories'])
    images = []
    for im in sorted(coco['images'], key=lambda im: im['id']):
        path = osp.join(img_dir, im['file_name'])
        img = cv2.imread(path)
        if img is None:
            raise FileNotFoundError(f'{ann_file}: cannot read image {im["file_name"]} at {path}')
        images.append((im['id'], img))

    with ultralytics_offline(config_dir) as ul:
        model = ul.YOLO(weights, task='detect')
        if len(model.names) != ncls:
            raise ValueError(f'{weights} predicts {len(model.names)} classes {model.names}, '
                             f'{ann_file} has {ncls}; train on the export of the same split files')
        kwargs = dict(imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, verbose=False)
        if device is not None:
            kwargs['device'] = device
        for _ in range(max(warmup, 0)):
            model.predict(images[0][1], **kwargs)
        detections: Dict[int, dict] = {}
        seconds, parts = 0.0, np.zeros(3)
        for img_id, img in images:
            # the predictor (and its torch device) exists from the first predict() on
            synchronize(getattr(model.predictor, 'device', None))
            t0 = time.perf_counter()
            res = model.predict(img, **kwargs)[0]
            synchronize(model.predictor.device)
            seconds += time.perf_counter() - t0
            parts += [res.speed.get(k) or 0.0 for k in ('preprocess', 'inference', 'postprocess')]
            boxes = res.boxes
            detections[img_id] = dict(bboxes=boxes.xyxy.cpu().numpy().astype(np.float32),
                                      scores=boxes.conf.cpu().numpy().astype(np.float32),
                                      labels=boxes.cls.cpu().numpy().astype(np.int64))
    n = len(images)
    ms = 1000.0 * seconds / n
    speed = {'speed/latency_ms': round(ms, 3),
             'speed/fps': round(1000.0 / ms, 2) if ms > 0 else float('inf')}
    for key, value in zip(('preprocess', 'inference', 'postprocess'), parts / n):
        speed[f'speed/yolo_{key}_ms'] = round(float(value), 3)
    return detections, speed


def run_yolo_test(weights: str,
                  data_root: str = DEFAULT_DATA_ROOT,
                  split: str = 'test',
                  split_prefix: str = '',
                  img_dir: Optional[str] = None,
                  out_dir: Optional[str] = None,
                  imgsz: int = 640,
                  conf: float = 0.001,
                  iou: float = 0.7,
                  max_det: int = 100,
                  device: Optional[str] = None,
                  warmup: int = 5,
                  config_dir: Optional[str] = None) -> Dict[str, float]:
    """Predict a split with trained weights, score it with mmdet's ``CocoMetric`` and write
    ``<out_dir>/test_metrics.json`` (``metrics`` and the ``settings`` that produced them).

    Args:
        weights (str): The trained checkpoint.
        data_root (str): The converter's output folder.
        split (str): The split to evaluate.
        split_prefix (str): ``''`` or ``'imagesets_'`` (see :func:`export_yolo_dataset`).
        img_dir (str, optional): Defaults to ``<data_root>/JPEGImages``.
        out_dir (str, optional): Where to write the JSON. Defaults to the run folder of
            ``weights`` (``<run>/weights/best.pt`` -> ``<run>``).
        imgsz, conf, iou, max_det, device, warmup, config_dir: see :func:`predict_coco_images`.

    Returns:
        dict: The ``CocoMetric`` and ``CellCountMetric`` keys plus ``speed/*``; testing the
        ``test`` split, the counts at the thresholds that minimise the count MAE on the
        ``val`` split too (``count/<class>_mae_calibrated``, as the mmdet models' test runs).
    """
    ann_file = coco_ann_file(data_root, split, split_prefix)
    img_dir = img_dir or osp.join(data_root, 'JPEGImages')
    out_dir = out_dir or run_dir_of(weights)
    if config_dir is None:
        config_dir = osp.join(osp.dirname(osp.abspath(out_dir)), '.ultralytics')
    predict = dict(imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, device=device,
                   config_dir=config_dir)
    # count thresholds calibrated on the validation split, as CountCalibrationHook does for
    # the mmdet models: per class the one minimising the count MAE there
    thrs = None
    val_file = coco_ann_file(data_root, 'val', split_prefix)
    if split == 'test' and osp.isfile(val_file):
        val_dets, _ = predict_coco_images(weights, val_file, img_dir, warmup=0, **predict)
        val = evaluate_detections(val_file, val_dets)
        thrs = {c: val[f'count/{c}_best_thr'] for c in coco_classes(load_coco(val_file))
                if f'count/{c}_best_thr' in val}
    detections, speed = predict_coco_images(weights, ann_file, img_dir, warmup=warmup,
                                            **predict)
    metrics = dict(evaluate_detections(ann_file, detections, calibrated_thrs=thrs))
    metrics.update(speed)

    import torch
    import ultralytics
    settings = dict(weights=osp.abspath(weights), ann_file=osp.abspath(ann_file),
                    img_dir=osp.abspath(img_dir), num_images=len(detections), imgsz=imgsz,
                    conf=conf, iou=iou, max_det=max_det, batch_size=1, warmup=warmup,
                    device=device or ('cuda:0' if torch.cuda.is_available() else 'cpu'),
                    ultralytics=ultralytics.__version__, torch=torch.__version__,
                    latency='mean wall-clock ms of one predict() call on a decoded image '
                            '(letterbox, forward, NMS, rescale), after the warm-up calls')
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, YOLO_METRICS_FILE), 'w') as f:
        json.dump(dict(metrics=metrics, settings=settings), f, indent=2)
    return metrics


def run_baseline(data_root: str = DEFAULT_DATA_ROOT,
                 work_dir: str = DEFAULT_WORK_DIR,
                 split_prefix: str = '',
                 img_dir: Optional[str] = None,
                 copy: bool = False,
                 model: str = DEFAULT_MODEL,
                 epochs: int = 100,
                 imgsz: int = 640,
                 batch: int = 16,
                 device: Optional[str] = None,
                 seed: int = 0,
                 workers: int = 8,
                 time_budget: Optional[float] = None,
                 amp: str = 'off',
                 name: str = 'train',
                 exist_ok: bool = False,
                 conf: float = 0.001,
                 iou: float = 0.7,
                 max_det: int = 100,
                 warmup: int = 5,
                 verbose: bool = True,
                 **overrides) -> Tuple[str, Dict[str, float]]:
    """Export (into ``<work_dir>/dataset``), train (into ``<work_dir>/<name>``) and test on the
    test split; returns the run folder and the metrics (also in its ``test_metrics.json``)."""
    config_dir = osp.join(work_dir, '.ultralytics')
    data_yaml = export_yolo_dataset(data_root, osp.join(work_dir, 'dataset'),
                                    split_prefix=split_prefix, img_dir=img_dir, copy=copy)
    run_dir = train_yolo(data_yaml, model=model, epochs=epochs, imgsz=imgsz, batch=batch,
                         device=device, seed=seed, workers=workers, time_budget=time_budget,
                         amp=amp, project=work_dir, name=name, exist_ok=exist_ok,
                         config_dir=config_dir, verbose=verbose, **overrides)
    metrics = run_yolo_test(best_weights(run_dir), data_root=data_root, split='test',
                            split_prefix=split_prefix, img_dir=img_dir, out_dir=run_dir,
                            imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, device=device,
                            warmup=warmup, config_dir=config_dir)
    return run_dir, metrics


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

def _data_args(p, with_copy=False):
    p.add_argument('--data-root', default=DEFAULT_DATA_ROOT,
                   help='the converter\'s output: annotations/*.json, JPEGImages/ '
                   '(default: %(default)s)')
    p.add_argument('--split-prefix', default='',
                   help="'' for the 256/74/34 split, 'imagesets_' for BCCD's ImageSets split")
    p.add_argument('--img-dir', help='image folder (default: <data-root>/JPEGImages)')
    if with_copy:
        p.add_argument('--copy', action='store_true', help='copy images instead of symlinks')


def _train_args(p):
    p.add_argument('--model', default=DEFAULT_MODEL,
                   help='ultralytics model yaml (random init) or a local .pt '
                   '(default: %(default)s)')
    p.add_argument('--epochs', type=int, default=100)
    p.add_argument('--imgsz', type=int, default=640)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--device', help="'cpu', '0', ... (default: GPU 0 if any, else CPU)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--workers', type=int, default=8)
    p.add_argument('--time-budget', type=float, metavar='SECONDS',
                   help='train for this wall time instead of --epochs (ultralytics `time`)')
    p.add_argument('--amp', choices=['off', 'fp16', 'bf16'], default='off')
    p.add_argument('--name', default='train', help='run name under the work dir')
    p.add_argument('--exist-ok', action='store_true', help='reuse <work-dir>/<name>')
    p.add_argument('--quiet', action='store_true', help='less ultralytics output')


def _test_args(p, with_imgsz=True):
    if with_imgsz:
        p.add_argument('--imgsz', type=int, default=640, help='use the training size')
        p.add_argument('--device', help="'cpu', '0', ... (default: GPU 0 if any, else CPU)")
    p.add_argument('--conf', type=float, default=0.001,
                   help='score threshold (default: %(default)s)')
    p.add_argument('--iou', type=float, default=0.7, help='NMS IoU (default: %(default)s)')
    p.add_argument('--max-det', type=int, default=100,
                   help='boxes per image (default: %(default)s)')
    p.add_argument('--warmup', type=int, default=5, help='untimed predictions before timing')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)

    p = sub.add_parser('export', help='COCO json -> YOLO dataset')
    _data_args(p, with_copy=True)
    p.add_argument('--out', default=osp.join(DEFAULT_WORK_DIR, 'dataset'),
                   help='output folder (default: %(default)s)')

    p = sub.add_parser('train', help='train from a model yaml')
    p.add_argument('--data', default=osp.join(DEFAULT_WORK_DIR, 'dataset', 'data.yaml'),
                   help='data.yaml written by export (default: %(default)s)')
    p.add_argument('--work-dir', default=DEFAULT_WORK_DIR, help='runs go to <work-dir>/<name>')
    _train_args(p)

    p = sub.add_parser('test', help='predict the test split, score with mmdet CocoMetric')
    p.add_argument('--weights', required=True,
                   help='trained checkpoint, e.g. <run>/weights/best.pt')
    _data_args(p)
    p.add_argument('--split', default='test', choices=list(SPLITS))
    p.add_argument('--out-dir', help=f'where {YOLO_METRICS_FILE} goes (default: the run dir)')
    _test_args(p)

    p = sub.add_parser('run', help='export + train + test')
    _data_args(p, with_copy=True)
    p.add_argument('--work-dir', default=DEFAULT_WORK_DIR,
                   help='dataset/, <name>/ and .ultralytics/ go here (default: %(default)s)')
    _train_args(p)
    _test_args(p, with_imgsz=False)
    return parser.parse_args(argv)


def _print_metrics(metrics, path):
    print(format_metrics_table(metrics, title='YOLO baseline (mmdet CocoMetric)'))
    print(f'metrics written to {path}')


def main(argv=None):
    args = parse_args(argv)
    if args.cmd == 'export':
        data_yaml = export_yolo_dataset(args.data_root, args.out, args.split_prefix,
                                        img_dir=args.img_dir, copy=args.copy)
        print(f'YOLO dataset written: {data_yaml}')
        return data_yaml
    train_kw = {}
    if args.cmd in ('train', 'run'):
        train_kw = dict(model=args.model, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                        device=args.device, seed=args.seed, workers=args.workers,
                        time_budget=args.time_budget, amp=args.amp, name=args.name,
                        exist_ok=args.exist_ok, verbose=not args.quiet)
    if args.cmd == 'train':
        run_dir = train_yolo(args.data, project=args.work_dir,
                             config_dir=osp.join(args.work_dir, '.ultralytics'), **train_kw)
        print(f'trained: {best_weights(run_dir)}')
        return run_dir
    test_kw = dict(conf=args.conf, iou=args.iou, max_det=args.max_det, warmup=args.warmup)
    if args.cmd == 'test':
        metrics = run_yolo_test(args.weights, data_root=args.data_root, split=args.split,
                                split_prefix=args.split_prefix, img_dir=args.img_dir,
                                out_dir=args.out_dir, imgsz=args.imgsz, device=args.device,
                                **test_kw)
        out_dir = args.out_dir or run_dir_of(args.weights)
        _print_metrics(metrics, osp.join(out_dir, YOLO_METRICS_FILE))
        return metrics
    run_dir, metrics = run_baseline(args.data_root, args.work_dir, args.split_prefix,
                                    img_dir=args.img_dir, copy=args.copy, **train_kw, **test_kw)
    _print_metrics(metrics, osp.join(run_dir, YOLO_METRICS_FILE))
    return metrics


if __name__ == '__main__':
    main()
