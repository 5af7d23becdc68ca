"""Crash-safe local writes for checkpoints: ``dict(backend='atomic_local')``.

mmengine saves a checkpoint by serialising it into memory and handing the bytes to a file
backend's ``put()``. The stock local backend opens the target with ``open(path, 'wb')`` and
writes into it, so a job killed (SIGKILL, out-of-memory killer, pre-emption, full disk) while
the bytes go out leaves a truncated ``epoch_N.pth`` that ``--resume`` later fails to load.

:class:`AtomicLocalBackend` writes the bytes to a hidden temporary file in the target's folder
(``.epoch_N.pth.<pid>.<random>.tmp``), flushes it to disk (``fsync``) and renames it over the
target with :func:`os.replace`. A rename within one file system is atomic on POSIX and Windows:
readers see the old file or the complete new one, never a part. If the write fails, the
temporary file is removed and the error propagates; if the process is killed, at most a hidden
``*.tmp`` file is left next to the intact previous checkpoints.

Use it through ``CheckpointHook(backend_args=dict(backend='atomic_local'))`` (the default of
``configs/_base_/det_runtime.py`` and ``configs/_base_/cls_runtime.py``). It handles local
paths only; for a remote ``out_dir`` (``s3://``...) drop ``backend_args`` so mmengine picks the
remote backend.
"""
import os
import os.path as osp
import uuid
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

__all__ = ['AtomicLocalBackend', 'atomic_write_bytes']


def atomic_write_bytes(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` so that the file is never seen half-written.

    Args:
        data (bytes): The content.
        filepath (str | Path): The target; its folder is created if needed.

    Raises:
        OSError: The write, flush or rename failed; ``filepath`` is left as it was before the
            call and no temporary file remains.
    """
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    # same folder as the target: os.replace is only atomic within one file system
    tmp = osp.join(folder, f'.{osp.basename(filepath)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        with open(tmp, 'xb') as f:  # 'x': never clobber another writer's temporary file
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    # make the rename itself durable (POSIX); not possible on every platform / file system
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's :class:`~mmengine.fileio.LocalBackend` whose ``put`` and ``put_text`` write
    through a temporary file and an atomic rename (see the module docstring). Everything else
    (``get``, ``exists``, ``remove``, ``join_path``...) is the local backend's."""

    @staticmethod
    def _check_local(filepath: Union[str, Path]) -> None:
        if '://' in str(filepath):
            raise ValueError(
                f"atomic_local backend writes local files only, got {filepath!r}; for a remote "
                f"out_dir remove backend_args=dict(backend='atomic_local') from the "
                f'CheckpointHook config')

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes ``obj`` to ``filepath`` atomically."""
        self._check_local(filepath)
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        """Write text ``obj`` to ``filepath`` atomically."""
        self._check_local(filepath)
        atomic_write_bytes(obj.encode(encoding), filepath)


register_backend('atomic_local', AtomicLocalBackend, force=True)
