from .checkpoint import allow_openmmlab_checkpoint_globals, openmmlab_checkpoint_globals

__all__ = ['allow_openmmlab_checkpoint_globals', 'openmmlab_checkpoint_globals']
