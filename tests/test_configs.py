"""Every config under configs/ loads, builds its model (no pretrained download: building never
initialises weights) and builds the pipelines of its datasets, moved by ``--data-root`` to a
folder of its own (every path under the config's data root follows)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope, init_default_scope

import mmbloodcell  # noqa: F401

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')
CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if '_base_' not in p.split(osp.sep))


def _pipelines(cfg):
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(split)
        if not loader:
            continue
        dataset = loader['dataset']
        while 'pipeline' not in dataset and 'dataset' in dataset:  # dataset wrappers
            dataset = dataset['dataset']
        yield split, dataset.get('pipeline', [])


def _no_download(cfg):
    """Tests never download: TIMM backbones load ImageNet weights at build time when
    ``pretrained=True``, so switch that off (``init_cfg`` is only applied by ``init_weights``)."""
    if isinstance(cfg, dict):
        if cfg.get('type') == 'TIMMBackbone':
            cfg['pretrained'] = False
        for v in cfg.values():
            _no_download(v)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            _no_download(v)
    return cfg


@pytest.fixture(scope='module')
def cnmc_root(tmp_path_factory):
    """A generated C-NMC release with the stain reference the stain-norm configs read and the
    training set's mean / std the FHL study's configs read."""
    from cnmc_release import make_synthetic_cnmc, write_stain_reference
    from script_loader import load_script
    root = str(tmp_path_factory.mktemp('configs') / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=48, patients_per_fold=(1, 1), cells_per_patient=2)
    write_stain_reference(root)
    tool = load_script('tools/analysis/cnmc_mean_std.py')
    tool.main([root])  # writes <root>/mean_std.json
    return root


def _strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def test_configs_found():
    assert len(CONFIGS) >= 5, CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_config_builds(path, cnmc_root, tmp_path):
    from mmbloodcell.apis.tool_config import evaluator_metrics, set_data_root
    cfg = Config.fromfile(path)
    old_root = cfg.data_root
    new_root = cnmc_root if cfg.default_scope == 'mmpretrain' else str(tmp_path / 'bccd')
    set_data_root(cfg, new_root)
    left = [v for v in _strings(cfg.to_dict()) if v.startswith(old_root.rstrip('/'))]
    assert not left, f'{path}: paths still under {old_root} after --data-root: {left}'
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(split):
            assert cfg[split].dataset.get('data_root', '').rstrip('/') in (new_root, ''), split
    for key in ('val_evaluator', 'test_evaluator'):
        for metric in evaluator_metrics(cfg.get(key)):
            if 'ann_file' in metric:
                assert metric.ann_file.startswith(new_root), (key, metric.ann_file)
    scope = cfg.get('default_scope')
    assert scope in ('mmdet', 'mmpretrain'), f'{path}: default_scope is {scope}'
    assert 'mmbloodcell' in cfg.get('custom_imports', {}).get('imports', []), \
        f'{path}: custom_imports must import mmbloodcell'
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        if scope == 'mmdet':
            from mmdet.registry import MODELS
        else:
            from mmpretrain.registry import MODELS
        model = MODELS.build(_no_download(cfg.model))
        assert sum(p.numel() for p in model.parameters()) > 0
        for split, pipeline in _pipelines(cfg):
            transforms = Compose(pipeline)
            assert len(transforms.transforms) == len(pipeline), f'{path}: {split}'


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_test_split(path):
    """The test loader, derived from the val loader in the dataset bases, reads the test split:
    BCCD's test annotations; C-NMC's preliminary test set without the training folds and the
    patient split (which would select from the test cells too)."""
    cfg = Config.fromfile(path)
    test = cfg.get('test_dataloader')
    if not test:
        pytest.skip('no test loader')
    if cfg.default_scope == 'mmdet':
        assert test.dataset.ann_file == 'annotations/test.json', path
        coco = [m for m in cfg.test_evaluator if m['type'] == 'CocoMetric']
        assert [m.ann_file for m in coco] == [cfg.data_root + 'annotations/test.json'], path
    elif '_study' in osp.dirname(path):
        # a study's own test set (its value is checked against the paper in tests/test_studies):
        # the final or preliminary set, or held-out cells of the training folds, never all of
        # them
        ds = test.dataset
        assert ds.split in ('final_test', 'prelim_test', 'train'), path
        if ds.split == 'train':
            held_out = (ds.get('patient_split') or {}).get('subset') == 'val' or \
                (ds.get('class_subsample') or {}).get('offset', 0) > 0
            assert held_out, f'{path}: the test set is the training folds without a held-out part'
    else:
        assert test.dataset.split == 'prelim_test', path
        assert 'folds' not in test.dataset and 'patient_split' not in test.dataset, path
    val = cfg.get('val_dataloader')
    if val:
        # a study without a validation set (the six-backbone study, the frozen-EfficientNet
        # report's "maximum validation accuracy") tests on what it validates on
        if not ('_study' in osp.dirname(path) and test.dataset.get('split') == 'train'):
            assert val.dataset != test.dataset, f'{path}: the test loader reads the val split'
        assert val.sampler == test.sampler and val.batch_size == test.batch_size, path


DET_CONFIGS = [p for p in CONFIGS if Config.fromfile(p).get('default_scope') == 'mmdet']


def test_detection_configs_found():
    assert len(DET_CONFIGS) >= 5, DET_CONFIGS


@pytest.mark.parametrize('path', DET_CONFIGS, ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_bccd_evaluators_count_cells(path):
    """Every BCCD detector's val and test evaluators hold the COCO metric and the cell-count
    metric, its checkpoint's save_best key is the COCO mAP, and the runtime's
    CountCalibrationHook calibrates the count thresholds on val."""
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope

    from mmbloodcell.apis.tool_config import evaluator_metrics
    cfg = Config.fromfile(path)
    for key in ('val_evaluator', 'test_evaluator'):
        types = [m['type'] for m in evaluator_metrics(cfg.get(key))]
        assert 'CellCountMetric' in types and 'CocoMetric' in types, (path, key, types)
    assert cfg.default_hooks.checkpoint.get('save_best') in ('coco/bbox_mAP', None), path
    assert any(h['type'] == 'CountCalibrationHook' for h in cfg.custom_hooks), path
    init_default_scope('mmdet')
    metrics = Evaluator([m for m in cfg.test_evaluator
                         if m['type'] == 'CellCountMetric']).metrics
    assert metrics[0].score_thr == 0.3 and metrics[0].prefix == 'count'
