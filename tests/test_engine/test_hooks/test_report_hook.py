"""ReportHook: real tiny trainings and tests through ``build_runner`` (FCOS on real BCCD
smears, SimpleNet on synthetic C-NMC cells) write ``<timestamp>/report/`` by themselves."""
import base64
import glob
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from cnmc_release import make_synthetic_cnmc, write_stain_reference
import mmbloodcell  # noqa: F401
from mmbloodcell.analysis.results import load_predictions
from mmbloodcell.apis.tool_config import build_runner, set_data_root, set_evaluator_ann_file
from mmbloodcell.engine.hooks import ReportHook

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
FCOS_DEMO = osp.join(REPO, 'configs', 'fcos', 'fcos_r18_fpn_gn_320_12e_bccd_cpu-demo.py')
SIMPLENET = osp.join(REPO, 'configs', 'cnmc', 'simplenet_bce_stain-norm_cnmc.py')
PNG = b'\x89PNG\r\n\x1a\n'


def _det_cfg(mini, work_dir):
    """FCOS R-18 at 320x240: 2 iterations on 2 real train smears, validated on 2 real val
    smears at the end, tested on 2 real test smears."""
    cfg = Config.fromfile(FCOS_DEMO)
    scale = (320, 240)
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='BCCDDataset', data_root=mini['data_root'], ann_file=mini['train'],
                     data_prefix=dict(img='JPEGImages/'), indices=2,
                     filter_cfg=dict(filter_empty_gt=True),
                     pipeline=[dict(type='LoadImageFromFile'),
                               dict(type='LoadAnnotations', with_bbox=True),
                               dict(type='Resize', scale=scale, keep_ratio=True),
                               dict(type='PackDetInputs')]))
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'Resize':
            step['scale'] = scale
    for split in ('val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.update(data_root=mini['data_root'], ann_file=mini[split],
                              pipeline=cfg.test_dataloader.dataset.pipeline)
        set_evaluator_ann_file(cfg, f'{split}_evaluator', mini[split])
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2, val_interval=2)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2, save_optimizer=False)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = []
    cfg.model.backbone.init_cfg = None
    cfg.model.test_cfg.score_thr = 0.0  # an untrained head: keep its low-score boxes
    cfg.work_dir = work_dir
    cfg.experiment_name = 'report_fcos'
    return cfg


def _cls_cfg(root, work_dir, name):
    """SimpleNet at 64 px, one epoch on synthetic cells, validated at its end."""
    cfg = Config.fromfile(SIMPLENET)
    set_data_root(cfg, root)
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[split].update(batch_size=4, num_workers=0, persistent_workers=False)
        for step in cfg[split].dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (64, 64)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, save_optimizer=False)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = []
    cfg.work_dir = work_dir
    cfg.experiment_name = name
    return cfg


def _run(cfg, mode, ckpt=None):
    """``(runner, log_dir)`` after ``runner.train()`` or ``runner.test()`` of ``cfg``."""
    cfg = cfg.copy()
    if ckpt:
        cfg.load_from = ckpt
    runner = build_runner(cfg)
    getattr(runner, mode)()
    return runner, runner.log_dir


@pytest.fixture(scope='module')
def det_runs(bccd_mini, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('report_det') / 'work')
    cfg = _det_cfg(bccd_mini, work_dir)
    _, train_log = _run(cfg, 'train')
    test_runner, test_log = _run(cfg, 'test', osp.join(work_dir, 'epoch_2.pth'))
    return dict(work_dir=work_dir, train_log=train_log, test_log=test_log, mini=bccd_mini,
                test_runner=test_runner, cfg=cfg)


@pytest.fixture(scope='module')
def cnmc_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('report_cnmc') / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=64, num_folds=3, patients_per_fold=(1, 1),
                        cells_per_patient=2, prelim_patients=(1, 1), final_patients=(1, 1),
                        seed=0)
    write_stain_reference(root)
    return root


@pytest.fixture(scope='module')
def cls_runs(cnmc_root, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('report_cls') / 'work')
    cfg = _cls_cfg(cnmc_root, work_dir, 'report_simplenet')
    _, train_log = _run(cfg, 'train')
    test_runner, test_log = _run(cfg, 'test', osp.join(work_dir, 'epoch_1.pth'))
    return dict(work_dir=work_dir, train_log=train_log, test_log=test_log, cfg=cfg,
                test_runner=test_runner)


def _read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def _check_figures(report_dir, names):
    """Every figure is a PNG file of real size, embedded byte for byte in report.html."""
    page = _read(osp.join(report_dir, 'report.html'))
    for name in names:
        path = osp.join(report_dir, f'{name}.png')
        with open(path, 'rb') as f:
            png = f.read()
        assert png.startswith(PNG) and len(png) > 5000, (path, len(png))
        uri = 'data:image/png;base64,' + base64.b64encode(png).decode('ascii')
        assert f'id="fig-{name}"' in page and uri in page, name
    return page


def _dataset_paths(runner, split):
    loop = runner.val_loop if split == 'val' else runner.test_loop
    ds = loop.dataloader.dataset
    return [ds.get_data_info(i)['img_path'] for i in range(len(ds))]


def test_detection_training_report(det_runs):
    report = osp.join(det_runs['train_log'], 'report')
    page = _check_figures(report, ['loss', 'lr', 'val_metrics', 'pr_curves', 'confusion_matrix',
                                           'samples'])
    assert 'From: val (epoch 2)' in page
    preds = load_predictions(osp.join(report, 'predictions.pkl'))
    with open(det_runs['mini']['val']) as f:
        val_images = {img['id'] for img in json.load(f)['images']}
    assert sorted(int(p['img_id']) for p in preds) == sorted(val_images)
    assert all(len(p['pred_instances']['bboxes']) > 0 for p in preds)


def test_detection_test_report(det_runs):
    report = osp.join(det_runs['test_log'], 'report')
    page = _check_figures(report, ['loss', 'lr', 'val_metrics', 'pr_curves', 'confusion_matrix',
                                           'samples'])
    assert 'From: test' in page
    preds = load_predictions(osp.join(report, 'predictions.pkl'))
    assert [p['img_path'] for p in preds] == _dataset_paths(det_runs['test_runner'], 'test')
    with open(det_runs['mini']['test']) as f:
        test_images = {img['id'] for img in json.load(f)['images']}
    assert {int(p['img_id']) for p in preds} == test_images
    # the form of tools/test.py --out: tools/analysis/plot_results.py reads the file
    from script_loader import load_script
    paths = load_script('tools/analysis/plot_results.py').main(
        [_dump(det_runs), osp.join(report, 'predictions.pkl'),
         '--out', osp.join(det_runs['work_dir'], 'plots')])
    assert set(paths) == {'pr_curves', 'confusion_matrix', 'samples'}


def _dump(runs):
    path = osp.join(osp.dirname(runs['work_dir']), 'fcos_small.py')
    runs['cfg'].dump(path)
    return path


def test_classification_reports(cls_runs):
    for log, split in ((cls_runs['train_log'], 'val'), (cls_runs['test_log'], 'test')):
        report = osp.join(log, 'report')
        page = _check_figures(report, ['loss', 'lr', 'roc', 'confusion_matrix', 'samples'])
        preds = load_predictions(osp.join(report, 'predictions.pkl'))
        assert all('pred_score' in p and 'gt_label' in p for p in preds)
        if split == 'test':
            assert 'From: test' in page
            assert [p['img_path'] for p in preds] == \
                _dataset_paths(cls_runs['test_runner'], 'test')
    assert not glob.glob(osp.join(cls_runs['work_dir'], '*.pkl'))  # nothing beside the runs


def test_training_without_validation_has_curves_only(cnmc_root, tmp_path):
    cfg = _cls_cfg(cnmc_root, str(tmp_path / 'work'), 'report_noval')
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.save_best = None
    _, log = _run(cfg, 'train')
    report = osp.join(log, 'report')
    page = _check_figures(report, ['loss', 'lr'])
    assert sorted(os.listdir(report)) == ['loss.png', 'lr.png', 'report.html']
    assert 'No predictions: the run had no validation or test loop' in page
    assert 'No metrics' in page


def test_opt_out_writes_nothing(cnmc_root, tmp_path):
    cfg = _cls_cfg(cnmc_root, str(tmp_path / 'work'), 'report_off')
    cfg.merge_from_dict({'default_hooks.report': None})  # --cfg-options default_hooks.report=None
    runner, log = _run(cfg, 'train')
    assert not any(isinstance(h, ReportHook) for h in runner.hooks)
    assert osp.isfile(osp.join(cfg.work_dir, 'epoch_1.pth'))
    assert not osp.exists(osp.join(log, 'report'))
    assert not glob.glob(osp.join(cfg.work_dir, '**', '*.html'), recursive=True)
    assert not glob.glob(osp.join(cfg.work_dir, '**', '*.pkl'), recursive=True)


def test_unwritable_report_folder_warns(cls_runs, tmp_path):
    """The report folder's place is taken by a file: the test run still ends with its
    metrics, and the log says what failed and the command that writes the report."""
    cfg = cls_runs['cfg'].copy()
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = osp.join(cls_runs['work_dir'], 'epoch_1.pth')
    runner = build_runner(cfg)
    open(osp.join(runner.log_dir, 'report'), 'w').close()
    metrics = runner.test()
    assert 'binary/weighted_f1' in metrics
    log = _read(osp.join(runner.log_dir, f'{runner.timestamp}.log'))
    assert 'ReportHook: the report of this test run was not written' in log
    assert f'python tools/analysis/report.py {cfg.work_dir} --prefer test' in log
    # the data of the report are complete: the command of the warning writes it elsewhere
    assert osp.isfile(osp.join(runner.log_dir, f'{runner.timestamp}.json'))


def test_broken_prediction_warns(cls_runs):
    """A prediction that is neither a detection nor a classification sample: a warning, no
    exception."""
    runner = cls_runs['test_runner']
    hook = ReportHook(out_dir='report_broken')
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, outputs=[dict(img_path='cell.bmp', note='no prediction')])
    hook.after_test(runner)
    log = _read(osp.join(runner.log_dir, f'{runner.timestamp}.log'))
    assert 'the samples have neither pred_instances (detection) nor pred_prob' in log
    assert osp.isfile(osp.join(runner.log_dir, 'report_broken', 'predictions.pkl'))
    assert not osp.exists(osp.join(runner.log_dir, 'report_broken', 'report.html'))
