"""Class-balanced oversampling for imbalanced classification (C-NMC 2019).

The C-NMC training folds hold 7,272 ``all`` and 3,389 ``hem`` cells. The DenseNet-201 /
EfficientNet-B2 study balanced them offline with augmented copies (9,272 ``all``, 10,778
``hem``); :class:`ClassBalancedOverSampler` does it online (the augmentation makes the repeats
differ): ``target_ratio=1.0`` balances, ``0.86`` (9,272 / 10,778) is the study's proportion.
"""
import math
from typing import Iterator, List, Optional, Sized

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

    Args:
        dataset (Sized): A dataset with labels (:func:`~.labels.dataset_labels`).
        target_ratio (float): Smaller : largest class size after oversampling, in (0, 1].
            Defaults to 1.0 (balanced).
    """

    def __init__(self,
                 dataset: Sized,
                 target_ratio: float = 1.0,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True) -> None:
        if not 0 < target_ratio <= 1:
            raise ValueError(f'ClassBalancedOverSampler: target_ratio={target_ratio} must be '
                             f'in (0, 1] (smaller class : largest class)')
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.target_ratio = float(target_ratio)
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.round_up = round_up
        self.epoch = 0

        labels = dataset_labels(dataset, 'ClassBalancedOverSampler')
        self.class_indices = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
        n_max = max(len(v) for v in self.class_indices.values())
        target = int(round(self.target_ratio * n_max))
        self.class_counts = {c: max(len(v), target) for c, v in self.class_indices.items()}
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
            extra = self.class_counts[c] - len(idx)
            parts.append(idx)
            if extra > 0:
                parts.extend([idx] * (extra // len(idx)))
                rest = extra % len(idx)
                if rest:
                    pick = torch.randperm(len(idx), generator=g)[:rest].numpy()
                    parts.append(idx[np.sort(pick)])
        indices = np.concatenate(parts)
        if self.shuffle:
            indices = indices[torch.randperm(len(indices), generator=g).numpy()]
        return indices.tolist()

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
