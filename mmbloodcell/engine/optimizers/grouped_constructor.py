"""An optimizer-wrapper constructor that keeps mmengine's per-parameter settings but hands the
optimizer one parameter group per distinct setting, so multi-tensor (foreach) kernels apply."""
from typing import Any, Dict, List

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

from mmbloodcell.registry import OPTIM_WRAPPER_CONSTRUCTORS


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class GroupedOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """:class:`mmengine.optim.DefaultOptimWrapperConstructor`, then parameter groups with equal
    hyper-parameters merged.

    With a ``paramwise_cfg`` (e.g. ``norm_decay_mult=0, bias_decay_mult=0``), mmengine puts
    every parameter in a group of its own. PyTorch's multi-tensor optimizers (``foreach``, the
    default on CUDA) fuse the update over the tensors of ONE group, so 240 groups (RTMDet-tiny)
    cost about 2,700 kernels per AdamW step instead of about 30. Merging groups whose settings
    (``lr``, ``weight_decay``, ``betas``, ...) are equal gives each parameter exactly the update
    it had; only the optimizer's ``param_groups`` (and so its state_dict layout) differ, so a
    checkpoint written with one constructor resumes only with the same one.

    Args:
        optim_wrapper_cfg, paramwise_cfg: as :class:`DefaultOptimWrapperConstructor`. Use it
            with ``optim_wrapper = dict(constructor='GroupedOptimWrapperConstructor', ...)``.
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        optim_wrapper = super().__call__(model)
        optimizer = optim_wrapper.optimizer
        merged: Dict[tuple, dict] = {}
        for group in optimizer.param_groups:
            settings = {k: v for k, v in group.items() if k != 'params'}
            key = tuple(sorted((k, _hashable(v)) for k, v in settings.items()))
            merged.setdefault(key, dict(settings, params=[]))['params'].extend(group['params'])
        groups: List[dict] = list(merged.values())
        if len(groups) < len(optimizer.param_groups):  # no state yet: regroup in place
            optimizer.param_groups.clear()
            for group in groups:
                optimizer.add_param_group(group)
        return optim_wrapper
