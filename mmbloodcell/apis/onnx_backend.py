"""The ``onnxruntime`` inference backend (``mmbloodcell detect / classify --backend
onnxruntime``): the ``.onnx`` file of :func:`mmbloodcell.apis.export.export_onnx` in place of
the ``.pth`` checkpoint, on the CPU.

Per image: the config's test pipeline (its registered transforms in an mmengine ``Compose``,
without the file loader: :meth:`read` decodes as the PyTorch backend does), then the data
preprocessor's work in numpy (``[2, 1, 0]`` channel flip when ``bgr_to_rgb``,
``(img - mean) / std``, the batch padded at the bottom / right to ``pad_size_divisor`` with
``pad_value``), then onnxruntime, then for detectors
:class:`~mmbloodcell.apis.onnx_postprocess.DensePostProcessor` (boxes in original-image
pixels). No mmdet / mmpretrain model is built.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope

from mmbloodcell.apis.export import read_onnx_metadata
from mmbloodcell.apis.inference import (_failure, _ImageFiles, _test_pipeline, _type_name,
                                        resolve_score_thrs)
from mmbloodcell.apis.onnx_postprocess import DensePostProcessor
from mmbloodcell.structures import instances_to_detections

__all__ = ['OnnxCellDetector', 'OnnxCellClassifier', 'normalize_batch', 'ort_session',
           'THREADS_ENV']

#: environment variable with onnxruntime's intra-op threads (0 / unset: onnxruntime's default)
THREADS_ENV = 'MMBLOODCELL_ORT_THREADS'


def ort_session(path: str, num_threads: Optional[int] = None):
    """An onnxruntime CPU session of ``path``; ``num_threads`` intra-op threads (None: the
    :data:`THREADS_ENV` variable, else onnxruntime's default), one inter-op thread."""
    import onnxruntime as ort
    if num_threads is None:
        num_threads = int(os.environ.get(THREADS_ENV, '0') or 0)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(0, int(num_threads))
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=opts, providers=['CPUExecutionProvider'])


def normalize_batch(images: Sequence[np.ndarray], preprocess: dict) -> np.ndarray:
    """The data preprocessor's batch of ``(C, H, W)`` uint8 images, ``(N, C, H', W')``
    float32: channels flipped when ``bgr_to_rgb``, ``(img - mean) / std``, padded at the
    bottom / right to the largest ``H``, ``W`` rounded up to ``pad_size_divisor``, with
    ``pad_value``."""
    mean = np.asarray(preprocess['mean'], np.float32).reshape(-1, 1, 1)
    std = np.asarray(preprocess['std'], np.float32).reshape(-1, 1, 1)
    d = max(1, int(preprocess.get('pad_size_divisor', 1)))
    h = max(i.shape[1] for i in images)
    w = max(i.shape[2] for i in images)
    h, w = -(-h // d) * d, -(-w // d) * d
    batch = np.full((len(images), images[0].shape[0], h, w), preprocess.get('pad_value', 0),
                    np.float32)
    for b, img in enumerate(images):
        x = img[[2, 1, 0]] if preprocess.get('bgr_to_rgb') and img.shape[0] == 3 else img
        batch[b, :, :img.shape[1], :img.shape[2]] = (x.astype(np.float32) - mean) / std
    return batch


class _OnnxModel(_ImageFiles):
    """What both ONNX backends share: the config checked, the ``.onnx`` file read (metadata,
    session), the test pipeline without its loaders."""

    task = ''
    command = ''

    def _open(self, config, checkpoint, device, cfg_options, scope: str,
              num_threads: Optional[int]) -> None:
        self.cfg = cfg = self._load(config, cfg_options, scope)
        name = self.config_name
        if device is not None and not str(device).startswith('cpu'):
            raise ValueError(f'--backend onnxruntime runs on the CPU (got --device {device}); '
                             f'use --device cpu, or --backend pytorch for {device}')
        if not checkpoint or not osp.isfile(str(checkpoint)):
            raise FileNotFoundError(
                f'ONNX model {checkpoint} not found: export it first (mmbloodcell export {name} '
                f'CKPT --format onnx --out {checkpoint or "model.onnx"}) or fix the path')
        if not str(checkpoint).lower().endswith('.onnx'):
            raise ValueError(f'{checkpoint} is not an .onnx file: --backend onnxruntime takes '
                             f'the file of mmbloodcell export {name} {checkpoint} --format onnx; '
                             f'give the .pth checkpoint with --backend pytorch')
        self.checkpoint = str(checkpoint)
        self.meta = read_onnx_metadata(self.checkpoint)
        if self.meta.get('task') != self.task:
            other = {'detection': 'detect', 'classification': 'classify'}.get(
                self.meta.get('task'), self.command)
            raise ValueError(f'{checkpoint} is a {self.meta.get("task")} model; use '
                             f'`mmbloodcell {other}` for it (or give the .onnx file of a '
                             f'{self.task} model)')
        pipeline = _test_pipeline(cfg, name)
        self._set_loader(pipeline)
        steps = [s for s in pipeline
                 if _type_name(s) not in ('LoadAnnotations', 'LoadImageFromFile')]
        if scope == 'mmdet':
            from mmdet.registry import TRANSFORMS
        else:
            from mmpretrain.registry import TRANSFORMS
        with DefaultScope.overwrite_default_scope(scope):
            transforms = [TRANSFORMS.build(s) for s in steps]
        # the packing step (PackDetInputs / PackInputs: HWC -> CHW tensor + meta) is done in
        # numpy here: a torch op per image would wake torch's thread pool, whose spinning
        # threads then take the cores from onnxruntime's
        last = transforms[-1] if transforms else None
        self._meta_keys = (tuple(last.meta_keys) if type(last).__name__.startswith('Pack')
                           and hasattr(last, 'meta_keys') else None)
        self.pipeline = Compose(transforms[:-1] if self._meta_keys is not None else transforms)
        self.session = ort_session(self.checkpoint, num_threads)
        self.output_names = list(self.meta['outputs'])
        self.classes = tuple(self.meta['classes'])

    def _prepare(self, img: np.ndarray, img_path: Optional[str] = None):
        """``(C, H, W)`` uint8 array and meta of one image through the test pipeline."""
        h, w = img.shape[:2]
        data = self.pipeline(dict(img=img, img_path=img_path, img_shape=(h, w),
                                  ori_shape=(h, w)))
        if self._meta_keys is not None:  # what the packing step gives, as numpy
            img = data['img'] if data['img'].ndim == 3 else data['img'][..., None]
            return (np.ascontiguousarray(img.transpose(2, 0, 1)),
                    {k: data[k] for k in self._meta_keys if k in data})
        inputs = data['inputs']
        inputs = inputs.numpy() if hasattr(inputs, 'numpy') else np.asarray(inputs)
        return inputs, dict(data['data_samples'].metainfo)

    def _run(self, arrays: List[np.ndarray]) -> Dict[str, np.ndarray]:
        batch = normalize_batch(arrays, self.meta['preprocess'])
        outs = self.session.run(self.output_names, {'input': batch})
        return dict(zip(self.output_names, outs))


class OnnxCellDetector(_OnnxModel):
    """A detector exported by ``mmbloodcell export`` run by onnxruntime: the
    :class:`~mmbloodcell.apis.inference.CellDetector` interface (:meth:`detect`,
    :meth:`read`, ``classes``, ``score_thr``, ``config_name``, ``checkpoint``).

    Args:
        config (str | Config): The detection config the model was trained with (its test
            pipeline prepares the images).
        checkpoint (str): The ``.onnx`` file.
        device (str, optional): ``'cpu'`` or None.
        score_thr (float | dict | None): Keep boxes with ``score >= score_thr``: one number,
            or ``{class: threshold}`` (classes not named: 0.3); None: the calibrated
            thresholds the export copied from the checkpoint (``count_thresholds``), else
            0.3 (:func:`~mmbloodcell.apis.inference.resolve_score_thrs`). The model's
            ``test_cfg.score_thr`` (its candidate threshold) is set to the smallest.
        cfg_options (dict, optional): Config overrides (the test pipeline, the model's
            ``test_cfg``).
        num_threads (int, optional): onnxruntime intra-op threads (see :func:`ort_session`).
    """

    task = 'detection'
    command = 'detect'

    def __init__(self, config, checkpoint: str, device: Optional[str] = None,
                 score_thr: Union[float, Dict[str, float], None] = None,
                 cfg_options: Optional[dict] = None, num_threads: Optional[int] = None):
        self._open(config, checkpoint, device, cfg_options, 'mmdet', num_threads)
        calibrated = self.meta.get('count_thresholds')
        if isinstance(calibrated, (list, tuple)):
            calibrated = dict(zip(self.classes, calibrated))
        self.score_thr, self.score_thr_source = resolve_score_thrs(score_thr, self.classes,
                                                                   calibrated)
        per_class = self._class_thresholds()
        # the config's test_cfg (with --cfg-options), as the PyTorch detector applies it;
        # the exported one for a config without
        test_cfg = dict(self.cfg.model.get('test_cfg') or self.meta['test_cfg'])
        if isinstance(test_cfg.get('score_thr'), (int, float)):
            test_cfg['score_thr'] = float(per_class.min())  # as CellDetector sets it
        self.postprocess = DensePostProcessor(self.meta['head'], test_cfg)

    def _class_thresholds(self) -> np.ndarray:
        """``score_thr`` per label, ``(C,)``."""
        return np.asarray([self.score_thr[c] for c in self.classes], np.float32)

    def predict_arrays(self, imgs: Sequence[np.ndarray],
                       img_paths: Optional[Sequence[Optional[str]]] = None) -> List[dict]:
        """Boxes of decoded BGR images in one onnxruntime batch: per image ``bboxes``
        ``(K, 4)`` in original-image pixels, ``scores``, ``labels``, with ``score >=`` the
        class's ``score_thr``."""
        paths = list(img_paths) if img_paths is not None else [None] * len(imgs)
        arrays, metas = zip(*(self._prepare(img, p) for img, p in zip(imgs, paths)))
        dets = self.postprocess(self._run(list(arrays)), metas)
        thr = self._class_thresholds()
        return [{k: v[d['scores'] >= thr[d['labels']]] for k, v in d.items()} for d in dets]

    def detect_batch(self, imgs: Sequence[np.ndarray],
                     img_paths: Optional[Sequence[Optional[str]]] = None) -> List[List[dict]]:
        """:meth:`detect` of several images in one batch."""
        return [instances_to_detections(d, self.classes)
                for d in self.predict_arrays(imgs, img_paths)]

    def detect(self, img: np.ndarray, img_path: Optional[str] = None) -> List[dict]:
        """The boxes of one decoded image (BGR array) as
        :func:`~mmbloodcell.structures.instances_to_detections` records in original-image
        pixels (what ``CellDetector.detect`` gives)."""
        return self.detect_batch([img], [img_path])[0]


class OnnxCellClassifier(_OnnxModel):
    """A classifier (single or ensemble) exported by ``mmbloodcell export`` run by
    onnxruntime: the :class:`~mmbloodcell.apis.inference.CellClassifier` interface
    (:meth:`predict`, :meth:`read`, ``classes``, ``positive``, ``threshold``,
    ``member_names``, ``config_name``, ``checkpoint``). No Grad-CAM (``saliency=True`` is an
    error: it needs the PyTorch model).

    Args:
        config (str | Config): The classification config the model was trained with.
        checkpoint (str): The ``.onnx`` file.
        device (str, optional): ``'cpu'`` or None.
        threshold (float, optional): Decision threshold on the probability of ``all``.
            Defaults to the exported model's.
        cfg_options (dict, optional): Config overrides (the test pipeline).
        num_threads (int, optional): onnxruntime intra-op threads (see :func:`ort_session`).
    """

    task = 'classification'
    command = 'classify'

    def __init__(self, config, checkpoint: str, device: Optional[str] = None,
                 threshold: Optional[float] = None, cfg_options: Optional[dict] = None,
                 num_threads: Optional[int] = None):
        self._open(config, checkpoint, device, cfg_options, 'mmpretrain', num_threads)
        self.positive = int(self.meta['positive'])
        self.member_names = list(self.meta.get('member_names') or [])
        threshold = self.meta['threshold'] if threshold is None else threshold
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f'threshold must be in (0, 1), got {threshold}')
        self.threshold = float(threshold)

    def predict(self, imgs: Sequence[np.ndarray], saliency: bool = False,
                batch_size: int = 8) -> List[dict]:
        """Classify decoded images (BGR arrays), ``batch_size`` per onnxruntime run: per image
        ``prob``, ``label``, ``member_probs``, ``cam`` (None) and ``error`` as
        ``CellClassifier.predict`` (an image that fails the pipeline or the run gets its error,
        the others are classified)."""
        if saliency:
            raise ValueError(f'{self.checkpoint}: saliency maps (Grad-CAM) need the PyTorch '
                             f'model; run without --saliency, or with --backend pytorch and '
                             f'the .pth checkpoint')
        step = max(1, int(batch_size))
        results: List[Optional[dict]] = [None] * len(imgs)
        for start in range(0, len(imgs), step):
            ready = []
            for i in range(start, min(start + step, len(imgs))):
                try:
                    ready.append((i, self._prepare(imgs[i])[0]))
                except Exception as e:  # noqa: BLE001 - this image's error, the batch goes on
                    results[i] = self._error(e)
            self._classify(ready, results)
        return results

    @staticmethod
    def _error(e: BaseException) -> dict:
        return dict(prob=None, label=None, member_probs=None, cam=None, error=_failure(e))

    def _classify(self, ready: list, results: list) -> None:
        if not ready:
            return
        try:
            outs = self._run([a for _, a in ready])
        except Exception as e:  # noqa: BLE001 - retry one by one to find the culprit
            if len(ready) == 1:
                results[ready[0][0]] = self._error(e)
                return
            for item in ready:
                self._classify([item], results)
            return
        members = outs.get('member_probs')
        for k, (i, _) in enumerate(ready):
            prob = float(outs['prob'][k])
            results[i] = dict(prob=prob, label=int(prob > self.threshold),
                              member_probs=None if members is None else
                              [float(p) for p in members[k]], cam=None, error=None)
