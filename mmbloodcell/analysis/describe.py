# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Name what a config trains (task, model family, backbone, losses) in the papers' words: the
labels of :mod:`mmbloodcell.analysis.compare`'s tables and keys of its ``REFERENCE``, e.g.
``('Sparse R-CNN', 'R-50')`` or ``('DenseNet-201', 'FHL')``."""
import os.path as osp
import re
from typing import Dict, List, Optional

from mmengine.config import Config, ConfigDict

__all__ = ['describe_config', 'backbone_name', 'cls_loss_name', 'det_family', 'det_losses']

# mmdet model types -> the study's names
_DET_FAMILIES = {'SparseRCNN': 'Sparse R-CNN', 'YOLOV3': 'YOLOv3', 'FasterRCNN': 'Faster R-CNN'}
# heads that name the family of the (generic) detector they sit in
_DET_HEAD_FAMILIES = {'YOLOv7Head': 'YOLOv7'}
# losses a head computes itself (no ``loss_*`` dict in its config)
_HEAD_LOSSES = {'YOLOv7Head': ['CIoU']}

# binary losses of mmbloodcell.models.losses (and mmpretrain's) -> the loss study's names
_CLS_LOSSES = {
    'FocalHingeLoss': 'FHL', 'HingeLoss': 'Hinge', 'BinaryFocalLoss': 'Focal',
    'FocalLoss': 'Focal', 'CrossEntropyLoss': 'CE',
    'LabelSmoothLoss': 'Label smoothing',
}

_LOSS_SHORT = {
    'FocalLoss': 'Focal', 'GIoULoss': 'GIoU', 'IoULoss': 'IoU', 'DIoULoss': 'DIoU',
    'CIoULoss': 'CIoU', 'L1Loss': 'L1', 'SmoothL1Loss': 'SmoothL1', 'MSELoss': 'MSE',
    'CrossEntropyLoss': 'CE', 'QualityFocalLoss': 'QFL', 'DistributionFocalLoss': 'DFL',
}


def _get(d, key, default=None):
    return d.get(key, default) if isinstance(d, dict) else default


# timm model names -> the papers' names (the same architectures as mmpretrain's)
_TIMM_PATTERNS = (
    (r'^(?:tf_)?efficientnetv2_(\w+?)(?:\.|$)', 'EfficientNetV2-{}'),
    (r'^(?:tf_)?efficientnet_(b\d)(?:\.|$)', 'EfficientNet-{}'),
    (r'^densenet(\d+)(?:\.|$)', 'DenseNet-{}'),
    (r'^resnet(\d+)(?:\.|$)', 'ResNet-{}'),
    (r'^vgg(\d+)(?:\.|$)', 'VGG-{}'),
    (r'^(?:legacy_)?xception(?:\.|$)', 'Xception'),
)


def _timm_name(model_name: str) -> str:
    for pattern, fmt in _TIMM_PATTERNS:
        m = re.match(pattern, model_name.lower())
        if m:
            return fmt.format(*(g.upper() for g in m.groups()))
    return f'timm:{model_name}'


def backbone_name(backbone: Optional[dict]) -> str:
    """``dict(type='DenseNet', arch='201')`` -> ``'DenseNet-201'``, ``EfficientNet`` ``b2`` ->
    ``'EfficientNet-B2'``, ``ResNet`` depth 50 -> ``'ResNet-50'`` (``'R-50'`` for detectors);
    timm's ``legacy_xception`` -> ``'Xception'``, ``efficientnet_b2`` -> ``'EfficientNet-B2'``
    (the same row as mmpretrain's); ``YOLOv7Backbone`` arch ``tiny`` -> ``'YOLOv7-tiny'``;
    anything else -> its type (plus arch / depth)."""
    if not backbone:
        return '-'
    t = backbone.get('type', '?')
    arch = backbone.get('arch')
    depth = backbone.get('depth')
    if t == 'TIMMBackbone':
        return _timm_name(str(backbone.get('model_name', 'timm')))
    if t == 'EfficientNet' and arch:
        return f'EfficientNet-{str(arch).upper()}'
    if t == 'EfficientNetV2' and arch:
        return f'EfficientNetV2-{str(arch).upper()}'
    if t == 'DenseNet' and arch:
        return f'DenseNet-{arch}'
    if t in ('ResNet', 'ResNetV1d', 'ResNetV1c') and depth:
        return f'ResNet-{depth}'
    if t in ('VGG', 'SSDVGG') and depth:
        return f'VGG-{depth}'
    if t == 'Darknet' and depth:
        return f'Darknet-{depth}'
    if t == 'YOLOv7Backbone':  # the reference's names: YOLOv7-tiny, YOLOv7 (arch 'l')
        return f"YOLOv7-{arch or 'l'}"
    if arch is not None:
        return f'{t}-{arch}'
    if depth is not None:
        return f'{t}-{depth}'
    return t


def cls_loss_name(loss: Optional[dict]) -> str:
    """The loss study's name of a head loss: ``FocalHingeLoss`` -> ``FHL``, ``WeightedBCELoss``
    -> ``BCE`` without class weights and ``WBCE`` with them (``'auto'`` or a list),
    ``BinaryFocalLoss`` -> ``Focal``, ``HingeLoss`` -> ``Hinge``; others keep their type."""
    if not loss:
        return '-'
    t = loss.get('type', '?')
    if t == 'WeightedBCELoss':
        return 'BCE' if loss.get('class_weight') is None else 'WBCE'
    return _CLS_LOSSES.get(t, t)


def _loss_short(loss: dict) -> str:
    if loss['type'] == 'CrossEntropyLoss' and loss.get('use_sigmoid'):
        return 'BCE'
    return _LOSS_SHORT.get(loss['type'], loss['type'])


def det_losses(model: dict) -> List[str]:
    """Short names of the losses of the model's heads, in a stable order: those a head
    computes itself (YOLOv7Head's CIoU box loss), then every ``loss_*`` dict, e.g. ``['Focal',
    'L1', 'GIoU']`` for Sparse R-CNN, ``['CIoU', 'BCE']`` for YOLOv7 (objectness and classes);
    a sigmoid ``CrossEntropyLoss`` is ``BCE``."""
    found: List[str] = []

    def walk(node):
        if isinstance(node, dict):
            for name in _HEAD_LOSSES.get(node.get('type'), []):
                if name not in found:
                    found.append(name)
            for key, value in node.items():
                if key.startswith('loss_') and isinstance(value, dict) and 'type' in value:
                    name = _loss_short(value)
                    if name not in found:
                        found.append(name)
                else:
                    walk(value)
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)

    for key in ('bbox_head', 'rpn_head', 'roi_head'):
        walk(model.get(key))
    return found


def det_family(model: dict) -> str:
    """The detector's family (the detection table's row key): ``SparseRCNN`` ->
    ``Sparse R-CNN``, a detector with an SSD head -> ``SSD``, with a ``YOLOv7Head`` ->
    ``YOLOv7``, ``YOLOV3`` -> ``YOLOv3``, ..."""
    head = str(_get(model.get('bbox_head'), 'type', ''))
    if 'SSD' in head:
        return 'SSD'
    if head in _DET_HEAD_FAMILIES:
        return _DET_HEAD_FAMILIES[head]
    t = model.get('type', '?')
    return _DET_FAMILIES.get(t, t)


def _det_backbone(backbone: Optional[dict]) -> str:
    name = backbone_name(backbone)
    if name.startswith('ResNet-'):
        return 'R-' + name.split('-', 1)[1]
    return name


def _member_configs(model: dict, base_dir: Optional[str]) -> List[Optional[Config]]:
    out = []
    for member in model.get('members', []) or []:
        path = member.get('config') if isinstance(member, dict) else None
        cfg = None
        if isinstance(path, str):
            for candidate in (path, osp.join(base_dir or '', path)):
                if candidate and osp.isfile(candidate):
                    try:
                        cfg = Config.fromfile(candidate)
                    except Exception:  # noqa: BLE001  (a broken member config: name unknown)
                        cfg = None
                    break
        elif isinstance(path, (dict, ConfigDict)):
            cfg = Config(dict(path))
        out.append(cfg)
    return out


def describe_config(cfg: Config, base_dir: Optional[str] = None) -> Dict[str, object]:
    """What a config trains, for tables and reports.

    Returns:
        dict: ``task`` (``'detection'``, ``'classification'`` or ``'unknown'``), ``model``
        (detector family, e.g. ``'Sparse R-CNN'``; ``'ImageClassifier'`` /
        ``'Ensemble'``), ``backbone`` (``'R-50'``, ``'DenseNet-201'``,
        ``'Ensemble(DenseNet-201 + EfficientNet-B2)'``, a frozen backbone gets
        `` (frozen)``), ``loss`` (classification: ``'FHL'``, ``'BCE'``, ...; detection: the
        ``loss_*`` names joined by ``+``), ``model_type``, ``head``, ``neck``, ``dataset``,
        ``max_epochs``, ``optimizer``, ``lr``, ``batch_size``, ``input_size`` (when
        found).
    """
    model = cfg.get('model', {}) or {}
    scope = cfg.get('default_scope')
    task = {'mmdet': 'detection', 'mmpretrain': 'classification'}.get(scope, 'unknown')
    info: Dict[str, object] = dict(task=task, model_type=model.get('type', '-'))
    if task == 'detection':
        info.update(model=det_family(model), backbone=_det_backbone(model.get('backbone')),
                    loss='+'.join(det_losses(model)) or '-',
                    neck=_get(model.get('neck'), 'type', '-'),
                    head=_get(model.get('bbox_head'), 'type', None) or _get(
                        model.get('roi_head'), 'type', '-'))
    elif model.get('type') == 'EnsembleClassifier':
        names, losses = [], set()
        for cfg_m in _member_configs(model, base_dir):
            if cfg_m is None:
                names.append('?')
                continue
            sub = describe_config(cfg_m)
            names.append(str(sub['backbone']))
            losses.add(str(sub['loss']))
        info.update(model='Ensemble',
                    backbone=f"Ensemble({' + '.join(names)})" if names else 'Ensemble',
                    loss='/'.join(sorted(losses)) or '-', head='-', neck='-')
    else:
        head = model.get('head') or {}
        name = backbone_name(model.get('backbone'))
        info.update(model=model.get('type', '-'),
                    backbone=name + (' (frozen)' if head.get('freeze_backbone') else ''),
                    loss=cls_loss_name(head.get('loss')), head=head.get('type', '-'),
                    neck=_get(model.get('neck'), 'type', '-'))
    train_cfg = cfg.get('train_cfg') or {}
    optim = _get(cfg.get('optim_wrapper'), 'optimizer', {}) or {}
    loader = cfg.get('train_dataloader') or cfg.get('test_dataloader') or {}
    info.update(max_epochs=_get(train_cfg, 'max_epochs', _get(train_cfg, 'max_iters', '-')),
                optimizer=_get(optim, 'type', '-'), lr=_get(optim, 'lr', '-'),
                batch_size=_get(loader, 'batch_size', '-'),
                dataset=_get(_get(loader, 'dataset', {}) or {}, 'type', '-'))
    size = '-'
    test_loader = cfg.get('test_dataloader') or {}
    for step in _get(_get(test_loader, 'dataset', {}), 'pipeline', []) or []:
        if isinstance(step, dict) and step.get('type') == 'Resize' and 'scale' in step:
            size = tuple(step['scale'])
    info['input_size'] = size
    return info
