# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Binary classification losses for class-imbalanced data.

The C-NMC 2019 leukemia study compares five losses on a single-logit classifier (its Table 2):
binary cross entropy, weighted BCE, focal loss, hinge loss and its own contribution, the
**Focal Hinge Loss**. All of them are implemented here as registered modules that work in
mmpretrain heads (``loss_module(cls_score, target, avg_factor=..., weight=...)``) and in
mmdet heads with a sigmoid, single-class classification branch
(``loss_cls(cls_score, labels, label_weights, avg_factor=...)``).

The shared notation, numerics and reduction: :class:`_BinaryLoss`.
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


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16 / bfloat16 are computed in float32; other float dtypes are kept."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _as_column(owner: str, name: str, tensor: Tensor, num: int) -> Tensor:
    """Flatten a ``(N,)`` or ``(N, 1)`` tensor to ``(N,)``, refusing any other shape."""
    if tuple(tensor.shape) not in ((num, ), (num, 1)):
        raise ValueError(f'{owner}: {name} must have shape ({num},) or ({num}, 1) to match '
                         f'the {num} logits, got {tuple(tensor.shape)}')
    return tensor.reshape(num)


def _prepare(owner: str, pred: Tensor, target: Union[Tensor, Sequence],
             weight: Optional[Union[Tensor, Sequence]] = None,
             pos_label: int = 1) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Check and flatten the inputs of a binary loss.

    Args:
        owner (str): The loss' name, used in error messages.
        pred (Tensor): Logits of shape ``(N,)`` or ``(N, 1)``, any float dtype.
        target (Tensor | Sequence): Labels of shape ``(N,)`` or ``(N, 1)`` with values in
            ``{0, 1}``; integer, bool or float.
        weight (Tensor | Sequence, optional): Per-sample weights, shape ``(N,)`` or ``(N, 1)``.
        pos_label (int): The label value of the positive class (1, or 0 for mmdet
            single-class heads where 0 is the foreground and 1 the background).

    Returns:
        tuple[Tensor, Tensor, Tensor | None]: ``z`` (N,), ``y`` (N,) in ``{0., 1.}`` with 1 for
        the positive class, and the weight (N,) or None, all in the compute dtype (float32 for
        float16 / bfloat16 logits, else the logits' dtype) on the logits' device.
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
    dtype = _compute_dtype(pred.dtype)
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
    """The hinge argument ``1 - y' * s`` (before ``max(0, .)``), element-wise.

    Computed without cancellation: with ``y' = 2y - 1``,

    - ``'prob'``: ``1 - q = sigmoid(-z)`` for positives, ``1 + q`` for negatives;
    - ``'tanh'``: ``1 - y' (2q - 1) = 2 * sigmoid(-y' z)``;
    - ``'logit'``: ``1 - y' z``.

    Args:
        z (Tensor): Logits, shape (N,).
        y (Tensor): Labels in ``{0., 1.}``, shape (N,), same dtype as ``z``.
        score (str): One of ``'prob'``, ``'tanh'``, ``'logit'`` (see the module docstring).

    Returns:
        Tensor: Shape (N,).
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

    Notation (shared by every loss in this module):

    - ``z``: the head's logit, shape ``(N,)`` or ``(N, 1)``.
    - ``q = sigmoid(z)``: the predicted probability of the positive class.
    - ``y`` in ``{0, 1}``: the label in the data; ``y' = 2y - 1`` in ``{-1, +1}`` where a
      margin is used.
    - ``s``: the score the hinge margin ``y' * s`` is taken on, chosen by ``score``:

      ``'prob'`` (default, the study's setting) -- ``s = q`` in ``(0, 1)``.
          The study's network ends in a sigmoid and the hinge is applied to that output. The
          margin ``y' * q`` never reaches 1: a positive's loss ``1 - q`` tends to 0 only as
          ``q -> 1``, and a negative's loss ``1 + q`` lies in ``(1, 2)``, i.e. it never drops
          below 1 (its minimum is approached at ``q -> 0``). No sample is ever "inside the
          margin", so every sample keeps a gradient; the classes are treated asymmetrically.
      ``'tanh'`` -- ``s = 2q - 1 = tanh(z / 2)`` in ``(-1, 1)``.
          The sigmoid output re-centred on 0, symmetric for both classes: ``1 - y' * s`` lies in
          ``(0, 2)``, equals 1 at ``q = 0.5`` and tends to 0 only for a confident, correct
          prediction. As with ``'prob'`` the margin 1 is never reached, so the loss is bounded
          (by ``2 ** gamma / (2 ** gamma - 1)`` for the focal hinge) and never exactly zero.
      ``'logit'`` -- ``s = z``, the classic SVM hinge on the raw logit.
          The loss is exactly zero once ``y' * z >= 1``, i.e. ``q >= sigmoid(1) ~ 0.731`` for a
          positive and ``q <= 0.269`` for a negative; samples beyond the margin give no gradient.
          The loss is unbounded for confidently wrong predictions (linear in ``z`` for the hinge,
          ``|z| ** gamma`` for the focal hinge).

    All losses are numerically stable: logarithms are taken as ``log-sigmoid`` of the logit,
    ``1 - q`` is computed as ``sigmoid(-z)`` (no cancellation), powers of probabilities as
    ``exp(gamma * logsigmoid(.))``, and powers of a hinge are masked where the hinge is 0, so
    values and gradients stay finite for logits of +-1e4. float16 / bfloat16 inputs are computed
    in float32 and the loss is returned in float32; float32 / float64 inputs keep their dtype.

    Reduction follows mmdet's :func:`~mmdet.models.losses.utils.weight_reduce_loss`: the
    element-wise loss is multiplied by the per-sample ``weight``; ``reduction='mean'`` with an
    ``avg_factor`` divides the weighted sum by ``avg_factor``, without it takes the mean;
    ``'sum'`` sums (and refuses an ``avg_factor``); ``'none'`` returns the weighted element-wise
    loss in the shape of ``pred``. The result is multiplied by ``loss_weight``.

    Args:
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to ``'mean'``.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        pos_label (int): Which label value is the positive class ``y = 1`` of the formulas.
            1 (default) for classification data; 0 for mmdet dense heads with
            ``num_classes=1``, whose labels are 0 for the foreground and 1 for background.
        use_sigmoid (bool): Must be True. Accepted so that mmdet heads, which read
            ``loss_cls['use_sigmoid']`` to size their classification branch
            (``num_classes`` sigmoid outputs instead of ``num_classes + 1`` softmax ones),
            can be configured with these losses. Defaults to True.
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
        """Compute the loss.

        Args:
            pred (Tensor): Logits ``z``, shape ``(N,)`` or ``(N, 1)``.
            target (Tensor): Labels in ``{0, 1}``, shape ``(N,)`` or ``(N, 1)``, integer,
                bool or float.
            weight (Tensor, optional): Per-sample weights, shape ``(N,)`` or ``(N, 1)``.
            avg_factor (float | Tensor, optional): Divisor of the weighted sum when
                ``reduction='mean'``; refused with ``'sum'``.
            reduction_override (str, optional): Overrides ``self.reduction`` for this call.

        Returns:
            Tensor: A scalar, or the element-wise loss in ``pred``'s shape for
            ``reduction='none'``; float32 for float16 / bfloat16 logits.
        """
        name = type(self).__name__
        reduction = reduction_override if reduction_override else self.reduction
        if reduction not in REDUCTIONS:
            raise ValueError(f'{name}: reduction_override must be one of {REDUCTIONS}, got '
                             f'{reduction_override!r}')
        z, y, weight = _prepare(name, pred, target, weight, self.pos_label)
        loss = self.elementwise(z, y)
        loss = weight_reduce_loss(loss, weight, reduction, avg_factor)
        loss = self.loss_weight * loss
        if reduction == 'none':
            loss = loss.reshape(pred.shape)
        return loss

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
    """Hinge loss on a binary score: ``max(0, 1 - y' * s)``.

    One of the baselines of the C-NMC study (Table 2). ``y' = 2y - 1`` and ``s`` is the score
    chosen by ``score`` (module docstring): ``'prob'`` (``s = sigmoid(z)``, the study's
    setting, default), ``'tanh'`` (``s = 2 sigmoid(z) - 1``) or ``'logit'`` (``s = z``, the
    SVM hinge with a margin of 1 on the logit).

    Args:
        score (str): ``'prob'`` | ``'tanh'`` | ``'logit'``. Defaults to ``'prob'``.
        reduction, loss_weight, pos_label, use_sigmoid: See :class:`_BinaryLoss`.

    Shapes:
        ``pred``: (N,) or (N, 1) logits; ``target``: (N,) or (N, 1) in {0, 1}; output: scalar,
        or ``pred``'s shape with ``reduction='none'``.
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

    The loss proposed by the C-NMC 2019 leukemia study (acute lymphoblastic leukemia vs.
    normal cell classification on the C-NMC 2019 dataset, compared against BCE, weighted BCE,
    focal and hinge losses with DenseNet-201 and EfficientNet-B2; its Table 2). Raising the
    hinge to the power ``gamma > 1`` down-weights samples whose hinge is below 1 (the
    well-classified ones, as the focal loss of Lin et al. 2017 does for cross entropy) and
    up-weights those above 1; ``gamma = 1`` is exactly the hinge loss. The divisor
    ``2 ** gamma - 1`` keeps the loss on a comparable scale across ``gamma`` (it is the range
    ``(1 + 1) ** gamma - 1 ** gamma`` of a negative's loss in ``'prob'`` mode).

    ``y' = 2y - 1`` and ``s`` is the score chosen by ``score`` (module docstring):
    ``'prob'`` (``s = sigmoid(z)``, the study's setting, default), ``'tanh'``
    (``s = 2 sigmoid(z) - 1``) or ``'logit'`` (``s = z``). With ``'logit'`` and a large
    ``gamma`` the loss of a confidently wrong sample grows as ``|z| ** gamma``.

    Args:
        gamma (float): Focusing exponent, > 0. Defaults to 2.0.
        score (str): ``'prob'`` | ``'tanh'`` | ``'logit'``. Defaults to ``'prob'``.
        reduction, loss_weight, pos_label, use_sigmoid: See :class:`_BinaryLoss`.

    Shapes:
        ``pred``: (N,) or (N, 1) logits; ``target``: (N,) or (N, 1) in {0, 1}; output: scalar,
        or ``pred``'s shape with ``reduction='none'``.
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


def _weighted_bce(z: Tensor, y: Tensor, w_pos: float, w_neg: float) -> Tensor:
    """``-(w_pos * y * log q + w_neg * (1 - y) * log(1 - q))`` with log-sigmoids."""
    return -(w_pos * y * F.logsigmoid(z) + w_neg * (1 - y) * F.logsigmoid(-z))


@register_module(DET_MODELS, CLS_MODELS)
class WeightedBCELoss(_BinaryLoss):
    """Class-weighted binary cross entropy:
    ``-(W1 * y * log q + W0 * (1 - y) * log(1 - q))``, ``q = sigmoid(z)``.

    The weighted-BCE baseline of the C-NMC study, with the usual inverse-frequency weights
    ``W_i = N / (c * n_i)`` (``N`` samples, ``c = 2`` classes, ``n_i`` samples of class ``i``).

    Args:
        class_weight (str | Sequence[float] | None): ``[W0, W1]``, the weights of label 0 and
            label 1 (positive numbers); ``'auto'`` to have them computed from the training set
            by ``ClassWeightHook`` (add ``dict(type='ClassWeightHook')`` to ``custom_hooks``),
            which calls :meth:`set_class_weight` before the first iteration; or None for the
            plain, unweighted BCE (the study's BCE baseline). Defaults to None.
        reduction, loss_weight, pos_label, use_sigmoid: See :class:`_BinaryLoss`.
            ``class_weight`` is indexed by the label value in the data, whatever ``pos_label``.

    Shapes:
        ``pred``: (N,) or (N, 1) logits; ``target``: (N,) or (N, 1) in {0, 1}; output: scalar,
        or ``pred``'s shape with ``reduction='none'``.
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
        """Set the weights ``[W0, W1]`` of a loss built with ``class_weight='auto'``.

        Called by ``ClassWeightHook`` before training; may be called again (e.g. on resume).
        """
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
        return _weighted_bce(z, y, w_pos=w1, w_neg=w0)

    def extra_repr(self) -> str:
        return (f'class_weight={self.class_weight!r}, weights={self._weights}, ' +
                super().extra_repr())


@register_module(DET_MODELS, CLS_MODELS)
class BinaryFocalLoss(_BinaryLoss):
    """Binary focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017):
    ``-(alpha * (1 - q) ** gamma * y * log q + (1 - alpha) * q ** gamma * (1 - y) * log(1 - q))``.

    ``q = sigmoid(z)``. ``gamma = 0`` gives the class-balanced BCE ``-(alpha y log q + (1 -
    alpha) (1 - y) log(1 - q))``, i.e. :class:`WeightedBCELoss` with ``class_weight=[1 - alpha,
    alpha]``; with ``alpha=None`` both classes weigh 1 (``gamma = 0`` is then the plain BCE). The
    modulating factors are computed as ``exp(gamma * logsigmoid(-+z))``, so they stay smooth
    for ``0 < gamma < 1`` and saturated logits. The focal-loss baseline of the C-NMC study.

    Args:
        gamma (float): Focusing exponent, >= 0. Defaults to 2.0.
        alpha (float, optional): Weight of the positive class, strictly in (0, 1), negatives
            weigh ``1 - alpha``; None for no class weighting. Defaults to 0.25 (Lin et al.).
        reduction, loss_weight, pos_label, use_sigmoid: See :class:`_BinaryLoss`.

    Shapes:
        ``pred``: (N,) or (N, 1) logits; ``target``: (N,) or (N, 1) in {0, 1}; output: scalar,
        or ``pred``'s shape with ``reduction='none'``.
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
