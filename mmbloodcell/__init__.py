"""mmbloodcell: OpenMMLab plugin for blood-cell detection (BCCD) and leukemia classification
(C-NMC 2019). Importing it registers every module (:mod:`mmbloodcell.registry`), so a config
needs only ``custom_imports = dict(imports=['mmbloodcell'], allow_failed_imports=False)``, and
lets ``torch.load`` read OpenMMLab checkpoints safely (:mod:`mmbloodcell.utils.checkpoint`).
"""
from .utils import allow_openmmlab_checkpoint_globals
from .version import __version__, version_info

allow_openmmlab_checkpoint_globals()

from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401

__all__ = ['__version__', 'version_info']
