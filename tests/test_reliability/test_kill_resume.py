"""Interrupted training: tools/train.py killed with SIGKILL mid-epoch, continued with
``--resume``, ends with the same weights and metrics as an uninterrupted run (CPU, fixed seed).

The tiny C-NMC config uses the classification runtime of every C-NMC config (atomic
checkpoints, ExactResumeHook), random augmentations (RandomRotate, RandomFlip) and dropout, so
equality needs the data order, the augmentation draws and the dropout masks all to continue
where the checkpoint left them. 24 training cells in batches of 4: 6 iterations per epoch, 2
epochs, validation after each epoch.
"""
import os
import os.path as osp
import shutil
import signal
import time

import pytest
import torch

from reliability_utils import (TOOLS, assert_same_metrics, assert_same_weights, cnmc_config,
                               dump, make_cnmc_data, metric_lines, run_tool, start_tool)

TRAIN = osp.join(TOOLS, 'train.py')
STALL_AT = 10  # epoch 2, batch 4 of 6


def _wait_for(path, proc, timeout=240):
    end = time.time() + timeout
    while time.time() < end:
        if osp.exists(path):
            return
        if proc.poll() is not None:
            raise AssertionError(f'training ended (exit {proc.returncode}) before iteration '
                                 f'{STALL_AT}')
        time.sleep(0.1)
    raise AssertionError(f'{path} did not appear in {timeout} s')


def _stalled_config(data_root, tmp_path, name, checkpoint):
    marker = str(tmp_path / f'{name}.stalled')
    cfg = cnmc_config(data_root, **{'default_hooks.checkpoint': checkpoint})
    cfg.custom_imports = dict(imports=['mmbloodcell', 'stall_hook'], allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='StallAtIterationHook', at_iter=STALL_AT, marker=marker)]
    return dump(cfg, str(tmp_path / f'{name}_stall.py')), marker


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """An uninterrupted run, and two runs killed at iteration 10 then resumed: one with
    checkpoints every 4 iterations (resumes from iter_8.pth, mid-epoch 2), one with the
    configs' default epoch checkpoints (resumes from epoch_1.pth, written before validation)."""
    tmp = tmp_path_factory.mktemp('kill_resume')
    data_root = make_cnmc_data(str(tmp / 'cnmc'))
    ref_cfg = dump(cnmc_config(data_root), str(tmp / 'ref.py'))
    scenarios = {
        'iter': dict(by_epoch=False, interval=4),
        'epoch': dict(by_epoch=True, interval=1),
    }
    procs = {'ref': start_tool([TRAIN, ref_cfg, '--work-dir', str(tmp / 'ref')],
                               str(tmp / 'ref.log'))}
    out = dict(ref=str(tmp / 'ref'), killed={}, resumed={}, logs={})
    for name, ckpt in scenarios.items():
        cfg_path, marker = _stalled_config(data_root, tmp, name, ckpt)
        work_dir = str(tmp / name)
        proc = start_tool([TRAIN, cfg_path, '--work-dir', work_dir], str(tmp / f'{name}.log'))
        _wait_for(marker, proc)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        out['killed'][name] = sorted(os.listdir(work_dir))
        out['logs'][name] = open(tmp / f'{name}.log').read()
        # resume with the plain config (no stall hook): tools/train.py --resume picks the last
        # checkpoint of the work dir
        resume_cfg = dump(cnmc_config(data_root, **{'default_hooks.checkpoint': ckpt}),
                          str(tmp / f'{name}_resume.py'))
        out['logs'][name + '_resume'] = run_tool(
            [TRAIN, resume_cfg, '--work-dir', work_dir, '--resume'],
            str(tmp / f'{name}_resume.log'))
        out['resumed'][name] = work_dir
    assert procs['ref'].wait(timeout=300) == 0, open(tmp / 'ref.log').read()[-3000:]
    return out


def test_killed_runs_stopped_mid_epoch_with_complete_checkpoints(runs):
    # killed at iteration 10: iter_4 and iter_8 written, iter_12 not; epoch_1 written, not 2
    assert {'iter_4.pth', 'iter_8.pth', 'last_checkpoint'} <= set(runs['killed']['iter'])
    assert 'iter_12.pth' not in runs['killed']['iter']
    assert 'epoch_1.pth' in runs['killed']['epoch']
    assert 'epoch_2.pth' not in runs['killed']['epoch']
    for name in ('iter', 'epoch'):
        # never a half-written checkpoint: only complete files and no temporary leftovers
        assert not [f for f in runs['killed'][name] if f.endswith('.tmp')]
        assert 'Epoch(train) [2][4/6]' in runs['logs'][name]


def test_resume_continues_where_the_checkpoint_left(runs):
    log = runs['logs']['iter_resume']
    assert 'resumed epoch: 1, iter: 8' in log
    assert 'ExactResumeHook: resuming epoch 2 at batch 3 of 6' in log
    log = runs['logs']['epoch_resume']
    assert 'resumed epoch: 1, iter: 6' in log
    assert 'ExactResumeHook: resuming epoch' not in log  # epoch boundary: nothing to skip


@pytest.mark.parametrize('name', ['iter', 'epoch'])
def test_resumed_run_equals_uninterrupted_run(runs, name):
    ref, work_dir = runs['ref'], runs['resumed'][name]
    final = 'iter_12.pth' if name == 'iter' else 'epoch_2.pth'
    assert_same_weights(osp.join(ref, 'iter_12.pth'), osp.join(work_dir, final))
    ref_metrics = metric_lines(ref, 'binary')
    resumed_metrics = metric_lines(work_dir, 'binary')
    assert len(ref_metrics) == 2  # validation after epochs 1 and 2
    # the killed run validated epoch 1 (the iter scenario) or not, the resumed run epoch 2
    assert_same_metrics(resumed_metrics[-1], ref_metrics[-1])
    assert set(ref_metrics[-1]) >= {'binary/weighted_f1', 'binary/auc', 'binary/accuracy'}


def test_resume_without_exact_resume_hook_differs(runs, tmp_path):
    """The control: mmengine's plain resume (hook removed) restarts the interrupted epoch and
    re-seeds the generators, so the weights differ from the uninterrupted run."""
    work_dir = str(tmp_path / 'plain')
    shutil.copytree(runs['resumed']['iter'], work_dir)
    for f in os.listdir(work_dir):
        if f.startswith('iter_') and f not in ('iter_4.pth', 'iter_8.pth'):
            os.remove(osp.join(work_dir, f))
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work_dir, 'iter_8.pth'))
    data_root = osp.join(osp.dirname(runs['ref']), 'cnmc')
    cfg = cnmc_config(data_root)
    cfg.default_hooks.pop('exact_resume')
    path = dump(cfg, str(tmp_path / 'plain.py'))
    log = run_tool([TRAIN, path, '--work-dir', work_dir, '--resume'], str(tmp_path / 'plain.log'))
    assert 'resumed epoch: 1, iter: 8' in log
    # the interrupted epoch is trained from its first batch again (batches 1-2 twice, 14
    # iterations in all), and iter_12.pth is no longer the end of training
    assert 'Epoch(train) [2][1/6]' in log and 'Epoch(train) [2][6/6]' in log
    ref = torch.load(osp.join(runs['ref'], 'iter_12.pth'), map_location='cpu')['state_dict']
    plain = torch.load(osp.join(work_dir, 'iter_12.pth'), map_location='cpu')['state_dict']
    assert any(not torch.equal(ref[k], plain[k]) for k in ref)


def test_skip_batches_continue_the_samplers_epoch():
    """The resumed epoch's batches are the interrupted epoch's remaining ones (indices only)."""
    from mmengine.dataset import DefaultSampler
    from torch.utils.data import BatchSampler

    from mmbloodcell.engine.hooks.exact_resume_hook import _SkipBatches
    sampler = DefaultSampler(list(range(10)), shuffle=True, seed=0)
    sampler.set_epoch(1)
    batches = BatchSampler(sampler, batch_size=3, drop_last=False)
    full = list(batches)
    skipped = _SkipBatches(batches, 2)
    assert list(skipped) == full[2:] and len(skipped) == len(full) - 2
    assert skipped.sampler is sampler
    assert list(_SkipBatches(batches, 9)) == [] and len(_SkipBatches(batches, 9)) == 0


def test_generator_state_round_trip_and_validation_leaves_it_alone():
    import random

    import numpy as np

    from mmbloodcell.engine.hooks import ExactResumeHook
    from mmbloodcell.engine.hooks.exact_resume_hook import get_rng_state, set_rng_state

    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    state = get_rng_state()
    first = draw()
    set_rng_state(state)
    assert draw() == first
    # the state survives a checkpoint file read back with torch.load(weights_only=True)
    import io
    buf = io.BytesIO()
    torch.save({'meta': {'exact_resume': {'rng': state}}}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)['meta']['exact_resume']['rng']
    set_rng_state(loaded)
    assert draw() == first
    # validation in between does not shift the training generators
    hook = ExactResumeHook()
    set_rng_state(state)
    hook.before_val(None)
    draw()  # what validation would consume
    hook.after_val(None)
    assert draw() == first
