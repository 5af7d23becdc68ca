"""Transforms for single segmented cells on a black background (C-NMC 2019).

Images are mmcv's ``HxWx3`` ``uint8`` BGR. :class:`EnsureRGB8` converts grayscale, alpha,
16-bit or float images (``LoadImageFromFile(color_type='unchanged')``) to that;
:class:`CropToCell` and :class:`RandomRotate` accept any of them; :class:`CLAHE` and
:class:`StainNormalize` need ``HxWx3`` ``uint8`` and raise a :class:`TypeError` naming the
file and the fix. The geometric transforms (they do not move boxes) are registered for
mmpretrain only, the pixel-only ones for mmpretrain and mmdet.
:func:`segment_stained_cell` and :func:`cell_on_black` turn a cell in a smear photo into
such an image (``mmbloodcell screen``).
"""
import os.path as osp
from typing import Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmbloodcell.registry import CLS_TRANSFORMS, DET_TRANSFORMS, register_module


def _where(results: dict) -> str:
    path = results.get('img_path')
    return f' ({path})' if path else ''


def _require_bgr8(img: np.ndarray, results: dict, name: str) -> None:
    if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3
            and img.dtype == np.uint8):
        desc = (f'shape {img.shape} dtype {img.dtype}'
                if isinstance(img, np.ndarray) else type(img).__name__)
        raise TypeError(
            f'{name} needs a HxWx3 uint8 BGR image, got {desc}{_where(results)}. Add '
            f"dict(type='EnsureRGB8') before {name} in the pipeline, or load with "
            f"LoadImageFromFile(color_type='color')")


def foreground_mask(img: np.ndarray, threshold: float = 0) -> np.ndarray:
    """``HxW`` bool mask of the pixels of an ``HxW`` / ``HxWxC`` image (any dtype) whose
    largest channel exceeds ``threshold`` (the cell; black is 0)."""
    if img.ndim == 2:
        return img > threshold
    if img.ndim == 3:
        # channel by channel: numpy's max over a short last axis is ~15x slower
        top = img[..., 0]
        for c in range(1, img.shape[2]):
            top = np.maximum(top, img[..., c])
        return top > threshold
    raise ValueError(f'expected an HxW or HxWxC image, got shape {img.shape}')


def border_background(img: np.ndarray, threshold: float = 0, width: int = 2) -> float:
    """Fraction in [0, 1] of the frame's outer ``width``-pixel ring that is background
    (:func:`foreground_mask` false); about 1.0 for C-NMC cells, 1.0 when there is no ring."""
    return _ring_background(foreground_mask(img, threshold), width)


def _ring_background(fg: np.ndarray, width: int = 2) -> float:
    h, w = fg.shape[:2]
    k = min(int(width), h // 2, w // 2)
    if k < 1:
        return 1.0
    ring = np.ones((h, w), bool)
    ring[k:h - k, k:w - k] = False
    return float(1.0 - fg[ring].mean())


#: Least :func:`border_background` of a cell on black (:class:`CropToCell`,
#: :func:`cell_image_warnings`).
MIN_BORDER_BACKGROUND = 0.5


def cell_image_warnings(img: np.ndarray,
                        path: Optional[str] = None,
                        threshold: float = 0) -> list:
    """What makes the decoded ``HxW`` / ``HxWx3`` BGR image unlike C-NMC's cells (one stained
    cell on exactly black), which silently changes a C-NMC classifier's answer: a background
    that is not black (:class:`CropToCell` then finds no cell), no cell pixel, grayscale and,
    from the file ``path``, a lossy JPEG (its transparency picks the fix). Returns one
    sentence with the fix per finding (empty for a C-NMC-like cell).
    """
    found = []
    fmt, has_alpha = _file_format(path) if path else (None, False)
    fg = foreground_mask(img, threshold)
    if not fg.any():
        found.append('no cell: every pixel is black; check the file')
        return found
    frac = _ring_background(fg)
    if frac < MIN_BORDER_BACKGROUND:
        channels = img.shape[-1] if img.ndim == 3 else 1
        ring = np.concatenate([img[:2].reshape(-1, channels), img[-2:].reshape(-1, channels)])
        colour = np.median(ring, axis=0)[::-1].astype(int).tolist()  # RGB
        fix = 'segment the cell onto a black background (C-NMC cells are on exactly 0)'
        if has_alpha:
            fix = ("its transparent pixels are read as their stored colour: load it with "
                   "LoadImageFromFile(color_type='unchanged') followed by "
                   "EnsureRGB8(alpha='black'), or save it on black")
        found.append(f'background is not black ({100 * (1 - frac):.0f} % of the frame border '
                     f'is not black, median border colour RGB {colour}), so no cell can be '
                     f'cropped and the whole frame is classified: {fix}')
    if img.ndim == 2 or (img.shape[2] >= 3 and np.array_equal(img[..., 0], img[..., 1])
                         and np.array_equal(img[..., 1], img[..., 2])):
        found.append('grayscale image (no colour): the classifier learned from stained colour '
                     'cells, so its answer is unreliable; use the colour original')
    if fmt == 'JPEG':
        found.append('lossy JPEG: compression noise around the cell changes the crop and the '
                     'colours the classifier sees; use the lossless original (BMP or PNG)')
    return found


def _file_format(path: str) -> Tuple[Optional[str], bool]:
    """``(format, has_alpha)`` of an image file from its header (Pillow opens lazily)."""
    try:
        from PIL import Image
        with Image.open(path) as im:
            alpha = im.mode in ('RGBA', 'LA', 'PA', 'La', 'RGBa') or \
                'transparency' in im.info
            return im.format, alpha
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the image checks
        return None, False


def segment_stained_cell(img: np.ndarray,
                         centre: Optional[Tuple[float, float]] = None,
                         close_frac: float = 0.08,
                         rim_frac: float = 0.04) -> np.ndarray:
    """``HxW`` bool mask of the stained white cell in a crop of a blood smear (``HxWx3``
    ``uint8`` BGR, e.g. a detected WBC's box with a margin), the way C-NMC presents a cell:
    keep ``img`` where the mask is true, black elsewhere (:func:`cell_on_black`).

    1. stain: the HSV saturation, Gaussian-blurred (sigma 1 % of the shorter side); the
       nucleus (haematoxylin / Giemsa, purple) is the most saturated part of a smear, the
       background, red cells and pale cytoplasm less;
    2. stained pixels: saturation above its Otsu threshold on the crop;
    3. clean-up: an opening (3x3) drops specks, a closing with a disc of ``close_frac`` of
       the shorter side joins the lobes of a segmented nucleus;
    4. the cell: the connected component containing ``centre`` (default: the crop centre),
       else the largest one overlapping the crop's central half, else the largest one;
    5. its convex hull, filled (no holes), dilated by ``rim_frac`` of the shorter side (a
       rim of cytoplasm round the nucleus), within the crop.

    The mask is one connected region; all false when no pixel is stained (a uniform crop).
    """
    if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3
            and img.dtype == np.uint8):
        desc = f'shape {getattr(img, "shape", None)} dtype {getattr(img, "dtype", None)}'
        raise TypeError(f'segment_stained_cell needs a HxWx3 uint8 BGR image, got {desc}')
    h, w = img.shape[:2]
    side = min(h, w)
    empty = np.zeros((h, w), bool)
    if side < 4:
        return empty
    sat = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)[..., 1]
    sat = cv2.GaussianBlur(sat, (0, 0), max(0.01 * side, 0.5))
    if int(sat.max()) - int(sat.min()) < 2:
        return empty
    _, fg = cv2.threshold(sat, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    k = max(3, int(round(close_frac * side)) | 1)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE,
                          cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    num, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if num < 2:
        return empty
    cx, cy = centre if centre is not None else ((w - 1) / 2, (h - 1) / 2)
    cx = int(np.clip(round(cx), 0, w - 1))
    cy = int(np.clip(round(cy), 0, h - 1))
    chosen = int(labels[cy, cx])
    if chosen == 0:
        inner = labels[h // 4:h - h // 4, w // 4:w - w // 4]
        overlap = np.bincount(inner.ravel(), minlength=num)[1:]
        areas = stats[1:, cv2.CC_STAT_AREA]
        if overlap.any():
            areas = np.where(overlap > 0, areas, 0)
        chosen = 1 + int(np.argmax(areas))
    points = cv2.findNonZero((labels == chosen).astype(np.uint8))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [cv2.convexHull(points)], 1)
    r = int(round(rim_frac * side))
    if r > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                          (2 * r + 1, 2 * r + 1)))
    return mask.astype(bool)


def cell_on_black(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``img`` (``HxW`` / ``HxWxC``) with the pixels outside the ``HxW`` bool
    ``mask`` set to 0 (black), as C-NMC's segmented cells."""
    out = img.copy()
    out[~mask.astype(bool)] = 0
    return out


@register_module(CLS_TRANSFORMS, DET_TRANSFORMS)
class EnsureRGB8(BaseTransform):
    """Convert the image to ``HxWx3`` ``uint8`` (BGR order kept).

    Grayscale ``HxW`` / ``HxWx1`` is repeated; ``HxWx4`` loses alpha, with ``alpha='black'``
    (default) after multiplying the colours by it (transparent background becomes black, as
    in C-NMC), with ``alpha='drop'`` as it is. ``uint16`` is divided by ``2**bit_depth - 1``
    (clipped; a 12-bit camera gives ``bit_depth=12``, default 16), float must be in [0, 1];
    both are scaled to 0..255. Other shapes or dtypes raise a :class:`TypeError`.

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``.
    """

    def __init__(self, alpha: str = 'black', bit_depth: int = 16) -> None:
        if alpha not in ('black', 'drop'):
            raise ValueError(f"EnsureRGB8: alpha={alpha!r}, expected 'black' or 'drop'")
        if not 1 <= bit_depth <= 16:
            raise ValueError(f'EnsureRGB8: bit_depth={bit_depth} must be in 1..16')
        self.alpha = alpha
        self.bit_depth = bit_depth

    def _to_float01(self, img: np.ndarray, results: dict) -> np.ndarray:
        if img.dtype == np.uint8:
            return img.astype(np.float32) / 255
        if img.dtype == np.uint16:
            return np.clip(img.astype(np.float32) / (2**self.bit_depth - 1), 0, 1)
        if np.issubdtype(img.dtype, np.floating):
            lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
            if np.isnan(img).any() or lo < 0 or hi > 1:
                raise TypeError(f'EnsureRGB8: float image with values in [{lo}, {hi}] (NaN: '
                                f'{bool(np.isnan(img).any())}){_where(results)}; expected '
                                f'values in [0, 1]')
            return img.astype(np.float32)
        raise TypeError(f'EnsureRGB8: unsupported dtype {img.dtype}{_where(results)}; '
                        f'expected uint8, uint16 or float in [0, 1]')

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8:
            return results
        if img.ndim == 2:
            img = img[..., None]
        if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
            raise TypeError(f'EnsureRGB8: image of shape {img.shape}{_where(results)}; expected '
                            f'HxW, HxWx1, HxWx3 or HxWx4')
        if img.dtype == np.uint8 and img.shape[2] != 4:
            out = np.repeat(img, 3, axis=2)
        else:
            val = self._to_float01(img, results)
            if val.shape[2] == 1:
                val = np.repeat(val, 3, axis=2)
            elif val.shape[2] == 4:
                color, alpha = val[..., :3], val[..., 3:]
                val = color * alpha if self.alpha == 'black' else color
            out = np.clip(np.rint(val * 255), 0, 255).astype(np.uint8)
        results['img'] = np.ascontiguousarray(out)
        results['img_shape'] = out.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(alpha={self.alpha!r}, bit_depth={self.bit_depth})'


@CLS_TRANSFORMS.register_module()
class CropToCell(BaseTransform):
    """Crop an ``HxW`` / ``HxWxC`` image (any dtype) to the tightest box around the cell.

    The cell is every pixel whose largest channel exceeds ``threshold`` (C-NMC's background
    is exactly 0); the box is widened by ``margin`` pixels (clipped to the image). With
    ``square=True`` the crop is padded with ``pad_val``, centred, to a square, so that a
    following ``Resize`` keeps the cell's aspect ratio.

    With no foreground pixel, or a frame border that is not black background
    (:func:`border_background` below ``min_border_background``; 0 disables the check), a
    cell on white or grey would make the whole frame its "cell": the image is kept whole and
    flagged ``cell_found=False`` (:func:`cell_image_warnings` says why).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``.
    Added keys: ``cell_bbox`` (``np.float32`` ``[x1, y1, x2, y2]`` in the input image,
    exclusive right/bottom, margin included, padding excluded) and ``cell_found`` (bool).
    """

    def __init__(self,
                 threshold: float = 0,
                 margin: int = 0,
                 square: bool = True,
                 pad_val: Union[int, float] = 0,
                 min_border_background: float = MIN_BORDER_BACKGROUND) -> None:
        if margin < 0:
            raise ValueError(f'CropToCell: margin={margin} must be >= 0')
        if not 0 <= min_border_background <= 1:
            raise ValueError(f'CropToCell: min_border_background={min_border_background} must '
                             f'be in [0, 1]')
        self.threshold = threshold
        self.margin = int(margin)
        self.square = square
        self.pad_val = pad_val
        self.min_border_background = float(min_border_background)

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        mask = foreground_mask(img, self.threshold)
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        found = rows.size > 0 and (self.min_border_background <= 0 or _ring_background(
            mask) >= self.min_border_background)
        if found:
            x1 = max(int(cols[0]) - self.margin, 0)
            y1 = max(int(rows[0]) - self.margin, 0)
            x2 = min(int(cols[-1]) + 1 + self.margin, w)
            y2 = min(int(rows[-1]) + 1 + self.margin, h)
        else:
            x1, y1, x2, y2 = 0, 0, w, h
        crop = img[y1:y2, x1:x2]
        if self.square:
            ch, cw = crop.shape[:2]
            side = max(ch, cw)
            top, left = (side - ch) // 2, (side - cw) // 2
            pad_width = [(top, side - ch - top), (left, side - cw - left)]
            pad_width += [(0, 0)] * (crop.ndim - 2)
            crop = np.pad(crop, pad_width, mode='constant', constant_values=self.pad_val)
        results['img'] = np.ascontiguousarray(crop)
        results['img_shape'] = crop.shape[:2]
        results['cell_bbox'] = np.array([x1, y1, x2, y2], dtype=np.float32)
        results['cell_found'] = found
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(threshold={self.threshold}, margin={self.margin}, '
                f'square={self.square}, pad_val={self.pad_val}, '
                f'min_border_background={self.min_border_background})')


@register_module(CLS_TRANSFORMS, DET_TRANSFORMS)
class CLAHE(BaseTransform):
    """Contrast-limited adaptive histogram equalisation of the luminance (L of CIELAB).

    Chroma (a, b) is kept, so are hues. With ``keep_background`` the black background of a
    segmented cell (largest channel ``<= background_threshold``) stays black instead of
    being lifted to grey. ``clip_limit`` is OpenCV's; ``tile_grid_size`` is (columns, rows).

    Required keys: ``img`` (``HxWx3`` ``uint8`` BGR). Modified keys: ``img``.
    """

    def __init__(self,
                 clip_limit: float = 2.0,
                 tile_grid_size: Tuple[int, int] = (8, 8),
                 keep_background: bool = True,
                 background_threshold: float = 0) -> None:
        if clip_limit <= 0:
            raise ValueError(f'CLAHE: clip_limit={clip_limit} must be > 0')
        if len(tile_grid_size) != 2 or min(tile_grid_size) < 1:
            raise ValueError(f'CLAHE: tile_grid_size={tile_grid_size} must be two ints >= 1')
        self.clip_limit = float(clip_limit)
        self.tile_grid_size = tuple(int(t) for t in tile_grid_size)
        self.keep_background = keep_background
        self.background_threshold = background_threshold

    def transform(self, results: dict) -> dict:
        img = results['img']
        _require_bgr8(img, results, 'CLAHE')
        lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
        clahe = cv2.createCLAHE(clipLimit=self.clip_limit, tileGridSize=self.tile_grid_size)
        lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
        out = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
        if self.keep_background:
            out[~foreground_mask(img, self.background_threshold)] = 0
        results['img'] = out
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(clip_limit={self.clip_limit}, '
                f'tile_grid_size={self.tile_grid_size}, '
                f'keep_background={self.keep_background})')


@CLS_TRANSFORMS.register_module()
class RandomRotate(BaseTransform):
    """Rotate by a random angle about the image centre with probability ``prob``, filling
    with ``pad_val`` (black).

    The angle is drawn uniformly in ``(-angle, angle)`` or in ``angle = (low, high)``, in
    degrees (default 45, the study's +-45 degrees). With ``expand=False`` the size is kept and
    what reaches into the corners (a long or off-centre cell) can leave the frame; with
    ``expand=True`` the canvas grows to hold the whole rotated image
    (``mmcv.imrotate(auto_bound=True)``), and a following :class:`CropToCell` crops it again.
    ``interpolation`` is an mmcv name ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos').

    Required keys: ``img``. Modified keys: ``img``, ``img_shape`` (with ``expand``).
    Added keys: ``rotate_angle`` (degrees, positive = clockwise on screen as in
    :func:`mmcv.imrotate`; 0 when not applied).
    """

    def __init__(self,
                 angle: Union[float, Sequence[float]] = 45,
                 prob: float = 0.5,
                 interpolation: str = 'bilinear',
                 pad_val: Union[int, float] = 0,
                 expand: bool = False) -> None:
        if isinstance(angle, (int, float)):
            angle_range = (-abs(float(angle)), abs(float(angle)))
        else:
            angle_range = tuple(float(a) for a in angle)
            if len(angle_range) != 2 or angle_range[0] > angle_range[1]:
                raise ValueError(f'RandomRotate: angle={angle} must be a number or (low, high)')
        if not 0 <= prob <= 1:
            raise ValueError(f'RandomRotate: prob={prob} must be in [0, 1]')
        self.angle_range = angle_range
        self.prob = prob
        self.interpolation = interpolation
        self.pad_val = pad_val
        self.expand = bool(expand)

    @cache_randomness
    def _sample_angle(self) -> Optional[float]:
        if np.random.rand() >= self.prob:
            return None
        return float(np.random.uniform(*self.angle_range))

    def transform(self, results: dict) -> dict:
        angle = self._sample_angle()
        results['rotate_angle'] = 0.0 if angle is None else angle
        if angle is None:
            return results
        img = results['img']
        h, w = img.shape[:2]
        # OpenCV's warpAffine takes at most 4 channels and reads a scalar border value as
        # (v, 0, 0, 0): rotate groups of up to 4 channels, one border value per channel
        chans = img if img.ndim == 3 else img[..., None]
        parts = [
            mmcv.imrotate(chans[..., i:i + 4], angle,
                          border_value=(self.pad_val, ) * min(4, chans.shape[2] - i),
                          interpolation=self.interpolation, auto_bound=self.expand)
            for i in range(0, chans.shape[2], 4)
        ]
        out = np.concatenate([p if p.ndim == 3 else p[..., None] for p in parts], axis=2)
        if img.ndim == 2:
            out = out[..., 0]
        assert self.expand or out.shape[:2] == (h, w)
        results['img'] = out
        results['img_shape'] = out.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(angle={self.angle_range}, prob={self.prob}, '
                f'interpolation={self.interpolation!r}, pad_val={self.pad_val}, '
                f'expand={self.expand})')


def reinhard_stats(img: np.ndarray, threshold: float = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``(mean, std)``, each (3,), of the CIELAB channels of an ``HxWx3`` ``uint8`` BGR image
    over its foreground (:func:`foreground_mask`).

    LAB is OpenCV's float LAB of the 0..1 BGR image: L in [0, 100], a and b about [-127, 127].
    """
    mask = foreground_mask(img, threshold)
    if mask.sum() < 2:
        raise ValueError('reinhard_stats: the image has fewer than 2 non-black pixels')
    lab = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)[mask].astype(np.float64)
    return lab.mean(axis=0), lab.std(axis=0)


def _optical_density(rgb: np.ndarray, io: float) -> np.ndarray:
    return -np.log((rgb.astype(np.float64) + 1) / io)


def macenko_stains(img: np.ndarray,
                   threshold: float = 0,
                   io: float = 255,
                   alpha: float = 1,
                   beta: float = 0.15) -> Tuple[np.ndarray, np.ndarray]:
    """Stain matrix (3, 2; RGB OD space, unit columns) and maximal (99th percentile)
    concentrations (2,) of an ``HxWx3`` ``uint8`` BGR image.

    Macenko, M. et al. "A method for normalizing histology slides for quantitative analysis",
    ISBI 2009: the optical density ``OD = -log((RGB + 1) / io)`` of the foreground pixels
    (black ones would have the largest OD) with OD ``>= beta`` in every channel is projected
    on the plane of its two main eigenvectors; the stains are the directions at the
    ``alpha`` and ``100 - alpha`` percentiles of the angle in that plane, the one with the
    larger red OD first (haematoxylin-like).
    """
    mask = foreground_mask(img, threshold)
    od = _optical_density(img[mask][:, ::-1], io)
    od_hat = od[(od >= beta).all(axis=1)]
    if len(od_hat) < 10:
        raise ValueError(f'macenko_stains: only {len(od_hat)} stained pixels (OD >= {beta})')
    _, vecs = np.linalg.eigh(np.cov(od_hat.T))
    plane = vecs[:, 1:3]
    plane = plane * np.where(plane.sum(axis=0) < 0, -1, 1)  # point into positive OD
    proj = od_hat @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, alpha), np.percentile(phi, 100 - alpha)
    v1 = plane @ np.array([np.cos(lo), np.sin(lo)])
    v2 = plane @ np.array([np.cos(hi), np.sin(hi)])
    stains = np.stack([v1, v2] if v1[0] > v2[0] else [v2, v1], axis=1)
    stains /= np.linalg.norm(stains, axis=0, keepdims=True)
    conc = np.linalg.lstsq(stains, od.T, rcond=None)[0]
    max_conc = np.percentile(conc, 99, axis=1)
    return stains, max_conc


def load_stain_reference(path: str, method: str) -> dict:
    """The reference statistics of ``method`` from a JSON file written by
    ``tools/analysis/cnmc_stain_reference.py``: ``{"reinhard": {"mean": [L, a, b], "std": [L, a,
    b]}, "macenko": {"stains": 3x2, "max_conc": [2]}, ...}``."""
    import json
    if not osp.isfile(path):
        root = osp.dirname(path) or '.'
        raise FileNotFoundError(
            f'StainNormalize: stain reference {path} not found; write it from the training '
            f'cells with: python tools/analysis/cnmc_stain_reference.py {root} --out {path} '
            f'(or set the pipeline\'s StainNormalize reference to another file)')
    with open(path) as f:
        doc = json.load(f)
    stats = doc.get(method) if isinstance(doc, dict) else None
    keys = ('mean', 'std') if method == 'reinhard' else ('stains', 'max_conc')
    if not isinstance(stats, dict) or any(k not in stats for k in keys):
        raise ValueError(f'StainNormalize: {path} has no {method} statistics ({method}: '
                         f'{{{", ".join(keys)}}}); rewrite it with '
                         f'tools/analysis/cnmc_stain_reference.py')
    return stats


@register_module(CLS_TRANSFORMS, DET_TRANSFORMS)
class StainNormalize(BaseTransform):
    """Stain colour normalisation towards a reference, ignoring the black background.

    - ``method='reinhard'`` (Reinhard et al., "Color transfer between images", IEEE CG&A
      2001): each CIELAB channel of the cell pixels gets the reference's mean and standard
      deviation, ``lab' = (lab - mean) / std * ref_std + ref_mean`` (L clipped to [0, 100]).
    - ``method='macenko'`` (Macenko et al., ISBI 2009): with the image's stains ``S`` and
      concentrations ``C`` (:func:`macenko_stains`), ``OD' = S_ref C (max_ref / max) + R``.
      ``R = OD - S C``, the optical density outside the stain plane, is dropped by Macenko's
      method; ``keep_residual=True`` (default) keeps it, so that the reference normalised to
      itself is unchanged up to rounding. ``io`` is the transmitted light intensity.

    The reference: ``reference``, a cell image or the JSON of
    ``tools/analysis/cnmc_stain_reference.py`` (the median training cell, as the configs
    use), or the statistics: ``ref_mean`` + ``ref_std`` (L, a, b) or ``ref_stains`` (3x2, RGB
    OD) + ``ref_max_conc`` (2,).

    Background pixels (largest channel ``<= threshold``) stay black and out of every
    statistic; cell pixels never become black, so the cell keeps its outline. An image with
    too few cell pixels is returned unchanged with ``stain_normalized=False``.

    Required keys: ``img`` (``HxWx3`` ``uint8`` BGR). Modified keys: ``img``.
    Added keys: ``stain_normalized`` (bool).
    """

    def __init__(self,
                 method: str = 'reinhard',
                 reference: Optional[str] = None,
                 ref_mean: Optional[Sequence[float]] = None,
                 ref_std: Optional[Sequence[float]] = None,
                 ref_stains: Optional[Sequence[Sequence[float]]] = None,
                 ref_max_conc: Optional[Sequence[float]] = None,
                 threshold: float = 0,
                 io: float = 255,
                 keep_residual: bool = True) -> None:
        if method not in ('reinhard', 'macenko'):
            raise ValueError(f"StainNormalize: method={method!r}, expected 'reinhard' or "
                             f"'macenko'")
        self.method = method
        self.reference = reference
        self.threshold = threshold
        self.io = float(io)
        self.keep_residual = bool(keep_residual)
        ref_img, ref_json = None, None
        if reference is not None and str(reference).lower().endswith('.json'):
            ref_json = load_stain_reference(reference, method)
        elif reference is not None:
            ref_img = mmcv.imread(reference, flag='color')
            if ref_img is None:
                raise FileNotFoundError(f'StainNormalize: cannot read reference image '
                                        f'{reference!r}; fix the path')
        if method == 'reinhard':
            if ref_json is not None:
                ref_mean, ref_std = ref_json['mean'], ref_json['std']
            if ref_img is not None:
                self.ref_mean, self.ref_std = reinhard_stats(ref_img, threshold)
            elif ref_mean is not None and ref_std is not None:
                self.ref_mean = np.asarray(ref_mean, dtype=np.float64).reshape(3)
                self.ref_std = np.asarray(ref_std, dtype=np.float64).reshape(3)
            else:
                raise ValueError('StainNormalize(reinhard) needs reference=<image or JSON '
                                 'path> or ref_mean and ref_std (L, a, b)')
        else:
            if ref_json is not None:
                ref_stains, ref_max_conc = ref_json['stains'], ref_json['max_conc']
            if ref_img is not None:
                self.ref_stains, self.ref_max_conc = macenko_stains(ref_img, threshold, self.io)
            elif ref_stains is not None and ref_max_conc is not None:
                self.ref_stains = np.asarray(ref_stains, dtype=np.float64).reshape(3, 2)
                self.ref_max_conc = np.asarray(ref_max_conc, dtype=np.float64).reshape(2)
            else:
                raise ValueError('StainNormalize(macenko) needs reference=<image or JSON path> '
                                 'or ref_stains (3x2) and ref_max_conc (2,)')

    def _reinhard(self, img: np.ndarray, mask: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)
        pix = lab[mask].astype(np.float64)
        mean, std = pix.mean(axis=0), pix.std(axis=0)
        pix = (pix - mean) / np.maximum(std, 1e-6) * self.ref_std + self.ref_mean
        pix[:, 0] = np.clip(pix[:, 0], 0, 100)
        lab[mask] = pix.astype(np.float32)
        bgr = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
        return np.clip(np.rint(bgr * 255), 0, 255).astype(np.uint8)

    def _macenko(self, img: np.ndarray, mask: np.ndarray) -> np.ndarray:
        stains, max_conc = macenko_stains(img, self.threshold, self.io)
        od = _optical_density(img[mask][:, ::-1], self.io).T  # 3 x N
        conc = np.linalg.lstsq(stains, od, rcond=None)[0]
        scale = self.ref_max_conc / np.maximum(max_conc, 1e-6)
        od_out = self.ref_stains @ (conc * scale[:, None])
        if self.keep_residual:
            od_out += od - stains @ conc
        rgb = self.io * np.exp(-od_out).T - 1
        out = img.copy()
        out[mask] = np.clip(np.rint(rgb[:, ::-1]), 0, 255).astype(np.uint8)
        return out

    def transform(self, results: dict) -> dict:
        img = results['img']
        _require_bgr8(img, results, 'StainNormalize')
        mask = foreground_mask(img, self.threshold)
        try:
            if mask.sum() < 2:
                raise ValueError('no cell pixels')
            out = self._reinhard(img, mask) if self.method == 'reinhard' else self._macenko(
                img, mask)
        except ValueError:
            results['stain_normalized'] = False
            return results
        out[~mask] = 0
        # a cell pixel mapped to black would join the background (and change CropToCell's box)
        dark = mask & (out.max(axis=2) <= self.threshold)
        out[dark] = min(int(self.threshold) + 1, 255)
        results['img'] = out
        results['stain_normalized'] = True
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(method={self.method!r}, '
                f'reference={self.reference!r}, threshold={self.threshold})')
