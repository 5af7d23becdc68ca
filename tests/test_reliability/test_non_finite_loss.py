"""NonFiniteLossHook stops a real training whose loss blows up (learning rate 1e10), naming the
iteration and the last learning rate, before a checkpoint of the broken weights is written."""
import math
import os
import re

import pytest
import torch
from mmengine.runner import Runner

import mmbloodcell  # noqa: F401
from mmbloodcell.engine.hooks import NonFiniteLossError, NonFiniteLossHook
from mmbloodcell.registry import HOOKS
from reliability_utils import cnmc_config, make_cnmc_data


@pytest.fixture(scope='module')
def cnmc_root(tmp_path_factory):
    return make_cnmc_data(str(tmp_path_factory.mktemp('nan') / 'cnmc'))


@pytest.fixture(scope='module')
def exploded(cnmc_root, tmp_path_factory):
    """The tiny C-NMC training with lr 1e10: (runner, config, the raised error)."""
    cfg = cnmc_config(cnmc_root, **{
        'optim_wrapper.optimizer.lr': 1e10,
        # a checkpoint after every iteration: none may hold the NaN weights
        'default_hooks.checkpoint': dict(by_epoch=False, interval=1),
    })
    cfg.work_dir = str(tmp_path_factory.mktemp('exploded') / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(NonFiniteLossError) as exc:
        runner.train()
    return runner, cfg, exc.value


def test_exploding_training_stops_with_iteration_and_lr(exploded):
    runner, cfg, error = exploded
    msg = str(error)
    match = re.search(r'the training loss is (nan|inf|-inf) at iteration (\d+) '
                      r'\(epoch 1, batch (\d+) of 6\); last learning rate: lr=(\S+)\.', msg)
    assert match, msg
    iteration = int(match[2])
    assert iteration == int(match[3]) == runner.iter + 1 and iteration >= 2
    # the lr the broken iteration used: mmengine's LinearLR(start_factor=0.2, end=4) reaches
    # 1e10 at the 4th iteration: 0.2 + 0.8 * (i - 1) / 3 times 1e10
    lr = runner.optim_wrapper.get_lr()['lr'][0]
    assert lr == pytest.approx(1e10 * (0.2 + 0.8 * (iteration - 1) / 3))
    assert float(match[4]) == pytest.approx(lr, rel=1e-5)
    assert 'Fix: lower the learning rate' in msg and 'clip_grad' in msg
    # checkpoints of the iterations before, none of the broken one
    files = set(os.listdir(cfg.work_dir))
    assert {f'iter_{i}.pth' for i in range(1, iteration)} <= files
    assert f'iter_{iteration}.pth' not in files
    assert f'the last checkpoint, {cfg.work_dir}/iter_{iteration - 1}.pth, is intact' in msg
    last = torch.load(os.path.join(cfg.work_dir, f'iter_{iteration - 1}.pth'),
                      map_location='cpu')['state_dict']
    assert all(torch.isfinite(v).all() for v in last.values() if v.is_floating_point())


def test_hook_checks_every_loss_term_and_interval(exploded):
    """The hook on the same (real) runner, stopped after iteration 3, with other loss dicts."""
    runner = exploded[0]
    assert runner.iter + 1 == 3
    hook = HOOKS.build(dict(type='NonFiniteLossHook'))
    # finite losses, and a non-finite value that is not a loss: no stop
    hook.after_train_iter(runner, 2, outputs=dict(loss=torch.tensor(1.0),
                                                  acc=torch.tensor(math.nan)))
    with pytest.raises(NonFiniteLossError, match=r'is inf at iteration 3 \(epoch 1, batch 3 of '
                       r'6\); last learning rate: lr=\S+\. Loss terms: loss=1, loss_bbox=inf\.'):
        hook.after_train_iter(runner, 2, outputs=dict(loss=torch.tensor(1.0),
                                                      loss_bbox=torch.tensor(math.inf)))
    nan = dict(loss=torch.tensor(math.nan))
    NonFiniteLossHook(interval=2).after_train_iter(runner, 2, outputs=nan)  # 3 % 2: unchecked
    with pytest.raises(NonFiniteLossError, match='nan at iteration 3'):
        NonFiniteLossHook(interval=3).after_train_iter(runner, 2, outputs=nan)
    with pytest.raises(ValueError, match='interval'):
        NonFiniteLossHook(interval=0)
