"""Per-image inference latency, reported next to the accuracy metrics."""
import time
from typing import Optional

from mmengine.hooks import Hook

from mmbloodcell.registry import HOOKS
from mmbloodcell.utils.profiling import synchronize


@HOOKS.register_module()
class LatencyHook(Hook):
    """Measure the model's time per image during validation and testing.

    The clock runs (CUDA synchronised at both ends) from ``before_*_iter`` to ``after_*_iter``:
    pre-processing on the device, forward pass and post-processing, not the data loader; the
    first ``warmup`` iterations are not counted. The mean milliseconds per image join the
    epoch's metrics as ``<prefix>/latency_ms`` and ``<prefix>/fps`` (log and metrics JSON): the
    batch-1 latency with the configs' ``batch_size=1``.

    Args:
        warmup (int): Iterations ignored at the start of each epoch. Defaults to 5.
        prefix (str): Key prefix of the reported metrics. Defaults to ``'speed'``.
    """

    # HIGHEST: add the keys before RuntimeInfoHook (VERY_HIGH) copies the metrics into the
    # message hub, from which LoggerHook writes the log and the metrics JSON
    priority = 'HIGHEST'

    def __init__(self, warmup: int = 5, prefix: str = 'speed') -> None:
        if warmup < 0:
            raise ValueError(f'LatencyHook: warmup must be >= 0, got {warmup}')
        self.warmup = warmup
        self.prefix = prefix
        self._reset()

    def _reset(self) -> None:
        self._start: Optional[float] = None
        self._seen_iters = 0
        self._images = 0
        self._seconds = 0.0

    def before_val_epoch(self, runner) -> None:
        self._reset()

    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        synchronize(runner.model)
        self._start = time.perf_counter()

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        synchronize(runner.model)
        elapsed = time.perf_counter() - self._start
        self._seen_iters += 1
        if self._seen_iters <= self.warmup:
            return
        self._seconds += elapsed
        self._images += len(data_batch['inputs']) if isinstance(data_batch, dict) else 1

    def after_val_epoch(self, runner, metrics=None) -> None:
        if metrics is not None and self._images > 0:
            ms = 1000.0 * self._seconds / self._images
            metrics[f'{self.prefix}/latency_ms'] = round(ms, 3)
            metrics[f'{self.prefix}/fps'] = round(1000.0 / ms, 2) if ms > 0 else float('inf')
        elif self._seen_iters:
            runner.logger.warning(
                f'LatencyHook: only {self._seen_iters} iterations, all inside the warm-up of '
                f'{self.warmup}: no latency reported (lower `warmup`)')
        self._reset()

    before_test_epoch, before_test_iter = before_val_epoch, before_val_iter
    after_test_iter, after_test_epoch = after_val_iter, after_val_epoch
