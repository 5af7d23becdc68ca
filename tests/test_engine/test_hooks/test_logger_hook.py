"""MainProcessLoggerHook: the test-metrics JSON is written by rank 0 only (mmengine's
LoggerHook has every rank write it, which corrupted it under tools/dist_test.sh)."""
import glob
import json
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.hooks import LoggerHook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmbloodcell.engine.hooks.logger_hook as logger_hook_module
from mmbloodcell.engine.hooks import MainProcessLoggerHook


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        return list(self.fc(inputs).squeeze(-1))


class _Data(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i), 1.]), labels=torch.tensor(float(i)))


class _Count(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results.extend(float(s) for s in data_samples)

    def compute_metrics(self, results):
        return dict(n=float(len(results)))  # mmengine writes ints as null


def _test_json(tmp_path, logger, name):
    runner = Runner(
        model=_Toy(), work_dir=str(tmp_path / name),
        test_dataloader=dict(dataset=_Data(), sampler=dict(type='DefaultSampler', shuffle=False),
                             batch_size=2, collate_fn=dict(type='default_collate')),
        test_cfg=dict(), test_evaluator=_Count(),
        default_hooks=dict(logger=logger), experiment_name=name)
    runner.test()
    return [p for p in glob.glob(osp.join(runner.log_dir, '*.json'))
            if osp.basename(p)[:-5] == osp.basename(runner.log_dir)]


def test_rank0_writes_the_test_metrics(tmp_path):
    paths = _test_json(tmp_path, dict(type='MainProcessLoggerHook'), 'rank0')
    assert len(paths) == 1
    with open(paths[0]) as f:
        assert json.load(f)['n'] == 4


@pytest.mark.parametrize('hook,written', [(MainProcessLoggerHook, False), (LoggerHook, True)])
def test_other_ranks_write_nothing(tmp_path, monkeypatch, hook, written):
    # another rank of a distributed test: mmengine's hook writes the file there too
    monkeypatch.setattr(logger_hook_module, 'is_main_process', lambda: False)
    paths = _test_json(tmp_path, dict(type=hook.__name__), f'rank1_{hook.__name__}')
    assert bool(paths) == written


def test_runtimes_use_it():
    from mmengine.config import Config
    for name in ('det_runtime.py', 'cls_runtime.py'):
        cfg = Config.fromfile(osp.join(osp.dirname(__file__), '..', '..', '..', 'configs', '_base_',
                                       name))
        assert cfg.default_hooks.logger.type == 'MainProcessLoggerHook'
