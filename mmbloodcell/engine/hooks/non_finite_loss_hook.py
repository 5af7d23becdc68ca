"""Stop training as soon as the loss is NaN or infinite, saying where and with which lr."""
import math
from typing import Dict, Optional

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_world_size, is_distributed
from mmengine.hooks import Hook

from mmbloodcell.registry import HOOKS

__all__ = ['NonFiniteLossHook', 'NonFiniteLossError']


class NonFiniteLossError(FloatingPointError):
    """Raised by :class:`NonFiniteLossHook`; the message names the iteration and the lr."""


def _as_float(value) -> Optional[float]:
    if isinstance(value, torch.Tensor):
        if value.numel() == 0:
            return None
        value = value.detach()
        return float(value.float().mean()) if value.numel() > 1 else float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when a training loss becomes NaN or infinite.

    The values checked are the ``log_vars`` of ``train_step`` whose name contains ``loss``;
    the error names the iteration, the epoch and batch, the last lr and the loss terms. The
    hook runs before ``CheckpointHook`` (priority ``ABOVE_NORMAL``): no checkpoint of NaN
    weights is written and the last good one stays the one ``--resume`` picks up. With
    ``sync_ranks`` distributed ranks share the finding (one ``all_reduce`` of one number) and
    all stop at the same iteration.

    Args:
        interval (int): Check every ``interval`` iterations. Defaults to 1.
        sync_ranks (bool): Share the finding between ranks. Defaults to True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1, sync_ranks: bool = True) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f'NonFiniteLossHook: interval must be a positive int, got '
                             f'{interval!r}')
        self.interval = interval
        self.sync_ranks = sync_ranks

    @staticmethod
    def _losses(outputs) -> Dict[str, float]:
        if not isinstance(outputs, dict):
            return {}
        values = {}
        for key, value in outputs.items():
            if 'loss' not in key:
                continue
            number = _as_float(value)
            if number is not None:
                values[key] = number
        return values

    def _any_rank_bad(self, runner, bad: bool) -> bool:
        if not (self.sync_ranks and is_distributed() and get_world_size() > 1):
            return bad
        # NCCL reduces CUDA tensors only; gloo (CPU runs) CPU tensors
        device = (torch.device('cuda', torch.cuda.current_device())
                  if torch_dist.get_backend() == 'nccl' else torch.device('cpu'))
        flag = torch.tensor([1.0 if bad else 0.0], device=device)
        torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MAX)
        return bool(flag.item() > 0)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        losses = self._losses(outputs)
        bad_here = any(not math.isfinite(v) for v in losses.values())
        if not self._any_rank_bad(runner, bad_here):
            return
        iteration = runner.iter + 1  # 1-based, as LoggerHook prints it
        try:
            epoch_len = len(runner.train_dataloader)
        except TypeError:
            epoch_len = None
        where = f'iteration {iteration}'
        if runner.train_loop.__class__.__name__ != 'IterBasedTrainLoop' and epoch_len:
            where += f' (epoch {runner.epoch + 1}, batch {batch_idx + 1} of {epoch_len})'
        lrs = runner.optim_wrapper.get_lr()
        lr_text = ', '.join(
            f'{name}=' + ('/'.join(f'{v:.6g}' for v in values) if isinstance(values, (list, tuple))
                          else f'{values:.6g}') for name, values in lrs.items())
        if bad_here:
            bad_value = next(v for v in (losses.get('loss'), *losses.values())
                             if v is not None and not math.isfinite(v))
            what = f'the training loss is {bad_value}'
            terms = ', '.join(f'{k}={v:.6g}' for k, v in losses.items())
        else:
            what = 'the training loss is not finite on another rank'
            terms = ', '.join(f'{k}={v:.6g}' for k, v in losses.items()) + ' (this rank)'
        last = runner.message_hub.get_info('last_ckpt')
        if last:
            saved = (f'the last checkpoint, {last}, is intact', ', then continue from it with '
                     'tools/train.py CONFIG --resume')
        else:
            saved = ('no checkpoint had been written yet', ', then train again')
        message = (
            f'NonFiniteLossHook: {what} at {where}; last learning rate: {lr_text}. '
            f'Loss terms: {terms}. Training stopped before saving NaN weights; {saved[0]}. '
            f'Fix: lower the learning rate (or the warm-up start factor), clip gradients '
            f'(optim_wrapper.clip_grad=dict(max_norm=10)), check the batch for broken images or '
            f'boxes{saved[1]}.')
        runner.logger.error(message)
        raise NonFiniteLossError(message)
