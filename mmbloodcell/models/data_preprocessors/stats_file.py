"""A classification data preprocessor whose mean/std come from a data file
(``tools/analysis/cnmc_mean_std.py DATA_ROOT`` writes ``DATA_ROOT/mean_std.json``)."""
import json
import math
import os.path as osp
from typing import Dict, List

from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor

from mmbloodcell.registry import CLS_MODELS

__all__ = ['StatsFileClsDataPreprocessor', 'load_mean_std']


def load_mean_std(path: str, user: str = 'StatsFileClsDataPreprocessor') -> Dict[str, List]:
    """``mean`` and ``std`` (3 numbers each, RGB order, 0..255 scale, ``std > 0``) of the JSON
    written by ``tools/analysis/cnmc_mean_std.py``: ``{"mean": [r, g, b], "std": [r, g, b],
    ...}``. ``user`` (who reads it) is named in the errors."""
    if not osp.isfile(path):
        root = osp.dirname(path) or '.'
        raise FileNotFoundError(
            f'{user}: mean/std file {path} not found; compute it from the training cells with: '
            f'python tools/analysis/cnmc_mean_std.py {root} --out {path} (or set the '
            f'data_preprocessor\'s stats_file to another file)')
    try:
        with open(path) as f:
            doc = json.load(f)
    except ValueError as e:
        raise ValueError(f'{user}: {path} is not valid JSON ({e}); rewrite it with python '
                         f'tools/analysis/cnmc_mean_std.py {osp.dirname(path) or "."} --out '
                         f'{path}') from e
    out = {}
    for key in ('mean', 'std'):
        values = doc.get(key) if isinstance(doc, dict) else None
        ok = (isinstance(values, list) and len(values) == 3
              and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      and math.isfinite(v) for v in values))
        if ok and key == 'std':
            ok = all(v > 0 for v in values)
        if not ok:
            raise ValueError(
                f'{user}: {path} has {key}={values!r}, expected 3 finite numbers (R, G, B'
                f'{", each > 0" if key == "std" else ""}); rewrite it with python '
                f'tools/analysis/cnmc_mean_std.py {osp.dirname(path) or "."} --out {path}')
        out[key] = [float(v) for v in values]
    return out


@CLS_MODELS.register_module()
class StatsFileClsDataPreprocessor(ClsDataPreprocessor):
    """mmpretrain's ``ClsDataPreprocessor`` with ``mean`` and ``std`` read from ``stats_file``
    when the model is built.

    The file is the JSON of ``tools/analysis/cnmc_mean_std.py DATA_ROOT`` (by default
    ``DATA_ROOT/mean_std.json``): the training set's per-channel mean and standard deviation
    after CropToCell + Resize, in RGB order, so ``to_rgb=True`` (the default here, as in the
    configs) flips the BGR images before ``(img - mean) / std``. ``tools/train.py --data-root``
    moves a ``stats_file`` under the config's data root along with it.

    Args:
        stats_file (str): The mean/std JSON.
        to_rgb (bool): Flip BGR to RGB before normalising. Defaults to True.
        **kwargs: Other arguments of ``ClsDataPreprocessor`` (``pad_value``, ``batch_augments``,
            ...), but not ``mean`` or ``std``.

    Raises:
        FileNotFoundError: ``stats_file`` does not exist (the message gives the command that
            writes it).
        ValueError: the file has no valid ``mean`` / ``std``, or ``mean`` / ``std`` are given
            too.
    """

    def __init__(self, stats_file: str, to_rgb: bool = True, **kwargs) -> None:
        given = [k for k in ('mean', 'std') if kwargs.get(k) is not None]
        if given:
            raise ValueError(
                f'StatsFileClsDataPreprocessor: {" and ".join(given)} given beside stats_file='
                f'{stats_file!r}; the file sets them: drop {"/".join(given)}, or use '
                f"type='ClsDataPreprocessor' for fixed values")
        kwargs.pop('mean', None)
        kwargs.pop('std', None)
        stats = load_mean_std(stats_file)
        super().__init__(mean=stats['mean'], std=stats['std'], to_rgb=to_rgb, **kwargs)
        self.stats_file = stats_file
