"""Where mmbloodcell's modules live: the registries of the downstream projects they serve.

mmbloodcell has no registries of its own. Each module is registered into the registry of the
library whose runner builds it, so that configs with ``default_scope='mmdet'`` or
``default_scope='mmpretrain'`` find it by its type name:

- detection modules -> ``mmdet.registry``; classification modules -> ``mmpretrain.registry``;
- modules that serve both (losses, pixel transforms) -> both;
- hooks and optimizer-wrapper constructors -> mmengine's root registries (visible from
  every scope).
"""
from mmdet.registry import DATASETS as DET_DATASETS
from mmdet.registry import METRICS as DET_METRICS
from mmdet.registry import MODELS as DET_MODELS
from mmdet.registry import TASK_UTILS as DET_TASK_UTILS
from mmdet.registry import TRANSFORMS as DET_TRANSFORMS
from mmdet.registry import VISUALIZERS as DET_VISUALIZERS
from mmengine.registry import HOOKS, OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.registry import DATA_SAMPLERS as CLS_DATA_SAMPLERS
from mmpretrain.registry import DATASETS as CLS_DATASETS
from mmpretrain.registry import METRICS as CLS_METRICS
from mmpretrain.registry import MODELS as CLS_MODELS
from mmpretrain.registry import TRANSFORMS as CLS_TRANSFORMS

__all__ = [
    'DET_DATASETS', 'DET_METRICS', 'DET_MODELS', 'DET_TASK_UTILS', 'DET_TRANSFORMS',
    'DET_VISUALIZERS', 'HOOKS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'CLS_DATA_SAMPLERS', 'CLS_DATASETS', 'CLS_METRICS', 'CLS_MODELS', 'CLS_TRANSFORMS',
    'register_module'
]


def register_module(*registries, name=None, force=False):
    """Class decorator that registers one class into several registries under one name.

    Example::

        @register_module(DET_MODELS, CLS_MODELS)
        class FocalHingeLoss(nn.Module): ...
    """
    if not registries:
        raise ValueError('register_module needs at least one registry')

    def _register(cls):
        for registry in registries:
            registry.register_module(name=name, module=cls, force=force)
        return cls

    return _register
