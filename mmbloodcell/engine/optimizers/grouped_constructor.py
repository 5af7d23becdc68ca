"""mmengine's optimizer-wrapper constructor with one parameter group per distinct setting."""
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

    With a ``paramwise_cfg`` mmengine puts every parameter in a group of its own, and
    PyTorch's multi-tensor (``foreach``) optimizers fuse the update over one group only. Merging
    groups of equal settings gives each parameter the same update; only the ``param_groups``
    (and the optimizer state_dict layout) differ, so a checkpoint resumes only with the same
    constructor. Use ``optim_wrapper = dict(constructor='GroupedOptimWrapperConstructor', ...)``.
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
