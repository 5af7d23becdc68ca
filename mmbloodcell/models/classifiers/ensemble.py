# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Probability-averaging ensemble of trained binary classifiers."""
import copy
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_checkpoint
from mmpretrain.models.classifiers import BaseClassifier
from mmpretrain.structures import DataSample
from torch import Tensor

from mmbloodcell.models.heads.binary_cls_head import positive_prob, positive_score
from mmbloodcell.registry import CLS_MODELS, register_module

__all__ = ['EnsembleClassifier']

_MEMBER_KEYS = {'config', 'checkpoint', 'weight', 'input_size', 'name', 'data_root'}


@register_module(CLS_MODELS)
class EnsembleClassifier(BaseClassifier):
    """Average the class-1 probabilities of several trained binary classifiers.

    The C-NMC 2019 ensemble of the DenseNet-201 and EfficientNet-B2 models is the mean of their
    sigmoid outputs. For ``M`` members with probabilities ``p_m`` and weights ``w_m``: ``p =
    sum_m w_m p_m / sum_m w_m``, ``pred_label = p > threshold``, ``pred_score = [1 - s, s]``
    with ``s`` crossing 0.5 at the threshold (:func:`positive_score`), ``pred_prob = p`` (0-d)
    and ``member_probs = [p_1, ..., p_M]`` per sample. A member's ``p_m`` is its ``pred_prob``
    (``BinaryClsHead``) or the ``pred_score[1]`` of a 2-class softmax head.

    Each member is a dict of

    - ``config`` (str | dict | Config): its training config (its ``model`` is built, with a
      top-level ``data_preprocessor`` merged in as mmengine's Runner does), or a model config;
    - ``checkpoint`` (str, optional): its weights (strict ``load_checkpoint``, safe
      ``weights_only`` loading). None leaves it unloaded: the ensemble refuses to predict until
      an ensemble checkpoint (``members.<i>.*`` keys) is loaded;
    - ``weight`` (float, optional): ``w_m`` > 0. Defaults to 1;
    - ``input_size`` (int | (h, w), optional): resize the member's normalised batch to this
      size (bilinear) before its backbone. Defaults to None;
    - ``name`` (str, optional): shown in logs;
    - ``data_root`` (str, optional): the dataset folder for the member's config, whose paths
      under its own ``data_root`` move there (as ``tools/test.py --data-root``), e.g. the
      training set's mean / std file its data preprocessor reads. Write
      ``data_root=data_root`` in the ensemble config so that ``--data-root`` moves it too.

    The ensemble's ``data_preprocessor`` only moves the batch to the device; each member then
    applies its **own** (mean / std, BGR -> RGB), so members of different normalisations mix.
    All members see the images of the ensemble config's test pipeline: its size must be the
    members' training size, or set ``input_size`` (close to, not identical with, resizing the
    image in the pipeline).

    ``tools/test.py CONFIG CHECKPOINT`` loads ``CHECKPOINT`` into the ensemble after the
    members loaded theirs: an ensemble checkpoint (``members.<i>.*``) replaces the members'
    weights; the checkpoint of one of the members (same keys and values as that member's
    loaded weights) changes nothing; any other single-model checkpoint raises an error.
    ``mode='loss'`` raises: the ensemble is for evaluation and prediction only.

    Args:
        members (Sequence[dict]): The members, at least one.
        threshold (float): Decision threshold on ``p``, in (0, 1). Defaults to 0.5.
        data_preprocessor (dict, optional): Defaults to ``dict(type='BaseDataPreprocessor')``.
        init_cfg (dict, optional): Unused: :meth:`init_weights` does nothing, so no member
            re-initialises or downloads.
    """

    def __init__(self,
                 members: Sequence[dict],
                 threshold: float = 0.5,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='BaseDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = CLS_MODELS.build(data_preprocessor)
        super().__init__(init_cfg=init_cfg, data_preprocessor=data_preprocessor)
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f'EnsembleClassifier: threshold must be in (0, 1), got '
                             f'{threshold!r}')
        if isinstance(members, dict) or not members:
            raise ValueError('EnsembleClassifier: members must be a non-empty list of dicts '
                             'with config, checkpoint and optional weight / input_size')
        self.threshold = float(threshold)
        # per member: model, name, weight, input size (h, w) or None, checkpoint or None
        models, self.member_names, weights, self.input_sizes, self._checkpoints = map(
            list, zip(*(self._build_member(i, entry) for i, entry in enumerate(members))))
        self.members = nn.ModuleList(models)
        self._loaded = [ckpt is not None for ckpt in self._checkpoints]
        w = torch.tensor(weights, dtype=torch.float32)
        self.register_buffer('member_weights', w / w.sum(), persistent=False)
        self._register_load_state_dict_pre_hook(self._check_runner_checkpoint)

    def _build_member(self, i: int, entry: dict):
        if not isinstance(entry, dict) or 'config' not in entry:
            raise ValueError(f'EnsembleClassifier: member {i} must be a dict with a config '
                             f'(and checkpoint, weight, input_size), got {entry!r}')
        unknown = set(entry) - _MEMBER_KEYS
        if unknown:
            raise ValueError(f'EnsembleClassifier: member {i} has unknown keys '
                             f'{sorted(unknown)}; valid keys are {sorted(_MEMBER_KEYS)}')
        config = entry['config']
        if isinstance(config, str):
            if not osp.isfile(config):
                raise FileNotFoundError(
                    f'EnsembleClassifier: member {i} config {config!r} not found (relative '
                    f'paths are relative to the working directory; in a config write '
                    f"'{{{{fileDirname}}}}/<file>.py' for a path next to it)")
            name = entry.get('name') or osp.splitext(osp.basename(config))[0]
            cfg = Config.fromfile(config)
            if entry.get('data_root'):
                from mmbloodcell.apis.tool_config import set_data_root
                set_data_root(cfg, entry['data_root'])
            model_cfg = copy.deepcopy(cfg.get('model'))
            if model_cfg is None:
                raise ValueError(f'EnsembleClassifier: member {i} config {config} has no model')
            if cfg.get('data_preprocessor') is not None:
                model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
        else:
            cfg = config
            model_cfg = copy.deepcopy(dict(config.get('model', config)))
            name = entry.get('name') or f'member{i}'
        if model_cfg.get('type') == type(self).__name__:
            raise ValueError(f'EnsembleClassifier: member {i} ({name}) is itself an ensemble')

        weight = 1.0 if entry.get('weight') is None else entry['weight']
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise ValueError(f'EnsembleClassifier: member {i} ({name}) weight must be a '
                             f'positive number, got {weight!r}')
        size = entry.get('input_size')
        if size is not None:
            size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(
                int(s) for s in size)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f'EnsembleClassifier: member {i} ({name}) input_size must be '
                                 f'an int or (h, w), got {entry["input_size"]!r}')

        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = CLS_MODELS.build(model_cfg)
        if not hasattr(model, 'data_preprocessor') or not callable(
                getattr(model, 'predict', None)):
            raise TypeError(f'EnsembleClassifier: member {i} ({name}) is a '
                            f'{type(model).__name__}, not an mmpretrain classifier with a '
                            f'data_preprocessor and predict()')

        ckpt = entry.get('checkpoint')
        logger = MMLogger.get_current_instance()
        if ckpt is not None:
            if not (osp.isfile(ckpt) or '://' in str(ckpt)):
                raise FileNotFoundError(
                    f'EnsembleClassifier: member {i} ({name}) checkpoint {ckpt!r} not found; '
                    f'set it with --cfg-options model.members.{i}.checkpoint=PATH')
            load_checkpoint(model, ckpt, map_location='cpu', strict=True, logger=logger)
            logger.info(f'EnsembleClassifier: member {i} ({name}) loaded from {ckpt}')
        else:
            logger.warning(f'EnsembleClassifier: member {i} ({name}) has no checkpoint; load '
                           f'an ensemble checkpoint or set model.members.{i}.checkpoint')
        return model, name, float(weight), size, ckpt

    def init_weights(self) -> None:
        """Nothing to initialise: the members' weights come from their checkpoints."""

    def _unloaded(self) -> List[str]:
        return [f'{i} ({n})' for i, (n, ok) in enumerate(zip(self.member_names, self._loaded))
                if not ok]

    def _check_runner_checkpoint(self, state_dict, prefix, local_metadata, strict,
                                 missing_keys, unexpected_keys, error_msgs) -> None:
        """Accept an ensemble checkpoint, or one member's own checkpoint (a no-op)."""
        keys = [k for k in state_dict if k.startswith(prefix)]
        member_prefix = prefix + 'members.'
        if not keys or any(k.startswith(member_prefix) for k in keys):
            for i in range(len(self.members)):
                if any(k.startswith(f'{member_prefix}{i}.') for k in keys):
                    self._loaded[i] = True
            return
        single = {k[len(prefix):]: state_dict[k] for k in keys}
        for i, member in enumerate(self.members):
            if self._loaded[i] and self._same_weights(member.state_dict(), single):
                for k in keys:  # load the ensemble's own weights back: nothing changes
                    del state_dict[k]
                for k, v in self.state_dict().items():
                    state_dict[prefix + k] = v
                MMLogger.get_current_instance().info(
                    f'EnsembleClassifier: the checkpoint given to the runner is member {i} '
                    f'({self.member_names[i]})\'s own; every member keeps the weights of its '
                    f'checkpoint entry {self._checkpoints}')
                return
        unloaded = self._unloaded()
        hint = (f'members {", ".join(unloaded)} have no checkpoint: set '
                f'model.members.<i>.checkpoint' if unloaded else
                f'members load their own checkpoints {self._checkpoints}')
        raise RuntimeError(
            f'EnsembleClassifier: the checkpoint given to the runner (tools/test.py CHECKPOINT) '
            f'is a single model\'s ({len(keys)} keys without a "members." prefix) and matches '
            f'none of the loaded members; {hint}. Pass an ensemble checkpoint (keys '
            f'members.<i>.*) or one of the member checkpoints')

    @staticmethod
    def _same_weights(own: Dict[str, Tensor], other: Dict[str, Tensor]) -> bool:
        if set(own) != set(other):
            return False
        return all(
            isinstance(other[k], Tensor) and own[k].shape == other[k].shape
            and torch.equal(own[k].detach().cpu(), other[k].detach().cpu()) for k in own)

    def forward(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """``'tensor'``: the ``(N, M)`` member probabilities; ``'predict'``: data samples
        (see the class docstring); ``'loss'``: not supported."""
        if mode == 'tensor':
            return self.member_probs(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}".')

    def extract_feat(self, inputs, **kwargs):
        """Not defined for an ensemble: its members have different feature spaces."""
        raise NotImplementedError('EnsembleClassifier has no single feature space; use '
                                  'member_probs() or the members themselves')

    def loss(self, inputs, data_samples) -> dict:
        raise NotImplementedError('EnsembleClassifier is for testing only: train the members '
                                  'with their own configs, then list their checkpoints')

    def member_probs(self, inputs: Union[Tensor, List[Tensor]]) -> Tensor:
        """Probability of class 1 by every member, ``(N, M)``, of the un-normalised batch
        (``(N, 3, H, W)`` or N tensors ``(3, H, W)``) of the ensemble's data pre-processor."""
        not_loaded = self._unloaded()
        if not_loaded:
            raise RuntimeError(f'EnsembleClassifier: members {", ".join(not_loaded)} have no '
                               f'weights: set model.members.<i>.checkpoint or load an ensemble '
                               f'checkpoint')
        probs = []
        for i, member in enumerate(self.members):
            data = member.data_preprocessor(dict(inputs=inputs), False)
            x = data['inputs']
            if self.input_sizes[i] is not None and tuple(x.shape[-2:]) != self.input_sizes[i]:
                x = F.interpolate(x, size=self.input_sizes[i], mode='bilinear',
                                  align_corners=False)
            preds = member.predict(x)
            probs.append(torch.stack([self._member_prob(i, p) for p in preds]))
        return torch.stack(probs, dim=1)

    def _member_prob(self, i: int, pred: DataSample) -> Tensor:
        try:
            return positive_prob(pred)
        except ValueError as e:
            raise ValueError(f'EnsembleClassifier: member {i} ({self.member_names[i]}): {e}') \
                from e

    def predict(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        """Set ``pred_score`` (2,), ``pred_label`` (1,), ``pred_prob`` () and
        ``member_probs`` (M,) on each data sample (new ones when ``data_samples`` is None)."""
        member_probs = self.member_probs(inputs)  # (N, M)
        weights = self.member_weights.to(member_probs)
        prob = (member_probs * weights).sum(dim=1)
        score = positive_score(prob, self.threshold)
        pred_scores = torch.stack([1 - score, score], dim=1)
        labels = (prob > self.threshold).long()
        if data_samples is None:
            data_samples = [DataSample() for _ in range(prob.size(0))]
        for ds, p, s, label, mp in zip(data_samples, prob, pred_scores, labels, member_probs):
            ds.set_pred_score(s).set_pred_label(label.view(1))
            ds.set_field(p, 'pred_prob', dtype=Tensor)
            ds.set_field(mp, 'member_probs', dtype=Tensor)
        return data_samples

    def extra_repr(self) -> str:
        return (f'members={self.member_names}, weights={self.member_weights.tolist()}, '
                f'threshold={self.threshold}')
