"""Inference on image files: cell detection (BCCD) and leukemia classification (C-NMC).

Two model wrappers built on the downstream libraries' inference APIs:

- :class:`CellDetector`: mmdet's :func:`~mmdet.apis.init_detector` builds the detector,
  :func:`~mmdet.apis.inference_detector` runs it with the config's test pipeline (image
  loading from an array, annotation loading removed). Boxes are read with
  :func:`~mmbloodcell.apis.detection.detections_to_list`.
- :class:`CellClassifier`: mmpretrain's :func:`~mmpretrain.apis.get_model` (``init_model``)
  builds the classifier, :class:`~mmpretrain.apis.ImageClassificationInferencer` supplies the
  test pipeline (``LoadImageFromFile`` removed) and the forward pass. Works for a single model
  (``BinaryClsHead``: ``pred_prob``; a 2-class softmax head: ``pred_score[1]``) and for an
  :class:`~mmbloodcell.models.classifiers.EnsembleClassifier`. Optional Grad-CAM maps
  (:mod:`mmbloodcell.apis.gradcam`).

Both load checkpoints with mmengine's ``load_checkpoint`` in **strict** mode (a checkpoint of
another architecture is an error, not a silent partial load) and decode every image here,
once, so that a bad file becomes a per-image error with its reason (:func:`read_image`)
instead of stopping the run.

:func:`run_detection` and :func:`run_classification` process a list of files and folders and
write the result files of ``mmbloodcell detect`` / ``mmbloodcell classify``
(:mod:`mmbloodcell.apis.cli`); their docstrings give the file formats.
"""
import copy
import csv
import json
import os
import os.path as osp
import sys
import warnings
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_checkpoint
from mmengine.utils import ProgressBar

import mmbloodcell  # noqa: F401  (registers the modules, allows safe checkpoint loading)
from mmbloodcell.apis.detection import (count_cells, detections_to_list, draw_detections,
                                        palette_to_bgr)
from mmbloodcell.apis.gradcam import GradCAM, cam_to_image, overlay_cam
from mmbloodcell.apis.runner import merge_cfg_options
from mmbloodcell.datasets.cnmc import CNMCDataError, parse_cnmc_name
from mmbloodcell.datasets.image_checks import check_image_file
from mmbloodcell.datasets.transforms.cell import cell_image_warnings
from mmbloodcell.evaluation.metrics.binary_metrics import patient_votes
# Extensions picked up when a folder is given (case-insensitive). Files named explicitly are
# always tried, whatever their extension.
from mmbloodcell.utils.paths import IMAGE_EXTENSIONS, natural_key

__all__ = [
    'IMAGE_EXTENSIONS', 'expand_images', 'read_image', 'output_stems', 'CellDetector',
    'CellClassifier', 'patient_summary', 'run_detection', 'run_classification'
]


#: ``CKPT`` values meaning "no checkpoint" (an ensemble whose config names its members').
NO_CHECKPOINT = ('-', 'none', '')

_LOADERS = ('LoadImageFromFile', 'mmdet.LoadImageFromFile', 'mmcv.LoadImageFromFile',
            'mmpretrain.LoadImageFromFile')


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------

def expand_images(inputs: Union[str, Sequence[str]]) -> Tuple[List[str], bool]:
    """Files as given, folders expanded (recursively, in natural order: ``2.bmp`` before
    ``10.bmp``) to their images.

    Args:
        inputs (str | Sequence[str]): Image files and / or folders.

    Returns:
        tuple: the image paths (a missing path is kept, :func:`read_image` reports it) and
        whether any input was a folder.
    """
    if isinstance(inputs, str):
        inputs = [inputs]
    paths: List[str] = []
    any_folder = False
    for item in inputs:
        if osp.isdir(item):
            any_folder = True
            found = []
            for root, dirs, files in os.walk(item):
                dirs.sort(key=natural_key)
                for name in sorted(files, key=natural_key):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        found.append(osp.join(root, name))
            paths.extend(found)
        else:
            paths.append(item)
    return paths, any_folder


def read_image(path: str, color_type: str = 'color', backend: str = 'cv2',
               to_float32: bool = False) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """Decode an image file as the configs' ``LoadImageFromFile`` does (``mmcv.imfrombytes``).

    Returns:
        tuple: ``(img, None)`` (BGR for ``color_type='color'``), or ``(None, reason)`` when the
        file is missing, empty, truncated, not an image or not decodable.
    """
    if not osp.exists(path):
        return None, 'does not exist'
    if osp.isdir(path):
        return None, 'is a folder, not an image file'
    problem = check_image_file(path)
    if problem is not None:
        return None, problem
    try:
        with open(path, 'rb') as f:
            content = f.read()
        img = mmcv.imfrombytes(content, flag=color_type, backend=backend)
    except Exception as e:  # noqa: BLE001 - any decoder failure is this image's problem
        return None, f'cannot be decoded ({type(e).__name__}: {e})'
    if img is None or img.size == 0:
        return None, f'cannot be decoded by {backend}'
    if to_float32:
        img = img.astype(np.float32)
    return img, None


def output_stems(paths: Sequence[str]) -> List[str]:
    """File stems for the output files, made unique (``name``, ``name_1``, ...) when two
    inputs share one (e.g. the same name in two folders)."""
    used: Dict[str, int] = {}
    stems = []
    for path in paths:
        stem = osp.splitext(osp.basename(path.rstrip('/\\')))[0] or 'image'
        n = used.get(stem, 0)
        used[stem] = n + 1
        candidate = stem if n == 0 else f'{stem}_{n}'
        while candidate in used and candidate != stem:
            n += 1
            candidate = f'{stem}_{n}'
        used.setdefault(candidate, 1)
        stems.append(candidate)
    return stems


def _no_images(images) -> str:
    given = [images] if isinstance(images, str) else list(images)
    return (f'no images found in {given} (folders are searched, recursively, for '
            f'{", ".join(IMAGE_EXTENSIONS)} files)')


def _progress(total: int, enabled: bool) -> Optional[ProgressBar]:
    return ProgressBar(total, file=sys.stderr) if enabled and total > 0 else None


# ----------------------------------------------------------------------------------------------
# Config helpers
# ----------------------------------------------------------------------------------------------

def _load_config(config: Union[str, Config], cfg_options: Optional[dict]) -> Config:
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        if not osp.isfile(config):
            raise FileNotFoundError(f'config {config} not found: give the path of a config '
                                    f'file, e.g. configs/fcos/fcos_r18_fpn_gn_320_12e_bccd_'
                                    f'cpu-demo.py or configs/cnmc/densenet201_fhl_cnmc.py')
        cfg = Config.fromfile(config)
    return merge_cfg_options(cfg, cfg_options)


def _config_name(config) -> str:
    return config if isinstance(config, str) else getattr(config, 'filename', None) or '<Config>'


def _test_pipeline(cfg: Config, where: str) -> list:
    dataset = cfg.get('test_dataloader', {}) or {}
    dataset = dataset.get('dataset')
    while dataset is not None and 'pipeline' not in dataset:
        dataset = dataset.get('dataset') or (dataset.get('datasets') or [None])[0]
    if dataset is None:
        raise ValueError(f'{where}: no test_dataloader.dataset.pipeline; inference uses the '
                         f"config's test pipeline, add one")
    return copy.deepcopy(list(dataset['pipeline']))


def _loader_args(pipeline: Sequence[dict]) -> dict:
    """``color_type`` / ``imdecode_backend`` / ``to_float32`` of the pipeline's image loader."""
    for step in pipeline:
        if step.get('type') in _LOADERS:
            return dict(color_type=step.get('color_type', 'color'),
                        backend=step.get('imdecode_backend', 'cv2'),
                        to_float32=bool(step.get('to_float32', False)))
    return dict(color_type='color', backend='cv2', to_float32=False)


def _checkpoint_meta(checkpoint: dict) -> dict:
    meta = checkpoint.get('meta', {}) if isinstance(checkpoint, dict) else {}
    dataset_meta = meta.get('dataset_meta') or {}
    if not dataset_meta and 'CLASSES' in meta:
        dataset_meta = {'classes': meta['CLASSES']}
    return {k.lower(): v for k, v in dataset_meta.items()}


def _load_strict(model, checkpoint: str, config_name: str) -> dict:
    """mmengine's ``load_checkpoint`` in strict mode; a mismatch names both files."""
    try:
        return load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = ' '.join(first[:3])[:400]
        raise ValueError(f'checkpoint {checkpoint} does not match the model of {config_name} '
                         f'({detail} ...): give the checkpoint trained with this config') from e


def _find_key(obj, key):
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for value in obj.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def _lower_score_thr(test_cfg, score_thr: float) -> None:
    """Lower every ``score_thr`` of a detector's ``test_cfg`` (nested parts included) to at
    most ``score_thr``, so that the user's threshold decides which boxes are kept."""
    if not isinstance(test_cfg, dict):
        return
    for key, value in test_cfg.items():
        if key == 'score_thr' and isinstance(value, (int, float)):
            test_cfg[key] = min(float(value), float(score_thr))
        elif isinstance(value, dict):
            _lower_score_thr(value, score_thr)


def _default_device(device: Optional[str]) -> str:
    if device:
        return device
    return 'cuda:0' if torch.cuda.is_available() else 'cpu'


def _dataset_metainfo(cfg: Config, registry) -> dict:
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    dataset_type = dataset.get('type')
    if not dataset_type:
        return {}
    cls = registry.get(dataset_type)
    return dict(getattr(cls, 'METAINFO', {}) or {}) if cls is not None else {}


# ----------------------------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------------------------

class CellDetector:
    """A trained mmdet detector for image files or arrays.

    Args:
        config (str | Config): A detection config (``default_scope='mmdet'``).
        checkpoint (str): Its trained weights (loaded strictly).
        device (str, optional): ``'cpu'``, ``'cuda:0'``... Defaults to the GPU if any.
        score_thr (float): Boxes below it are dropped. Every ``score_thr`` of the model's
            ``test_cfg`` is lowered to it if higher, so the threshold given here decides.
            Defaults to 0.3.
        cfg_options (dict, optional): Config overrides (``--cfg-options``).

    Attributes:
        classes (tuple[str]): Class names (checkpoint meta, else the config's dataset).
        colors (list[tuple] | None): BGR colours per class from the dataset palette.
    """

    def __init__(self, config, checkpoint: str, device: Optional[str] = None,
                 score_thr: float = 0.3, cfg_options: Optional[dict] = None):
        from mmdet.apis import init_detector
        from mmdet.registry import DATASETS

        name = _config_name(config)
        cfg = _load_config(config, cfg_options)
        scope = cfg.get('default_scope', 'mmdet')
        if scope != 'mmdet':
            raise ValueError(f'{name} is not a detection config (default_scope={scope!r}); use '
                             f'`mmbloodcell classify` for classification configs')
        if not checkpoint or str(checkpoint).lower() in NO_CHECKPOINT:
            raise ValueError(f'{name}: detection needs a trained checkpoint (CKPT), e.g. '
                             f'work_dirs/<config>/epoch_12.pth')
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint} not found: train first '
                                    f'(python tools/train.py {name}) or fix the path')
        if not 0.0 <= float(score_thr) <= 1.0:
            raise ValueError(f'score_thr must be in [0, 1], got {score_thr}')
        self.score_thr = float(score_thr)
        _lower_score_thr(cfg.model.get('test_cfg'), self.score_thr)
        self.device = _default_device(device)
        self.config_name = name
        self.checkpoint = checkpoint

        with DefaultScope.overwrite_default_scope('mmdet'):
            with warnings.catch_warnings(record=True):
                # no checkpoint at construction (mmdet warns about COCO classes): the strict
                # load below follows
                model = init_detector(cfg, None, palette='random', device=self.device)
            ckpt = _load_strict(model, checkpoint, name)
            meta = _checkpoint_meta(ckpt) or _dataset_metainfo(cfg, DATASETS)
            classes = tuple(meta.get('classes') or ())
            num_classes = _find_key(cfg.model, 'num_classes')
            if not classes or (num_classes is not None and len(classes) != num_classes):
                raise ValueError(
                    f'{checkpoint}: class names {classes} (from the checkpoint meta or the '
                    f"config's test dataset) do not match the model's num_classes="
                    f'{num_classes}; give the checkpoint trained with {name}')
            model.dataset_meta = dict(meta, classes=classes)
            self.pipeline = self._build_pipeline(cfg)
        self.model = model
        self.cfg = cfg
        self.classes = classes
        self.colors = palette_to_bgr(meta.get('palette'), len(classes))
        self.loader = _loader_args(_test_pipeline(cfg, name))

    def _build_pipeline(self, cfg: Config):
        from mmcv.transforms import Compose
        steps = []
        for step in _test_pipeline(cfg, self.config_name):
            kind = step.get('type')
            if isinstance(kind, str) and kind.split('.')[-1] == 'LoadAnnotations':
                continue  # no annotations at inference
            if kind in _LOADERS:
                step = dict(step, type='mmdet.LoadImageFromNDArray')
            steps.append(step)
        return Compose(steps)

    def read(self, path: str) -> Tuple[Optional[np.ndarray], Optional[str]]:
        """:func:`read_image` with the config's loader settings."""
        return read_image(path, **self.loader)

    def predict(self, img: np.ndarray) -> List[dict]:
        """Boxes of one decoded image (BGR array): :func:`detections_to_list` at
        ``score_thr``, in original-image pixels."""
        from mmdet.apis import inference_detector
        with DefaultScope.overwrite_default_scope('mmdet'):
            result = inference_detector(self.model, img, test_pipeline=self.pipeline)
        return detections_to_list(result.pred_instances, self.classes, self.score_thr)

    def draw(self, img: np.ndarray, detections: List[dict]) -> np.ndarray:
        """The annotated BGR image (boxes, class, score, count banner)."""
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 255).astype(np.uint8)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        return draw_detections(img, detections, self.classes, colors=self.colors)


def run_detection(config, checkpoint: str, images: Union[str, Sequence[str]], out_dir: str,
                  score_thr: float = 0.3, device: Optional[str] = None,
                  cfg_options: Optional[dict] = None, progress: Optional[bool] = None,
                  save_annotated: bool = True) -> dict:
    """Detect cells in image files and folders and write the results to ``out_dir``.

    Files written:

    - ``detections.json``: ``{"task": "detect", "config", "checkpoint", "score_thr",
      "classes", "num_images", "num_failed", "images": [...]}`` with one entry per input image
      (in input order): ``image`` (the path), ``file_name``, ``status`` (``"ok"`` or
      ``"error"``), ``error`` (the reason, ``""`` when ok), ``width``, ``height``, ``counts``
      (``{<class>: n, ..., "total": n}``, null on error), ``detections`` (a list of
      ``{"label", "class", "score", "bbox": [x1, y1, x2, y2]}`` in original-image pixels,
      every score >= ``score_thr``) and ``annotated`` (path of the annotated image relative
      to ``out_dir``, null on error);
    - ``counts.csv``: columns ``image, <class>... (RBC, WBC, Platelets for BCCD), total,
      status, error``; one row per input image, empty counts on error;
    - ``annotated/<stem>.png``: the image with its boxes and a count banner.

    Args:
        config, checkpoint, device, score_thr, cfg_options: see :class:`CellDetector`.
        images (str | Sequence[str]): Image files and folders (see :func:`expand_images`).
        out_dir (str): Output folder (created).
        progress (bool, optional): Show a progress bar; None: when a folder was given.
        save_annotated (bool): Write the annotated images. Defaults to True.

    Returns:
        dict: The content of ``detections.json``.
    """
    paths, any_folder = expand_images(images)
    if not paths:
        raise ValueError(_no_images(images))
    detector = CellDetector(config, checkpoint, device=device, score_thr=score_thr,
                            cfg_options=cfg_options)
    os.makedirs(out_dir, exist_ok=True)
    if save_annotated:
        os.makedirs(osp.join(out_dir, 'annotated'), exist_ok=True)
    bar = _progress(len(paths), any_folder if progress is None else progress)
    records = []
    for path, stem in zip(paths, output_stems(paths)):
        rec = OrderedDict(image=path, file_name=osp.basename(path), status='ok', error='',
                          width=None, height=None, counts=None, detections=[], annotated=None)
        img, problem = detector.read(path)
        if problem is not None:
            rec.update(status='error', error=problem)
        else:
            rec.update(height=int(img.shape[0]), width=int(img.shape[1]))
            try:
                dets = detector.predict(img)
            except Exception as e:  # noqa: BLE001 - report the image, go on with the others
                rec.update(status='error', error=f'inference failed ({type(e).__name__}: {e})')
            else:
                rec.update(detections=dets, counts=count_cells(dets, detector.classes))
                if save_annotated:
                    rel = osp.join('annotated', f'{stem}.png')
                    cv2.imwrite(osp.join(out_dir, rel), detector.draw(img, dets))
                    rec['annotated'] = rel
        records.append(rec)
        if bar is not None:
            bar.update()
    if bar is not None:
        sys.stderr.write('\n')

    classes = list(detector.classes)
    doc = OrderedDict(task='detect', config=detector.config_name,
                      checkpoint=detector.checkpoint, score_thr=detector.score_thr,
                      classes=classes, num_images=len(records),
                      num_failed=sum(r['status'] != 'ok' for r in records), images=records)
    with open(osp.join(out_dir, 'detections.json'), 'w') as f:
        json.dump(doc, f, indent=2)
    with open(osp.join(out_dir, 'counts.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['image'] + classes + ['total', 'status', 'error'])
        for r in records:
            counts = r['counts'] or {}
            writer.writerow([r['image']] + [counts.get(c, '') for c in classes + ['total']] +
                            [r['status'], r['error']])
    return doc


# ----------------------------------------------------------------------------------------------
# Classification
# ----------------------------------------------------------------------------------------------

class CellClassifier:
    """A trained binary C-NMC classifier (single model or ensemble) for image files or
    arrays.

    Args:
        config (str | Config): A classification config (``default_scope='mmpretrain'``), an
            ``EnsembleClassifier`` config included.
        checkpoint (str, optional): Trained weights, loaded strictly. For an ensemble it may
            be None (or ``'-'`` / ``'none'``) when the config names every member's checkpoint
            (``model.members.<i>.checkpoint``), or one member's checkpoint, or an ensemble
            checkpoint (see ``EnsembleClassifier``).
        device (str, optional): Defaults to the GPU if any.
        threshold (float, optional): Decision threshold on the probability of ``all``.
            Defaults to the model's (``BinaryClsHead.threshold``,
            ``EnsembleClassifier.threshold``; 0.5 for a 2-class softmax head).
        cfg_options (dict, optional): Config overrides (``--cfg-options``).

    Attributes:
        classes (tuple[str]): ``('hem', 'all')`` for C-NMC.
        positive (int): Index of ``all`` (the class whose probability is reported).
        threshold (float): The decision threshold in use.
        member_names (list[str]): Ensemble members (empty for a single model).
    """

    def __init__(self, config, checkpoint: Optional[str] = None, device: Optional[str] = None,
                 threshold: Optional[float] = None, cfg_options: Optional[dict] = None):
        from mmpretrain.apis import ImageClassificationInferencer, get_model
        from mmpretrain.registry import DATASETS

        name = _config_name(config)
        cfg = _load_config(config, cfg_options)
        scope = cfg.get('default_scope', 'mmpretrain')
        if scope != 'mmpretrain':
            raise ValueError(f'{name} is not a classification config (default_scope={scope!r});'
                             f' use `mmbloodcell detect` for detection configs')
        if checkpoint is not None and str(checkpoint).lower() in NO_CHECKPOINT:
            checkpoint = None
        is_ensemble = cfg.model.get('type') == 'EnsembleClassifier'
        if checkpoint is None and not is_ensemble:
            raise ValueError(f'{name}: a trained checkpoint (CKPT) is needed; only ensemble '
                             f"configs whose members name their checkpoints take '-'")
        if checkpoint is not None and not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint} not found: train first '
                                    f'(python tools/train.py {name}) or fix the path')
        # the backbone's ImageNet init_cfg is never applied (no init_weights): nothing is
        # downloaded. CropToCell's box reaches the data samples, for the saliency maps.
        _test_pipeline(cfg, name)  # fails early, naming the config, when there is none
        self._add_meta_key(cfg, 'cell_bbox')
        self.device = _default_device(device)
        self.config_name = name
        self.checkpoint = checkpoint

        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = get_model(cfg, pretrained=False, device=self.device)
            meta = {}
            if checkpoint is not None:
                ckpt = _load_strict(model, checkpoint, name)
                meta = _checkpoint_meta(ckpt)
            if is_ensemble:
                missing = [f'{i} ({n})' for i, (n, ok) in enumerate(
                    zip(model.member_names, model._loaded)) if not ok]
                if missing:
                    raise ValueError(
                        f'{name}: ensemble members {", ".join(missing)} have no weights; set '
                        f'model.members.<i>.checkpoint in the config or with --cfg-options '
                        f'model.members.<i>.checkpoint=PATH, or give an ensemble checkpoint')
            meta = meta or dict(getattr(model, '_dataset_meta', {}) or {}) or \
                _dataset_metainfo(cfg, DATASETS)
            model._dataset_meta = meta
            self.inferencer = ImageClassificationInferencer(model, pretrained=False)
        self.model = self.inferencer.model
        self.cfg = cfg
        self.classes = tuple(meta.get('classes') or ('hem', 'all'))
        if len(self.classes) != 2:
            raise ValueError(f'{name}: classify needs a binary classifier (hem / all); the '
                             f'model has classes {self.classes}')
        self.positive = self.classes.index('all') if 'all' in self.classes else 1
        self.member_names = list(getattr(self.model, 'member_names', []) or [])
        if threshold is None:
            threshold = getattr(self.model, 'threshold', None)
            if threshold is None:
                threshold = getattr(getattr(self.model, 'head', None), 'threshold', 0.5)
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f'threshold must be in (0, 1), got {threshold}')
        self.threshold = float(threshold)
        pipeline = _test_pipeline(cfg, name)
        self.loader = _loader_args(pipeline)
        crop = [s for s in pipeline if str(s.get('type', '')).split('.')[-1] == 'CropToCell']
        self.crop_square = bool(crop[-1].get('square', True)) if crop else True

    @staticmethod
    def _add_meta_key(cfg: Config, key: str) -> None:
        dataset = cfg.test_dataloader.dataset
        while 'pipeline' not in dataset and dataset.get('dataset') is not None:
            dataset = dataset.dataset
        for step in dataset.get('pipeline', []):
            if str(step.get('type', '')).split('.')[-1] == 'PackInputs':
                keys = list(step.get('meta_keys', ('sample_idx', 'img_path', 'ori_shape',
                                                   'img_shape', 'scale_factor', 'flip',
                                                   'flip_direction')))
                if key not in keys:
                    step['meta_keys'] = tuple(keys + [key])

    def read(self, path: str) -> Tuple[Optional[np.ndarray], Optional[str]]:
        """:func:`read_image` with the config's loader settings."""
        return read_image(path, **self.loader)

    def _prob(self, pred) -> float:
        if 'pred_prob' in pred:
            return float(pred.pred_prob.reshape(()))
        score = pred.get('pred_score')
        if score is None or score.numel() != 2:
            raise ValueError(f'{self.config_name}: the model gives no pred_prob and no 2-class '
                             f'pred_score; classify needs a binary classifier')
        return float(score.reshape(-1)[self.positive])

    def predict(self, imgs: Sequence[np.ndarray], paths: Optional[Sequence[str]] = None,
                saliency: bool = False, batch_size: int = 8) -> List[dict]:
        """Classify decoded images (BGR arrays).

        Returns:
            list[dict]: per image ``prob`` (probability of ``all``), ``label`` (1 = all when
            ``prob > threshold``), ``label_name``, ``member_probs`` (ensembles: one per member,
            else None), ``cam`` (with ``saliency``: the Grad-CAM map on the original image,
            ``(H, W)`` float32 in [0, 1]) and ``error`` (None, or why this image failed: the
            others are still classified).
        """
        paths = list(paths) if paths is not None else [None] * len(imgs)
        results: List[dict] = [dict(prob=None, label=None, label_name=None, member_probs=None,
                                    cam=None, error=None) for _ in imgs]
        prepared = []
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            for i, (img, path) in enumerate(zip(imgs, paths)):
                try:
                    data = self.inferencer.pipeline(
                        dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
                             img_path=path))
                except Exception as e:  # noqa: BLE001
                    results[i]['error'] = f'test pipeline failed ({type(e).__name__}: {e})'
                    continue
                prepared.append((i, data))
            for start in range(0, len(prepared), max(1, int(batch_size))):
                chunk = prepared[start:start + max(1, int(batch_size))]
                try:
                    self._run(chunk, results, saliency)
                except Exception:  # noqa: BLE001 - retry one by one to find the culprit
                    if len(chunk) == 1:
                        i = chunk[0][0]
                        e = sys.exc_info()[1]
                        results[i]['error'] = f'inference failed ({type(e).__name__}: {e})'
                        continue
                    for item in chunk:
                        try:
                            self._run([item], results, saliency)
                        except Exception as e:  # noqa: BLE001
                            results[item[0]]['error'] = (f'inference failed '
                                                         f'({type(e).__name__}: {e})')
        return results

    def _run(self, chunk, results, saliency: bool) -> None:
        batch = default_collate([data for _, data in chunk])
        preds = self.inferencer.forward(batch)
        cams = GradCAM(self.model, self.positive)(batch) if saliency else None
        for k, ((i, _), pred) in enumerate(zip(chunk, preds)):
            prob = self._prob(pred)
            label = int(prob > self.threshold)
            member = pred.get('member_probs')
            res = results[i]
            res.update(prob=prob, label=label, label_name=self.classes[label],
                       member_probs=[float(p) for p in member] if member is not None else None)
            if cams is not None:
                bbox = pred.get('cell_bbox')
                ori = pred.get('ori_shape')
                res['cam'] = cam_to_image(cams[k], ori, bbox, square=self.crop_square)


def patient_summary(records: Sequence[dict], threshold: float) -> Dict[str, dict]:
    """Per patient: cells, mean probability of ``all`` and the majority-vote label.

    Patients come from C-NMC file names (``UID_<patient>_<image>_<cell>_{all,hem}.<ext>``,
    :func:`~mmbloodcell.datasets.cnmc.parse_cnmc_name`); images whose name does not parse
    are left out. The vote is :func:`~mmbloodcell.evaluation.metrics.binary_metrics.
    patient_votes` (a tie goes to ``mean prob > threshold``); the class the names state is
    reported beside it.

    Args:
        records (Sequence[dict]): ``file_name``, ``status``, ``prob`` and ``label`` per image.
        threshold (float): The decision threshold.

    Returns:
        dict: patient id -> ``num_cells``, ``mean_prob_all``, ``votes`` (``{"hem", "all"}``),
        ``label`` (1 = all), ``label_name``, ``class_in_name``, ``agrees_with_name``.
    """
    patients, gt, pred, probs = [], [], [], []
    for r in records:
        if r.get('status') != 'ok' or r.get('patient_id') is None:
            continue
        patients.append(r['patient_id'])
        gt.append(1 if r['class_in_name'] == 'all' else 0)
        pred.append(int(r['label']))
        probs.append(float(r['prob_all']))
    if not patients:
        return {}
    votes = patient_votes(patients, np.asarray(gt, np.int64), np.asarray(pred, np.int64),
                          np.asarray(probs, np.float64), threshold)
    names = ('hem', 'all')
    out = OrderedDict()
    for pid in sorted(votes, key=lambda p: (p.startswith('H'), len(p), p)):
        v = votes[pid]
        out[pid] = OrderedDict(
            num_cells=v['num_cells'], mean_prob_all=round(v['mean_score'], 6),
            votes=dict(hem=v['votes'][0], all=v['votes'][1]), label=v['pred_label'],
            label_name=names[v['pred_label']], class_in_name=names[v['gt_label']],
            agrees_with_name=bool(v['correct']))
    return out


def _patient_of(path: str) -> Tuple[Optional[str], Optional[str]]:
    base = osp.basename(path)
    ext = osp.splitext(base)[1]
    if not ext:
        return None, None
    try:
        info = parse_cnmc_name(base, suffix=ext)
    except CNMCDataError:
        return None, None
    return info['patient_id'], info['class_name']


def run_classification(config, checkpoint: Optional[str], images: Union[str, Sequence[str]],
                       out_dir: str, threshold: Optional[float] = None, saliency: bool = False,
                       device: Optional[str] = None, cfg_options: Optional[dict] = None,
                       batch_size: int = 8, progress: Optional[bool] = None) -> dict:
    """Classify cell images (probability of ALL) and write the results to ``out_dir``.

    Files written:

    - ``predictions.json``: ``{"task": "classify", "config", "checkpoint", "threshold",
      "classes", "members", "num_images", "num_failed", "images": [...], "patients": {...}}``;
      per image (input order): ``image``, ``file_name``, ``status`` (``"ok"`` / ``"error"``),
      ``error`` (the reason, ``""`` when ok), ``prob_all`` (probability of ``all``), ``label``
      (1 = all when ``prob_all > threshold``, else 0 = hem), ``label_name``, ``member_probs``
      (ensembles: ``{member: prob}``), ``patient_id`` and ``class_in_name`` (from a C-NMC file
      name, else null), ``saliency`` (the Grad-CAM file relative to ``out_dir``, or null) and
      ``warnings`` (what makes the image unlike C-NMC's cells - background not black,
      grayscale, lossy JPEG - each with the fix:
      :func:`~mmbloodcell.datasets.transforms.cell.cell_image_warnings`; the image is still
      classified); ``patients``: :func:`patient_summary`;
    - ``predictions.csv``: columns ``image, prob_all, label, label_name, threshold,
      patient_id, saliency, status, error, warnings`` (``; ``-separated) plus
      ``prob_all_<member>`` per ensemble member;
    - ``patients.csv`` (when file names carry patient ids): ``patient_id, num_cells,
      mean_prob_all, votes_hem, votes_all, label, label_name, class_in_name,
      agrees_with_name``;
    - with ``saliency``: ``<stem>_gradcam.png``, the Grad-CAM map (jet, red = evidence for
      ALL) blended over the image, at the image's size.

    Args:
        config, checkpoint, device, threshold, cfg_options: see :class:`CellClassifier`.
        images (str | Sequence[str]): Image files and folders (see :func:`expand_images`).
        out_dir (str): Output folder (created).
        saliency (bool): Write the Grad-CAM images. Defaults to False.
        batch_size (int): Images per forward pass. Defaults to 8.
        progress (bool, optional): Show a progress bar; None: when a folder was given.

    Returns:
        dict: The content of ``predictions.json``.
    """
    paths, any_folder = expand_images(images)
    if not paths:
        raise ValueError(_no_images(images))
    clf = CellClassifier(config, checkpoint, device=device, threshold=threshold,
                         cfg_options=cfg_options)
    os.makedirs(out_dir, exist_ok=True)
    stems = output_stems(paths)
    records = []
    for path in paths:
        pid, cls_name = _patient_of(path)
        records.append(OrderedDict(image=path, file_name=osp.basename(path), status='ok',
                                   error='', prob_all=None, label=None, label_name=None,
                                   member_probs=None, patient_id=pid, class_in_name=cls_name,
                                   saliency=None, warnings=[]))

    bar = _progress(len(paths), any_folder if progress is None else progress)
    step = max(1, int(batch_size))
    for start in range(0, len(paths), step):
        idx = list(range(start, min(start + step, len(paths))))
        ok_idx, ok_imgs = [], []
        for i in idx:
            img, problem = clf.read(paths[i])
            if problem is not None:
                records[i].update(status='error', error=problem)
            else:
                ok_idx.append(i)
                ok_imgs.append(img)
                records[i]['warnings'] = cell_image_warnings(img, paths[i])
        results = clf.predict(ok_imgs, [paths[i] for i in ok_idx], saliency=saliency,
                              batch_size=step) if ok_imgs else []
        for i, img, res in zip(ok_idx, ok_imgs, results):
            rec = records[i]
            if res['error'] is not None:
                rec.update(status='error', error=res['error'])
                continue
            rec.update(prob_all=round(res['prob'], 6), label=res['label'],
                       label_name=res['label_name'])
            if res['member_probs'] is not None:
                rec['member_probs'] = OrderedDict(
                    (n, round(p, 6)) for n, p in zip(clf.member_names, res['member_probs']))
            if res['cam'] is not None:
                rel = f'{stems[i]}_gradcam.png'
                cv2.imwrite(osp.join(out_dir, rel), overlay_cam(img, res['cam']))
                rec['saliency'] = rel
        if bar is not None:
            for _ in idx:
                bar.update()
    if bar is not None:
        sys.stderr.write('\n')

    patients = patient_summary(records, clf.threshold)
    doc = OrderedDict(task='classify', config=clf.config_name, checkpoint=clf.checkpoint,
                      threshold=clf.threshold, classes=list(clf.classes),
                      members=clf.member_names, num_images=len(records),
                      num_failed=sum(r['status'] != 'ok' for r in records),
                      num_warned=sum(bool(r['warnings']) for r in records), images=records,
                      patients=patients)
    with open(osp.join(out_dir, 'predictions.json'), 'w') as f:
        json.dump(doc, f, indent=2)
    with open(osp.join(out_dir, 'predictions.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['image', 'prob_all', 'label', 'label_name', 'threshold', 'patient_id',
                         'saliency', 'status', 'error', 'warnings'] +
                        [f'prob_all_{n}' for n in clf.member_names])
        for r in records:
            members = r['member_probs'] or {}
            writer.writerow([_blank(r[k]) for k in ('image', 'prob_all', 'label', 'label_name')] +
                            [clf.threshold] +
                            [_blank(r[k]) for k in ('patient_id', 'saliency', 'status',
                                                    'error')] + ['; '.join(r['warnings'])] +
                            [_blank(members.get(n)) for n in clf.member_names])
    if patients:
        with open(osp.join(out_dir, 'patients.csv'), 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['patient_id', 'num_cells', 'mean_prob_all', 'votes_hem',
                             'votes_all', 'label', 'label_name', 'class_in_name',
                             'agrees_with_name'])
            for pid, p in patients.items():
                writer.writerow([pid, p['num_cells'], p['mean_prob_all'], p['votes']['hem'],
                                 p['votes']['all'], p['label'], p['label_name'],
                                 p['class_in_name'], p['agrees_with_name']])
    return doc


def _blank(value) -> str:
    return '' if value is None else value
