"""End to end on CPU: the two main C-NMC configs (DenseNet-201 and EfficientNet-B2 with the Focal
Hinge Loss) train for one short epoch on synthetic cells through ``tools/train.py``, are
evaluated by ``tools/test.py`` (metric keys, values implied by the written confusion matrix,
the matrix implied by the dumped predictions), and their ensemble runs through
``tools/test.py`` too (its probabilities are the mean of the members'). The six real C-NMC
cells go through the real 224x224 test pipeline and the trained models as a real-data check."""
import glob
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.fileio import load
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_checkpoint

from script_loader import load_script
from cnmc_release import make_synthetic_cnmc, write_stain_reference
import mmbloodcell  # noqa: F401
from mmbloodcell.apis.tool_config import set_data_root
from mmbloodcell.datasets import CNMCDataset
from mmbloodcell.evaluation.metrics import BinaryClassificationMetric
from mmbloodcell.registry import CLS_MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CNMC_CONFIGS = osp.join(REPO, 'configs', 'cnmc')
MAIN = {'densenet201': 'densenet201_fhl_cnmc.py', 'efficientnet-b2': 'efficientnet-b2_fhl_cnmc.py'}
ENSEMBLE = 'ensemble_densenet201-efficientnet-b2_cnmc.py'
SIZE = 64
RATE_KEYS = ('f1', 'f1_hem', 'weighted_f1', 'precision', 'recall', 'specificity', 'accuracy')


def _tool(name):
    return load_script(f'tools/{name}.py')


def _shrink(cfg, data_root, name):
    """The config as it is, made small: 64 px inputs, batch 4, one epoch, no pretrained
    download, no worker processes, latency measured from the first iteration."""
    if 'backbone' in cfg.model:
        cfg.model.backbone.init_cfg = None
    set_data_root(cfg, data_root)
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(split)
        if not loader:
            continue
        loader.update(batch_size=4, num_workers=0, persistent_workers=False)
        for step in loader.dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (SIZE, SIZE)
    if cfg.get('train_cfg'):
        cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
        cfg.default_hooks.checkpoint.save_optimizer = False
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [
        dict(h, warmup=0) if h['type'] == 'LatencyHook' else h for h in cfg.custom_hooks
    ]
    cfg.experiment_name = name
    return cfg


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cnmc') / 'C-NMC_Leukemia')
    # 3 folds x (1 all + 1 hem) patients x 2 cells: the 80/20 patient split trains on 2 + 2
    # patients (8 cells) and validates on 1 + 1 (4 cells); the preliminary test holds 2 + 2
    # patients (8 cells)
    counts = make_synthetic_cnmc(root, img_size=SIZE, num_folds=3, patients_per_fold=(1, 1),
                                 cells_per_patient=2, prelim_patients=(2, 2),
                                 final_patients=(1, 1), seed=0)
    assert counts['prelim'] == 8
    write_stain_reference(root)
    return root


def _check_metrics(metrics, log_dir, num_test):
    """Keys, and the values against the confusion matrix the metric wrote."""
    doc = json.load(open(osp.join(log_dir, 'binary_metrics.json')))
    (tn, fp), (fn, tp) = doc['confusion_matrix']['matrix']
    assert tn + fp + fn + tp == num_test == doc['num_samples']
    assert doc['num_per_class'] == dict(hem=tn + fp, all=fn + tp) == dict(hem=4, all=4)

    def ratio(a, b):
        return 100.0 * a / b if b else 0.0

    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    f1_hem = ratio(2 * tn, 2 * tn + fn + fp)
    expected = dict(precision=ratio(tp, tp + fp), recall=ratio(tp, tp + fn),
                    specificity=ratio(tn, tn + fp), accuracy=ratio(tp + tn, num_test), f1=f1,
                    f1_hem=f1_hem, weighted_f1=((fn + tp) * f1 + (tn + fp) * f1_hem) / num_test)
    for key in RATE_KEYS:
        assert metrics[f'binary/{key}'] == pytest.approx(expected[key]), key
        assert doc['metrics'][key] == pytest.approx(expected[key]), key
    assert metrics['binary/confusion_matrix'] == [[tn, fp], [fn, tp]]
    assert 0 <= metrics['binary/auc'] <= 100
    # patient-level vote: 4 test patients, each of them scored
    assert metrics['binary/num_patients'] == 4 and len(doc['patients']) == 4
    right = sum(p['correct'] for p in doc['patients'].values())
    assert metrics['binary/patient_accuracy'] == pytest.approx(25.0 * right)
    assert sum(p['num_cells'] for p in doc['patients'].values()) == num_test
    assert metrics['speed/latency_ms'] > 0
    # LoggerHook's test JSON holds the same numbers, the matrix included
    stamp = osp.basename(log_dir)
    logged = json.load(open(osp.join(log_dir, f'{stamp}.json')))
    assert logged['binary/weighted_f1'] == pytest.approx(metrics['binary/weighted_f1'])
    assert logged['binary/confusion_matrix'] == [[tn, fp], [fn, tp]]
    assert logged['binary/num_patients'] == 4
    return doc


def _log_dir(work_dir):
    dirs = [d for d in glob.glob(osp.join(work_dir, '*')) if osp.isdir(d)]
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.fixture(scope='module')
def trained(synthetic_root, tmp_path_factory):
    """Train both main configs (tools/train.py), test them (tools/test.py --out)."""
    train, test = _tool('train'), _tool('test')
    base = tmp_path_factory.mktemp('runs')
    out = {}
    for key, cfg_name in MAIN.items():
        cfg = _shrink(Config.fromfile(osp.join(CNMC_CONFIGS, cfg_name)), synthetic_root, key)
        cfg_path = str(base / f'{key}_small.py')
        cfg.dump(cfg_path)
        work_dir = str(base / f'{key}_train')
        train.main([cfg_path, '--work-dir', work_dir])
        best = glob.glob(osp.join(work_dir, 'best_binary_weighted_f1_epoch_1.pth'))
        assert best, os.listdir(work_dir)
        assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))
        test_dir = str(base / f'{key}_test')
        preds = str(base / f'{key}_preds.pkl')
        metrics = test.main([cfg_path, best[0], '--work-dir', test_dir, '--out', preds,
                             '--cfg-options', f'experiment_name={key}_test'])
        out[key] = dict(cfg=cfg_path, ckpt=best[0], metrics=metrics, preds=load(preds),
                        log_dir=_log_dir(test_dir))
    return out


@pytest.mark.parametrize('key', list(MAIN))
def test_train_then_test_reports_consistent_metrics(trained, key):
    run = trained[key]
    doc = _check_metrics(run['metrics'], run['log_dir'], num_test=8)
    # the confusion matrix is the one the dumped predictions give
    preds = run['preds']
    assert len(preds) == 8
    gt = np.array([int(p['gt_label'][0]) for p in preds])
    pred = np.array([int(p['pred_label'][0]) for p in preds])
    cm = np.bincount(2 * gt + pred, minlength=4).reshape(2, 2).tolist()
    assert cm == doc['confusion_matrix']['matrix']
    for p in preds:
        assert p['pred_score'].shape == (2, ) and float(p['pred_score'].sum()) == pytest.approx(1)
        assert (float(p['pred_prob']) > 0.5) == bool(p['pred_label'][0])
        assert p['patient_id'] is not None


def test_ensemble_of_the_two_checkpoints_through_tools_test(trained, synthetic_root, tmp_path):
    cfg = _shrink(Config.fromfile(osp.join(CNMC_CONFIGS, ENSEMBLE)), synthetic_root, 'ensemble')
    # the ensemble config names the full-size member configs: same architecture as the small
    # ones trained here (only the data settings and init_cfg differ)
    members = cfg.model.members
    assert [osp.basename(m['config']) for m in members] == list(MAIN.values())
    for m, key in zip(members, MAIN):
        m['checkpoint'] = trained[key]['ckpt']
    cfg_path = str(tmp_path / 'ensemble_small.py')
    cfg.dump(cfg_path)
    preds_path = str(tmp_path / 'ensemble_preds.pkl')
    work_dir = str(tmp_path / 'ensemble_test')
    # CHECKPOINT: one of the members' checkpoints (recognised, changes nothing)
    metrics = _tool('test').main([cfg_path, trained['densenet201']['ckpt'], '--work-dir',
                                  work_dir, '--out', preds_path])
    _check_metrics(metrics, _log_dir(work_dir), num_test=8)

    preds = load(preds_path)
    by_idx = {key: {p['sample_idx']: p for p in trained[key]['preds']} for key in MAIN}
    for p in preds:
        member = [float(by_idx[key][p['sample_idx']]['pred_prob']) for key in MAIN]
        assert p['member_probs'].tolist() == pytest.approx(member, abs=1e-5)
        assert float(p['pred_prob']) == pytest.approx(np.mean(member), abs=1e-5)
        assert bool(p['pred_label'][0]) == (float(p['pred_prob']) > 0.5)


def test_six_real_cells_through_the_real_pipeline(trained, cnmc_samples_root, tmp_path):
    """The real cells, in the official layout (links), read by CNMCDataset with the 224x224
    test pipeline of the DenseNet-201 config, predicted by the trained models."""
    root = tmp_path / 'real'
    for cls in ('all', 'hem'):
        folder = root / 'training_data' / 'fold_0' / cls
        folder.mkdir(parents=True)
        for path in sorted(glob.glob(osp.join(cnmc_samples_root, cls, '*.bmp'))):
            os.symlink(path, folder / osp.basename(path))
    full = Config.fromfile(osp.join(CNMC_CONFIGS, MAIN['densenet201']))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = CNMCDataset(data_root=str(root), folds=(0, ), test_mode=True,
                              pipeline=full.test_dataloader.dataset.pipeline)
    assert len(dataset) == 6
    batch = pseudo_collate([dataset[i] for i in range(6)])
    assert all(tuple(x.shape) == (3, 224, 224) and x.dtype == torch.uint8
               for x in batch['inputs'])
    assert sorted(ds.patient_id for ds in batch['data_samples']) == ['1'] * 3 + ['H6'] * 3
    # the crop keeps the cell: the black border of the 450x450 frame is gone
    for x in batch['inputs']:
        assert (x.amax(dim=0) > 0).float().mean() > 0.4

    for key in MAIN:
        model = CLS_MODELS.build(Config.fromfile(trained[key]['cfg']).model)
        load_checkpoint(model, trained[key]['ckpt'], map_location='cpu', strict=True)
        model.eval()
        with torch.no_grad():
            preds = model.test_step(batch)
        metric = BinaryClassificationMetric(write_json=False)
        metric.process(None, [p.to_dict() for p in preds])
        res = metric.evaluate(6)
        assert sum(map(sum, res['binary/confusion_matrix'])) == 6
        assert res['binary/num_patients'] == 2
        for p in preds:
            assert p.pred_score.shape == (2, ) and torch.isfinite(p.pred_score).all()
            assert 0 < float(p.pred_prob) < 1
