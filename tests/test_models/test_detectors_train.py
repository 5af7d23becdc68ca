"""Every BCCD detection config trains on CPU on real BCCD images and evaluates with the COCO
metric: the loss is finite and decreases over a short run on a fixed batch, and validation
reports mAP, mAP50, mAP75, per-class AP and latency."""
import copy
import glob
import math
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

import mmbloodcell  # noqa: F401

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
DET_CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if '_base_' not in p and Config.fromfile(p).get('default_scope') == 'mmdet')
ITERS = 6
# The quantity that must go down over the short run. RTMDet's QualityFocalLoss targets are the
# IoU of the predicted boxes (DynamicSoftLabelAssigner): from random boxes they start near 0, so
# the classification loss RISES while the boxes improve; its box loss is what must decrease,
# counted from the 2nd iteration (at the 1st, random boxes give the assigner few positives, so
# its losses are averaged over almost nothing).
# YOLOv7's objectness target is the IoU of the predicted boxes too: its objectness loss rises
# while the boxes improve, and its box loss is what must decrease.
LOSS_KEY = {'rtmdet_tiny_640_240s-budget_bccd': ('train/loss_bbox', 1),
            **{name: ('train/loss_bbox', 0) for name in (
                'yolov7_tiny_640_300e_bccd', 'yolov7_l_640_300e_bccd',
                'yolov7_l_640_table1_bccd')}}
# YOLOv7 (l), 37.6 M parameters: a few seconds per CPU iteration, in the slow set
SLOW = ('yolov7_l_640_300e_bccd', 'yolov7_l_640_table1_bccd')


def _resize_scale(cfg):
    """Small inputs for CPU: 320x240 (SSD keeps its 300x300, which its anchors are built for)."""
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'Resize':
            return (320, 240) if step.get('keep_ratio', True) else tuple(step['scale'])
    raise AssertionError('no Resize in the test pipeline')


def shrink(cfg, mini, work_dir, name):
    """A real config made small: fixed batch of 2 real images, no augmentation, constant lr."""
    cfg = copy.deepcopy(cfg)
    scale = _resize_scale(cfg)
    fixed_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=scale, keep_ratio=scale != (300, 300)),
        dict(type='PackDetInputs')
    ]
    test_pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    for step in test_pipeline:
        if step['type'] == 'Resize':
            step['scale'] = scale
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='BCCDDataset', data_root=mini['data_root'], ann_file=mini['train'],
                     data_prefix=dict(img='JPEGImages/'), pipeline=fixed_pipeline,
                     indices=2, filter_cfg=dict(filter_empty_gt=True)))
    cfg.val_dataloader = dict(
        batch_size=1, num_workers=0, persistent_workers=False, drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='BCCDDataset', data_root=mini['data_root'], ann_file=mini['val'],
                     data_prefix=dict(img='JPEGImages/'), test_mode=True,
                     pipeline=test_pipeline))
    cfg.val_evaluator = dict(type='CocoMetric', ann_file=mini['val'], metric='bbox',
                             classwise=True)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=ITERS, val_interval=ITERS)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(type='LatencyHook', warmup=0)]
    cfg.model.backbone.init_cfg = None
    # after a few iterations from scratch, scores are low: keep every box so that the COCO
    # metric is computed on real predictions instead of reporting "no results"
    test_cfg = cfg.model.test_cfg
    for part in ([test_cfg] + [v for v in test_cfg.values() if isinstance(v, dict)]):
        for key in ('score_thr', 'conf_thr'):
            if key in part:
                part[key] = 0.0
        if 'min_bbox_size' in part:  # also the degenerate boxes of an untrained regressor
            part['min_bbox_size'] = -1
    cfg.work_dir = work_dir
    cfg.experiment_name = name
    cfg.pop('auto_scale_lr', None)
    return cfg


@pytest.mark.parametrize('path', [
    pytest.param(p, marks=pytest.mark.slow) if osp.splitext(osp.basename(p))[0] in SLOW else p
    for p in DET_CONFIGS], ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_detector_trains_and_evaluates(path, bccd_mini, tmp_path):
    name = osp.splitext(osp.basename(path))[0]
    cfg = shrink(Config.fromfile(path), bccd_mini, str(tmp_path), 'test_' + name)
    # the report is the same for every config (tests/test_engine/test_hooks/test_report_hook.py)
    cfg.default_hooks.pop('report')
    runner = Runner.from_cfg(cfg)
    runner.train()
    key, first = LOSS_KEY.get(name, ('train/loss', 0))
    losses = runner.message_hub.get_scalar(key).data[0].tolist()
    assert len(losses) == ITERS
    assert all(math.isfinite(v) for v in losses), losses
    assert min(losses[-2:]) < losses[first], f'{name}: {key} did not decrease: {losses}'
    metrics = runner.val_loop.run()
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/bbox_mAP_l',
                'coco/RBC_precision', 'coco/WBC_precision', 'coco/Platelets_precision'):
        assert key in metrics, f'{name}: {key} missing from {sorted(metrics)}'
        assert -1.0 <= metrics[key] <= 1.0
    assert metrics['speed/latency_ms'] > 0
