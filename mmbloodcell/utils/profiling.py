"""Counting the operators a piece of PyTorch code dispatches (a device-independent measure of
launch overhead: on a GPU each aten call is at least one kernel launch)."""
from typing import Callable

from torch.utils._python_dispatch import TorchDispatchMode


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
