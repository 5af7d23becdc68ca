"""Export trained detectors and classifiers to ONNX (``mmbloodcell export CONFIG CKPT``).

What the ``.onnx`` file holds:

- one-stage detectors (FCOS, RTMDet, SSD, and other heads that predict through mmdet's
  ``BaseDenseHead.predict_by_feat`` unchanged): backbone + neck + head forward. Input
  ``input`` ``(N, 3, H, W)``: the data preprocessor's output (BGR/RGB as configured,
  ``(img - mean) / std``, padded to ``pad_size_divisor``); outputs ``cls_score_<l>``
  ``(N, A * C, H_l, W_l)``, ``bbox_pred_<l>`` ``(N, A * 4, H_l, W_l)`` (FCOS / RTMDet:
  distances already times the stride) and FCOS's ``centerness_<l>`` ``(N, 1, H_l, W_l)``.
  ``N`` is dynamic; ``H`` and ``W`` too (multiples of ``pad_size_divisor``) unless the test
  pipeline resizes to a fixed size (``Resize(keep_ratio=False)``, SSD300). Priors, box
  decoding, score activation, thresholds, NMS and rescaling are done by
  :class:`~mmbloodcell.apis.onnx_postprocess.DensePostProcessor` in numpy;
- single classifiers: input the normalised batch ``(N, 3, H, W)``; outputs ``logit`` ``(N,)``
  (log-odds of ``all``) and ``prob`` ``(N,)`` (its probability: ``sigmoid`` of a
  ``BinaryClsHead``, ``softmax[:, all]`` of a 2-class head);
- ensembles (``EnsembleClassifier``), one graph: input the un-normalised BGR batch (each
  member's own normalisation and ``input_size`` resize are in the graph); outputs ``prob``
  ``(N,)`` (the weighted mean) and ``member_probs`` ``(N, M)``.

The file's ``metadata_props`` entry ``mmbloodcell`` (:data:`METADATA_KEY`) is a JSON object
with what the runtime needs besides the config's test pipeline: ``task``, ``classes``, the
``preprocess`` (``mean``, ``std``, ``bgr_to_rgb``, ``pad_size_divisor``, ``pad_value``) and,
for detectors, ``head`` (:func:`describe_dense_head`), ``test_cfg`` and the checkpoint's
``count_thresholds`` when it has them; for classifiers ``positive``, ``threshold``,
``member_names`` and ``member_weights``. :func:`read_onnx_metadata` reads it back.

Two-stage and query-based detectors (Sparse R-CNN) are refused, see
:data:`SPARSE_RCNN_REASON`.
"""
import copy
import json
import math
import os
import os.path as osp
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config

import mmbloodcell
from mmbloodcell.apis.inference import (NO_CHECKPOINT, _TASKS, _check_checkpoint,
                                        _test_pipeline, _type_name)
from mmbloodcell.apis.tool_config import merge_cfg_options
from mmbloodcell.structures import to_numpy

__all__ = ['METADATA_KEY', 'EXPORTERS', 'SPARSE_RCNN_REASON', 'describe_dense_head',
           'read_onnx_metadata', 'export_onnx', 'ExportError']

#: the ``metadata_props`` key of the JSON metadata
METADATA_KEY = 'mmbloodcell'
#: ``exporter=`` values: torch's ``torch.export``-based exporter, or its TorchScript one
EXPORTERS = ('dynamo', 'torchscript')

SPARSE_RCNN_REASON = (
    'Sparse R-CNN cannot be exported to a correct ONNX graph: its RoI head crops features '
    "with mmcv's RoIAlign (exported as the custom op mmcv::MMCVRoiAlign, which stock "
    'onnxruntime does not have) and branches on data (SingleRoIExtractor: `if inds.numel() > '
    "0`); torch.export stops there (GuardOnDataDependentSymNode), the TorchScript tracer "
    "bakes the image size and the branches in as constants, and mmdeploy's own converter "
    'does not convert it either. Run it with the PyTorch backend '
    '(mmbloodcell detect CONFIG CKPT IMAGES --out DIR), or export a one-stage detector '
    '(configs/rtmdet, configs/fcos, configs/ssd)')


class ExportError(ValueError):
    """A model or config that cannot be exported; the message says why and what to do."""


# ----------------------------------------------------------------------------------------------
# Metadata
# ----------------------------------------------------------------------------------------------

def _floats(t) -> List[float]:
    return [float(v) for v in to_numpy(t).reshape(-1)]


def _preprocess_meta(dp) -> dict:
    """``mean`` / ``std`` (input channel order after the flip), ``bgr_to_rgb``,
    ``pad_size_divisor`` and ``pad_value`` of an mmengine / mmdet / mmpretrain image data
    preprocessor."""
    normalize = bool(getattr(dp, '_enable_normalize', False))
    bgr_to_rgb = bool(getattr(dp, '_channel_conversion', getattr(dp, 'to_rgb', False)))
    return dict(mean=_floats(dp.mean) if normalize else [0.0, 0.0, 0.0],
                std=_floats(dp.std) if normalize else [1.0, 1.0, 1.0],
                bgr_to_rgb=bgr_to_rgb, pad_size_divisor=int(getattr(dp, 'pad_size_divisor', 1)),
                pad_value=float(getattr(dp, 'pad_value', 0)))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return to_numpy(obj).tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def read_onnx_metadata(path: str) -> dict:
    """The :data:`METADATA_KEY` JSON of an exported ``.onnx`` file (an error naming the file
    when it is not an ONNX model or was not written by :func:`export_onnx`)."""
    import onnx
    if not osp.isfile(path):
        raise FileNotFoundError(f'ONNX model {path} not found: export one first (mmbloodcell '
                                f'export CONFIG CKPT --format onnx --out {path})')
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - any parse failure means "not an ONNX file"
        raise ValueError(f'{path} is not an ONNX model ({type(e).__name__}); --backend '
                         f'onnxruntime takes the .onnx file of mmbloodcell export CONFIG CKPT '
                         f'--format onnx (give the .pth with --backend pytorch)') from e
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f'{path} has no {METADATA_KEY!r} metadata: it was not written by '
                         f'mmbloodcell export; re-export it with mmbloodcell export CONFIG CKPT '
                         f'--format onnx')
    return json.loads(props[METADATA_KEY])


def _write_metadata(path: str, meta: dict) -> None:
    import onnx
    model = onnx.load(path)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(_jsonable(meta))
    model.producer_name = 'mmbloodcell'
    onnx.save(model, path)


# ----------------------------------------------------------------------------------------------
# Detectors
# ----------------------------------------------------------------------------------------------

def describe_dense_head(head) -> dict:
    """What :class:`~mmbloodcell.apis.onnx_postprocess.DensePostProcessor` needs of a
    one-stage head: ``type``, ``num_classes``, ``cls_out_channels``, ``use_sigmoid``,
    ``priors`` and ``coder`` (see there). An :class:`ExportError` names what is not
    supported (a head with its own ``predict_by_feat``, another prior generator or coder).
    GFL (``GFLHead``) adds ``integral`` (``reg_max``) and ``priors['centers']``."""
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
    from mmdet.models.task_modules.coders import (DeltaXYWHBBoxCoder,
                                                  DistancePointBBoxCoder)
    from mmdet.models.task_modules.prior_generators import (AnchorGenerator,
                                                            MlvlPointGenerator)
    from mmdet.models.dense_heads import GFLHead
    name = type(head).__name__
    # GFL's own _predict_by_feat_single is the base one with its box distributions integrated
    # first (``integral`` below), on anchor centres
    gfl = type(head) is GFLHead
    for method in ('predict_by_feat', '_predict_by_feat_single', '_bbox_post_process'):
        if gfl and method == '_predict_by_feat_single':
            continue
        if getattr(type(head), method) is not getattr(BaseDenseHead, method):
            raise ExportError(f'{name} has its own {method}: the numpy post-processor '
                              f"reproduces mmdet's BaseDenseHead one only (FCOS, RTMDet, SSD, "
                              f'RetinaNet); run this model with --backend pytorch')
    if getattr(getattr(head, 'loss_cls', None), 'custom_cls_channels', False):
        raise ExportError(f'{name}: custom classification channels are not supported')
    gen = head.prior_generator
    strides = [[float(s) for s in st] for st in gen.strides]
    if isinstance(gen, MlvlPointGenerator):
        priors = dict(type='point', strides=strides, offset=float(gen.offset))
    elif type(gen).__name__ in ('AnchorGenerator', 'SSDAnchorGenerator') and isinstance(
            gen, AnchorGenerator):
        if getattr(gen, 'use_box_type', False):
            raise ExportError(f'{name}: anchors with use_box_type=True are not supported')
        priors = dict(type='anchor', strides=strides,
                      base_anchors=[b.tolist() for b in gen.base_anchors])
    else:
        raise ExportError(f'{name}: prior generator {type(gen).__name__} is not supported '
                          f'(MlvlPointGenerator, AnchorGenerator, SSDAnchorGenerator are)')
    coder = head.bbox_coder
    if isinstance(coder, DistancePointBBoxCoder):
        coder_meta = dict(type='distance', clip_border=bool(coder.clip_border))
    elif type(coder) is DeltaXYWHBBoxCoder:
        coder_meta = dict(type='delta_xywh', means=list(map(float, coder.means)),
                          stds=list(map(float, coder.stds)),
                          clip_border=bool(coder.clip_border), wh_ratio_clip=16 / 1000,
                          add_ctr_clamp=bool(coder.add_ctr_clamp),
                          ctr_clamp=float(coder.ctr_clamp))
    else:
        raise ExportError(f'{name}: box coder {type(coder).__name__} is not supported '
                          f'(DistancePointBBoxCoder, DeltaXYWHBBoxCoder are)')
    if getattr(coder, 'use_box_type', False):
        raise ExportError(f'{name}: a box coder with use_box_type=True is not supported')
    desc = dict(type=name, num_classes=int(head.num_classes),
                cls_out_channels=int(head.cls_out_channels),
                use_sigmoid=bool(head.use_sigmoid_cls), num_levels=len(strides),
                priors=priors, coder=coder_meta)
    if gfl:
        desc['priors']['centers'] = True
        desc['integral'] = dict(reg_max=int(head.reg_max))
    return desc


class _DetectorGraph(nn.Module):
    """Backbone + neck + head forward of a one-stage detector: a flat tuple of the per-level
    outputs (``cls_score_*``, ``bbox_pred_*``, [``centerness_*``])."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        outs = self.model._forward(x)
        return tuple(t for level_outputs in outs for t in level_outputs)


def _check_detector_cfg(cfg: Config, name: str) -> None:
    model = cfg.model
    kind = model.get('type')
    if kind == 'SparseRCNN' or 'SparseRoIHead' in str(model.get('roi_head', {}).get('type')):
        raise ExportError(f'{name}: {SPARSE_RCNN_REASON}')
    if model.get('roi_head') is not None or model.get('rpn_head') is not None:
        raise ExportError(f'{name}: {kind} is a two-stage detector; the ONNX export covers '
                          f'one-stage detectors (configs/rtmdet, configs/fcos, configs/ssd): '
                          f'run it with --backend pytorch')
    if model.get('bbox_head') is None:
        raise ExportError(f'{name}: model {kind} has no bbox_head; the ONNX export covers '
                          f'one-stage detectors (RTMDet, FCOS, SSD)')


def _fixed_size(pipeline: Sequence[dict]) -> Optional[Tuple[int, int]]:
    """``(h, w)`` when the test pipeline's last resize gives every image that size."""
    size = None
    for step in pipeline:
        kind = _type_name(step)
        if kind == 'Resize':
            scale = step.get('scale')
            keep = step.get('keep_ratio', False)
            if scale is not None and not keep:
                w, h = (scale, scale) if isinstance(scale, (int, float)) else scale
                size = (int(h), int(w))
            else:
                size = None
        elif kind in ('CenterCrop', 'RandomCrop'):
            crop = step.get('crop_size')
            if crop is not None:
                w, h = (crop, crop) if isinstance(crop, (int, float)) else crop
                size = (int(h), int(w))
    return size


def _example_size(pipeline: Sequence[dict], divisor: int) -> Tuple[Tuple[int, int], bool]:
    """The example input ``(h, w)`` (padded to ``divisor``) and whether ``H``, ``W`` vary."""
    fixed = _fixed_size(pipeline)
    if fixed is not None:
        size, dynamic = fixed, False
    else:
        scale = next((s.get('scale') for s in reversed(pipeline)
                      if _type_name(s) == 'Resize' and s.get('scale') is not None), (320, 240))
        w, h = (scale, scale) if isinstance(scale, (int, float)) else scale
        size, dynamic = (int(min(h, w)), int(max(h, w))), True
    d = max(1, divisor)
    return (int(math.ceil(size[0] / d) * d), int(math.ceil(size[1] / d) * d)), dynamic


# ----------------------------------------------------------------------------------------------
# Classifiers
# ----------------------------------------------------------------------------------------------

def _log_odds_and_prob(scores: torch.Tensor, positive: int = 1):
    """``(logit, prob)`` of class ``positive`` from ``(N, 1)`` logits (sigmoid) or ``(N, 2)``
    logits (softmax)."""
    if scores.dim() == 2 and scores.size(1) == 1:
        logit = scores[:, 0]
        return logit, torch.sigmoid(logit)
    if scores.dim() == 2 and scores.size(1) == 2:
        logit = scores[:, positive] - scores[:, 1 - positive]
        return logit, scores.softmax(-1)[:, positive]
    raise ExportError(f'the classifier head gives scores of shape {tuple(scores.shape)}; a '
                      f'binary classifier (BinaryClsHead or a 2-class head) is needed')


class _ClassifierGraph(nn.Module):
    """A single classifier from the normalised batch: ``(logit, prob)`` of ``all``."""

    def __init__(self, model, positive: int):
        super().__init__()
        self.model = model
        self.positive = positive

    def forward(self, x):
        scores = self.model(x, mode='tensor')
        if isinstance(scores, (tuple, list)):
            scores = scores[-1]
        return _log_odds_and_prob(scores, self.positive)


class _EnsembleGraph(nn.Module):
    """An ``EnsembleClassifier`` from the un-normalised BGR batch: ``(prob, member_probs)``,
    each member with its own channel flip, ``(x - mean) / std`` and ``input_size`` resize."""

    def __init__(self, ensemble):
        super().__init__()
        self.ensemble = ensemble
        self.flips, self.sizes = [], list(ensemble.input_sizes)
        for i, member in enumerate(ensemble.members):
            meta = _preprocess_meta(member.data_preprocessor)
            if meta['pad_size_divisor'] > 1:
                raise ExportError(f'ensemble member {i} ({ensemble.member_names[i]}) pads its '
                                  f'inputs (pad_size_divisor={meta["pad_size_divisor"]}): not '
                                  f'supported by the export')
            self.flips.append(meta['bgr_to_rgb'])
            self.register_buffer(f'mean{i}', torch.tensor(meta['mean']).view(1, 3, 1, 1))
            self.register_buffer(f'std{i}', torch.tensor(meta['std']).view(1, 3, 1, 1))

    def forward(self, x):
        probs = []
        for i, member in enumerate(self.ensemble.members):
            xi = x[:, [2, 1, 0]] if self.flips[i] else x
            xi = (xi - getattr(self, f'mean{i}')) / getattr(self, f'std{i}')
            if self.sizes[i] is not None:
                xi = F.interpolate(xi, size=self.sizes[i], mode='bilinear', align_corners=False)
            scores = member(xi, mode='tensor')
            if isinstance(scores, (tuple, list)):
                scores = scores[-1]
            probs.append(_log_odds_and_prob(scores, 1)[1])
        member_probs = torch.stack(probs, dim=1)
        weights = self.ensemble.member_weights.to(member_probs)
        return (member_probs * weights).sum(dim=1), member_probs


# ----------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------

def _export(graph: nn.Module, example: torch.Tensor, out_file: str, output_names: List[str],
            dynamic_hw: bool, divisor: int, opset: int, exporter: str) -> None:
    kwargs = dict(input_names=['input'], output_names=output_names, opset_version=opset)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if exporter == 'dynamo':
            from torch.export import Dim
            dims = {0: Dim('batch', min=1, max=1024)}
            if dynamic_hw:
                d = max(1, divisor)
                dims[2] = d * Dim('h_blocks', min=1, max=8192 // d)
                dims[3] = d * Dim('w_blocks', min=1, max=8192 // d)
            torch.onnx.export(graph, (example, ), out_file, dynamo=True, external_data=False,
                              dynamic_shapes={'x': dims}, verbose=False, **kwargs)
        else:
            axes = {0: 'batch'}
            if dynamic_hw:
                axes.update({2: 'height', 3: 'width'})
            out_axes = {n: ({0: 'batch', 2: f'{n}_h', 3: f'{n}_w'} if dynamic_hw else
                            {0: 'batch'}) for n in output_names}
            torch.onnx.export(graph, (example, ), out_file, dynamo=False,
                              dynamic_axes=dict(input=axes, **out_axes), **kwargs)


def _verify(graph: nn.Module, out_file: str, example: torch.Tensor,
            output_names: List[str]) -> float:
    """Max abs difference of onnxruntime's outputs from PyTorch's on ``example`` and on its
    first image alone (the dynamic batch)."""
    import onnxruntime as ort
    sess = ort.InferenceSession(out_file, providers=['CPUExecutionProvider'])
    worst = 0.0
    for x in (example, example[:1]):
        with torch.no_grad():
            ref = graph(x)
        got = sess.run(output_names, {'input': x.numpy()})
        for name, r, g in zip(output_names, ref, got):
            if tuple(r.shape) != tuple(g.shape):
                raise RuntimeError(f'{out_file}: output {name} has shape {g.shape} in '
                                   f'onnxruntime, {tuple(r.shape)} in PyTorch')
            worst = max(worst, float(np.abs(r.numpy() - g).max()) if g.size else 0.0)
    return worst


def _default_out(config_name: str, checkpoint: Optional[str]) -> str:
    if checkpoint is not None:
        return osp.splitext(checkpoint)[0] + '.onnx'
    stem = osp.splitext(osp.basename(config_name))[0]
    return osp.join('work_dirs', stem, f'{stem}.onnx')


def export_onnx(config, checkpoint: Optional[str], out_file: Optional[str] = None,
                opset: int = 18, exporter: str = 'dynamo', cfg_options: Optional[dict] = None,
                verify: bool = True) -> dict:
    """Export a trained detector or classifier to one self-contained ``.onnx`` file (see the
    module docstring for the graph's inputs, outputs and metadata).

    Args:
        config (str | Config): The training config (detection: ``default_scope='mmdet'``,
            classification: ``'mmpretrain'``).
        checkpoint (str, optional): Its weights (for an ensemble: None or ``'-'`` when the
            config names the members' checkpoints).
        out_file (str, optional): Defaults to the checkpoint's path with ``.onnx``.
        opset (int): ONNX opset. Defaults to 18.
        exporter (str): ``'dynamo'`` (``torch.onnx.export(dynamo=True)``, torch's default) or
            ``'torchscript'`` (``dynamo=False``).
        cfg_options (dict, optional): Config overrides.
        verify (bool): Run the file in onnxruntime on the example batch and on one image and
            compare with PyTorch. Defaults to True.

    Returns:
        dict: ``out_file``, ``metadata`` (what was written), ``max_abs_diff`` (None without
        ``verify``).
    """
    from mmbloodcell.apis.inference import CellClassifier, CellDetector
    if exporter not in EXPORTERS:
        raise ValueError(f'exporter must be one of {EXPORTERS}, got {exporter!r}')
    name = config if isinstance(config, str) else getattr(config, 'filename', '<Config>')
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    elif not osp.isfile(config):
        raise FileNotFoundError(f'config {config} not found: give the path of a config file, '
                                f'e.g. configs/rtmdet/rtmdet_tiny_640_240s-budget_bccd.py')
    else:
        cfg = Config.fromfile(config)
    cfg = merge_cfg_options(cfg, cfg_options)
    scope = cfg.get('default_scope')
    if scope not in _TASKS:
        raise ExportError(f'{name} is neither a detection (default_scope=mmdet) nor a '
                          f'classification (mmpretrain) config (default_scope={scope!r})')
    if checkpoint is not None and str(checkpoint).lower() in NO_CHECKPOINT:
        checkpoint = None
    if scope == 'mmdet':
        _check_detector_cfg(cfg, name)
    if checkpoint is not None:
        _check_checkpoint(checkpoint, name)
    pipeline = _test_pipeline(cfg, name)
    meta = dict(format_version=1, mmbloodcell=mmbloodcell.__version__,
                task=_TASKS[scope][0], config=osp.basename(str(name)),
                checkpoint=None if checkpoint is None else osp.basename(checkpoint),
                opset=int(opset), exporter=exporter)

    if scope == 'mmdet':
        if checkpoint is None:
            raise ValueError(f'{name}: export needs the trained checkpoint (CKPT)')
        # score_thr=1.0 leaves the config's test_cfg as it is
        det = CellDetector(cfg, checkpoint, device='cpu', score_thr=1.0)
        model = det.model.eval()
        head_meta = describe_dense_head(model.bbox_head)
        preprocess = _preprocess_meta(model.data_preprocessor)
        (h, w), dynamic_hw = _example_size(pipeline, preprocess['pad_size_divisor'])
        graph = _DetectorGraph(model).eval()
        example = torch.randn(2, 3, h, w)
        with torch.no_grad():
            outs = graph(example)
        n = head_meta['num_levels']
        kinds = ['cls_score', 'bbox_pred', 'centerness'][:len(outs) // n]
        if len(outs) != n * len(kinds) or len(kinds) < 2:
            raise ExportError(f'{name}: the head gives {len(outs)} outputs for {n} levels; '
                              f'expected (cls_score, bbox_pred[, centerness]) per level')
        output_names = [f'{k}_{i}' for k in kinds for i in range(n)]
        head_meta['with_score_factors'] = len(kinds) == 3
        test_cfg = _jsonable(model.bbox_head.test_cfg.to_dict()
                             if hasattr(model.bbox_head.test_cfg, 'to_dict')
                             else dict(model.bbox_head.test_cfg))
        meta.update(classes=list(det.classes), head=head_meta, test_cfg=test_cfg,
                    preprocess=preprocess, dynamic_hw=dynamic_hw,
                    input_size=None if dynamic_hw else [h, w],
                    count_thresholds=det.count_thresholds)
    else:
        clf = CellClassifier(cfg, checkpoint, device='cpu')
        model = clf.model.eval()
        size = _fixed_size(pipeline)
        if size is None:
            raise ExportError(f"{name}: the test pipeline's output size is not fixed (no "
                              f'Resize(scale=...) / CenterCrop(crop_size=...) at its end); the '
                              f'classifier graph needs one input size')
        is_ensemble = type(model).__name__ == 'EnsembleClassifier'
        preprocess = _preprocess_meta(model.data_preprocessor)
        if is_ensemble:
            graph = _EnsembleGraph(model).eval()
            output_names = ['prob', 'member_probs']
            weights = _floats(model.member_weights)
        else:
            graph = _ClassifierGraph(model, clf.positive).eval()
            output_names = ['logit', 'prob']
            weights = []
        divisor = preprocess['pad_size_divisor']
        h, w = (int(math.ceil(s / divisor) * divisor) for s in size)
        example = torch.rand(2, 3, h, w) * 255
        if not is_ensemble:
            mean = torch.tensor(preprocess['mean']).view(1, 3, 1, 1)
            std = torch.tensor(preprocess['std']).view(1, 3, 1, 1)
            example = (example - mean) / std
        dynamic_hw = False
        meta.update(classes=list(clf.classes), positive=int(clf.positive),
                    threshold=float(clf.threshold), member_names=list(clf.member_names),
                    member_weights=weights, ensemble=is_ensemble, preprocess=preprocess,
                    dynamic_hw=False, input_size=[h, w])

    out_file = out_file or _default_out(str(name), checkpoint)
    if not out_file.endswith('.onnx'):
        raise ValueError(f'--out {out_file}: the ONNX file name must end with .onnx')
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    try:
        _export(graph, example, out_file, output_names, dynamic_hw,
                meta['preprocess']['pad_size_divisor'], opset, exporter)
    except Exception as e:  # noqa: BLE001 - name the model and the other exporter
        other = [x for x in EXPORTERS if x != exporter][0]
        raise ExportError(f'{name}: torch.onnx.export ({exporter}) failed: {type(e).__name__}: '
                          f'{str(e).strip().splitlines()[0][:300]}; try --exporter {other}') \
            from e
    meta['outputs'] = output_names
    _write_metadata(out_file, meta)
    diff = _verify(graph, out_file, example, output_names) if verify else None
    return dict(out_file=out_file, metadata=meta, max_abs_diff=diff)
