"""YOLOv7-tiny (configs/yolov7/yolov7_tiny_640_300e_bccd.py) through the command-line tools on
real BCCD smears: ``tools/train.py`` for a few iterations on a fixed batch of 2 real images
(the config's model, optimiser, EMA and hooks; no augmentation, no warm-up) lowers the box loss,
``tools/test.py`` on its checkpoint writes the COCO metrics JSON, and
``tools/analysis/compare.py`` names the run YOLOv7 beside the BCCD study's number."""
import copy
import glob
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from script_loader import load_script

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'yolov7', 'yolov7_tiny_640_300e_bccd.py')
ITERS = 8
SCALE = (320, 240)


def _small_config(mini, path):
    """The config on bccd_mini at 320x240: train on its first 2 training smears (one batch, no
    augmentation, constant lr), validate and test on its 2 val / 2 test smears, every box kept
    (after a few iterations the scores are low)."""
    from mmbloodcell.apis.tool_config import set_evaluator_ann_file
    cfg = Config.fromfile(CONFIG)
    fixed = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
             dict(type='Resize', scale=SCALE, keep_ratio=True), dict(type='PackDetInputs')]
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(cfg.train_dataloader.dataset, data_root=mini['data_root'],
                     ann_file=mini['train'], indices=2, pipeline=fixed))
    test_pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    next(t for t in test_pipeline if t['type'] == 'Resize')['scale'] = SCALE
    for split in ('val', 'test'):
        loader = copy.deepcopy(cfg.val_dataloader)
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.update(data_root=mini['data_root'], ann_file=mini[split],
                              pipeline=test_pipeline)
        cfg[f'{split}_dataloader'] = loader
        set_evaluator_ann_file(cfg, f'{split}_evaluator', mini[split])
    cfg.param_scheduler = []  # the 3-epoch warm-up would keep the lr near 0 here
    cfg.model.test_cfg.score_thr = 0.0
    cfg.default_hooks.pop('report')  # tested with every config in test_report_hook.py
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks[0]['warmup'] = 0  # LatencyHook: 2 test images, time both
    cfg.dump(path)
    return path


def _log_dirs(work_dir):
    return sorted(d for d in glob.glob(osp.join(work_dir, '2*')) if osp.isdir(d))


@pytest.fixture(scope='module')
def run(bccd_mini, tmp_path_factory):
    base = tmp_path_factory.mktemp('yolov7_tools')
    cfg_path = _small_config(bccd_mini, str(base / 'yolov7_tiny_bccd_small.py'))
    work_dir = str(base / 'work')
    load_script('tools/train.py').main([
        cfg_path, '--work-dir', work_dir, '--cfg-options', f'train_cfg.max_epochs={ITERS}',
        f'train_cfg.val_interval={ITERS}', f'default_hooks.checkpoint.interval={ITERS}'])
    ckpt = osp.join(work_dir, f'epoch_{ITERS}.pth')
    assert osp.isfile(ckpt)
    metrics = load_script('tools/test.py').main([cfg_path, ckpt, '--work-dir', work_dir])
    train_log, test_log = _log_dirs(work_dir)
    return dict(work_dir=work_dir, ckpt=ckpt, metrics=metrics, train_log=train_log,
                test_log=test_log)


def test_train_lowers_the_box_loss_then_test_writes_the_coco_json(run):
    with open(osp.join(run['train_log'], 'vis_data', 'scalars.json')) as f:
        logs = [json.loads(line) for line in f]
    train = [r for r in logs if 'loss' in r]
    assert len(train) == ITERS
    for key in ('loss', 'loss_bbox', 'loss_obj', 'loss_cls'):
        assert all(math.isfinite(r[key]) and r[key] > 0 for r in train), key
    # the objectness target is the IoU of the predicted boxes (it rises as they improve):
    # the box loss is the one that must fall
    box = [r['loss_bbox'] for r in train]
    assert min(box[-2:]) < box[0], box
    assert [r['lr'] for r in train] == [0.01] * ITERS  # the config's SGD, constant here
    # the checkpoint holds the EMA weights (tools/test.py evaluates them)
    ckpt = torch.load(run['ckpt'], map_location='cpu', weights_only=False)
    assert 'ema_state_dict' in ckpt
    # tools/test.py: the metrics it returns are the COCO json LoggerHook wrote
    stamp = osp.basename(run['test_log'])
    with open(osp.join(run['test_log'], f'{stamp}.json')) as f:
        written = json.load(f)
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/RBC_precision',
                'speed/latency_ms', 'count/RBC_mae'):
        assert key in written, (key, sorted(written))
        assert written[key] == pytest.approx(run['metrics'][key])
    assert 0.0 <= written['coco/bbox_mAP'] <= 1.0


def test_compare_names_the_run_yolov7(run):
    text = load_script('tools/analysis/compare.py').main([run['work_dir']])
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith('| Model |'))
    names = [c.strip() for c in lines[header].strip('|').split('|')]
    rows = [dict(zip(names, (c.strip() for c in line.strip('|').split('|'))))
            for line in lines[header + 2:] if line.startswith('|')]
    ours = [r for r in rows if r['Run'] == 'yolov7_tiny_bccd_small']
    assert len(ours) == 1, rows
    row = ours[0]
    assert (row['Model'], row['Backbone'], row['Losses']) == ('YOLOv7', 'YOLOv7-tiny', 'CIoU+BCE')
    assert row['mAP'] == f"{run['metrics']['coco/bbox_mAP']:.3f}"
    assert row['mAP (paper)'] == '0.583' and row['mAP50 (paper)'] == '0.880'
    assert [r['Model'] for r in rows].count('YOLOv7') == 1  # no paper-only YOLOv7 row
