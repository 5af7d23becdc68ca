from .checkpoint import allow_openmmlab_checkpoint_globals, openmmlab_checkpoint_globals
from .fileio import AtomicLocalBackend, atomic_write_bytes
from .paths import IMAGE_EXTENSIONS, natural_key, strip_image_ext
from .profiling import count_aten_ops, synchronize

__all__ = [
    'allow_openmmlab_checkpoint_globals', 'openmmlab_checkpoint_globals', 'AtomicLocalBackend',
    'atomic_write_bytes', 'count_aten_ops', 'synchronize', 'IMAGE_EXTENSIONS', 'natural_key',
    'strip_image_ext'
]
