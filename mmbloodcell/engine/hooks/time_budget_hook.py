"""Stop training after a wall-clock budget; optionally anneal the lr over that budget."""
import math
import time
from typing import Optional

from mmengine.hooks import Hook

from mmbloodcell.registry import HOOKS


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """End epoch-based training at the first epoch boundary after ``budget_s`` seconds.

    The clock starts at ``before_train``. When an epoch ends past the budget, the loop's
    ``max_epochs`` becomes the current epoch, so for every other hook it is the last one
    (``CheckpointHook`` saves it, the final validation runs); see ``benchmarks/bccd_budget.py``.

    With ``lr_schedule='cosine'`` the hook sets the lr from the elapsed fraction ``p = elapsed /
    budget_s`` of the budget (the epoch count is not known in advance)::

        lr = base_lr * w(i) * (r + (1 - r) * (1 + cos(pi * min(p, 1))) / 2)
        w(i) = min(1, (i + 1) / warmup_iters)          # linear warm-up over iterations

    where ``r = min_lr_ratio`` and ``base_lr`` is each param group's lr from the optimizer
    config. Leave ``param_scheduler`` empty in such a config.

    The log's ``eta`` is capped by the time to the end of the epoch in which the budget runs out.

    Args:
        budget_s (float): Training seconds allowed.
        lr_schedule (str, optional): ``None`` (leave the lr alone) or ``'cosine'``.
        warmup_iters (int): Linear warm-up iterations of the schedule. Defaults to 0.
        min_lr_ratio (float): Final lr as a fraction of the base lr. Defaults to 0.05.
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW), which must see the new max_epochs

    def __init__(self,
                 budget_s: float,
                 lr_schedule: Optional[str] = None,
                 warmup_iters: int = 0,
                 min_lr_ratio: float = 0.05) -> None:
        if budget_s <= 0:
            raise ValueError(f'TimeBudgetHook: budget_s must be > 0, got {budget_s}')
        if lr_schedule not in (None, 'cosine'):
            raise ValueError(f"TimeBudgetHook: lr_schedule must be None or 'cosine', got "
                             f'{lr_schedule!r}')
        if not 0 <= min_lr_ratio <= 1:
            raise ValueError(f'TimeBudgetHook: min_lr_ratio must be in [0, 1], got '
                             f'{min_lr_ratio}')
        self.budget_s = float(budget_s)
        self.lr_schedule = lr_schedule
        self.warmup_iters = int(warmup_iters)
        self.min_lr_ratio = float(min_lr_ratio)
        self._start = None
        self._start_iter = 0
        self._base_lrs = None

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def lr_factor(self, progress: float, it: int) -> float:
        """The schedule's multiplier of the base lr at budget fraction ``progress`` and
        iteration ``it`` (0-based)."""
        warm = min(1.0, (it + 1) / self.warmup_iters) if self.warmup_iters > 0 else 1.0
        p = min(max(progress, 0.0), 1.0)
        r = self.min_lr_ratio
        return warm * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * p)))

    def _optimizers(self, runner):
        wrapper = runner.optim_wrapper
        if hasattr(wrapper, 'optim_wrappers'):  # OptimWrapperDict
            return [w.optimizer for w in wrapper.optim_wrappers.values()]
        return [wrapper.optimizer]

    def before_train(self, runner) -> None:
        self._start = time.perf_counter()
        self._start_iter = runner.iter
        if self.lr_schedule:
            self._base_lrs = [[g.get('initial_lr', g['lr']) for g in opt.param_groups]
                              for opt in self._optimizers(runner)]

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self.lr_schedule:
            return
        factor = self.lr_factor(self.elapsed() / self.budget_s, runner.iter)
        for opt, base_lrs in zip(self._optimizers(runner), self._base_lrs):
            for group, base in zip(opt.param_groups, base_lrs):
                group['lr'] = base * factor

    def budget_eta(self, iters_done: int, iters_left_in_epoch: int, epoch_len: int) -> float:
        """Seconds to the end of the epoch in which the budget runs out, at the mean iteration
        time of the ``iters_done`` iterations so far."""
        elapsed = self.elapsed()
        per_iter = elapsed / max(iters_done, 1)
        left = iters_left_in_epoch * per_iter
        if elapsed + left >= self.budget_s or epoch_len <= 0:
            return left
        epoch_s = max(epoch_len * per_iter, 1e-9)
        return left + math.ceil((self.budget_s - elapsed - left) / epoch_s) * epoch_s

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        # runs after IterTimerHook (same priority, registered earlier) wrote its eta, and
        # before LoggerHook (BELOW_NORMAL) prints it
        eta = runner.message_hub.get_info('eta')
        if eta is None or self._start is None:
            return
        epoch_len = len(runner.train_dataloader)
        capped = self.budget_eta(runner.iter + 1 - self._start_iter, epoch_len - batch_idx - 1,
                                 epoch_len)
        runner.message_hub.update_info('eta', min(float(eta), capped))

    def after_train_epoch(self, runner) -> None:
        elapsed = self.elapsed()
        loop = runner.train_loop
        if elapsed >= self.budget_s and runner.epoch + 1 < loop.max_epochs:
            runner.logger.info(
                f'TimeBudgetHook: {elapsed:.0f} s >= budget {self.budget_s:.0f} s after epoch '
                f'{runner.epoch + 1}: this is the last epoch (planned {loop.max_epochs})')
            loop._max_epochs = runner.epoch + 1
            loop._max_iters = runner.iter
            runner.message_hub.update_info('max_epochs', loop.max_epochs)
            runner.message_hub.update_info('max_iters', loop.max_iters)
