"""mmbloodcell: OpenMMLab plugin for blood-cell detection (BCCD) and leukemia classification
(C-NMC 2019).

Importing the package registers every module into the registries of mmdet, mmpretrain and
mmengine (see :mod:`mmbloodcell.registry`), so ``custom_imports = dict(imports=['mmbloodcell'],
allow_failed_imports=False)`` is all a config needs. It also lets ``torch.load`` (torch >= 2.6)
read OpenMMLab checkpoints safely (see :mod:`mmbloodcell.utils.checkpoint`).
"""
from .utils import allow_openmmlab_checkpoint_globals
from .version import __version__, version_info

allow_openmmlab_checkpoint_globals()

from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401

__all__ = ['__version__', 'version_info']
