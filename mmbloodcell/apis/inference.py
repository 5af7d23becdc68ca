"""Inference on image files: cell detection (BCCD) and leukemia classification (C-NMC).

:class:`CellDetector` (mmdet's ``DetInferencer``) and :class:`CellClassifier` (mmpretrain's
``ImageClassificationInferencer``) take the config's test pipeline without its file loader:
:func:`read_image` decodes each image as that loader would, so that a bad file becomes a
per-image error with its reason. Neither leaves a global mmengine instance behind (default
scope, visualizer) for a ``Runner`` built later in the same process.
:func:`run_detection` / :func:`run_classification` write the files of ``mmbloodcell detect`` /
``mmbloodcell classify``; their docstrings give the formats.
"""
import contextlib
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
from mmdet.apis import DetInferencer
from mmdet.utils import get_test_pipeline_cfg
from mmengine.config import Config, ConfigDict
from mmengine.device import get_device
from mmengine.fileio import list_dir_or_file
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint_to_model, load_checkpoint
from mmengine.utils import track_iter_progress
from mmpretrain.apis import ImageClassificationInferencer

import mmbloodcell  # noqa: F401  (registers the modules, allows safe checkpoint loading)
from mmbloodcell.apis.gradcam import GradCAM, cam_to_image, overlay_cam
from mmbloodcell.apis.tool_config import dicts_with_key, merge_cfg_options
from mmbloodcell.datasets.cnmc import CNMC_CLASSES, CNMCDataError, parse_cnmc_name
from mmbloodcell.datasets.image_checks import check_image_file
from mmbloodcell.datasets.transforms.cell import cell_image_warnings
from mmbloodcell.evaluation.metrics.binary_metrics import patient_votes
from mmbloodcell.models.heads.binary_cls_head import positive_prob
from mmbloodcell.structures import count_cells, instances_to_detections
from mmbloodcell.utils.paths import IMAGE_EXTENSIONS, natural_key
from mmbloodcell.visualization import CellDetVisualizer, draw_detections

__all__ = [
    'IMAGE_EXTENSIONS', 'expand_images', 'read_image', 'output_stems', 'CellDetector',
    'CellClassifier', 'patient_summary', 'run_detection', 'run_classification', 'BACKENDS',
    'build_detector', 'build_classifier', 'detect_record', 'set_prediction'
]

#: ``CKPT`` values meaning "no checkpoint" (an ensemble whose config names its members').
NO_CHECKPOINT = ('-', 'none', '')


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------

def _walk_order(rel_path: str) -> list:
    """Sort key of a path inside a folder: natural order, a folder's own files before its
    sub-folders."""
    parts = rel_path.replace('\\', '/').split('/')
    return [(1, natural_key(p)) for p in parts[:-1]] + [(0, natural_key(parts[-1]))]


def expand_images(inputs) -> Tuple[list, bool]:
    """Inputs as given, folders expanded recursively to their :data:`IMAGE_EXTENSIONS` files
    (any case) in natural order: ``2.bmp`` before ``10.bmp``, a folder's files before its
    sub-folders. Files named explicitly are kept whatever their extension, arrays and
    ``dict(img=...)`` are passed through.

    Returns:
        tuple: the inputs (a missing path is kept, :func:`read_image` reports it) and whether
        any input was a folder.
    """
    if isinstance(inputs, (str, np.ndarray, dict)):
        inputs = [inputs]
    out: list = []
    any_folder = False
    for item in inputs:
        if isinstance(item, str) and osp.isdir(item):
            any_folder = True
            found = [p for p in list_dir_or_file(item, list_dir=False, recursive=True)
                     if p.lower().endswith(IMAGE_EXTENSIONS)]
            out.extend(osp.join(item, p) for p in sorted(found, key=_walk_order))
        else:
            out.append(item)
    return out, any_folder


def read_image(path: str, color_type: str = 'color',
               backend: str = 'cv2') -> Tuple[Optional[np.ndarray], Optional[str]]:
    """Decode an image file as the configs' ``LoadImageFromFile`` does (``mmcv.imfrombytes``).

    Returns:
        tuple: ``(img, None)`` (BGR for ``color_type='color'``), or ``(None, reason)`` when the
        file is missing, empty, truncated, not an image or not decodable.
    """
    if not osp.exists(path):
        return None, 'does not exist'
    if osp.isdir(path):
        return None, 'is a folder, not an image file'
    # the file's header and end marker (no decoding by Pillow: the decoder below does that)
    problem = check_image_file(path, decode=False)
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


def _inputs(images, progress: Optional[bool]) -> Tuple[list, bool]:
    """The image paths of ``images`` and whether to show a progress bar (None: when a folder
    was given)."""
    paths, any_folder = expand_images(images)
    if not paths:
        given = [images] if isinstance(images, str) else list(images)
        raise ValueError(f'no images found in {given} (folders are searched, recursively, for '
                         f'{", ".join(IMAGE_EXTENSIONS)} files)')
    return paths, any_folder if progress is None else progress


def _tracked(items: Sequence, enabled: bool):
    """``items``, with mmengine's progress bar on stderr when ``enabled``."""
    return track_iter_progress(items, file=sys.stderr) if enabled else items


def _record(path: str, **fields) -> OrderedDict:
    return OrderedDict(image=path, file_name=osp.basename(path), status='ok', error='',
                       **fields)


def _failure(e: BaseException) -> str:
    return f'inference failed ({type(e).__name__}: {e})'


def _blank(value) -> str:
    return '' if value is None else value


def _write(out_dir: str, json_name: str, doc: dict, tables: Sequence[tuple]) -> dict:
    """Write ``doc`` as ``json_name`` and each ``(csv name, header, rows)`` of ``tables``;
    returns ``doc``."""
    with open(osp.join(out_dir, json_name), 'w') as f:
        json.dump(doc, f, indent=2)
    for name, header, rows in tables:
        with open(osp.join(out_dir, name), 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    return doc


# ----------------------------------------------------------------------------------------------
# Config and checkpoint
# ----------------------------------------------------------------------------------------------

def _type_name(step) -> str:
    kind = step.get('type', '')
    return (kind.__name__ if isinstance(kind, type) else str(kind)).split('.')[-1]


def _test_pipeline(cfg: Config, where: str) -> list:
    """A copy of the config's test pipeline (through dataset wrappers); a config without one
    is an error naming it."""
    try:
        pipeline = get_test_pipeline_cfg(cfg)
    except (AttributeError, KeyError, RuntimeError, TypeError):
        pipeline = None
    if not pipeline:
        raise ValueError(f'{where}: no test_dataloader.dataset.pipeline; inference uses the '
                         f"config's test pipeline, add one")
    return copy.deepcopy(list(pipeline))


def _pipeline_cfg(steps: list) -> ConfigDict:
    """``steps`` where the inferencers' ``_init_pipeline`` look for the test pipeline."""
    return ConfigDict(test_dataloader=dict(dataset=dict(pipeline=steps)))


@contextlib.contextmanager
def _strict_loading(checkpoint: str, config_name: str):
    """Turn mmengine's strict-loading error into one that names both files."""
    try:
        yield
    except RuntimeError as e:
        detail = ' '.join(str(e).strip().splitlines()[:3])[:400]
        raise ValueError(f'checkpoint {checkpoint} does not match the model of {config_name} '
                         f'({detail} ...): give the checkpoint trained with this config') from e


def _check_checkpoint(checkpoint, name: str) -> None:
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} not found: train first '
                                f'(python tools/train.py {name}) or fix the path')


#: default_scope -> (task, the other command, its task)
_TASKS = {'mmdet': ('detection', 'classify', 'classification'),
          'mmpretrain': ('classification', 'detect', 'detection')}


class _ImageFiles:
    """What both inferencers add: the config loaded and checked (:meth:`_load`), folders
    expanded by :func:`expand_images`, and :meth:`read`."""

    def _load(self, config, cfg_options: Optional[dict], scope: str) -> Config:
        """The config (a copy, ``cfg_options`` merged), checked to be of ``scope``; sets
        ``config_name``."""
        name = config if isinstance(config, str) else getattr(config, 'filename', None)
        self.config_name = name = name or '<Config>'
        if isinstance(config, Config):
            cfg = copy.deepcopy(config)
        elif not osp.isfile(config):
            raise FileNotFoundError(f'config {config} not found: give the path of a config '
                                    f'file, e.g. configs/fcos/fcos_r18_fpn_gn_320_12e_bccd_'
                                    f'cpu-demo.py or configs/cnmc/densenet201_fhl_cnmc.py')
        else:
            cfg = Config.fromfile(config)
        cfg = merge_cfg_options(cfg, cfg_options)
        found = cfg.get('default_scope', scope)
        if found != scope:
            task, other, other_task = _TASKS[scope]
            raise ValueError(f'{name} is not a {task} config (default_scope={found!r}); use '
                             f'`mmbloodcell {other}` for {other_task} configs')
        return cfg

    def _set_loader(self, pipeline: Sequence[dict]) -> None:
        """``self.loader``: ``color_type`` / ``backend`` of the pipeline's image loader."""
        step = next((s for s in pipeline if _type_name(s) == 'LoadImageFromFile'), {})
        self.loader = dict(color_type=step.get('color_type', 'color'),
                           backend=step.get('imdecode_backend', 'cv2'))

    def _inputs_to_list(self, inputs) -> list:
        return expand_images(inputs)[0]

    def read(self, path: str) -> Tuple[Optional[np.ndarray], Optional[str]]:
        """:func:`read_image` with the config's loader settings."""
        return read_image(path, **self.loader)

    def _read(self, rec: dict) -> Optional[np.ndarray]:
        """The image of a result record, or None with the record set to its error."""
        img, problem = self.read(rec['image'])
        if problem is not None:
            rec.update(status='error', error=problem)
        return img


# ----------------------------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------------------------

#: The score threshold of a class without a calibrated or given one.
DEFAULT_SCORE_THR = 0.3
#: Where :func:`resolve_score_thrs` took the thresholds from.
SCORE_THR_SOURCES = {
    'given': 'given (--score-thr / score_thr)',
    'checkpoint': "calibrated on the validation split (checkpoint meta['count_thresholds'])",
    'default': f'default {DEFAULT_SCORE_THR} (the checkpoint has no count_thresholds)'}


def resolve_score_thrs(score_thr, classes: Sequence[str],
                       calibrated: Optional[dict] = None) -> Tuple[Dict[str, float], str]:
    """The per-class score thresholds of a detector, and where they came from.

    - ``score_thr`` a number: it, for every class (``'given'``);
    - a dict ``{class: threshold}``: those, :data:`DEFAULT_SCORE_THR` for a class it lacks
      (``'given'``);
    - None: ``calibrated`` (a checkpoint's ``meta['count_thresholds']``, written by
      :class:`~mmbloodcell.engine.hooks.CountCalibrationHook`), :data:`DEFAULT_SCORE_THR` for
      a class it lacks (``'checkpoint'``); without it :data:`DEFAULT_SCORE_THR` for every class
      (``'default'``).

    Returns:
        tuple: ``({class: threshold}, source)``, source a key of :data:`SCORE_THR_SOURCES`.
    """
    def check(value, what):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not 0.0 <= float(value) <= 1.0:
            raise ValueError(f'{what} must be a number in [0, 1], got {value!r}')
        return float(value)

    if score_thr is None:
        source, given = ('checkpoint', calibrated) if calibrated else ('default', {})
    elif isinstance(score_thr, dict):
        source, given = 'given', score_thr
        unknown = sorted(set(map(str, score_thr)) - set(classes))
        if unknown:
            raise ValueError(f'score_thr names classes {unknown} the detector does not have: '
                             f'use {", ".join(classes)}')
    else:
        thr = check(score_thr, 'score_thr')
        return {c: thr for c in classes}, 'given'
    return ({c: check(given.get(c, DEFAULT_SCORE_THR), f'score_thr of {c}') for c in classes},
            source)


class CellDetector(_ImageFiles, DetInferencer):
    """A trained mmdet detector for image files or arrays: mmdet's ``DetInferencer`` with

    - strict weight loading (another model's checkpoint is an error naming both files); class
      names as mmdet reads them, else from the config's test dataset class;
    - a score threshold per class (:func:`resolve_score_thrs`: given, else the checkpoint's
      calibrated ``count_thresholds``, else 0.3): :meth:`forward` keeps the boxes with
      ``score >= score_thr[class]``, and every ``score_thr`` of the model's ``test_cfg`` (its
      candidate threshold) is set to the smallest of them;
    - the test pipeline without ``LoadAnnotations``; folders expanded recursively in natural
      order (:func:`expand_images`);
    - its own :class:`~mmbloodcell.visualization.CellDetVisualizer` (boxes and a count banner),
      not a global mmengine instance.

    ``inferencer(inputs, return_datasamples=True, return_vis=True)`` gives the
    ``DetDataSample`` per image and the drawn RGB images, as ``DetInferencer`` does.

    Args:
        config (str | Config): A detection config (``default_scope='mmdet'``).
        checkpoint (str): Its trained weights.
        device (str, optional): ``'cpu'``, ``'cuda:0'``... Defaults to mmengine's
            ``get_device()``.
        score_thr (float | dict, optional): Boxes below it are dropped: one threshold for
            every class, or ``{class: threshold}``; None: the checkpoint's calibrated
            thresholds (``meta['count_thresholds']``), else 0.3. Defaults to None.
        cfg_options (dict, optional): Config overrides (``--cfg-options``).

    Attributes:
        classes (tuple[str]): Class names.
        score_thr (dict): ``{class: threshold}`` applied by :meth:`forward`.
        score_thr_source (str): Where they came from (``'given'``, ``'checkpoint'`` or
            ``'default'``; :data:`SCORE_THR_SOURCES`).
        count_thresholds (dict | None): The checkpoint's calibrated thresholds
            (``meta['count_thresholds']``), whether used or not.
    """

    def __init__(self, config, checkpoint: str, device: Optional[str] = None,
                 score_thr: Union[float, Dict[str, float], None] = None,
                 cfg_options: Optional[dict] = None):
        cfg = self._load(config, cfg_options, 'mmdet')
        name = self.config_name
        if not checkpoint or str(checkpoint).lower() in NO_CHECKPOINT:
            raise ValueError(f'{name}: detection needs a trained checkpoint (CKPT), e.g. '
                             f'work_dirs/<config>/epoch_12.pth')
        _check_checkpoint(checkpoint, name)
        if score_thr is not None and not isinstance(score_thr, dict):
            resolve_score_thrs(score_thr, ())  # a bad number fails before the model loads
        self.checkpoint = checkpoint
        self.count_thresholds: Optional[dict] = None
        self._channels_last_tried = False
        self._set_loader(_test_pipeline(cfg, name))
        with DefaultScope.overwrite_default_scope('mmdet'):
            super().__init__(model=cfg, weights=checkpoint, device=device, scope='mmdet',
                             show_progress=False)
        self.classes = tuple(self.model.dataset_meta['classes'])
        self.score_thr, self.score_thr_source = resolve_score_thrs(
            score_thr, self.classes, self.count_thresholds)
        lowest = min(self.score_thr.values())
        # the model's own candidate threshold (e.g. 0.05) becomes the lowest output threshold:
        # lower, it would drop boxes that are kept; higher, it makes the post-processing sort
        # and suppress candidates that are dropped anyway (a box under every threshold never
        # suppresses one above, and scores only shrink after it: the same boxes, sooner)
        holders = [self.cfg.model] + [m for m in self.model.modules()]
        for holder in holders:
            test_cfg = holder.get('test_cfg') if isinstance(holder, dict) else \
                getattr(holder, 'test_cfg', None)
            for node in dicts_with_key(test_cfg, 'score_thr'):
                if isinstance(node['score_thr'], (int, float)):
                    node['score_thr'] = lowest

    def _load_weights_to_model(self, model, checkpoint: Optional[dict], cfg) -> None:
        from mmdet.registry import DATASETS
        with _strict_loading(self.checkpoint, self.config_name):
            _load_checkpoint_to_model(model, checkpoint, strict=True)
        meta = checkpoint.get('meta', {})
        calibrated = meta.get('count_thresholds')
        self.count_thresholds = dict(calibrated) if isinstance(calibrated, dict) else None
        with warnings.catch_warnings():
            # mmdet falls back to COCO's names then: the config's are taken below
            warnings.filterwarnings('ignore', message='dataset_meta or class names are not')
            super()._load_weights_to_model(model, checkpoint, cfg)
        if 'dataset_meta' not in meta and 'CLASSES' not in meta:
            dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
            cls = DATASETS.get(dataset.get('type')) if dataset.get('type') else None
            model.dataset_meta['classes'] = tuple(
                (getattr(cls, 'METAINFO', None) or {}).get('classes') or ())
        classes = tuple(model.dataset_meta.get('classes') or ())
        num_classes = next((d['num_classes'] for d in dicts_with_key(cfg.model, 'num_classes')
                            if d['num_classes'] is not None), None)
        if not classes or (num_classes is not None and len(classes) != num_classes):
            raise ValueError(
                f'{self.checkpoint}: class names {classes} (from the checkpoint meta or the '
                f"config's test dataset) do not match the model's num_classes={num_classes}; "
                f'give the checkpoint trained with {self.config_name}')

    def _init_pipeline(self, cfg):
        steps = [s for s in _test_pipeline(cfg, self.config_name)
                 if _type_name(s) != 'LoadAnnotations']
        return super()._init_pipeline(_pipeline_cfg(steps))

    def _init_collate(self, cfg):
        # mmdet keeps no 'function' registry: look the collate function up in mmengine's
        scope, self.scope = self.scope, 'mmengine'
        try:
            return super()._init_collate(cfg)
        finally:
            self.scope = scope

    def _init_visualizer(self, cfg) -> CellDetVisualizer:
        # Not VISUALIZERS.build: that makes it mmengine's global instance of its name, which a
        # Runner built later from a config naming the same visualizer would take over.
        visualizer = CellDetVisualizer(name=f'{type(self).__name__}-{id(self)}')
        visualizer.dataset_meta = self.model.dataset_meta
        return visualizer

    #: on a CPU the model runs in channels-last memory format (oneDNN's faster convolutions);
    #: one with an op that needs contiguous tensors goes back on its first error. Not models
    #: with mmcv's compiled ops (RoIAlign, deformable convolutions...): those read the memory
    #: of their inputs as NCHW
    channels_last = True

    def _try_channels_last(self) -> bool:
        """At the first forward: the model to channels-last if :attr:`channels_last` allows
        it here (a CPU, no mmcv ops); whether it did."""
        import torch
        self._channels_last_tried = True
        if not (self.channels_last and next(self.model.parameters()).device.type == 'cpu'
                and not any(type(m).__module__.startswith('mmcv.ops')
                            for m in self.model.modules())):
            return False
        self.model.to(memory_format=torch.channels_last)
        return True

    def forward(self, inputs, **kwargs):
        """``DetInferencer.forward``, keeping the boxes with ``score >= score_thr[class]``."""
        trial = not self._channels_last_tried and self._try_channels_last()
        try:
            preds = super().forward(inputs, **kwargs)
        except RuntimeError:
            if not trial:
                raise
            import torch
            self.channels_last = False
            self.model.to(memory_format=torch.contiguous_format)
            preds = super().forward(inputs, **kwargs)
        for pred in preds:
            instances = pred.pred_instances
            thrs = instances.scores.new_tensor([self.score_thr[c] for c in self.classes])
            pred.pred_instances = instances[instances.scores >= thrs[instances.labels]]
        return preds

    def detect(self, img: np.ndarray, img_path: Optional[str] = None) -> List[dict]:
        """The boxes of one decoded image (BGR array) kept by :meth:`forward`, as
        :func:`~mmbloodcell.structures.instances_to_detections` records in original-image
        pixels. Every detection backend has this method (what :func:`run_detection` calls)."""
        inputs = img if img_path is None else dict(img=img, img_path=img_path)
        result = self(inputs, return_datasamples=True)
        return instances_to_detections(result['predictions'][0].pred_instances, self.classes)

    def visualize(self, inputs, preds, **kwargs):
        """``DetInferencer.visualize`` on BGR array inputs (what the test pipeline takes),
        drawing every box :meth:`forward` kept (``pred_score_thr`` is not applied again)."""
        if not (kwargs.get('return_vis') or kwargs.get('show')
                or (kwargs.get('img_out_dir') and kwargs.get('no_save_vis') is not True)):
            return None  # nothing is drawn (mmdet's own early return, before the RGB copies)
        rgb = []
        for item in inputs:
            if isinstance(item, np.ndarray):
                item = np.stack([item] * 3, -1) if item.ndim == 2 else item[..., 2::-1]
                item = np.ascontiguousarray(item)
            rgb.append(item)
        kwargs['pred_score_thr'] = -1.0
        return super().visualize(rgb, preds, **kwargs)


def detect_record(detector, rec: dict) -> Optional[np.ndarray]:
    """Read and detect the image of a result record (``rec['image']``): sets its ``height``,
    ``width``, ``detections`` and ``counts``, or its ``status`` / ``error`` when the image
    cannot be read or the detector fails on it. Returns the decoded image, None on error."""
    img = detector._read(rec)
    if img is None:
        return None
    rec.update(height=int(img.shape[0]), width=int(img.shape[1]))
    try:
        dets = detector.detect(img, rec['image'])
    except Exception as e:  # noqa: BLE001 - report the image, go on with the others
        rec.update(status='error', error=_failure(e))
        return None
    rec.update(detections=dets, counts=count_cells(dets, list(detector.classes)))
    return img


#: the inference backends of :func:`build_detector` / :func:`build_classifier`
BACKENDS = ('pytorch', 'onnxruntime')


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f'unknown backend {backend!r}: use one of {", ".join(BACKENDS)} '
                         f'(--backend {BACKENDS[0]})')


def build_detector(config, checkpoint: str, backend: str = 'pytorch', **kwargs):
    """The detector of ``backend`` (``'pytorch'``: :class:`CellDetector`; ``'onnxruntime'``:
    :class:`~mmbloodcell.apis.onnx_backend.OnnxCellDetector`, ``checkpoint`` the ``.onnx``
    file of ``mmbloodcell export``): an object with ``detect(img, img_path=None)``,
    ``read(path)``, ``classes``, ``score_thr``, ``config_name`` and ``checkpoint``.
    ``kwargs`` go to its constructor."""
    _check_backend(backend)
    if backend == 'onnxruntime':
        from mmbloodcell.apis.onnx_backend import OnnxCellDetector
        return OnnxCellDetector(config, checkpoint, **kwargs)
    return CellDetector(config, checkpoint, **kwargs)


def run_detection(config, checkpoint: str, images: Union[str, Sequence[str]], out_dir: str,
                  score_thr: Union[float, Dict[str, float], None] = None,
                  device: Optional[str] = None,
                  cfg_options: Optional[dict] = None, progress: Optional[bool] = None,
                  save_annotated: bool = True, backend: str = 'pytorch') -> dict:
    """Detect cells in image files and folders and write the results to ``out_dir``.

    Files written:

    - ``detections.json``: ``{"task": "detect", "config", "checkpoint", "score_thr",
      "score_thr_source", "classes", "num_images", "num_failed", "images": [...]}``:
      ``score_thr`` is ``{class: threshold}`` as applied, ``score_thr_source`` where it came
      from (``"given"``, ``"checkpoint"``: calibrated on the validation split, ``"default"``:
      0.3; see :func:`resolve_score_thrs`); one entry per input image
      (in input order): ``image`` (the path), ``file_name``, ``status`` (``"ok"`` or
      ``"error"``), ``error`` (the reason, ``""`` when ok), ``width``, ``height``, ``counts``
      (``{<class>: n, ..., "total": n}``, null on error), ``detections`` (a list of
      ``{"label", "class", "score", "bbox": [x1, y1, x2, y2]}`` in original-image pixels,
      every score >= its class's ``score_thr``) and ``annotated`` (path of the annotated
      image relative to ``out_dir``, null on error);
    - ``counts.csv``: columns ``image, <class>... (RBC, WBC, Platelets for BCCD), total,
      status, error``; one row per input image, empty counts on error;
    - ``annotated/<stem>.png``: the image with its boxes and a count banner.

    Args:
        config, checkpoint, device, score_thr, cfg_options: see :class:`CellDetector`.
        images (str | Sequence[str]): Image files and folders (see :func:`expand_images`).
        out_dir (str): Output folder (created).
        progress (bool, optional): Show a progress bar; None: when a folder was given.
        save_annotated (bool): Write the annotated images. Defaults to True.
        backend (str): See :func:`build_detector`. Defaults to ``'pytorch'``.

    Returns:
        dict: The content of ``detections.json``.
    """
    paths, progress = _inputs(images, progress)
    detector = build_detector(config, checkpoint, backend, device=device, score_thr=score_thr,
                              cfg_options=cfg_options)
    classes = list(detector.classes)
    os.makedirs(osp.join(out_dir, 'annotated') if save_annotated else out_dir, exist_ok=True)
    records = []
    for path, stem in _tracked(list(zip(paths, output_stems(paths))), progress):
        rec = _record(path, width=None, height=None, counts=None, detections=[],
                      annotated=None)
        records.append(rec)
        img = detect_record(detector, rec)
        if img is not None and save_annotated:
            rec['annotated'] = osp.join('annotated', f'{stem}.png')
            cv2.imwrite(osp.join(out_dir, rec['annotated']),
                        draw_detections(img, rec['detections'], classes))

    doc = OrderedDict(task='detect', config=detector.config_name,
                      checkpoint=detector.checkpoint, score_thr=detector.score_thr,
                      score_thr_source=getattr(detector, 'score_thr_source', 'given'),
                      classes=classes, num_images=len(records),
                      num_failed=sum(r['status'] != 'ok' for r in records), images=records)
    rows = [[r['image']] + [(r['counts'] or {}).get(c, '') for c in classes + ['total']] +
            [r['status'], r['error']] for r in records]
    return _write(out_dir, 'detections.json', doc,
                  [('counts.csv', ['image'] + classes + ['total', 'status', 'error'], rows)])


# ----------------------------------------------------------------------------------------------
# Classification
# ----------------------------------------------------------------------------------------------

class CellClassifier(_ImageFiles, ImageClassificationInferencer):
    """A trained binary C-NMC classifier (single model or ensemble) for image files or
    arrays: mmpretrain's ``ImageClassificationInferencer`` with

    - strict weight loading (``load_checkpoint(strict=True)``): another model's checkpoint is
      an error naming both files; class names from the checkpoint meta, else the config's
      test dataset;
    - the test pipeline found through dataset wrappers, ``CropToCell``'s ``cell_bbox`` added
      to the meta keys; folders expanded recursively in natural order (:func:`expand_images`);
    - ``forward(batch, saliency=True)``: a ``gradcam`` field per data sample, the Grad-CAM map
      on the original image (``(H, W)`` float32 in [0, 1]);
    - :meth:`predict`: the probability of ``all`` (``BinaryClsHead``: ``pred_prob``; a 2-class
      softmax head: ``pred_score[1]``) and the label at :attr:`threshold` per image.

    Args:
        config (str | Config): A classification config (``default_scope='mmpretrain'``), an
            ``EnsembleClassifier`` config included.
        checkpoint (str, optional): Trained weights. For an ensemble it may be None (or
            ``'-'`` / ``'none'``) when the config names every member's checkpoint
            (``model.members.<i>.checkpoint``), or one member's checkpoint, or an ensemble
            checkpoint (see ``EnsembleClassifier``).
        device (str, optional): Defaults to mmengine's ``get_device()``.
        threshold (float, optional): Decision threshold on the probability of ``all``.
            Defaults to the model's (``BinaryClsHead.threshold``,
            ``EnsembleClassifier.threshold``; 0.5 for a 2-class softmax head).
        cfg_options (dict, optional): Config overrides (``--cfg-options``).

    Attributes:
        classes (tuple[str]): ``CNMC_CLASSES`` (``('hem', 'all')``) for C-NMC.
        positive (int): Index of ``all`` (the class whose probability is reported).
        threshold (float): The decision threshold in use.
        member_names (list[str]): Ensemble members (empty for a single model).
    """

    forward_kwargs = {'saliency'}

    def __init__(self, config, checkpoint: Optional[str] = None, device: Optional[str] = None,
                 threshold: Optional[float] = None, cfg_options: Optional[dict] = None):
        from mmpretrain.apis import get_model

        cfg = self._load(config, cfg_options, 'mmpretrain')
        name = self.config_name
        if checkpoint is not None and str(checkpoint).lower() in NO_CHECKPOINT:
            checkpoint = None
        is_ensemble = cfg.model.get('type') == 'EnsembleClassifier'
        if checkpoint is None and not is_ensemble:
            raise ValueError(f'{name}: a trained checkpoint (CKPT) is needed; only ensemble '
                             f"configs whose members name their checkpoints take '-'")
        if checkpoint is not None:
            _check_checkpoint(checkpoint, name)
        self.checkpoint = checkpoint
        pipeline = _test_pipeline(cfg, name)  # fails early, naming the config, when there is none
        self._set_loader(pipeline)
        crop = [s for s in pipeline if _type_name(s) == 'CropToCell']
        self.crop_square = bool(crop[-1].get('square', True)) if crop else True

        # no init_weights: the backbone's ImageNet init_cfg is never downloaded
        model = get_model(cfg, pretrained=False, device=device or get_device())
        if checkpoint is not None:
            with _strict_loading(checkpoint, name):
                ckpt = load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
            meta = ckpt.get('meta', {})
            if meta.get('dataset_meta'):
                model._dataset_meta = meta['dataset_meta']
        if is_ensemble:
            missing = [f'{i} ({n})' for i, (n, ok) in enumerate(
                zip(model.member_names, model._loaded)) if not ok]
            if missing:
                raise ValueError(
                    f'{name}: ensemble members {", ".join(missing)} have no weights; set '
                    f'model.members.<i>.checkpoint in the config or with --cfg-options '
                    f'model.members.<i>.checkpoint=PATH, or give an ensemble checkpoint')
        super().__init__(model, pretrained=False)
        self.classes = tuple(self.classes or CNMC_CLASSES)
        if len(self.classes) != 2:
            raise ValueError(f'{name}: classify needs a binary classifier (hem / all); the '
                             f'model has classes {self.classes}')
        positive = CNMC_CLASSES[1]
        self.positive = self.classes.index(positive) if positive in self.classes else 1
        self.member_names = list(getattr(self.model, 'member_names', []) or [])
        if threshold is None:
            threshold = getattr(self.model, 'threshold', None)
            if threshold is None:
                threshold = getattr(getattr(self.model, 'head', None), 'threshold', 0.5)
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f'threshold must be in (0, 1), got {threshold}')
        self.threshold = float(threshold)

    def _init_pipeline(self, cfg):
        steps = _test_pipeline(cfg, self.config_name)
        for step in steps:
            if _type_name(step) == 'PackInputs':
                keys = list(step.get('meta_keys', ('sample_idx', 'img_path', 'ori_shape',
                                                   'img_shape', 'scale_factor', 'flip',
                                                   'flip_direction')))
                step['meta_keys'] = tuple(keys + [k for k in ('cell_bbox', ) if k not in keys])
        return super()._init_pipeline(_pipeline_cfg(steps))

    def forward(self, inputs, saliency: bool = False, **kwargs):
        """``model.test_step`` of a collated batch; with ``saliency`` each data sample gets
        a ``gradcam`` field: :class:`~mmbloodcell.apis.gradcam.GradCAM` of ``all``, mapped
        back onto the original image (``cam_to_image``)."""
        preds = super().forward(inputs, **kwargs)
        if saliency:
            cams = GradCAM(self.model, self.positive)(inputs)
            for pred, cam in zip(preds, cams):
                pred.set_field(cam_to_image(cam, pred.get('ori_shape'), pred.get('cell_bbox'),
                                            square=self.crop_square), 'gradcam')
        return preds

    def _classify(self, imgs: Sequence[np.ndarray], saliency: bool) -> List[dict]:
        results = []
        for batch in self.preprocess(list(imgs), batch_size=len(imgs)):
            for pred in self.forward(batch, saliency=saliency):
                try:
                    prob = float(positive_prob(pred, self.positive))
                except ValueError as e:
                    raise ValueError(f'{self.config_name}: {e}') from e
                member = pred.get('member_probs')
                results.append(dict(
                    prob=prob, label=int(prob > self.threshold),
                    member_probs=[float(p) for p in member] if member is not None else None,
                    cam=pred.get('gradcam'), error=None))
        return results

    def predict(self, imgs: Sequence[np.ndarray], saliency: bool = False,
                batch_size: int = 8) -> List[dict]:
        """Classify decoded images (BGR arrays), ``batch_size`` at a time.

        Returns:
            list[dict]: per image ``prob`` (probability of ``all``), ``label`` (1 = all when
            ``prob > threshold``), ``member_probs`` (ensembles: one per member, else None),
            ``cam`` (with ``saliency``: the Grad-CAM map on the original image) and ``error``
            (None, or why this image failed: a failing batch is retried image by image, and
            the others are still classified).
        """
        step = max(1, int(batch_size))
        results: List[dict] = []
        for start in range(0, len(imgs), step):
            chunk = list(imgs[start:start + step])
            try:
                results.extend(self._classify(chunk, saliency))
            except Exception as e:  # noqa: BLE001 - retry one by one to find the culprit
                if len(chunk) > 1:
                    results.extend(self.predict(chunk, saliency, batch_size=1))
                else:
                    results.append(dict(prob=None, label=None, member_probs=None, cam=None,
                                        error=_failure(e)))
        return results


def set_prediction(rec: dict, res: dict, clf) -> bool:
    """Copy one result of a classifier's ``predict`` into a result record: ``prob_all``,
    ``label``, ``label_name`` and, for ensembles, ``member_probs`` (``{member: prob}``), or
    ``status='error'`` and the reason. Returns whether the image was classified."""
    if res['error'] is not None:
        rec.update(status='error', error=res['error'])
        return False
    rec.update(prob_all=round(res['prob'], 6), label=res['label'],
               label_name=clf.classes[res['label']])
    if res['member_probs'] is not None:
        rec['member_probs'] = OrderedDict(
            (n, round(p, 6)) for n, p in zip(clf.member_names, res['member_probs']))
    return True


def build_classifier(config, checkpoint: Optional[str], backend: str = 'pytorch', **kwargs):
    """The classifier of ``backend`` (``'pytorch'``: :class:`CellClassifier`;
    ``'onnxruntime'``: :class:`~mmbloodcell.apis.onnx_backend.OnnxCellClassifier`,
    ``checkpoint`` the ``.onnx`` file of ``mmbloodcell export``): an object with
    ``predict(imgs, saliency=False, batch_size=8)``, ``read(path)``, ``classes``,
    ``positive``, ``threshold``, ``member_names``, ``config_name`` and ``checkpoint``.
    ``kwargs`` go to its constructor."""
    _check_backend(backend)
    if backend == 'onnxruntime':
        from mmbloodcell.apis.onnx_backend import OnnxCellClassifier
        return OnnxCellClassifier(config, checkpoint, **kwargs)
    return CellClassifier(config, checkpoint, **kwargs)


def patient_summary(records: Sequence[dict], threshold: float) -> Dict[str, dict]:
    """Per patient: cells, mean probability of ``all`` and the majority-vote label.

    Patients come from C-NMC file names (``UID_<patient>_<image>_<cell>_{all,hem}.<ext>``);
    images whose name does not parse are left out. The vote is
    :func:`~mmbloodcell.evaluation.metrics.binary_metrics.patient_votes` (a tie goes to
    ``mean prob > threshold``); the class the names state is reported beside it.

    Args:
        records (Sequence[dict]): ``status``, ``patient_id``, ``class_in_name``, ``prob_all``
            and ``label`` per image.

    Returns:
        dict: patient id -> ``num_cells``, ``mean_prob_all``, ``votes`` (``{"hem", "all"}``),
        ``label`` (1 = all), ``label_name``, ``class_in_name``, ``agrees_with_name``.
    """
    ok = [r for r in records if r.get('status') == 'ok' and r.get('patient_id') is not None]
    if not ok:
        return {}
    votes = patient_votes([r['patient_id'] for r in ok],
                          np.asarray([CNMC_CLASSES.index(r['class_in_name']) for r in ok],
                                     np.int64),
                          np.asarray([int(r['label']) for r in ok], np.int64),
                          np.asarray([float(r['prob_all']) for r in ok], np.float64), threshold)
    out = OrderedDict()
    for pid in sorted(votes, key=lambda p: (p.startswith('H'), len(p), p)):
        v = votes[pid]
        out[pid] = OrderedDict(
            num_cells=v['num_cells'], mean_prob_all=round(v['mean_score'], 6),
            votes=dict(zip(CNMC_CLASSES, v['votes'])), label=v['pred_label'],
            label_name=CNMC_CLASSES[v['pred_label']],
            class_in_name=CNMC_CLASSES[v['gt_label']], agrees_with_name=bool(v['correct']))
    return out


def _patient_of(path: str) -> Tuple[Optional[str], Optional[str]]:
    base = osp.basename(path)
    ext = osp.splitext(base)[1]
    try:
        info = parse_cnmc_name(base, suffix=ext) if ext else None
    except CNMCDataError:
        info = None
    return (info['patient_id'], info['class_name']) if info else (None, None)


def run_classification(config, checkpoint: Optional[str], images: Union[str, Sequence[str]],
                       out_dir: str, threshold: Optional[float] = None, saliency: bool = False,
                       device: Optional[str] = None, cfg_options: Optional[dict] = None,
                       batch_size: int = 8, progress: Optional[bool] = None,
                       backend: str = 'pytorch') -> dict:
    """Classify cell images (probability of ALL) and write the results to ``out_dir``.

    Files written:

    - ``predictions.json``: ``{"task": "classify", "config", "checkpoint", "threshold",
      "classes", "members", "num_images", "num_failed", "num_warned", "images": [...],
      "patients": {...}}``; per image (input order): ``image``, ``file_name``, ``status``
      (``"ok"`` / ``"error"``), ``error`` (the reason, ``""`` when ok), ``prob_all``
      (probability of ``all``), ``label`` (1 = all when ``prob_all > threshold``, else
      0 = hem), ``label_name``, ``member_probs`` (ensembles: ``{member: prob}``),
      ``patient_id`` and ``class_in_name`` (from a C-NMC file name, else null), ``saliency``
      (the Grad-CAM file relative to ``out_dir``, or null) and ``warnings`` (what makes the
      image unlike C-NMC's cells, each with the fix:
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
        backend (str): See :func:`build_classifier`. Defaults to ``'pytorch'``.

    Returns:
        dict: The content of ``predictions.json``.
    """
    paths, progress = _inputs(images, progress)
    clf = build_classifier(config, checkpoint, backend, device=device, threshold=threshold,
                           cfg_options=cfg_options)
    os.makedirs(out_dir, exist_ok=True)
    step = max(1, int(batch_size))
    records, pending = [], []  # pending: (record, stem, image) of the current batch
    for i, (path, stem) in _tracked(list(enumerate(zip(paths, output_stems(paths)))),
                                    progress):
        pid, cls_name = _patient_of(path)
        rec = _record(path, prob_all=None, label=None, label_name=None, member_probs=None,
                      patient_id=pid, class_in_name=cls_name, saliency=None, warnings=[])
        records.append(rec)
        img = clf._read(rec)
        if img is not None:
            rec['warnings'] = cell_image_warnings(img, path)
            pending.append((rec, stem, img))
        if (i + 1) % step and i + 1 < len(paths):
            continue
        results = clf.predict([p[2] for p in pending], saliency=saliency, batch_size=step)
        for (rec, stem, img), res in zip(pending, results):
            if not set_prediction(rec, res, clf):
                continue
            if res['cam'] is not None:
                rec['saliency'] = f'{stem}_gradcam.png'
                cv2.imwrite(osp.join(out_dir, rec['saliency']), overlay_cam(img, res['cam']))
        pending = []

    patients = patient_summary(records, clf.threshold)
    doc = OrderedDict(task='classify', config=clf.config_name, checkpoint=clf.checkpoint,
                      threshold=clf.threshold, classes=list(clf.classes),
                      members=clf.member_names, num_images=len(records),
                      num_failed=sum(r['status'] != 'ok' for r in records),
                      num_warned=sum(bool(r['warnings']) for r in records), images=records,
                      patients=patients)
    names = clf.member_names
    rows = [[_blank(r[k]) for k in ('image', 'prob_all', 'label', 'label_name')] +
            [clf.threshold] + [_blank(r[k]) for k in ('patient_id', 'saliency', 'status',
                                                      'error')] +
            ['; '.join(r['warnings'])] + [_blank((r['member_probs'] or {}).get(n)) for n in names]
            for r in records]
    tables = [('predictions.csv', ['image', 'prob_all', 'label', 'label_name', 'threshold',
                                   'patient_id', 'saliency', 'status', 'error', 'warnings'] +
               [f'prob_all_{n}' for n in names], rows)]
    if patients:
        tables.append(('patients.csv', ['patient_id', 'num_cells', 'mean_prob_all', 'votes_hem',
                                        'votes_all', 'label', 'label_name', 'class_in_name',
                                        'agrees_with_name'],
                       [[pid, p['num_cells'], p['mean_prob_all'], p['votes']['hem'],
                         p['votes']['all'], p['label'], p['label_name'], p['class_in_name'],
                         p['agrees_with_name']] for pid, p in patients.items()]))
    return _write(out_dir, 'predictions.json', doc, tables)
