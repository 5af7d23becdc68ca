"""Real short runs for the analysis tools, trained once per session (only when a test asks):

- ``det_run``: FCOS R-18 (the CPU demo config, made small by ``shrink()`` of
  tests/test_models/test_detectors_train.py) trained through ``tools/train.py`` for 2 epochs on
  2 real BCCD images with validation after each epoch, then ``tools/test.py --out preds.pkl``
  on 2 real test images;
- ``cls_run``: the SimpleNet C-NMC config at 64 px (``_shrink()`` of
  tests/test_tools/test_cnmc_train_test.py) trained for 2 epochs on synthetic cells, validated
  each epoch, then tested with ``--out preds.pkl``;
- ``yolo_run``: a real 1-epoch YOLOv8n baseline (``tools/yolo_baseline.py run``, offline, CPU,
  160 px), skipped without the optional ultralytics package.
"""
import glob
import importlib.util
import json
import os
import os.path as osp
import shutil

import pytest

from analysis_helpers import REPO, TESTS, load_module, tool  # noqa: E402


class _ScopeGuard:
    """Drop the DefaultScope instances that a session fixture's runners created (the autouse
    guard of tests/conftest.py is function-scoped and does not see session fixtures)."""

    def __enter__(self):
        from mmengine.registry import DefaultScope
        self.before = set(DefaultScope._instance_dict)
        return self

    def __exit__(self, *exc):
        from mmengine.registry import DefaultScope
        for name in set(DefaultScope._instance_dict) - self.before:
            DefaultScope._instance_dict.pop(name, None)


def _log_dirs(work_dir):
    return sorted(d for d in glob.glob(osp.join(work_dir, '2*')) if osp.isdir(d))


def _train_then_test(cfg_path, work_dir, preds):
    """tools/train.py for 2 epochs, then tools/test.py --out PREDS on epoch_2.pth."""
    with _ScopeGuard():
        tool('train.py').main([cfg_path, '--work-dir', work_dir])
        ckpt = osp.join(work_dir, 'epoch_2.pth')
        assert osp.isfile(ckpt), os.listdir(work_dir)
        return tool('test.py').main([cfg_path, ckpt, '--work-dir', work_dir, '--out', preds])


@pytest.fixture(scope='session')
def det_run(bccd_mini, tmp_path_factory):
    from mmengine.config import Config
    shrink = load_module(osp.join(TESTS, 'test_models', 'test_detectors_train.py'),
                         'analysis_det_train_helpers').shrink
    base = tmp_path_factory.mktemp('analysis_det')
    work_dir = str(base / 'fcos_work')
    cfg = shrink(Config.fromfile(osp.join(REPO, 'configs', 'fcos',
                                          'fcos_r18_fpn_gn_320_12e_bccd_cpu-demo.py')),
                 bccd_mini, work_dir, 'analysis_det')
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2, val_interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2)
    cfg.test_dataloader = dict(cfg.val_dataloader)
    cfg.test_dataloader['dataset'] = dict(cfg.val_dataloader['dataset'], ann_file=bccd_mini['test'])
    # cell counts: the model of a few iterations scores ~0.01, so the thresholds are searched
    # there (its test_cfg.score_thr is 0); calibrated on val, reported on test
    count = dict(type='CellCountMetric', thr_grid=[round(0.002 * i, 3) for i in range(51)])
    cfg.test_evaluator = [dict(cfg.val_evaluator, ann_file=bccd_mini['test']), count]
    cfg.val_evaluator = [cfg.val_evaluator, count]
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='CountCalibrationHook')]
    cfg_path = str(base / 'fcos_r18_bccd_small.py')
    cfg.dump(cfg_path)
    preds = osp.join(work_dir, 'preds.pkl')
    metrics = _train_then_test(cfg_path, work_dir, preds)
    train_log, test_log = _log_dirs(work_dir)
    return dict(work_dir=work_dir, cfg=cfg_path, preds=preds, metrics=metrics,
                train_log=train_log, test_log=test_log, ann_file=bccd_mini['test'],
                name='fcos_r18_bccd_small')


@pytest.fixture(scope='session')
def cls_run(tmp_path_factory):
    from mmengine.config import Config

    from cnmc_release import make_synthetic_cnmc, write_stain_reference
    helpers = load_module(osp.join(TESTS, 'test_tools', 'test_cnmc_train_test.py'),
                          'analysis_cnmc_helpers')
    base = tmp_path_factory.mktemp('analysis_cls')
    root = str(base / 'C-NMC_Leukemia')
    # 3 folds x (1 all + 1 hem) patients x 2 cells; the preliminary test: 2 + 2 patients
    make_synthetic_cnmc(root, img_size=helpers.SIZE, num_folds=3, patients_per_fold=(1, 1),
                        cells_per_patient=2, prelim_patients=(2, 2), final_patients=(1, 1),
                        seed=0)
    # the stain reference the config reads (tools/analysis/cnmc_stain_reference.py)
    write_stain_reference(root)
    cfg = helpers._shrink(
        Config.fromfile(osp.join(REPO, 'configs', 'cnmc', 'simplenet_bce_stain-norm_cnmc.py')),
        root, 'analysis_cls')
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
    cfg_path = str(base / 'simplenet_bce_cnmc_small.py')
    cfg.dump(cfg_path)
    work_dir = str(base / 'simplenet_work')
    preds = osp.join(work_dir, 'preds.pkl')
    metrics = _train_then_test(cfg_path, work_dir, preds)
    train_log, test_log = _log_dirs(work_dir)
    return dict(work_dir=work_dir, cfg=cfg_path, preds=preds, metrics=metrics,
                train_log=train_log, test_log=test_log, name='simplenet_bce_cnmc_small')


@pytest.fixture(scope='session')
def yolo_run(bccd_mini, tmp_path_factory):
    if importlib.util.find_spec('ultralytics') is None:
        pytest.skip('the optional ultralytics package is missing (pip install -e .[yolo])')
    base = tmp_path_factory.mktemp('analysis_yolo')
    root = base / 'data'
    (root / 'annotations').mkdir(parents=True)
    os.symlink(osp.join(bccd_mini['data_root'], 'JPEGImages'), root / 'JPEGImages')
    for split in ('train', 'val', 'test'):
        shutil.copy(bccd_mini[split], root / 'annotations' / f'{split}.json')
    work = base / 'work'
    saved = {k: os.environ.get(k) for k in ('YOLO_CONFIG_DIR', 'YOLO_OFFLINE')}
    os.environ.update(YOLO_CONFIG_DIR=str(base / 'ulcfg'), YOLO_OFFLINE='1')
    try:
        metrics = tool('yolo_baseline.py').main([
            'run', '--data-root', str(root), '--work-dir', str(work), '--epochs', '1',
            '--imgsz', '160', '--batch', '4', '--device', 'cpu', '--workers', '0',
            '--warmup', '1', '--quiet'])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    from mmbloodcell.analysis.logs import YOLO_METRICS_FILE
    run_dir = str(work / 'train')
    with open(osp.join(run_dir, YOLO_METRICS_FILE)) as f:
        assert json.dumps(json.load(f)['metrics']) == json.dumps(metrics)  # NaN-safe
    return dict(run_dir=run_dir, metrics=metrics)
