"""The same seed gives the same training on CPU: two runs of the tiny classification and
detection configs (random augmentations, shuffling, dropout) end with identical weights and
identical test metrics and predictions; another seed gives other weights. The converters'
determinism (same bytes out) is tested next to them: tests/test_tools/test_bccd_to_coco.py
(test_real_deterministic_bytes, test_synthetic_deterministic_and_cli_script) and
tests/test_tools/test_make_synthetic_cnmc.py (test_deterministic_bytes)."""

import pytest
import torch
from mmengine.runner import Runner

import mmbloodcell  # noqa: F401
from reliability_utils import assert_same_metrics, bccd_config, cnmc_config, make_cnmc_data


def _run(cfg, work_dir, name):
    cfg = cfg.copy()
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name  # separate logger / message hub per run in this process
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return metrics, state


def _equal_states(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope='module')
def cnmc_root(tmp_path_factory):
    return make_cnmc_data(str(tmp_path_factory.mktemp('repro') / 'cnmc'))


def test_classification_same_seed_same_metrics(cnmc_root, tmp_path):
    cfg = cnmc_config(cnmc_root)
    m1, s1 = _run(cfg, tmp_path / 'a', 'repro_cls_a')
    m2, s2 = _run(cfg, tmp_path / 'b', 'repro_cls_b')
    assert_same_metrics(m1, m2)
    assert _equal_states(s1, s2)
    assert {'binary/weighted_f1', 'binary/auc'} <= set(m1)
    other = cnmc_config(cnmc_root, **{'randomness.seed': 1})
    _, s3 = _run(other, tmp_path / 'c', 'repro_cls_c')
    assert not _equal_states(s1, s3)


def test_detection_same_seed_same_metrics(bccd_mini, tmp_path):
    cfg = bccd_config(bccd_mini, **{'train_cfg.val_interval': 100})
    m1, s1 = _run(cfg, tmp_path / 'a', 'repro_det_a')
    m2, s2 = _run(cfg, tmp_path / 'b', 'repro_det_b')
    assert_same_metrics(m1, m2)
    assert _equal_states(s1, s2)
    assert {'coco/bbox_mAP', 'coco/bbox_mAP_50'} <= set(m1)
