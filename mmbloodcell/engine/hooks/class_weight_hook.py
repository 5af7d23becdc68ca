# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Set inverse-frequency class weights on the losses that ask for them, before training."""
from typing import List, Optional, Sequence

import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmbloodcell.datasets.labels import dataset_labels
from mmbloodcell.registry import HOOKS

__all__ = ['ClassWeightHook', 'class_weights_from_counts']


def class_weights_from_counts(counts: Sequence[int],
                              class_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Inverse-frequency weights ``W_i = N / (c * n_i)``, float64 (c,), of the ``counts``
    ``n_i`` of the ``c`` classes (``N = sum(n_i)``): all ones for a balanced set, and
    ``sum_i n_i * W_i = N``; ``class_names`` name the classes in errors."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f'ClassWeightHook: expected one count per class, got {counts!r}')
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        names = [
            f'{i} ({class_names[i]})' if class_names is not None and i < len(class_names)
            else str(i) for i in empty
        ]
        raise ValueError(f'ClassWeightHook: class {", ".join(names)} has no training samples, '
                         f'so W_i = N / (c * n_i) is undefined; check the training split / '
                         f'ann_file, or give the loss explicit class_weight=[...]')
    return counts.sum() / (counts.size * counts.astype(np.float64))


@HOOKS.register_module()
class ClassWeightHook(Hook):
    """Count the training labels and set ``W_i = N / (c * n_i)`` on ``'auto'`` losses.

    Before training, the labels of ``runner.train_dataloader.dataset`` are counted (through
    dataset wrappers, :func:`~mmbloodcell.datasets.labels.dataset_labels`: the samples one
    epoch visits, so an over-sampling ``ClassBalancedDataset`` counts, a weighted sampler does
    not), and every module with ``class_weight == 'auto'`` and a ``set_class_weight(weights)``
    method (e.g. ``WeightedBCELoss(class_weight='auto')``) receives the weights; counts,
    weights and the modules set are logged.

    Usage::

        custom_hooks = [dict(type='ClassWeightHook')]
        model = dict(..., head=dict(..., loss=dict(type='WeightedBCELoss',
                                                   class_weight='auto')))

    Args:
        num_classes (int, optional): ``c``. Defaults to the length of the dataset's
            ``metainfo['classes']``, or else the largest label + 1.
    """

    priority = 'VERY_HIGH'

    def __init__(self, num_classes: Optional[int] = None) -> None:
        if num_classes is not None and (isinstance(num_classes, bool)
                                        or not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f'ClassWeightHook: num_classes must be a positive int or None, '
                             f'got {num_classes!r}')
        self.num_classes = num_classes

    def before_train(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        labels = dataset_labels(dataset, 'ClassWeightHook')
        if labels.size == 0:
            raise ValueError(f'ClassWeightHook: the training dataset {type(dataset).__name__} '
                             f'is empty')
        metainfo = getattr(dataset, 'metainfo', None) or {}
        class_names = metainfo.get('classes') if isinstance(metainfo, dict) else None
        class_names = list(class_names) if class_names else None
        num_classes = self.num_classes or (len(class_names) if class_names else None) or \
            int(labels.max()) + 1
        if labels.max() >= num_classes:
            raise ValueError(f'ClassWeightHook: label {int(labels.max())} in the training set '
                             f'but only {num_classes} classes ({class_names or "num_classes"})')
        counts = np.bincount(labels, minlength=num_classes)
        weights = class_weights_from_counts(counts, class_names)
        names = class_names or [str(i) for i in range(num_classes)]

        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        targets: List[str] = []
        for mod_name, module in model.named_modules():
            wanted = getattr(module, 'class_weight', None)
            if not (isinstance(wanted, str) and wanted == 'auto'):
                continue
            if not callable(getattr(module, 'set_class_weight', None)):
                raise TypeError(f"ClassWeightHook: {mod_name} ({type(module).__name__}) has "
                                f"class_weight='auto' but no set_class_weight method")
            try:
                module.set_class_weight(weights.tolist())
            except (TypeError, ValueError) as e:
                raise ValueError(f'ClassWeightHook: cannot set the {num_classes} class weights '
                                 f'on {mod_name} ({type(module).__name__}): {e}') from e
            targets.append(f'{mod_name} ({type(module).__name__})')

        summary = ', '.join(f'{n}: n={c} W={w:.4f}' for n, c, w in zip(names, counts, weights))
        runner.logger.info(f'ClassWeightHook: {labels.size} training samples, {summary} '
                           f'(W_i = N / (c * n_i))')
        if targets:
            runner.logger.info(f'ClassWeightHook: class weights set on {", ".join(targets)}')
        else:
            runner.logger.warning("ClassWeightHook: no module of the model has "
                                  "class_weight='auto'; no weights were set")
