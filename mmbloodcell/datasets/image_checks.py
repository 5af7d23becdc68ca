"""Checks of an image file and of a box against its image (datasets, BCCD converter, inference
API). Each returns what is wrong, without the path (None when all is well); the caller raises
or skips."""
import math
import os.path as osp
import struct
from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = ['ImageFileCheck', 'inspect_image_file', 'check_image_file', 'box_problem', 'compact']

#: The last bytes of a JPEG / PNG searched for its end marker (some writers append a few).
_TAIL_BYTES = 4096


def compact(value: float):
    """``value`` as an ``int`` when it is integral, else rounded to 2 decimals (``36.0 -> 36``,
    ``6.125 -> 6.12``): the numbers of the messages and of the BCCD COCO files."""
    value = float(value)
    return int(value) if value.is_integer() else round(value, 2)


@dataclass(frozen=True)
class ImageFileCheck:
    """What :func:`inspect_image_file` found: ``problem`` (None when usable, e.g. ``'is empty
    (0 bytes)'``), its ``kind`` (``image_empty_file``, ``image_not_image``,
    ``image_truncated``, ``image_unreadable``, ``image_too_large``) and the header's ``width``
    and ``height`` (0 when unreadable)."""
    problem: Optional[str] = None
    kind: Optional[str] = None
    width: int = 0
    height: int = 0

    def with_fix(self, fix: str = 'replace it with the original image') -> str:
        """``problem`` followed by ``'; fix: <fix>'`` (a non-image may also be removed); a too
        large image's message names its own fix and is returned as it is."""
        if self.kind == 'image_too_large':
            return self.problem
        if self.kind == 'image_not_image':
            fix += ' or remove it'
        return f'{self.problem}; fix: {fix}'


def inspect_image_file(path: str,
                       max_size: Optional[int] = None,
                       decode: bool = True,
                       max_size_option: str = 'max_image_size') -> ImageFileCheck:
    """Check that an image file can be read, and read its size.

    A BMP (signature ``BM``, the C-NMC format) is checked from its header, never decoded:
    DIB header, dimensions and, uncompressed, that the file holds every pixel row. Any other
    file is opened with Pillow (``decode=True`` also decodes the pixels); a JPEG must end
    with its end-of-image marker (``FF D9``), a PNG with its ``IEND`` chunk, which catches a
    truncated file without decoding it. ``max_size`` rejects a larger width or height;
    ``max_size_option`` is how the user sets it (config key, flag), named in the fix.
    """
    try:
        size = osp.getsize(path)
    except OSError as e:
        return ImageFileCheck(f'cannot be read ({e.strerror})', 'image_unreadable')
    if size == 0:
        return ImageFileCheck('is empty (0 bytes)', 'image_empty_file')
    with open(path, 'rb') as f:
        head = f.read(54)
    if head[:2] == b'BM':
        check = _check_bmp_header(head, size)
    else:
        check = _check_with_pillow(path, size, decode)
        if check.problem is not None and path.lower().endswith('.bmp'):
            check = ImageFileCheck(f'is not a BMP image (starts with {head[:8]!r}) and '
                                   f'{check.problem}', check.kind, check.width, check.height)
    if (check.problem is None and max_size is not None
            and max(check.width, check.height) > max_size):
        return ImageFileCheck(
            f'is {check.width}x{check.height}, larger than {max_size_option}={max_size}; fix: '
            f'replace it with the image at its original size, or raise {max_size_option}',
            'image_too_large', check.width, check.height)
    return check


def check_image_file(path: str, max_size: Optional[int] = None,
                     decode: bool = True) -> Optional[str]:
    """The ``problem`` of :func:`inspect_image_file` (None when the file is usable)."""
    return inspect_image_file(path, max_size, decode).problem


def _check_bmp_header(head: bytes, file_size: int) -> ImageFileCheck:
    if len(head) < 26:
        return ImageFileCheck(f'is truncated: {file_size} bytes is shorter than a BMP header',
                              'image_truncated')
    pixel_offset, dib_size = struct.unpack_from('<II', head, 10)
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height, _, bpp = struct.unpack_from('<hhHH', head, 18)
        compression = 0
    elif dib_size >= 40 and len(head) >= 54:
        width, height, _, bpp, compression = struct.unpack_from('<iiHHI', head, 18)
    else:
        return ImageFileCheck(f'has a corrupt BMP header (DIB header size {dib_size})',
                              'image_unreadable')
    height = abs(height)
    if width <= 0 or height == 0 or bpp not in (1, 4, 8, 16, 24, 32):
        return ImageFileCheck(f'has a corrupt BMP header (width {width}, height {height}, '
                              f'{bpp} bits per pixel)', 'image_unreadable', max(width, 0), height)
    if compression in (0, 3, 6):  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: rows are stored raw
        row_bytes = (width * bpp + 31) // 32 * 4
        needed = pixel_offset + row_bytes * height
        if file_size < needed:
            return ImageFileCheck(f'is truncated: {file_size} bytes, but its {width}x{height} '
                                  f'{bpp}-bit BMP header needs {needed}', 'image_truncated',
                                  width, height)
    return ImageFileCheck(width=width, height=height)


def _check_with_pillow(path: str, file_size: int, decode: bool) -> ImageFileCheck:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            width, height = img.size
            fmt = img.format
            if decode:
                img.load()
    except UnidentifiedImageError:
        return ImageFileCheck('is not a readable image (PIL cannot identify it)',
                              'image_not_image')
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
        # SyntaxError: Pillow's "broken PNG file"
        return ImageFileCheck(f'cannot be decoded ({e})', 'image_unreadable')
    with open(path, 'rb') as f:
        f.seek(max(0, file_size - _TAIL_BYTES))
        tail = f.read()
    if fmt == 'JPEG' and b'\xff\xd9' not in tail:
        return ImageFileCheck(f'is a truncated JPEG ({file_size} bytes, no end-of-image marker)',
                              'image_truncated', width, height)
    if fmt == 'PNG' and b'IEND' not in tail:
        return ImageFileCheck(f'is a truncated PNG ({file_size} bytes, no IEND chunk)',
                              'image_truncated', width, height)
    if width <= 0 or height <= 0:
        return ImageFileCheck(f'has a header that says {width}x{height}', 'image_unreadable')
    return ImageFileCheck(width=int(width), height=int(height))


def box_problem(x1: float, y1: float, x2: float, y2: float, width: float, height: float,
                clip_tolerance: float = 0.0) -> Optional[Tuple[str, str]]:
    """What is wrong with a box on a ``width`` x ``height`` image, or None.

    The box is in continuous pixel-edge coordinates ``(x1, y1, x2, y2)``: Pascal VOC's
    ``(xmin, ymin, xmax, ymax)``, or COCO's ``[x, y, w, h]`` as ``(x, y, x + w, y + h)``; the
    image spans ``[0, width] x [0, height]``.

    Returns ``(kind, fact)``, the fact to follow the box's text (``'box (1, 2, 3, 4) has zero
    area'``), checked in this order: ``bad_box`` (a coordinate is not finite),
    ``negative_box``, ``inverted_box`` (``x2 < x1`` or ``y2 < y1``), ``zero_area_box``,
    ``outside_box`` (it starts at or past the right or bottom edge, or ends past it by more
    than ``clip_tolerance`` px) and ``clipped_box`` (by at most ``clip_tolerance`` px: clipped
    to the image it is valid).
    """
    coords = (x1, y1, x2, y2)
    if not all(math.isfinite(v) for v in coords):
        return 'bad_box', 'is not four finite numbers'
    size_text = f'{width}x{height}'
    if min(coords) < 0:
        return 'negative_box', 'has a negative coordinate'
    if x2 < x1 or y2 < y1:
        return 'inverted_box', 'is inverted (xmax < xmin or ymax < ymin)'
    if x2 == x1 or y2 == y1:
        return 'zero_area_box', 'has zero area'
    if x1 >= width or y1 >= height:
        return 'outside_box', f'lies outside image {size_text}'
    excess = max(x2 - width, y2 - height)
    if excess > 0:
        return ('outside_box' if excess > clip_tolerance else 'clipped_box',
                f'extends {compact(excess)} px past image {size_text}')
    return None
