import os.path as osp

import pytest
from mmengine.runner import Runner

from toy_runner import ToyData, ToyModel
from mmbloodcell.engine.hooks import TimeBudgetHook


def _train(tmp_path, budget_s, model=None, batch_size=4, max_epochs=5, hooks=()):
    runner = Runner(
        model=model or ToyModel(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=ToyData(), sampler=dict(type='DefaultSampler'),
                              batch_size=batch_size, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.001)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1000)),
        custom_hooks=[dict(type='TimeBudgetHook', budget_s=budget_s), *hooks],
        experiment_name=f'budget_{budget_s}_{osp.basename(str(tmp_path))}')
    runner.train()
    return runner


def test_budget_spent_stops_after_first_epoch_and_saves(tmp_path):
    runner = _train(tmp_path, budget_s=1e-6)
    assert runner.epoch == 1 and runner.iter == 2
    # save_last: the stopped epoch is the last one, so its checkpoint exists
    assert osp.exists(osp.join(str(tmp_path), 'epoch_1.pth'))


def test_budget_not_spent_runs_all_epochs(tmp_path):
    runner = _train(tmp_path, budget_s=3600)
    assert runner.epoch == 5 and runner.iter == 10


def test_bad_budget():
    with pytest.raises(ValueError, match='budget_s'):
        TimeBudgetHook(0)


def test_lr_factor_shape():
    hook = TimeBudgetHook(10, lr_schedule='cosine', warmup_iters=4, min_lr_ratio=0.1)
    assert hook.lr_factor(0.0, 0) == pytest.approx(0.25)  # warm-up: (0 + 1) / 4
    assert hook.lr_factor(0.0, 3) == pytest.approx(1.0)
    assert hook.lr_factor(0.5, 10) == pytest.approx(0.1 + 0.9 * 0.5)
    assert hook.lr_factor(1.0, 10) == pytest.approx(0.1)
    assert hook.lr_factor(3.0, 10) == pytest.approx(0.1)  # past the budget: stays at the floor


def test_cosine_schedule_drives_the_optimizer(tmp_path):
    runner = Runner(
        model=ToyModel(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=ToyData(), sampler=dict(type='DefaultSampler'),
                              batch_size=4, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=10)),
        custom_hooks=[dict(type='TimeBudgetHook', budget_s=1e-6, lr_schedule='cosine',
                           warmup_iters=0, min_lr_ratio=0.2)],
        experiment_name=f'budget_cos_{osp.basename(str(tmp_path))}')
    runner.train()
    # the budget is spent at once: p >= 1, so every iteration ran at the floor 0.2 * 0.5
    assert runner.optim_wrapper.get_lr()['lr'] == [pytest.approx(0.1)]
    assert runner.epoch == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match='budget_s'):
        TimeBudgetHook(0)
    with pytest.raises(ValueError, match='lr_schedule'):
        TimeBudgetHook(1, lr_schedule='step')


def test_budget_eta_arithmetic():
    hook = TimeBudgetHook(budget_s=100)
    hook._start = 0.0
    hook.elapsed = lambda: 10.0  # 10 iterations in 10 s: 1 s each
    # the epoch in progress ends at 10 + 5 = 15 s; epochs of 20 s then end at 35, ..., 115 s:
    # the budget (100 s) runs out during the 6th of them
    assert hook.budget_eta(10, 5, 20) == pytest.approx(5 + 5 * 20)
    # past the budget before the epoch ends: only the rest of this epoch
    hook.elapsed = lambda: 99.0
    assert hook.budget_eta(99, 7, 20) == pytest.approx(7 * 1.0)


class _Slow(ToyModel):

    def forward(self, inputs, labels=None, mode='tensor'):
        import time
        time.sleep(0.01)
        return super().forward(inputs, labels, mode)


def test_logged_eta_follows_the_budget(tmp_path):
    from mmengine.hooks import Hook

    class Probe(Hook):
        priority = 'BELOW_NORMAL'

        def __init__(self):
            self.etas = []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.etas.append(runner.message_hub.get_info('eta'))

    probe = Probe()
    runner = _train(tmp_path, 0.3, model=_Slow(), batch_size=1, max_epochs=200, hooks=[probe])
    assert runner.epoch < 200
    # 200 epochs x 8 iterations x >= 10 ms would be an eta of >= 16 s; the budget says < 0.5 s
    assert max(probe.etas[5:]) < 0.5 and min(probe.etas) >= 0
