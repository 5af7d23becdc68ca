"""Class-balanced oversampling for imbalanced classification (C-NMC 2019).

The C-NMC training folds hold 7,272 ``all`` and 3,389 ``hem`` cells. The DenseNet-201 /
EfficientNet-B2 study balanced them offline with augmented copies (9,272 ``all``, 10,778
``hem``); :class:`ClassBalancedOverSampler` does it online (the augmentation makes the repeats
differ): ``target_ratio=1.0`` balances. ``target_ratio`` only raises the smaller classes
towards the largest, so it cannot give the study's sizes, where the minority ``hem`` ends up
the larger class; ``repeat_factors=dict(hem=10778 / 3389, all=9272 / 7272)`` gives them
exactly (10,778 ``hem`` and 9,272 ``all`` indices per epoch).
"""
import math
from typing import Dict, Iterator, List, Optional, Sized, Union

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from mmbloodcell.registry import CLS_DATA_SAMPLERS
from .labels import dataset_labels


@CLS_DATA_SAMPLERS.register_module()
class ClassBalancedOverSampler(Sampler):
    """Oversample the smaller classes to ``target_ratio`` times the largest class, per epoch.

    With class sizes ``n_c`` and ``n_max = max(n_c)``, each epoch draws every sample once and
    adds, for each class with ``n_c < t = round(target_ratio * n_max)``, ``t - n_c`` more
    indices of that class: whole copies of the class first, then a random subset without
    replacement for the remainder (so copies differ by at most one between samples). The epoch
    has ``sum(max(n_c, t))`` indices, the same every epoch.

    Like mmengine's ``DefaultSampler``: the draw and the shuffle depend only on ``seed`` (None:
    drawn and broadcast) and the epoch (:meth:`set_epoch`), so every rank computes the same
    list; with ``round_up=True`` it is padded by repetition to a multiple of the world size
    and rank ``r`` takes ``indices[r::world_size]``.

    ``repeat_factors`` (instead of ``target_ratio``) sets each class's size directly: class
    ``c`` with ``n_c`` samples and factor ``f_c`` contributes exactly ``round(f_c * n_c)``
    indices per epoch (Python's ``round``, halves to even): every sample ``floor(f_c)`` times
    (``round(f_c * n_c) // n_c``), plus a random subset without replacement (new each epoch)
    for the remainder; ``f_c < 1`` draws a random subset of the class. A class it does not
    name keeps factor 1. It is the online equivalent of an offline augmentation that stores
    ``f_c - 1`` augmented copies per image: each repeat goes through the training pipeline
    and gets its own random augmentation, as the stored copies had. The
    FHL study augmented the 3,389 ``hem`` / 7,272 ``all`` training cells to 10,778 / 9,272
    (20,050 images): ``repeat_factors=dict(hem=10778 / 3389, all=9272 / 7272)``.

    Args:
        dataset (Sized): A dataset with labels (:func:`~.labels.dataset_labels`).
        target_ratio (float): Smaller : largest class size after oversampling, in (0, 1].
            Defaults to 1.0 (balanced).
        repeat_factors (dict, optional): Class name (of the dataset's ``metainfo['classes']``)
            or class index -> factor > 0. Defaults to None (use ``target_ratio``).
    """

    def __init__(self,
                 dataset: Sized,
                 target_ratio: float = 1.0,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True,
                 repeat_factors: Optional[Dict[Union[str, int], float]] = None) -> None:
        if not 0 < target_ratio <= 1:
            raise ValueError(f'ClassBalancedOverSampler: target_ratio={target_ratio} must be '
                             f'in (0, 1] (smaller class : largest class)')
        if repeat_factors is not None and target_ratio != 1.0:
            raise ValueError(
                f'ClassBalancedOverSampler: target_ratio={target_ratio} and repeat_factors='
                f'{repeat_factors} both set the class sizes; give one of them (drop '
                f'target_ratio from the sampler config to use repeat_factors)')
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.target_ratio = float(target_ratio)
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.round_up = round_up
        self.epoch = 0

        labels = dataset_labels(dataset, 'ClassBalancedOverSampler')
        self.class_indices = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
        if repeat_factors is None:
            n_max = max(len(v) for v in self.class_indices.values())
            target = int(round(self.target_ratio * n_max))
            self.class_counts = {c: max(len(v), target) for c, v in self.class_indices.items()}
            self.repeat_factors = None
        else:
            self.repeat_factors = self._resolve_factors(repeat_factors, dataset)
            self.class_counts = {
                c: int(round(self.repeat_factors.get(c, 1.0) * len(v)))
                for c, v in self.class_indices.items()
            }
            if not sum(self.class_counts.values()):
                raise ValueError(f'ClassBalancedOverSampler: repeat_factors={repeat_factors} '
                                 f'leave no sample in the epoch; raise the factors')
        self.epoch_size = sum(self.class_counts.values())
        if self.round_up:
            self.num_samples = math.ceil(self.epoch_size / self.world_size)
            self.total_size = self.num_samples * self.world_size
        else:
            self.num_samples = math.ceil((self.epoch_size - self.rank) / self.world_size)
            self.total_size = self.epoch_size

    def epoch_indices(self) -> List[int]:
        """All ranks' indices of the current epoch (before padding and rank split)."""
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        parts = []
        for c in sorted(self.class_indices):
            idx = self.class_indices[c]
            count = self.class_counts[c]
            # whole copies of the class, then a random subset for the remainder
            parts.extend([idx] * (count // len(idx)))
            rest = count % len(idx)
            if rest:
                pick = torch.randperm(len(idx), generator=g)[:rest].numpy()
                parts.append(idx[np.sort(pick)])
        indices = np.concatenate(parts)
        if self.shuffle:
            indices = indices[torch.randperm(len(indices), generator=g).numpy()]
        return indices.tolist()

    @staticmethod
    def _resolve_factors(factors: dict, dataset) -> Dict[int, float]:
        """``repeat_factors`` as class index -> factor, names looked up in the classes."""
        if not isinstance(factors, dict) or not factors:
            raise ValueError(f'ClassBalancedOverSampler: repeat_factors={factors!r}, expected '
                             f'a dict of class name or index -> factor, e.g. '
                             f'dict(hem=10778 / 3389, all=9272 / 7272)')
        classes = tuple((getattr(dataset, 'metainfo', None) or {}).get('classes') or ())
        out = {}
        for key, factor in factors.items():
            if isinstance(key, str):
                if key not in classes:
                    known = (f'its classes are {", ".join(classes)}' if classes else
                             'its metainfo has no classes: use class indices')
                    raise ValueError(f'ClassBalancedOverSampler: repeat_factors names class '
                                     f'{key!r}, not a class of the dataset ({known})')
                index = classes.index(key)
            elif isinstance(key, (int, np.integer)) and not isinstance(key, bool) and key >= 0:
                index = int(key)
            else:
                raise ValueError(f'ClassBalancedOverSampler: repeat_factors key {key!r} is '
                                 f'neither a class name nor a class index')
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or \
                    not math.isfinite(factor) or factor <= 0:
                raise ValueError(f'ClassBalancedOverSampler: repeat_factors[{key!r}]={factor!r}'
                                 f', expected a finite number > 0')
            if index in out:
                raise ValueError(f'ClassBalancedOverSampler: repeat_factors names class {index} '
                                 f'twice ({key!r} and its index or name)')
            out[index] = float(factor)
        return out

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        if self.round_up:
            indices = (indices * int(self.total_size / len(indices) + 1))[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.world_size])

    def __len__(self) -> int:
        """The number of samples of this rank per epoch."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch, which seeds the draw and the shuffle together with ``seed``."""
        self.epoch = epoch
