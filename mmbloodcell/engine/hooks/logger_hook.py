"""mmengine's ``LoggerHook`` with the test-metrics JSON written by one process."""
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import LoggerHook

from mmbloodcell.registry import HOOKS


@HOOKS.register_module()
class MainProcessLoggerHook(LoggerHook):
    """``LoggerHook`` whose ``<timestamp>/<timestamp>.json`` of a test run comes from rank 0 only.

    In mmengine 0.10.7, ``LoggerHook.after_test_epoch`` has *every* rank dump the test metrics
    to the same file (the ranks share the broadcast timestamp, hence the log directory). Under
    ``tools/dist_test.sh CONFIG CKPT N`` the N writers truncate and write the file at the same
    time; their records differ in length (each rank has its own ``time``/``data_time``), so the
    file can end up as one record followed by the tail of another, which no JSON reader parses
    ("Extra data"). Here ranks other than 0 skip the hook: their logger prints nothing anyway
    (mmengine's ``MMLogger`` only logs errors on those ranks) and the metrics they would write
    are rank 0's (the evaluator broadcasts them). Training and validation logging is unchanged
    (mmengine's visualizer backends already write on rank 0 only).

    Same arguments as ``mmengine.hooks.LoggerHook``; the configs' ``default_hooks.logger``.
    """

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if is_main_process():
            super().after_test_epoch(runner, metrics)
