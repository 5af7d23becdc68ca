"""Per-image inference latency, reported next to the accuracy metrics."""
import time
from typing import Optional

from mmengine.hooks import Hook

from mmbloodcell.registry import HOOKS
from mmbloodcell.utils.profiling import synchronize


@HOOKS.register_module()
class LatencyHook(Hook):
    """Measure the model's time per image during validation and testing.

    The clock runs from ``before_*_iter`` to ``after_*_iter``: data pre-processing on the device,
    the forward pass and post-processing (NMS, box decoding), but not the data loader. The
    first ``warmup`` iterations are not counted. CUDA is synchronised at both ends. The mean
    milliseconds per image are added to the epoch's metrics as ``<prefix>/latency_ms`` (and
    ``<prefix>/fps``), so they land in the log and the metrics JSON like mAP does. The number
    is the batch-1 latency when the dataloader's ``batch_size`` is 1 (the configs' default).

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

    def _start_clock(self, runner) -> None:
        synchronize(runner.model)
        self._start = time.perf_counter()

    def _stop_clock(self, runner, data_batch) -> None:
        synchronize(runner.model)
        elapsed = time.perf_counter() - self._start
        self._seen_iters += 1
        if self._seen_iters <= self.warmup:
            return
        self._seconds += elapsed
        self._images += len(data_batch['inputs']) if isinstance(data_batch, dict) else 1

    def _report(self, runner, metrics) -> None:
        if metrics is not None and self._images > 0:
            ms = 1000.0 * self._seconds / self._images
            metrics[f'{self.prefix}/latency_ms'] = round(ms, 3)
            metrics[f'{self.prefix}/fps'] = round(1000.0 / ms, 2) if ms > 0 else float('inf')
        elif self._seen_iters:
            runner.logger.warning(
                f'LatencyHook: only {self._seen_iters} iterations, all inside the warm-up of '
                f'{self.warmup}: no latency reported (lower `warmup`)')
        self._reset()

    def before_val_epoch(self, runner) -> None:
        self._reset()

    def before_test_epoch(self, runner) -> None:
        self._reset()

    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._start_clock(runner)

    def before_test_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._start_clock(runner)

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._stop_clock(runner, data_batch)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._stop_clock(runner, data_batch)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._report(runner, metrics)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._report(runner, metrics)
