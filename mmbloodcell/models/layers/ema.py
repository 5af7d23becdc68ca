"""RTMDet's exponential-momentum EMA, updated with a few multi-tensor kernels per step."""
import math
from collections import Counter
from typing import List, Tuple

import torch
import torch.nn as nn
from mmdet.models.layers import ExpMomentumEMA

from mmbloodcell.registry import DET_MODELS


@DET_MODELS.register_module()
class ForeachExpMomentumEMA(ExpMomentumEMA):
    """mmdet's :class:`ExpMomentumEMA` (YOLOX / RTMDet weight averaging) with the update done by
    ``torch._foreach_*`` operations over all tensors at once.

    The update is mmdet's, for every floating-point parameter (and buffer, with
    ``update_buffers=True``) ``p_avg``::

        m_t   = (1 - momentum) * exp(-(1 + t) / gamma) + momentum
        p_avg = p_avg * (1 - m_t) + p * m_t            # mul_ then add_(alpha=m_t)

    mmengine applies it tensor by tensor (two kernels each); here it is two multi-tensor
    kernels, with the same averaged weights, also for tensors shared by several modules
    (:meth:`_update_plan`). Arguments as ``ExpMomentumEMA``; use it from ``EMAHook``:
    ``dict(type='EMAHook', ema_type='ForeachExpMomentumEMA', momentum=0.0002)``.
    """

    def update_parameters(self, model: nn.Module) -> None:
        """Average ``model``'s current weights into this copy (see the class docstring)."""
        if self.steps == 0 or self.steps % self.interval != 0:
            super().update_parameters(model)  # the first copy, and the skipped steps
            return
        src = model.state_dict() if self.update_buffers else dict(model.named_parameters())
        momentum = (1 - self.momentum) * math.exp(-float(1 + self.steps) / self.gamma) \
            + self.momentum
        avg, cur = [], []
        for key, shared in self._update_plan():
            p_avg = self.avg_parameters[key].data
            p_src = src[key].data.to(p_avg.device)
            if shared:  # updated once per name, one by one, as mmengine does
                p_avg.mul_(1 - momentum).add_(p_src, alpha=momentum)
            else:
                avg.append(p_avg)
                cur.append(p_src)
        torch._foreach_mul_(avg, 1 - momentum)
        torch._foreach_add_(avg, cur, alpha=momentum)
        if not self.update_buffers:  # keep the buffers in sync with the source model
            for b_avg, b_src in zip(self.module.buffers(), model.buffers()):
                b_avg.data.copy_(b_src.data.to(b_avg.device))
        self.steps += 1

    def _update_plan(self) -> List[Tuple[str, bool]]:
        """``(name, shared)`` of every floating-point tensor averaged, computed once. A tensor
        shared by several modules (RTMDet's convolutions across levels) has several names,
        each updated once by mmengine, so ``shared`` ones are not fused."""
        if getattr(self, '_plan', None) is None:
            keys = [k for k, p in self.avg_parameters.items() if p.dtype.is_floating_point]
            where = [(self.avg_parameters[k].data_ptr(), tuple(self.avg_parameters[k].shape))
                     for k in keys]
            counts = Counter(where)
            self._plan = [(k, counts[w] > 1) for k, w in zip(keys, where)]
        return self._plan
