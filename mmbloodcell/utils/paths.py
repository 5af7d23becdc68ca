"""File-name helpers shared by the datasets and the inference API."""
import os.path as osp
import re
from typing import List, Tuple, Union

__all__ = ['IMAGE_EXTENSIONS', 'natural_key', 'strip_image_ext']

#: Image extensions the package reads (lower case). Folders given to ``mmbloodcell`` are
#: searched for them; C-NMC labels CSVs may name cells with any of them.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')

_DIGITS = re.compile(r'(\d+)')


def natural_key(text: str) -> Tuple[Union[int, str], ...]:
    """Case-insensitive sort key that orders the numbers inside names by value: ``2.bmp``
    before ``10.bmp``, ``UID_1_9_1_all`` before ``UID_1_10_1_all`` (C-NMC's numbering)."""
    parts: List[Union[int, str]] = []
    for i, piece in enumerate(_DIGITS.split(str(text))):
        # split() alternates text and digits: odd positions hold the numbers; a tuple of
        # (kind, value) keeps ints and strs from being compared with each other
        parts.append((1, int(piece)) if i % 2 else (0, piece.lower()))
    return tuple(parts)


def strip_image_ext(name: str) -> str:
    """``name`` without a trailing image extension (:data:`IMAGE_EXTENSIONS`, any case);
    other names are returned unchanged (``'UID_1_3_1_all.bmp'`` -> ``'UID_1_3_1_all'``)."""
    stem, ext = osp.splitext(name)
    return stem if ext.lower() in IMAGE_EXTENSIONS else name
