"""The class label of every sample of a dataset, through mmengine's dataset wrappers."""
from typing import Sequence

import numpy as np

__all__ = ['dataset_labels']


def _as_label(value, where: str, user: str) -> int:
    label = np.asarray(value).reshape(-1)
    if label.size != 1 or not np.issubdtype(label.dtype, np.number):
        raise ValueError(f'{user}: {where} has gt_label {value!r}; it needs one integer class '
                         f'index per sample (single-label classification)')
    if float(label[0]) != int(label[0]) or int(label[0]) < 0:
        raise ValueError(f'{user}: {where} has gt_label {value!r}, not a '
                         f'non-negative class index')
    return int(label[0])


def dataset_labels(dataset, user: str = 'dataset_labels') -> np.ndarray:
    """The int64 class index, shape (num_samples,), of every sample the training loop will
    see, without loading images; ``user`` (who asks) is named in the errors.

    Wrappers are seen through: ``ConcatDataset`` (mmengine's or torch's), ``RepeatDataset``
    (``times`` copies), ``ClassBalancedDataset`` (the labels at its ``repeat_indices``) and
    torch's ``Subset``. A plain dataset is read through ``get_gt_labels()`` (mmpretrain), else
    ``get_data_info(i)['gt_label']`` / ``data_list[i]['gt_label']`` (mmengine).
    """
    name = type(dataset).__name__
    if hasattr(dataset, 'full_init'):
        dataset.full_init()  # lazy_init datasets and wrappers build their indices here
    if name == 'ClassBalancedDataset' and hasattr(dataset, 'repeat_indices'):
        labels = dataset_labels(dataset.dataset, user)
        return labels[np.asarray(dataset.repeat_indices, dtype=np.int64)]
    if name == 'RepeatDataset' and hasattr(dataset, 'times'):
        return np.tile(dataset_labels(dataset.dataset, user), int(dataset.times))
    if name == 'Subset' and hasattr(dataset, 'indices'):
        labels = dataset_labels(dataset.dataset, user)
        return labels[np.asarray(dataset.indices, dtype=np.int64)]
    if hasattr(dataset, 'datasets') and isinstance(dataset.datasets, Sequence):
        parts = [dataset_labels(d, user) for d in dataset.datasets]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if hasattr(dataset, 'get_gt_labels'):
        values = dataset.get_gt_labels()
        return np.asarray([_as_label(v, f'{name} sample {i}', user) for i, v in enumerate(values)],
                          dtype=np.int64)
    if hasattr(dataset, 'get_data_info'):
        infos = (dataset.get_data_info(i) for i in range(len(dataset)))
    elif hasattr(dataset, 'data_list'):
        infos = iter(dataset.data_list)
    else:
        raise TypeError(f'{user} cannot read the labels of {name}: it needs an '
                        f'mmpretrain dataset (get_gt_labels), an mmengine BaseDataset whose '
                        f"data infos have 'gt_label', or one of the wrappers ConcatDataset, "
                        f'RepeatDataset, ClassBalancedDataset, Subset around them')
    labels = []
    for i, info in enumerate(infos):
        if 'gt_label' not in info:
            raise KeyError(f"{user}: sample {i} of {name} has no 'gt_label' in its "
                           f'data info (keys: {sorted(info)}); it needs one class index per '
                           f'sample')
        labels.append(_as_label(info['gt_label'], f'{name} sample {i}', user))
    return np.asarray(labels, dtype=np.int64)
