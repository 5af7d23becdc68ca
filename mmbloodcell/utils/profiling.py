"""Timing helpers: waiting for a GPU's queued work, and counting the aten operators a piece of
code dispatches (a device-independent measure of launch overhead)."""
from typing import Callable, Union

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def synchronize(where: Union[str, torch.device, torch.nn.Module, None] = None) -> None:
    """Wait for the CUDA work queued on a device (a name like ``'cuda:0'``, a
    ``torch.device``, or the device of a module's first parameter); nothing on a CPU."""
    if isinstance(where, torch.nn.Module):
        param = next(where.parameters(), None)
        where = None if param is None else param.device
    device = torch.device(where) if where is not None else None
    if device is not None and device.type == 'cuda' and torch.cuda.is_available():
        torch.cuda.synchronize(device)


class _Counter(TorchDispatchMode):

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def count_aten_ops(fn: Callable[[], object]) -> int:
    """Number of aten operator calls ``fn()`` dispatches, its autograd backward included."""
    counter = _Counter()
    with counter:
        fn()
    return counter.count
