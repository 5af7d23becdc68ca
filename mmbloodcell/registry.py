"""Where mmbloodcell's modules live: no registries of its own, but those of the library whose
runner builds them (detection -> ``mmdet.registry``, classification -> ``mmpretrain.registry``,
both for losses and pixel transforms; hooks and optimizer-wrapper constructors -> mmengine's
root registries, visible from every scope)."""
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
    """Class decorator that registers one class into several registries under one name, e.g.
    ``@register_module(DET_MODELS, CLS_MODELS)``."""
    if not registries:
        raise ValueError('register_module needs at least one registry')

    def _register(cls):
        for registry in registries:
            registry.register_module(name=name, module=cls, force=force)
        return cls

    return _register
