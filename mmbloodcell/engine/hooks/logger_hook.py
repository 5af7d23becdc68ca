"""mmengine's ``LoggerHook`` with the test-metrics JSON written by one process."""
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import LoggerHook

from mmbloodcell.registry import HOOKS


@HOOKS.register_module()
class MainProcessLoggerHook(LoggerHook):
    """``LoggerHook`` whose ``<timestamp>/<timestamp>.json`` of a test run comes from rank 0 only.

    In mmengine 0.10.7 every rank dumps the test metrics to the same file at once, which can
    leave it unparseable ("Extra data"). Here the other ranks skip ``after_test_epoch``: their
    logger prints nothing and their metrics are rank 0's (broadcast by the evaluator). Same
    arguments as ``LoggerHook``; the configs' ``default_hooks.logger``.
    """

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if is_main_process():
            super().after_test_epoch(runner, metrics)
