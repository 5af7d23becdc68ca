# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Binary losses of the C-NMC 2019 leukemia study (its Table 2): BCE, weighted BCE, focal, hinge
and the study's **Focal Hinge Loss**, for mmpretrain heads (``loss_module(cls_score, target,
avg_factor=..., weight=...)``) and mmdet heads with a sigmoid, single-class branch
(``loss_cls(cls_score, labels, label_weights, avg_factor=...)``). Notation: :class:`_BinaryLoss`.
"""
import math
from numbers import Real
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.losses.utils import weight_reduce_loss
from torch import Tensor

from mmbloodcell.registry import CLS_MODELS, DET_MODELS, register_module

SCORE_MODES = ('prob', 'tanh', 'logit')
REDUCTIONS = ('none', 'mean', 'sum')

__all__ = [
    'FocalHingeLoss', 'HingeLoss', 'WeightedBCELoss', 'BinaryFocalLoss',
    'hinge_base', 'SCORE_MODES'
]


def _check_number(owner: str, name: str, value, low: Optional[float] = None,
                  high: Optional[float] = None, low_open: bool = True,
                  high_open: bool = True) -> float:
    """Return ``value`` as a float after checking it is a finite real number in range."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise TypeError(f'{owner}: {name} must be a finite real number, got {value!r}')
    value = float(value)
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f'{owner}: {name} must be {">" if low_open else ">="} {low}, '
                         f'got {value}')
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f'{owner}: {name} must be {"<" if high_open else "<="} {high}, '
                         f'got {value}')
    return value


def _as_column(owner: str, name: str, tensor: Tensor, num: int) -> Tensor:
    """Flatten a ``(N,)`` or ``(N, 1)`` tensor to ``(N,)``, refusing any other shape."""
    if tuple(tensor.shape) not in ((num, ), (num, 1)):
        raise ValueError(f'{owner}: {name} must have shape ({num},) or ({num}, 1) to match '
                         f'the {num} logits, got {tuple(tensor.shape)}')
    return tensor.reshape(num)


def _prepare(owner: str, pred: Tensor, target: Union[Tensor, Sequence],
             weight: Optional[Union[Tensor, Sequence]] = None,
             pos_label: int = 1) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Check and flatten a binary loss' logits, labels and per-sample weights (shapes in
    :class:`_BinaryLoss`; ``owner`` names the loss in errors).

    Returns ``z`` (N,), ``y`` (N,) in {0., 1.} with 1 for the label ``pos_label``, and the weight
    (N,) or None, in the compute dtype (float32 for float16 / bfloat16 logits, else the logits')
    on the logits' device.
    """
    if not isinstance(pred, Tensor):
        raise TypeError(f'{owner}: pred must be a Tensor of logits, got {type(pred).__name__}')
    if not pred.is_floating_point():
        raise TypeError(f'{owner}: pred must be floating-point logits, got {pred.dtype}')
    if not (pred.dim() == 1 or (pred.dim() == 2 and pred.size(1) == 1)):
        raise ValueError(
            f'{owner}: pred must hold one logit per sample, shape (N,) or (N, 1), got '
            f'{tuple(pred.shape)}; a binary loss needs a single-logit head (e.g. '
            f'BinaryClsHead, or num_classes=1 with a sigmoid classifier in mmdet)')
    num = pred.size(0)
    dtype = torch.float32 if pred.dtype in (torch.float16, torch.bfloat16) else pred.dtype
    z = pred.reshape(num).to(dtype)

    if not isinstance(target, Tensor):
        target = torch.as_tensor(target)
    target = _as_column(owner, 'target (labels)', target.to(pred.device), num)
    if target.is_complex():
        raise TypeError(f'{owner}: labels must be real numbers 0 or 1, got {target.dtype}')
    if target.dtype != torch.bool:
        valid = (target == 0) | (target == 1)
        if not bool(valid.all()):
            bad = torch.unique(target[~valid])[:5].tolist()
            raise ValueError(
                f'{owner}: labels must be 0 or 1 (binary task), got values {bad}; soft labels '
                f'(Mixup / CutMix / label smoothing) and multi-class labels are not supported')
    y = target.to(dtype)
    if pos_label == 0:
        y = 1 - y

    if weight is not None:
        if not isinstance(weight, Tensor):
            weight = torch.as_tensor(weight)
        if weight.numel() != num:
            raise ValueError(f'{owner}: weight has {weight.numel()} elements (shape '
                             f'{tuple(weight.shape)}) but there are {num} logits; give one '
                             f'weight per sample')
        weight = _as_column(owner, 'weight', weight.to(device=pred.device), num).to(dtype)
    return z, y, weight


def hinge_base(z: Tensor, y: Tensor, score: str) -> Tensor:
    """The hinge argument ``1 - y' * s`` (before ``max(0, .)``), shape (N,), of logits ``z``
    (N,) and labels ``y`` (N,) in {0., 1.}, without cancellation (``y' = 2y - 1``):

    - ``'prob'``: ``1 - q = sigmoid(-z)`` for positives, ``1 + q`` for negatives;
    - ``'tanh'``: ``1 - y' (2q - 1) = 2 * sigmoid(-y' z)``;
    - ``'logit'``: ``1 - y' z``.
    """
    sign = 2 * y - 1
    if score == 'prob':
        return torch.where(y > 0.5, torch.sigmoid(-z), 1 + torch.sigmoid(z))
    if score == 'tanh':
        return 2 * torch.sigmoid(-sign * z)
    if score == 'logit':
        return 1 - sign * z
    raise ValueError(f'score must be one of {SCORE_MODES}, got {score!r}')


def _masked_pow(base: Tensor, gamma: float) -> Tensor:
    """``max(0, base) ** gamma`` whose value and gradient are 0 (not NaN / inf) where
    ``base <= 0``, also for ``0 < gamma < 1``."""
    positive = base > 0
    safe = torch.where(positive, base, torch.ones_like(base))
    return torch.where(positive, safe.pow(gamma), torch.zeros_like(base))


class _BinaryLoss(nn.Module):
    """Shared arguments, input checks and reduction of the binary losses.

    Notation: ``z`` the head's logit; ``q = sigmoid(z)`` the predicted probability of the
    positive class; ``y`` in {0, 1} the label, ``y' = 2y - 1`` in {-1, +1} where a margin is
    used; ``s`` the score the hinge margin ``y' * s`` is taken on, chosen by ``score``:

    - ``'prob'`` (default, the study's setting: the hinge on the network's sigmoid output):
      ``s = q`` in (0, 1). The margin 1 is never reached: a positive's loss ``1 - q`` tends to 0
      only as ``q -> 1``, a negative's ``1 + q`` lies in (1, 2). Every sample keeps a gradient;
      the classes are treated asymmetrically.
    - ``'tanh'``: ``s = 2q - 1 = tanh(z / 2)`` in (-1, 1), symmetric: ``1 - y' * s`` lies in
      (0, 2), is 1 at ``q = 0.5`` and tends to 0 only for a confident, correct prediction; the
      loss is bounded (by ``2 ** gamma / (2 ** gamma - 1)`` for the focal hinge), never zero.
    - ``'logit'``: ``s = z``, the classic SVM hinge. Zero once ``y' * z >= 1`` (``q >=
      sigmoid(1) ~ 0.731`` for a positive, ``q <= 0.269`` for a negative: no gradient beyond the
      margin); unbounded for confidently wrong predictions (``|z| ** gamma`` for the focal hinge).

    Numerics: logarithms are ``logsigmoid`` of the logit, ``1 - q`` is ``sigmoid(-z)``, powers
    of probabilities are ``exp(gamma * logsigmoid(.))`` and powers of a hinge are masked where
    it is 0, so values and gradients stay finite for logits of +-1e4. float16 / bfloat16 inputs
    are computed and returned in float32; float32 / float64 keep their dtype.

    Reduction: mmdet's :func:`~mmdet.models.losses.utils.weight_reduce_loss` of the element-wise
    loss times ``weight`` (``'mean'`` divides the sum by ``avg_factor`` when given, ``'sum'``
    refuses one, ``'none'`` keeps ``pred``'s shape), multiplied by ``loss_weight``.

    Shapes: ``pred`` (N,) or (N, 1) logits of any float dtype; ``target`` (N,) or (N, 1) in
    {0, 1}, integer, bool or float; ``weight`` (N,) or (N, 1); output a scalar, or ``pred``'s
    shape with ``reduction='none'``.

    Args:
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to ``'mean'``.
        loss_weight (float): Multiplier of the loss, >= 0. Defaults to 1.0.
        pos_label (int): The label value of the positive class ``y = 1``: 1 (default) for
            classification data; 0 for mmdet dense heads with ``num_classes=1`` (0 is the
            foreground, 1 the background).
        use_sigmoid (bool): Must be True; mmdet heads read ``loss_cls['use_sigmoid']`` to size
            their branch (``num_classes`` sigmoid outputs, no background). Defaults to True.
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0, pos_label: int = 1,
                 use_sigmoid: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        if reduction not in REDUCTIONS:
            raise ValueError(f'{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}')
        if pos_label not in (0, 1) or isinstance(pos_label, bool):
            raise ValueError(f'{name}: pos_label must be 0 or 1, got {pos_label!r}')
        if use_sigmoid is not True:
            raise ValueError(f'{name} is a sigmoid (single-logit) loss: use_sigmoid must be '
                             f'True, got {use_sigmoid!r}')
        self.reduction = reduction
        self.loss_weight = _check_number(name, 'loss_weight', loss_weight, low=0,
                                         low_open=False)
        self.pos_label = int(pos_label)
        self.use_sigmoid = True

    def elementwise(self, z: Tensor, y: Tensor) -> Tensor:
        """The unreduced loss, shape (N,), from logits ``z`` and labels ``y`` in {0., 1.}."""
        raise NotImplementedError

    def forward(self,
                pred: Tensor,
                target: Union[Tensor, Sequence],
                weight: Optional[Union[Tensor, Sequence]] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """The reduced loss (shapes and reduction: the class docstring);
        ``reduction_override`` replaces ``self.reduction`` for this call."""
        name = type(self).__name__
        reduction = reduction_override if reduction_override else self.reduction
        if reduction not in REDUCTIONS:
            raise ValueError(f'{name}: reduction_override must be one of {REDUCTIONS}, got '
                             f'{reduction_override!r}')
        z, y, weight = _prepare(name, pred, target, weight, self.pos_label)
        loss = self.loss_weight * weight_reduce_loss(self.elementwise(z, y), weight, reduction,
                                                     avg_factor)
        return loss.reshape(pred.shape) if reduction == 'none' else loss

    def extra_repr(self) -> str:
        return (f'reduction={self.reduction!r}, loss_weight={self.loss_weight}, '
                f'pos_label={self.pos_label}')


def _check_score(owner: str, score: str) -> str:
    if score not in SCORE_MODES:
        raise ValueError(f"{owner}: score must be one of {SCORE_MODES} (s = q, s = 2q - 1, "
                         f"s = z), got {score!r}")
    return score


@register_module(DET_MODELS, CLS_MODELS)
class HingeLoss(_BinaryLoss):
    """Hinge loss on a binary score: ``max(0, 1 - y' * s)``, a baseline of the C-NMC study
    (Table 2). ``y' = 2y - 1``; ``s`` (:class:`_BinaryLoss`) is ``sigmoid(z)`` for ``'prob'``
    (the study's setting), ``2 sigmoid(z) - 1`` for ``'tanh'``, or ``z`` for ``'logit'`` (the SVM
    hinge with a margin of 1 on the logit).

    Args:
        score (str): ``'prob'`` | ``'tanh'`` | ``'logit'``. Defaults to ``'prob'``.
        reduction, loss_weight, pos_label, use_sigmoid: See :class:`_BinaryLoss`.
    """

    def __init__(self, score: str = 'prob', reduction: str = 'mean', loss_weight: float = 1.0,
                 pos_label: int = 1, use_sigmoid: bool = True) -> None:
        super().__init__(reduction, loss_weight, pos_label, use_sigmoid)
        self.score = _check_score(type(self).__name__, score)

    def elementwise(self, z: Tensor, y: Tensor) -> Tensor:
        return hinge_base(z, y, self.score).clamp(min=0)

    def extra_repr(self) -> str:
        return f'score={self.score!r}, ' + super().extra_repr()


@register_module(DET_MODELS, CLS_MODELS)
class FocalHingeLoss(_BinaryLoss):
    """Focal Hinge Loss: ``max(0, 1 - y' * s) ** gamma / (2 ** gamma - 1)``.

    The loss proposed by the C-NMC 2019 leukemia study (acute lymphoblastic leukemia vs. normal
    cell classification, compared with BCE, weighted BCE, focal and hinge losses on DenseNet-201
    and EfficientNet-B2; its Table 2). The power ``gamma > 1`` down-weights samples whose hinge
    is below 1 (the well-classified ones, as the focal loss of Lin et al. 2017 does for cross
    entropy) and up-weights those above 1; ``gamma = 1`` is exactly the hinge loss. The divisor
    ``2 ** gamma - 1``, the range ``(1 + 1) ** gamma - 1 ** gamma`` of a negative's loss in
    ``'prob'`` mode, keeps the scale comparable across ``gamma``. ``y'`` and ``s`` as in
    :class:`HingeLoss`; with ``'logit'`` a confidently wrong sample's loss grows as
    ``|z| ** gamma``.

    Args:
        gamma (float): Focusing exponent, > 0. Defaults to 2.0.
        score (str): ``'prob'`` | ``'tanh'`` | ``'logit'``. Defaults to ``'prob'``.
        reduction, loss_weight, pos_label, use_sigmoid: See :class:`_BinaryLoss`.
    """

    def __init__(self, gamma: float = 2.0, score: str = 'prob', reduction: str = 'mean',
                 loss_weight: float = 1.0, pos_label: int = 1,
                 use_sigmoid: bool = True) -> None:
        super().__init__(reduction, loss_weight, pos_label, use_sigmoid)
        name = type(self).__name__
        if isinstance(gamma, Real) and not isinstance(gamma, bool) and gamma <= 0:
            raise ValueError(f'{name}: gamma must be > 0 (gamma = 1 is the hinge loss; the '
                             f'normaliser 2 ** gamma - 1 vanishes at gamma = 0), got {gamma}')
        self.gamma = _check_number(name, 'gamma', gamma, low=0)
        self.score = _check_score(name, score)

    def elementwise(self, z: Tensor, y: Tensor) -> Tensor:
        base = hinge_base(z, y, self.score)
        return _masked_pow(base, self.gamma) / (2.0**self.gamma - 1.0)

    def extra_repr(self) -> str:
        return f'gamma={self.gamma}, score={self.score!r}, ' + super().extra_repr()


@register_module(DET_MODELS, CLS_MODELS)
class WeightedBCELoss(_BinaryLoss):
    """Class-weighted binary cross entropy ``-(W1 * y * log q + W0 * (1 - y) * log(1 - q))``,
    ``q = sigmoid(z)``: the weighted-BCE baseline of the C-NMC study, with inverse-frequency
    weights ``W_i = N / (c * n_i)`` (``N`` samples, ``c = 2`` classes, ``n_i`` of class ``i``).

    Args:
        class_weight (str | Sequence[float] | None): ``[W0, W1]`` (> 0), the weights of label 0
            and label 1 in the data, whatever ``pos_label``; ``'auto'`` to have
            ``ClassWeightHook`` (in ``custom_hooks``) compute them from the training set and call
            :meth:`set_class_weight` before the first iteration; None for the plain BCE (the
            study's BCE baseline). Defaults to None.
        reduction, loss_weight, pos_label, use_sigmoid: See :class:`_BinaryLoss`.
    """

    def __init__(self, class_weight: Optional[Union[str, Sequence[float]]] = None,
                 reduction: str = 'mean', loss_weight: float = 1.0, pos_label: int = 1,
                 use_sigmoid: bool = True) -> None:
        super().__init__(reduction, loss_weight, pos_label, use_sigmoid)
        self._weights: Optional[Tuple[float, float]] = None
        if isinstance(class_weight, str):
            if class_weight != 'auto':
                raise ValueError(f"WeightedBCELoss: class_weight must be 'auto', [W0, W1] or "
                                 f"None, got {class_weight!r}")
            self.class_weight = 'auto'
        elif class_weight is None:
            self.class_weight = None
            self._weights = (1.0, 1.0)
        else:
            self._weights = self._check_weights(class_weight)
            self.class_weight = list(self._weights)

    @staticmethod
    def _check_weights(class_weight) -> Tuple[float, float]:
        if isinstance(class_weight, Tensor):
            class_weight = class_weight.tolist()
        if not isinstance(class_weight, Sequence) or len(class_weight) != 2:
            raise ValueError(f'WeightedBCELoss: class_weight must be two numbers [W0, W1] '
                             f'(weights of label 0 and label 1), got {class_weight!r}')
        return tuple(
            _check_number('WeightedBCELoss', f'class_weight[{i}]', w, low=0)
            for i, w in enumerate(class_weight))

    def set_class_weight(self, class_weight: Union[Sequence[float], Tensor]) -> None:
        """Set ``[W0, W1]`` of a ``class_weight='auto'`` loss (``ClassWeightHook``, before
        training; may be called again, e.g. on resume)."""
        if self.class_weight != 'auto':
            raise RuntimeError(f"WeightedBCELoss: set_class_weight is for losses built with "
                               f"class_weight='auto'; this one has class_weight="
                               f"{self.class_weight!r}")
        self._weights = self._check_weights(class_weight)

    @property
    def weights(self) -> Optional[Tuple[float, float]]:
        """The weights ``(W0, W1)`` in use, or None while ``'auto'`` weights are unset."""
        return self._weights

    def elementwise(self, z: Tensor, y: Tensor) -> Tensor:
        if self._weights is None:
            raise RuntimeError(
                "WeightedBCELoss(class_weight='auto') has no class weights yet: add "
                "dict(type='ClassWeightHook') to the config's custom_hooks (it counts the "
                "training labels before the first iteration), or call "
                "loss.set_class_weight([W0, W1]) yourself")
        w0, w1 = self._weights
        if self.pos_label == 0:  # y is 1 for label 0 here; weights follow the data's labels
            w0, w1 = w1, w0
        return -(w1 * y * F.logsigmoid(z) + w0 * (1 - y) * F.logsigmoid(-z))

    def extra_repr(self) -> str:
        return (f'class_weight={self.class_weight!r}, weights={self._weights}, ' +
                super().extra_repr())


@register_module(DET_MODELS, CLS_MODELS)
class BinaryFocalLoss(_BinaryLoss):
    """Binary focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017):
    ``-(alpha * (1 - q) ** gamma * y * log q + (1 - alpha) * q ** gamma * (1 - y) * log(1 - q))``.

    ``q = sigmoid(z)``; the focal-loss baseline of the C-NMC study. ``gamma = 0`` gives the
    class-balanced BCE ``-(alpha y log q + (1 - alpha) (1 - y) log(1 - q))``, i.e.
    :class:`WeightedBCELoss` with ``class_weight=[1 - alpha, alpha]``; ``alpha=None`` weighs
    both classes 1. The modulating factors are ``exp(gamma * logsigmoid(-+z))``, smooth for
    ``0 < gamma < 1`` and saturated logits.

    Args:
        gamma (float): Focusing exponent, >= 0. Defaults to 2.0.
        alpha (float, optional): Weight of the positive class in (0, 1) (negatives: ``1 -
            alpha``); None for no class weighting. Defaults to 0.25 (Lin et al.).
        reduction, loss_weight, pos_label, use_sigmoid: See :class:`_BinaryLoss`.
    """

    def __init__(self, gamma: float = 2.0, alpha: Optional[float] = 0.25,
                 reduction: str = 'mean', loss_weight: float = 1.0, pos_label: int = 1,
                 use_sigmoid: bool = True) -> None:
        super().__init__(reduction, loss_weight, pos_label, use_sigmoid)
        name = type(self).__name__
        self.gamma = _check_number(name, 'gamma', gamma, low=0, low_open=False)
        self.alpha = None if alpha is None else _check_number(name, 'alpha', alpha, low=0,
                                                              high=1)

    def elementwise(self, z: Tensor, y: Tensor) -> Tensor:
        log_q, log_1mq = F.logsigmoid(z), F.logsigmoid(-z)
        w_pos, w_neg = (1.0, 1.0) if self.alpha is None else (self.alpha, 1.0 - self.alpha)
        if self.gamma == 0:
            mod_pos = mod_neg = 1.0
        else:
            mod_pos = torch.exp(self.gamma * log_1mq)  # (1 - q) ** gamma
            mod_neg = torch.exp(self.gamma * log_q)  # q ** gamma
        return -(w_pos * mod_pos * y * log_q + w_neg * mod_neg * (1 - y) * log_1mq)

    def extra_repr(self) -> str:
        return f'gamma={self.gamma}, alpha={self.alpha}, ' + super().extra_repr()
