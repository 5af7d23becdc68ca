# Copyright (c) mmbloodcell contributors. All rights reserved.
"""A single-logit binary classification head for mmpretrain classifiers."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmpretrain.models.heads import ClsHead
from mmpretrain.structures import DataSample
from torch import Tensor

from mmbloodcell.registry import CLS_MODELS, register_module

__all__ = ['BinaryClsHead', 'positive_score', 'positive_prob']


def positive_score(prob: Tensor, threshold: float) -> Tensor:
    """The class-1 score ``s`` of ``pred_score = [1 - s, s]`` for a decision threshold ``t``:
    ``s > 0.5`` exactly when ``prob > t``, piecewise linear and monotonic in ``prob``,
    ``s = p / (2 t)`` for ``p <= t`` and ``s = 0.5 + (p - t) / (2 (1 - t))`` above (``s = p``
    for ``t = 0.5``)."""
    t = float(threshold)
    if t == 0.5:
        return prob
    return torch.where(prob <= t, prob / (2 * t), 0.5 + (prob - t) / (2 * (1 - t)))


def positive_prob(sample, positive: int = 1) -> Tensor:
    """The probability (0-d float tensor) of the positive class (C-NMC: ``all``) of one
    binary prediction (a ``DataSample`` or its dict form from ``tools/test.py --out``): its
    ``pred_prob`` (:class:`BinaryClsHead`, ``EnsembleClassifier``), else
    ``pred_score[positive]`` of a 2-class softmax head (e.g. ``LinearClsHead``)."""
    prob = sample.get('pred_prob')
    if prob is not None:
        return torch.as_tensor(prob).reshape(-1)[0].float()
    score = sample.get('pred_score')
    score = None if score is None else torch.as_tensor(score).reshape(-1)
    if score is None or score.numel() != 2:
        found = 'no pred_score' if score is None else f'a pred_score of {score.numel()} classes'
        raise ValueError(f'the prediction has no pred_prob and {found}; a binary classifier '
                         f'(BinaryClsHead, EnsembleClassifier or a 2-class head) is needed')
    return score[positive].float()


@register_module(CLS_MODELS)
class BinaryClsHead(ClsHead):
    """Binary classification head: [GAP] -> FC(hidden) -> ReLU -> [Dropout] -> FC(1) logit.

    The head of the C-NMC 2019 leukemia study: global average pooling of the backbone's last
    feature map, a 256-unit ReLU layer and one sigmoid output (DenseNet-201); its
    EfficientNet-B2 variant freezes the backbone and uses 320 units (``hidden_channels=320,
    freeze_backbone=True``).

    Input: the last of a tuple of ``(N, C)`` tensors (``GlobalAveragePooling`` neck) or of
    ``(N, C, H, W)`` maps (average-pooled here), or a bare tensor. :meth:`forward` gives
    ``(N, 1)`` logits; the loss (a binary loss of :mod:`mmbloodcell.models.losses`) gets them
    flattened to ``(N,)`` with the ``(N,)`` labels of ``DataSample.gt_label``.

    Predictions, ``p = sigmoid(logit)``: ``pred_label = p > threshold``, ``pred_prob = p`` (0-d)
    and ``pred_score = [1 - s, s]`` (2,), with ``s = p`` for ``t = 0.5``, else re-mapped
    piecewise linearly (:func:`positive_score`): monotonic in ``p`` (ROC / AUC unchanged) and
    crossing 0.5 at the threshold, so mmpretrain's ``Accuracy`` / ``SingleLabelMetric`` (the
    arg-max of ``pred_score``) count the labels of ``pred_label``.

    ``freeze_backbone=True`` detaches the input features: no gradient or backward pass reaches
    the backbone or neck (``grad=None``, skipped by the optimizer, weight decay included). To
    fix the BN statistics too (Keras' ``trainable=False``), set the backbone's
    ``norm_eval=True``. Distributed training then needs ``model_wrapper_cfg=dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)``, or freeze through the
    backbone (``frozen_stages`` covering all stages, plus ``norm_eval=True``).

    Args:
        in_channels (int): Channels of the input features (e.g. 1920 for DenseNet-201, 1408
            for EfficientNet-B2).
        hidden_channels (int, optional): Width of the hidden ReLU layer; None for a single
            linear layer ``in_channels -> 1``. Defaults to 256.
        dropout (float): Dropout probability after the hidden layer (or before the single
            linear layer); 0 disables it. Defaults to 0.
        threshold (float): Decision threshold on ``p``, in (0, 1). Defaults to 0.5.
        freeze_backbone (bool): Stop gradients at the head's input. Defaults to False.
        loss (dict | nn.Module): The binary loss. Defaults to ``dict(type='FocalHingeLoss')``.
        init_cfg (dict | list[dict], optional): Defaults to Xavier-uniform weights and zero
            biases (Keras' ``Dense`` default, as in the study).
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: Optional[int] = 256,
                 dropout: float = 0.0,
                 threshold: float = 0.5,
                 freeze_backbone: bool = False,
                 loss: Union[dict, nn.Module] = dict(type='FocalHingeLoss'),
                 init_cfg: Optional[Union[dict, List[dict]]] = dict(
                     type='Xavier', layer='Linear', distribution='uniform', bias=0.)):
        super().__init__(loss=loss, init_cfg=init_cfg)
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'BinaryClsHead: in_channels must be a positive int, got '
                             f'{in_channels!r}')
        if hidden_channels is not None and (isinstance(hidden_channels, bool)
                                            or not isinstance(hidden_channels, int)
                                            or hidden_channels < 1):
            raise ValueError(f'BinaryClsHead: hidden_channels must be a positive int or None '
                             f'(single linear layer), got {hidden_channels!r}')
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f'BinaryClsHead: dropout must be in [0, 1), got {dropout!r}')
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f'BinaryClsHead: threshold must be in (0, 1), got {threshold!r}')
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.threshold = float(threshold)
        self.freeze_backbone = bool(freeze_backbone)

        layers: List[nn.Module] = []
        if hidden_channels is not None:
            layers += [nn.Linear(in_channels, hidden_channels), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.hidden = nn.Sequential(*layers)
        self.fc = nn.Linear(hidden_channels or in_channels, 1)

    def _pool(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """The last feature, globally average-pooled to ``(N, C)``."""
        if isinstance(feats, (tuple, list)):
            if len(feats) == 0:
                raise ValueError('BinaryClsHead got an empty tuple of features')
            feats = feats[-1]
        if feats.dim() == 4:
            feats = feats.mean(dim=(2, 3))
        elif feats.dim() != 2:
            raise ValueError(f'BinaryClsHead expects features of shape (N, C) or (N, C, H, W), '
                             f'got {tuple(feats.shape)}')
        if feats.size(1) != self.in_channels:
            raise ValueError(f'BinaryClsHead(in_channels={self.in_channels}) got features with '
                             f'{feats.size(1)} channels: set in_channels to the width of the '
                             f"backbone's last output")
        return feats

    def pre_logits(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Pooled features after the hidden layer, shape ``(N, hidden_channels)`` (or the
        pooled input ``(N, in_channels)`` when ``hidden_channels`` is None)."""
        x = self._pool(feats)
        if self.freeze_backbone:
            x = x.detach()
        return self.hidden(x)

    def forward(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Logits of shape ``(N, 1)``."""
        return self.fc(self.pre_logits(feats))

    def _get_loss(self, cls_score: Tensor, data_samples: List[DataSample], **kwargs) -> dict:
        """Loss of the ``(N, 1)`` logits against the hard labels of ``data_samples``."""
        if 'gt_score' in data_samples[0] or 'gt_label' not in data_samples[0]:
            raise ValueError('BinaryClsHead needs hard labels (DataSample.gt_label) and no '
                             'soft gt_score: batch augmentations such as Mixup / CutMix are '
                             'not supported by the binary losses; remove them from the '
                             "model's data_preprocessor.batch_augments")
        target = torch.cat([ds.gt_label for ds in data_samples]).to(cls_score.device)
        logits = cls_score.reshape(-1)
        loss = self.loss_module(logits, target, avg_factor=logits.size(0), **kwargs)
        return dict(loss=loss)

    def _get_predictions(self, cls_score: Tensor,
                         data_samples: Optional[List[Optional[DataSample]]]
                         ) -> List[DataSample]:
        """Set ``pred_score`` (2,), ``pred_label`` (1,) and ``pred_prob`` () per sample."""
        prob = torch.sigmoid(cls_score.detach().float().reshape(-1))
        score = positive_score(prob, self.threshold)
        pred_scores = torch.stack([1 - score, score], dim=1)
        pred_labels = (prob > self.threshold).long()
        if data_samples is None:
            data_samples = [None] * prob.size(0)
        out: List[DataSample] = []
        for data_sample, p, pred_score, label in zip(data_samples, prob, pred_scores,
                                                     pred_labels):
            if data_sample is None:
                data_sample = DataSample()
            data_sample.set_pred_score(pred_score).set_pred_label(label.view(1))
            data_sample.set_field(p, 'pred_prob', dtype=torch.Tensor)
            out.append(data_sample)
        return out

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, hidden_channels={self.hidden_channels}, '
                f'threshold={self.threshold}, freeze_backbone={self.freeze_backbone}')
