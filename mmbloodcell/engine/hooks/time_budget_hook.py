"""Stop training after a wall-clock budget, keeping the last epoch's checkpoint."""
import time

from mmengine.hooks import Hook

from mmbloodcell.registry import HOOKS


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """End epoch-based training at the first epoch boundary after ``budget_s`` seconds.

    The clock starts at ``before_train`` (model built, data loaders ready). When an epoch ends
    past the budget, the loop's ``max_epochs`` is set to the current epoch, so the epoch is the
    last one for every other hook: ``CheckpointHook`` saves it (``save_last``) and the final
    validation runs as usual. Used by benchmarks that compare detectors "within the same GPU
    budget".

    Args:
        budget_s (float): Training seconds allowed.
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW), which must see the new max_epochs

    def __init__(self, budget_s: float) -> None:
        if budget_s <= 0:
            raise ValueError(f'TimeBudgetHook: budget_s must be > 0, got {budget_s}')
        self.budget_s = float(budget_s)
        self._start = None

    def before_train(self, runner) -> None:
        self._start = time.perf_counter()

    def after_train_epoch(self, runner) -> None:
        elapsed = time.perf_counter() - self._start
        loop = runner.train_loop
        if elapsed >= self.budget_s and runner.epoch + 1 < loop.max_epochs:
            runner.logger.info(
                f'TimeBudgetHook: {elapsed:.0f} s >= budget {self.budget_s:.0f} s after epoch '
                f'{runner.epoch + 1}: this is the last epoch (planned {loop.max_epochs})')
            loop._max_epochs = runner.epoch + 1
            loop._max_iters = runner.iter
            runner.message_hub.update_info('max_epochs', loop.max_epochs)
            runner.message_hub.update_info('max_iters', loop.max_iters)
