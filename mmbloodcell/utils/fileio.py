"""Crash-safe local writes for checkpoints: ``dict(backend='atomic_local')``.

The stock local backend writes into the target, so a job killed mid-write leaves a truncated
``epoch_N.pth`` that ``--resume`` cannot load. :class:`AtomicLocalBackend` writes a hidden
temporary file in the target's folder (``.epoch_N.pth.<pid>.<random>.tmp``), flushes it
(``fsync``) and renames it over the target (:func:`os.replace`, atomic within one file
system): readers see the old file or the complete new one. Use it through
``CheckpointHook(backend_args=dict(backend='atomic_local'))`` (the runtime configs' default);
local paths only: for a remote ``out_dir`` (``s3://``...) drop ``backend_args``.
"""
import os
import os.path as osp
import uuid
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

__all__ = ['AtomicLocalBackend', 'atomic_write_bytes']


def atomic_write_bytes(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` (its folder created if needed) so that the file is never
    seen half-written. On an ``OSError`` ``filepath`` is as before and no temporary file
    remains."""
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
    through :func:`atomic_write_bytes`."""

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
