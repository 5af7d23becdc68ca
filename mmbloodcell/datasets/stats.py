"""Statistics of the C-NMC training set that configs read: the data preprocessor's mean/std
and the stain normalisation reference."""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import mmcv
import numpy as np

from mmbloodcell.utils.fileio import atomic_write_bytes
from .cnmc import CNMCDataset
from .transforms.cell import CropToCell, macenko_stains, reinhard_stats


def cnmc_mean_std(data_root: str,
                  folds: Sequence[int] = (0, 1, 2),
                  size: int = 224,
                  threshold: float = 0,
                  margin: int = 0,
                  subdirs: Optional[dict] = None,
                  patient_split: Optional[dict] = None,
                  max_images: Optional[int] = None) -> Dict[str, object]:
    """Mean and standard deviation per channel of the training images as the model sees them.

    Every image is read as BGR (``mmcv.imread``), cropped by :class:`CropToCell` (square
    padding included) and resized to ``size x size`` with bilinear interpolation, as
    ``CropToCell`` + ``Resize(scale=size)`` do in a pipeline. All pixels of the result count,
    black padding and background included, because the network sees them too.

    Args:
        data_root (str): The C-NMC root.
        folds (Sequence[int]): Training folds. Defaults to (0, 1, 2).
        size (int): Resize side. Defaults to 224.
        threshold (float): ``CropToCell`` threshold. Defaults to 0.
        margin (int): ``CropToCell`` margin. Defaults to 0.
        subdirs (dict, optional): ``CNMCDataset`` subdirs.
        patient_split (dict, optional): ``CNMCDataset`` patient split (use the training side
            only, so that validation patients do not leak into the statistics).
        max_images (int, optional): Use the first N images only. Defaults to None (all).

    Returns:
        dict: ``mean`` and ``std`` (lists of 3 floats in RGB order, 0..255 scale),
        ``num_images``, ``num_pixels``.
    """
    dataset = CNMCDataset(data_root=data_root, split='train', folds=folds, subdirs=subdirs,
                          patient_split=patient_split, serialize_data=False)
    crop = CropToCell(threshold=threshold, margin=margin)
    total = np.zeros(3, np.float64)
    total_sq = np.zeros(3, np.float64)
    n_pix = 0
    n_img = len(dataset) if max_images is None else min(max_images, len(dataset))
    for i in range(n_img):
        path = dataset.get_data_info(i)['img_path']
        img = mmcv.imread(path, flag='color')
        if img is None:
            raise OSError(f'{path}: cannot be read as an image; check the file')
        img = crop(dict(img=img))['img']
        img = mmcv.imresize(img, (size, size), interpolation='bilinear').astype(np.float64)
        pix = img.reshape(-1, 3)
        total += pix.sum(axis=0)
        total_sq += (pix**2).sum(axis=0)
        n_pix += len(pix)
    mean = total / n_pix
    std = np.sqrt(np.maximum(total_sq / n_pix - mean**2, 0))
    return dict(mean=mean[::-1].tolist(), std=std[::-1].tolist(), num_images=n_img,
                num_pixels=n_pix)


def format_preprocessor_lines(stats: Dict[str, object], digits: int = 2) -> List[str]:
    """The config lines for mmpretrain's ``data_preprocessor`` (RGB order, ``to_rgb=True``)."""
    mean = ', '.join(f'{v:.{digits}f}' for v in stats['mean'])
    std = ', '.join(f'{v:.{digits}f}' for v in stats['std'])
    return [
        f'# {stats["num_images"]} C-NMC training images after CropToCell + Resize; RGB order '
        f'(images are loaded BGR and flipped by to_rgb=True)',
        'data_preprocessor = dict(',
        f'    mean=[{mean}],',
        f'    std=[{std}],',
        '    to_rgb=True)',
    ]


def cnmc_stain_reference(data_root: str,
                         folds: Sequence[int] = (0, 1, 2),
                         subdirs: Optional[dict] = None,
                         patient_split: Optional[dict] = None,
                         max_images: Optional[int] = None,
                         threshold: float = 0) -> Dict[str, object]:
    """The stain reference of :class:`~mmbloodcell.datasets.transforms.StainNormalize`: the
    median cell of the training set.

    Per cell (background excluded): the CIELAB mean and standard deviation
    (:func:`~mmbloodcell.datasets.transforms.cell.reinhard_stats`) and the Macenko stain matrix
    and 99th-percentile concentrations (:func:`~mmbloodcell.datasets.transforms.cell.
    macenko_stains`). The reference is the per-value median over the cells (stain vectors
    re-normalised to unit length), so that normalisation moves every cell towards a typical
    one instead of towards one chosen cell's contrast. The quartiles of the per-cell values
    and the cell closest to the median are reported beside it.

    Args:
        data_root (str): The C-NMC root.
        folds (Sequence[int]): Training folds. Defaults to (0, 1, 2).
        subdirs (dict, optional): ``CNMCDataset`` subdirs.
        patient_split (dict, optional): ``CNMCDataset`` patient split (the training side, so
            that validation patients do not shape the reference).
        max_images (int, optional): Use N images evenly spread over the set. Defaults to all.
        threshold (float): Background threshold. Defaults to 0.

    Returns:
        dict: ``reinhard`` (``mean``, ``std``: L, a, b), ``macenko`` (``stains`` 3x2 RGB OD,
        ``max_conc`` (2,)), ``spread`` (25th / 75th percentiles of the per-cell Reinhard
        values), ``typical_cell``, ``num_images``, ``num_macenko`` and the source settings.
    """
    dataset = CNMCDataset(data_root=data_root, split='train', folds=folds, subdirs=subdirs,
                          patient_split=patient_split, serialize_data=False)
    index = np.arange(len(dataset))
    if max_images is not None and max_images < len(index):
        index = np.unique(np.linspace(0, len(index) - 1, max_images).round().astype(int))
    means, stds, stains, concs, paths = [], [], [], [], []
    for i in index:
        path = dataset.get_data_info(int(i))['img_path']
        img = mmcv.imread(path, flag='color')
        if img is None:
            raise OSError(f'{path}: cannot be read as an image; check the file')
        try:
            mean, std = reinhard_stats(img, threshold)
        except ValueError:
            continue  # an all-black image has no colour to learn from
        means.append(mean)
        stds.append(std)
        paths.append(path)
        try:
            st, mc = macenko_stains(img, threshold)
        except ValueError:
            continue
        stains.append(st)
        concs.append(mc)
    if not means:
        raise ValueError(f'{data_root}: no training cell with colour pixels to take a stain '
                         f'reference from')
    means, stds = np.stack(means), np.stack(stds)
    ref_mean, ref_std = np.median(means, axis=0), np.median(stds, axis=0)
    # the cell whose statistics are closest to the median, in units of their spread
    scale = np.concatenate([means.std(axis=0), stds.std(axis=0)]) + 1e-6
    dist = np.abs(np.concatenate([means - ref_mean, stds - ref_std], axis=1) / scale).sum(axis=1)
    out: Dict[str, object] = dict(
        reinhard=dict(mean=_r(ref_mean), std=_r(ref_std)),
        spread=dict(mean_q25=_r(np.percentile(means, 25, axis=0)),
                    mean_q75=_r(np.percentile(means, 75, axis=0)),
                    std_q25=_r(np.percentile(stds, 25, axis=0)),
                    std_q75=_r(np.percentile(stds, 75, axis=0))),
        typical_cell=osp.relpath(paths[int(dist.argmin())], data_root),
        num_images=len(means), num_macenko=len(stains), statistic='median over cells',
        folds=list(folds), patient_split=patient_split, threshold=threshold)
    if stains:
        ref_stains = np.median(np.stack(stains), axis=0)
        ref_stains /= np.linalg.norm(ref_stains, axis=0, keepdims=True)
        out['macenko'] = dict(stains=_r(ref_stains),
                              max_conc=_r(np.median(np.stack(concs), axis=0)))
    return out


def write_stain_reference(stats: Dict[str, object], path: str) -> str:
    """Write :func:`cnmc_stain_reference`'s result as the JSON ``StainNormalize`` reads."""
    atomic_write_bytes((json.dumps(stats, indent=2) + '\n').encode(), path)
    return path


def _r(x: np.ndarray, digits: int = 4):
    return np.round(np.asarray(x, dtype=np.float64), digits).tolist()
