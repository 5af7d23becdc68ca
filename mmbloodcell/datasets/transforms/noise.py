"""Gaussian noise and Gaussian blur augmentations for detection and classification.

Both change only ``results['img']`` (``HxWxC`` or ``HxW``, any dtype), keeping its shape and
dtype, and draw from ``numpy.random`` as mmcv's transforms do. The blur is
``RandomGaussianBlur`` (sigma, OpenCV) beside mmpretrain's ``GaussianBlur`` (radius, PIL).
"""
import math
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmbloodcell.registry import CLS_TRANSFORMS, DET_TRANSFORMS, register_module


def _check_prob(prob: float) -> float:
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f'prob must be in [0, 1], got {prob}')
    return float(prob)


def _check_range(value: Sequence[float], name: str, min_value: float) -> Tuple[float, float]:
    if isinstance(value, (int, float)):
        value = (value, value)
    low, high = (float(v) for v in value)
    if not min_value <= low <= high:
        raise ValueError(f'{name} must be (low, high) with {min_value} <= low <= high, '
                         f'got {tuple(value)}')
    return low, high


def _cast_like(img: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Round and clip ``out`` to the range of ``img``'s integer dtype; keep floats as they are."""
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    elif img.dtype == np.bool_:
        raise TypeError('GaussianNoise does not apply to boolean images')
    return out.astype(img.dtype, copy=False)


@register_module(CLS_TRANSFORMS, DET_TRANSFORMS)
class GaussianNoise(BaseTransform):
    """Add zero-mean Gaussian noise to every pixel with probability ``prob``.

    ``img <- clip(round(img + n))`` with ``n ~ N(0, std^2)`` drawn independently per pixel (and
    per channel if ``per_channel``), ``std ~ U(std_range)`` drawn once per image, in the units
    of the image (0-255 for ``uint8``). Integer images are rounded and clipped to their dtype's
    range; float images are not clipped. ``per_channel=False`` shares one noise field across
    the channels (luminance noise instead of colour noise).

    Required keys: ``img``. Modified keys: ``img``.
    """

    def __init__(self,
                 prob: float = 0.5,
                 std_range: Sequence[float] = (1.0, 10.0),
                 per_channel: bool = True) -> None:
        self.prob = _check_prob(prob)
        self.std_range = _check_range(std_range, 'std_range', 0.0)
        self.per_channel = per_channel

    @cache_randomness
    def _sample_std(self) -> Optional[float]:
        if np.random.rand() >= self.prob:
            return None
        return float(np.random.uniform(*self.std_range))

    def transform(self, results: dict) -> dict:
        std = self._sample_std()
        if std is None or std == 0.0:
            return results
        img = results['img']
        if self.per_channel or img.ndim == 2:
            shape = img.shape
        else:
            shape = img.shape[:2] + (1, )
        noise = np.random.standard_normal(shape).astype(np.float32) * np.float32(std)
        results['img'] = _cast_like(img, img.astype(np.float32) + noise)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, std_range={self.std_range}, '
                f'per_channel={self.per_channel})')


@register_module(CLS_TRANSFORMS, DET_TRANSFORMS)
class RandomGaussianBlur(BaseTransform):
    """Blur the image with a Gaussian kernel with probability ``prob``.

    ``sigma ~ U(sigma_range)`` (pixels) is drawn once per image; the kernel is
    ``k x k`` with ``k = 2 * ceil(3 * sigma) + 1`` (covering +-3 sigma), borders reflected
    (OpenCV ``BORDER_REFLECT_101``). Shape and dtype are kept.

    Required keys: ``img``. Modified keys: ``img``.
    """

    def __init__(self, prob: float = 0.5, sigma_range: Sequence[float] = (0.1, 2.0)) -> None:
        self.prob = _check_prob(prob)
        self.sigma_range = _check_range(sigma_range, 'sigma_range', 0.0)

    @cache_randomness
    def _sample_sigma(self) -> Optional[float]:
        if np.random.rand() >= self.prob:
            return None
        return float(np.random.uniform(*self.sigma_range))

    def transform(self, results: dict) -> dict:
        sigma = self._sample_sigma()
        if sigma is None or sigma == 0.0:
            return results
        img = results['img']
        k = 2 * math.ceil(3 * sigma) + 1
        out = cv2.GaussianBlur(np.ascontiguousarray(img), (k, k), sigmaX=sigma, sigmaY=sigma,
                               borderType=cv2.BORDER_REFLECT_101)
        if out.ndim == 2 and img.ndim == 3:  # OpenCV drops a trailing channel axis of size 1
            out = out[..., None]
        results['img'] = out.astype(img.dtype, copy=False)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob}, sigma_range={self.sigma_range})'
