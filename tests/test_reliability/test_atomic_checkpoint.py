"""Checkpoints are never half-written: the ``atomic_local`` file backend (the CheckpointHook
default of both base runtimes) writes a temporary file in the same folder and renames it; a
failed or killed write leaves the previous checkpoint intact. ``--resume`` also survives a
broken ``last_checkpoint``."""
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.runner import Runner

import mmbloodcell  # noqa: F401  (registers the backend)
from mmbloodcell.apis.tool_config import find_resume_checkpoint
from mmbloodcell.utils import AtomicLocalBackend, atomic_write_bytes
from reliability_utils import REPO, cnmc_config, make_cnmc_data, tool_env

BASE = osp.join(REPO, 'configs', '_base_')


def _files(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize('runtime', ['det_runtime.py', 'cls_runtime.py'])
def test_base_runtimes_default_to_atomic_checkpoints(runtime, tmp_path):
    cfg = Config.fromfile(osp.join(BASE, runtime))
    hooks = cfg.default_hooks
    assert hooks.checkpoint.backend_args == dict(backend='atomic_local')
    assert hooks.non_finite_loss.type == 'NonFiniteLossHook'
    assert hooks.exact_resume.type == 'ExactResumeHook'
    backend = get_file_backend(str(tmp_path), backend_args=hooks.checkpoint.backend_args)
    assert isinstance(backend, AtomicLocalBackend) and isinstance(backend, LocalBackend)


def test_put_replaces_whole_file_and_leaves_nothing_else(tmp_path):
    backend = AtomicLocalBackend()
    target = tmp_path / 'sub' / 'epoch_1.pth'
    backend.put(b'old' * 1000, target)
    backend.put(b'new', target)
    assert target.read_bytes() == b'new'
    backend.put_text('epoch_1.pth', tmp_path / 'last')
    assert (tmp_path / 'last').read_text() == 'epoch_1.pth'
    assert _files(tmp_path / 'sub') == ['epoch_1.pth']
    # same permissions as a plain open() would give
    plain = tmp_path / 'plain'
    plain.write_bytes(b'x')
    assert os.stat(target).st_mode == os.stat(plain).st_mode
    with pytest.raises(ValueError, match="local files only.*remove backend_args"):
        backend.put(b'x', 's3://bucket/epoch_1.pth')


def test_failing_write_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / 'epoch_1.pth'
    atomic_write_bytes(b'complete checkpoint', target)

    def disk_full(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', disk_full)
    with pytest.raises(OSError, match='No space left'):
        atomic_write_bytes(b'x' * 100000, target)
    assert target.read_bytes() == b'complete checkpoint'
    assert _files(tmp_path) == ['epoch_1.pth']  # the temporary file is removed


def test_killed_during_write_keeps_previous_file(tmp_path):
    """SIGKILL while the new bytes are being flushed: the target still holds the old, complete
    content; only a hidden temporary file is left beside it."""
    target = tmp_path / 'iter_8.pth'
    marker = tmp_path / 'writing'
    script = textwrap.dedent(f"""
        import importlib.util, os, time
        # the module alone (not the whole package): a fast start
        spec = importlib.util.spec_from_file_location(
            'fileio', {osp.join(REPO, 'mmbloodcell', 'utils', 'fileio.py')!r})
        fileio = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fileio)
        atomic_write_bytes = fileio.atomic_write_bytes
        atomic_write_bytes(b'old complete checkpoint', {str(target)!r})
        def slow_fsync(fd):
            open({str(marker)!r}, 'w').close()
            time.sleep(120)
        os.fsync = slow_fsync
        atomic_write_bytes(b'new' * 1000000, {str(target)!r})
    """)
    proc = subprocess.Popen([sys.executable, '-c', script], env=tool_env(), cwd=REPO)
    end = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, 'the writer ended early'
        assert time.time() < end
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert target.read_bytes() == b'old complete checkpoint'
    leftovers = [f for f in _files(tmp_path) if f not in ('iter_8.pth', 'writing')]
    assert len(leftovers) == 1 and leftovers[0].startswith('.iter_8.pth.')
    assert leftovers[0].endswith('.tmp')


@pytest.fixture(scope='module')
def cnmc_root(tmp_path_factory):
    return make_cnmc_data(str(tmp_path_factory.mktemp('atomic') / 'cnmc'))


def test_runner_checkpoint_failure_leaves_last_good_checkpoint(cnmc_root, tmp_path, monkeypatch):
    """A real training with the cls runtime's CheckpointHook (epoch checkpoints): writing the
    second checkpoint fails; the first stays complete and loadable, no partial file appears."""
    cfg = cnmc_config(cnmc_root, **{'default_hooks.checkpoint': dict(by_epoch=True,
                                                                     interval=1)})
    cfg.work_dir = str(tmp_path / 'work')
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2)
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith('epoch_2.pth'):
            raise OSError(5, 'Input/output error')
        return real_replace(src, dst)

    monkeypatch.setattr(os, 'replace', failing_replace)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(OSError, match='Input/output error'):
        runner.train()
    files = _files(cfg.work_dir)
    assert 'epoch_1.pth' in files and 'epoch_2.pth' not in files
    assert not [f for f in files if f.endswith('.tmp')]
    ckpt = torch.load(osp.join(cfg.work_dir, 'epoch_1.pth'), map_location='cpu')
    assert ckpt['meta']['epoch'] == 1 and 'exact_resume' in ckpt['meta']
    with open(osp.join(cfg.work_dir, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('epoch_1.pth')


def test_resume_skips_broken_last_checkpoint(tmp_path):
    work = tmp_path
    atomic_write_bytes(b'', work / 'placeholder')  # not a checkpoint name: ignored
    torch.save({'meta': {}}, work / 'iter_4.pth')
    os.utime(work / 'iter_4.pth', (1, 1))
    torch.save({'meta': {}}, work / 'iter_8.pth')
    good = str(work / 'iter_8.pth')
    (work / 'last_checkpoint').write_text(good)
    assert find_resume_checkpoint(str(work)) == good
    # last_checkpoint emptied by a crash: the newest complete checkpoint is used
    (work / 'last_checkpoint').write_text('')
    assert find_resume_checkpoint(str(work)) == good
    # the named checkpoint is truncated (written without the atomic backend)
    torch.save({'meta': {}}, work / 'iter_12.pth')
    (work / 'iter_12.pth').write_bytes((work / 'iter_12.pth').read_bytes()[:100])
    (work / 'last_checkpoint').write_text(str(work / 'iter_12.pth'))
    assert find_resume_checkpoint(str(work)) == good
    # nothing complete left: a clear error
    for name in ('iter_4.pth', 'iter_8.pth'):
        os.remove(work / name)
    with pytest.raises(FileNotFoundError, match='missing or incomplete.*remove last_checkpoint'):
        find_resume_checkpoint(str(work))
    assert find_resume_checkpoint(str(tmp_path / 'empty_dir_never_created')) is None
