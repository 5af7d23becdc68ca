"""Distributed runs on CPU: ``tools/dist_train.sh CONFIG 2`` and ``tools/dist_test.sh CONFIG
CKPT 2`` start 2 processes with torchrun (gloo backend) for a classification and a detection
config; the 2-process test gives the same metrics and the same per-sample predictions as
``tools/test.py`` in one process on the same checkpoint and data.

Both test sets split evenly between the ranks (16 cells, 2 images); mmengine's
``collect_results`` would also drop the samples DefaultSampler pads an uneven split with.
"""
import glob
import os.path as osp

import torch
from mmengine.fileio import load

from reliability_utils import (TOOLS, assert_same_metrics, bccd_config, cnmc_config, dump,
                               make_cnmc_data, read_test_metrics, run_script, run_tool)

TEST = osp.join(TOOLS, 'test.py')


def _train_and_test(cfg_path, tmp, prefix):
    """dist_train (2 processes), then the same checkpoint tested in 2 and in 1 process."""
    log = run_script('dist_train.sh', [cfg_path, '2', '--work-dir', str(tmp / 'train')],
                     str(tmp / 'dist_train.log'))
    assert 'Distributed training: True' in log
    ckpts = sorted(glob.glob(str(tmp / 'train' / '*.pth')))
    assert ckpts, log[-3000:]
    final = max(ckpts, key=osp.getmtime)
    log2 = run_script('dist_test.sh', [cfg_path, final, '2', '--work-dir', str(tmp / 'test2'),
                                       '--out', str(tmp / 'preds2.pkl')],
                      str(tmp / 'dist_test.log'))
    assert 'Distributed training: True' in log2  # mmengine's env report of the test run
    run_tool([TEST, cfg_path, final, '--work-dir', str(tmp / 'test1'), '--out',
              str(tmp / 'preds1.pkl')], str(tmp / 'test1.log'))
    return dict(train_log=log, m2=read_test_metrics(str(tmp / 'test2'), prefix),
                m1=read_test_metrics(str(tmp / 'test1'), prefix),
                p2=load(str(tmp / 'preds2.pkl')), p1=load(str(tmp / 'preds1.pkl')),
                r2=_report_predictions(str(tmp / 'test2')),
                r1=_report_predictions(str(tmp / 'test1')))


def _report_predictions(work_dir):
    """The predictions ReportHook gathered from every rank (``<timestamp>/report/``)."""
    found = glob.glob(osp.join(work_dir, '2*', 'report', 'predictions.pkl'))
    assert len(found) == 1 and osp.isfile(osp.join(osp.dirname(found[0]), 'report.html')), \
        found
    return load(found[0])


def _same(a, b, where=''):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f'{where}[{i}]')
    else:
        assert a == b, (where, a, b)


def test_classification_2_processes(tmp_path):
    data_root = make_cnmc_data(str(tmp_path / 'cnmc'))
    cfg = dump(cnmc_config(data_root, **{'train_cfg.max_epochs': 4}), str(tmp_path / 'cls.py'))
    out = _train_and_test(cfg, tmp_path, 'binary')
    # 24 cells over 2 ranks in batches of 4: 3 iterations per epoch, 12 in all
    assert 'Epoch(train) [4][3/3]' in out['train_log']
    assert len(out['p1']) == len(out['p2']) == 16
    _same(out['r2'], out['p2'])  # the report of the 2-process test: both ranks' samples
    _same(out['r1'], out['p1'])
    _same(out['p1'], out['p2'])
    assert_same_metrics(out['m1'], out['m2'])
    assert {'binary/weighted_f1', 'binary/auc', 'binary/confusion_matrix'} <= set(out['m1'])


def test_detection_2_processes(bccd_mini, tmp_path):
    cfg = dump(bccd_config(bccd_mini), str(tmp_path / 'det.py'))
    out = _train_and_test(cfg, tmp_path, 'coco')
    # 4 real images over 2 ranks in batches of 2: 1 iteration per epoch
    assert 'Epoch(train) [2][1/1]' in out['train_log']
    assert len(out['p1']) == len(out['p2']) == 2
    _same(out['r2'], out['p2'])  # the report of the 2-process test: both ranks' samples
    _same(out['r1'], out['p1'])
    assert all(len(p['pred_instances']['scores']) > 0 for p in out['p1'])
    _same(out['p1'], out['p2'])
    assert_same_metrics(out['m1'], out['m2'])
    assert {'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/RBC_precision'} <= set(out['m1'])
