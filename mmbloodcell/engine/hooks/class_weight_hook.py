# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Set inverse-frequency class weights on the losses that ask for them, before training."""
from typing import List, Optional, Sequence

import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmbloodcell.registry import HOOKS, register_module

__all__ = ['ClassWeightHook', 'collect_labels', 'class_weights_from_counts']


def _as_label(value, where: str) -> int:
    label = np.asarray(value).reshape(-1)
    if label.size != 1 or not np.issubdtype(label.dtype, np.number):
        raise ValueError(f'ClassWeightHook: {where} has gt_label {value!r}; class weights need '
                         f'one integer class index per sample (single-label classification)')
    if float(label[0]) != int(label[0]) or int(label[0]) < 0:
        raise ValueError(f'ClassWeightHook: {where} has gt_label {value!r}, not a '
                         f'non-negative class index')
    return int(label[0])


def collect_labels(dataset) -> np.ndarray:
    """The class index of every sample the training loop will see, without loading images.

    Handles the dataset wrappers by reaching the labels of the datasets they wrap:
    ``ConcatDataset`` (mmengine's or torch's: the concatenation of its datasets' labels),
    ``RepeatDataset`` (``times`` copies), ``ClassBalancedDataset`` (the labels at its
    ``repeat_indices``, i.e. after its over-sampling) and torch's ``Subset``. A plain dataset
    is read through ``get_gt_labels()`` (mmpretrain datasets) or else ``get_data_info(i)
    ['gt_label']`` / ``data_list[i]['gt_label']`` (any mmengine ``BaseDataset``).

    Args:
        dataset: The training dataset (``runner.train_dataloader.dataset``).

    Returns:
        np.ndarray: int64 labels, shape (num_samples,).
    """
    name = type(dataset).__name__
    if hasattr(dataset, 'full_init'):
        dataset.full_init()  # lazy_init datasets and wrappers build their indices here
    if name == 'ClassBalancedDataset' and hasattr(dataset, 'repeat_indices'):
        labels = collect_labels(dataset.dataset)
        return labels[np.asarray(dataset.repeat_indices, dtype=np.int64)]
    if name == 'RepeatDataset' and hasattr(dataset, 'times'):
        return np.tile(collect_labels(dataset.dataset), int(dataset.times))
    if name == 'Subset' and hasattr(dataset, 'indices'):
        labels = collect_labels(dataset.dataset)
        return labels[np.asarray(dataset.indices, dtype=np.int64)]
    if hasattr(dataset, 'datasets') and isinstance(dataset.datasets, Sequence):
        parts = [collect_labels(d) for d in dataset.datasets]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if hasattr(dataset, 'get_gt_labels'):
        values = dataset.get_gt_labels()
        return np.asarray([_as_label(v, f'{name} sample {i}') for i, v in enumerate(values)],
                          dtype=np.int64)
    if hasattr(dataset, 'get_data_info'):
        infos = (dataset.get_data_info(i) for i in range(len(dataset)))
    elif hasattr(dataset, 'data_list'):
        infos = iter(dataset.data_list)
    else:
        raise TypeError(f'ClassWeightHook cannot read the labels of {name}: it needs an '
                        f'mmpretrain dataset (get_gt_labels), an mmengine BaseDataset whose '
                        f"data infos have 'gt_label', or one of the wrappers ConcatDataset, "
                        f'RepeatDataset, ClassBalancedDataset, Subset around them')
    labels = []
    for i, info in enumerate(infos):
        if 'gt_label' not in info:
            raise KeyError(f"ClassWeightHook: sample {i} of {name} has no 'gt_label' in its "
                           f'data info (keys: {sorted(info)}); class weights need one class '
                           f'index per sample')
        labels.append(_as_label(info['gt_label'], f'{name} sample {i}'))
    return np.asarray(labels, dtype=np.int64)


def class_weights_from_counts(counts: Sequence[int],
                              class_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Inverse-frequency weights ``W_i = N / (c * n_i)``.

    ``N = sum(n_i)`` samples, ``c`` classes, ``n_i`` samples of class ``i``; a balanced set
    gives all ones, and ``sum_i n_i * W_i = N`` always.

    Args:
        counts (Sequence[int]): ``n_i`` for every class, length ``c``.
        class_names (Sequence[str], optional): Names for the error message.

    Returns:
        np.ndarray: float64 weights, shape (c,).
    """
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


@register_module(HOOKS)
class ClassWeightHook(Hook):
    """Count the training labels and set ``W_i = N / (c * n_i)`` on ``'auto'`` losses.

    Before training, the labels of ``runner.train_dataloader.dataset`` are counted (through
    dataset wrappers, see :func:`collect_labels`; the counts are those of the samples one
    epoch visits, so an over-sampling ``ClassBalancedDataset`` is accounted for, whereas a
    weighted sampler is not), the weights ``W_i = N / (c * n_i)`` are computed, and every
    module of the model that asks for them -- ``class_weight == 'auto'`` and a
    ``set_class_weight(weights)`` method, e.g. ``WeightedBCELoss(class_weight='auto')`` --
    receives them. Counts, weights and the modules set are logged.

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
        labels = collect_labels(dataset)
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
