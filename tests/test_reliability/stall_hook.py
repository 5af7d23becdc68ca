"""Test harness for the kill-and-resume test: freeze training at a given iteration so that the
test can SIGKILL the process at a known point (mid-epoch, after a checkpoint was written)."""
import os
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class StallAtIterationHook(Hook):
    """After iteration ``at_iter`` (1-based) has run through every other hook, write
    ``marker`` and sleep until killed."""

    priority = 'LOWEST'

    def __init__(self, at_iter: int, marker: str, seconds: float = 300) -> None:
        self.at_iter = at_iter
        self.marker = marker
        self.seconds = seconds

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.at_iter:
            with open(self.marker, 'w') as f:
                f.write(str(os.getpid()))
            time.sleep(self.seconds)
