"""OpenMMLab checkpoints load under torch >= 2.6 (weights_only=True) once mmbloodcell is
imported, and a pickle with any other class is still refused."""
import collections
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
from mmengine.runner import Runner, load_checkpoint

import mmbloodcell  # noqa: F401
from toy_runner import ToyData, ToyModel


def _runner(work_dir, max_epochs, **kwargs):
    return Runner(
        model=ToyModel(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=ToyData(1 / 8), sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
            batch_size=4, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0),
        **kwargs)


class Evil:
    """An arbitrary class: unpickling it must be refused."""

    def __reduce__(self):
        return (print, ('unpickled Evil: this must never happen',))


def test_checkpoint_round_trip_and_resume(tmp_path):
    work_dir = str(tmp_path / 'train')
    runner = _runner(work_dir, max_epochs=1)
    runner.train()
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    # without mmbloodcell, torch >= 2.6 refuses the file (the fault this package fixes)
    proc = subprocess.run(
        [sys.executable, '-c', f'import torch; torch.load({ckpt!r}, map_location="cpu")'],
        capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'HistoryBuffer' in proc.stderr or 'getattr' in proc.stderr
    # plain safe loading (the default of torch.load) works
    state = torch.load(ckpt, map_location='cpu')
    assert state['meta']['epoch'] == 1
    assert 'train/loss' in state['message_hub']['log_scalars']
    # mmengine's loader (used by tools/test.py through load_from)
    model = ToyModel()
    load_checkpoint(model, ckpt, map_location='cpu')
    assert torch.equal(model.fc.weight, runner.model.fc.weight.detach())
    # and resuming (tools/train.py --resume) continues from epoch 1 to 2
    resumed = _runner(work_dir, max_epochs=2, resume=True, load_from=ckpt)
    resumed.train()
    assert resumed.epoch == 2
    assert osp.exists(osp.join(work_dir, 'epoch_2.pth'))


def test_arbitrary_class_still_refused(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': collections.OrderedDict(), 'meta': Evil()}, path)
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        torch.load(path, map_location='cpu')
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(ToyModel(), path, map_location='cpu')


def test_getattr_limited_to_history_buffer(tmp_path):

    import numpy as np

    class _GetattrOther:
        """getattr on an allowed class other than HistoryBuffer (numpy.ndarray.tofile)."""

        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))

    path = str(tmp_path / 'getattr.pth')
    torch.save({'meta': _GetattrOther()}, path)
    with pytest.raises(pickle.UnpicklingError, match='only the methods of mmengine'):
        torch.load(path, map_location='cpu')
