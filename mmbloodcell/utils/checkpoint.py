"""Safe loading of OpenMMLab checkpoints under torch >= 2.6 (``weights_only=True``).

mmengine's checkpoints hold the message hub's ``HistoryBuffer`` objects and numpy arrays /
scalars / dtypes, which safe loading refuses ("Unsupported global"). Instead of turning safe
loading off, :func:`allow_openmmlab_checkpoint_globals` allow-lists exactly those classes.
``HistoryBuffer`` pickles its methods as ``getattr(HistoryBuffer, 'min')``; the builtin
``getattr`` would read any attribute of any allowed object, so ``builtins.getattr`` is bound to
:func:`_history_buffer_getattr`, which returns HistoryBuffer's own methods only.
"""
import pickle

import torch

_DONE = False


def _history_buffer_getattr(obj, name: str):
    """``getattr`` for unpickling, limited to the methods of ``HistoryBuffer``'s class."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and callable(HistoryBuffer.__dict__.get(name)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) in a checkpoint: only the methods of '
        'mmengine HistoryBuffer are allowed (load with weights_only=False only if you '
        'trust the file)')


def openmmlab_checkpoint_globals() -> list:
    """The classes and functions an mmengine checkpoint needs beyond torch's defaults."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    try:  # numpy >= 2 keeps its internals in numpy._core; pickles name either module
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    allowed = [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    # numpy >= 1.25 pickles dtypes by their class (numpy.dtypes.Float64DType, ...)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    entries = []
    for obj in allowed:
        entries.append(obj)
        module = getattr(obj, '__module__', '')
        if module.startswith('numpy._core'):
            # files written with numpy 1.x name numpy.core.*: accept that spelling too
            entries.append((obj, f"numpy.core{module[len('numpy._core'):]}.{obj.__name__}"))
    entries += [(_history_buffer_getattr, 'builtins.getattr'),
                (_history_buffer_getattr, '__builtin__.getattr')]
    return entries


def allow_openmmlab_checkpoint_globals() -> None:
    """Allow-list :func:`openmmlab_checkpoint_globals` for ``torch.load`` (idempotent; a no-op
    on torch versions without ``add_safe_globals``)."""
    global _DONE
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if _DONE or add is None:
        return
    add(openmmlab_checkpoint_globals())
    _DONE = True
