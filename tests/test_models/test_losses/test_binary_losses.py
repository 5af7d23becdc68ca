"""Tests of the binary imbalance losses (FHL, hinge, weighted BCE, binary focal)."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.losses.utils import weight_reduce_loss

import mmbloodcell.models  # noqa: F401  (registers the losses)
from mmbloodcell.models.losses import (BinaryFocalLoss, FocalHingeLoss,
                                       HingeLoss, WeightedBCELoss)
from mmbloodcell.registry import CLS_MODELS, DET_MODELS

SCORES = ('prob', 'tanh', 'logit')

# Logits away from the hinge kinks (|1 - y' s| > 0.05 in every mode), labels of both classes.
Z = [-2.3, -0.4, 0.35, 1.7, 2.9, -3.1, 0.8]
Y = [0, 1, 1, 0, 1, 0, 0]


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def ref_hinge(z, y, score):
    """max(0, 1 - y' s), from the definitions with plain floats."""
    q = _sigmoid(z)
    s = {'prob': q, 'tanh': 2 * q - 1, 'logit': z}[score]
    return max(0.0, 1.0 - (2 * y - 1) * s)


def ref_fhl(z, y, score, gamma):
    return ref_hinge(z, y, score)**gamma / (2**gamma - 1)


def ref_wbce(z, y, w0, w1):
    q = _sigmoid(z)
    return -(w1 * y * math.log(q) + w0 * (1 - y) * math.log(1 - q))


def ref_focal(z, y, gamma, alpha):
    q = _sigmoid(z)
    a_pos, a_neg = (1.0, 1.0) if alpha is None else (alpha, 1 - alpha)
    return -(a_pos * (1 - q)**gamma * y * math.log(q) +
             a_neg * q**gamma * (1 - y) * math.log(1 - q))


def _inputs(dtype=torch.float64):
    return torch.tensor(Z, dtype=dtype), torch.tensor(Y)


# ----------------------------------------------------------------------------- values


def test_literal_values():
    """A few values worked out on paper (sigmoid(2) = 0.880797, sigmoid(-1) = 0.268941)."""
    z = torch.tensor([0.0, 2.0, -1.0], dtype=torch.float64)
    y = torch.tensor([1, 0, 1])
    # s = z: hinges 1, 3, 2
    assert HingeLoss(score='logit')(z, y).item() == pytest.approx(2.0)
    assert FocalHingeLoss(gamma=2, score='logit')(z, y).item() == pytest.approx(14 / 9)
    # s = q: 1 - 0.5, 1 + 0.880797, 1 - 0.268941
    none = HingeLoss(score='prob', reduction='none')(z, y)
    assert none.tolist() == pytest.approx([0.5, 1.8807970780, 0.7310585786], abs=1e-9)
    # s = 2q - 1: 1 - 0, 1 + 0.761594, 1 + 0.462117
    none = HingeLoss(score='tanh', reduction='none')(z, y)
    assert none.tolist() == pytest.approx([1.0, 1.7615941560, 1.4621171573], abs=1e-9)
    # gamma = 3, prob: 0.5 ** 3 / 7
    fhl = FocalHingeLoss(gamma=3, reduction='none')(z, y)
    assert fhl[0].item() == pytest.approx(0.125 / 7)
    # BCE at z = 0 is log 2 for either label; W1 = 2 doubles it for the positive.
    wbce = WeightedBCELoss(class_weight=[0.5, 2.0], reduction='none')(z, y)
    assert wbce[0].item() == pytest.approx(2 * math.log(2))
    assert wbce[1].item() == pytest.approx(0.5 * (2 + math.log1p(math.exp(-2))))
    # focal at z = 0, positive: alpha * 0.5 ** gamma * log 2
    focal = BinaryFocalLoss(gamma=2, alpha=0.25, reduction='none')(z, y)
    assert focal[0].item() == pytest.approx(0.25 * 0.25 * math.log(2))


@pytest.mark.parametrize('score', SCORES)
@pytest.mark.parametrize('gamma', [0.5, 1.0, 2.0, 3.0])
def test_focal_hinge_matches_formula(score, gamma):
    z, y = _inputs()
    got = FocalHingeLoss(gamma=gamma, score=score, reduction='none')(z, y)
    want = [ref_fhl(a, b, score, gamma) for a, b in zip(Z, Y)]
    assert got.tolist() == pytest.approx(want, rel=1e-10, abs=1e-12)
    mean = FocalHingeLoss(gamma=gamma, score=score)(z, y)
    assert mean.item() == pytest.approx(sum(want) / len(want), rel=1e-10)


@pytest.mark.parametrize('score', SCORES)
def test_hinge_matches_formula(score):
    z, y = _inputs()
    got = HingeLoss(score=score, reduction='none')(z, y)
    want = [ref_hinge(a, b, score) for a, b in zip(Z, Y)]
    assert got.tolist() == pytest.approx(want, rel=1e-10, abs=1e-12)
    if score == 'logit':  # the SVM hinge is exactly 0 beyond the margin
        assert (got == 0).sum() >= 2
    else:  # the sigmoid scores never reach the margin
        assert (got > 0).all()


@pytest.mark.parametrize('w', [None, [1.0, 1.0], [0.7, 1.8], [2.5, 0.4]])
def test_weighted_bce_matches_formula(w):
    z, y = _inputs()
    got = WeightedBCELoss(class_weight=w, reduction='none')(z, y)
    w0, w1 = (1.0, 1.0) if w is None else w
    want = [ref_wbce(a, b, w0, w1) for a, b in zip(Z, Y)]
    assert got.tolist() == pytest.approx(want, rel=1e-10)
    if w is None or w == [1.0, 1.0]:
        torch.testing.assert_close(
            got, F.binary_cross_entropy_with_logits(z, y.double(), reduction='none'))


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (0.5, 0.6), (1.0, None), (3.0, 0.9)])
def test_binary_focal_matches_formula(gamma, alpha):
    z, y = _inputs()
    got = BinaryFocalLoss(gamma=gamma, alpha=alpha, reduction='none')(z, y)
    want = [ref_focal(a, b, gamma, alpha) for a, b in zip(Z, Y)]
    assert got.tolist() == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize('score', SCORES)
def test_focal_hinge_gamma_one_is_hinge(score):
    z = torch.randn(50, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    y = torch.randint(0, 2, (50, ), generator=torch.Generator().manual_seed(1))
    for reduction in ('none', 'mean', 'sum'):
        torch.testing.assert_close(
            FocalHingeLoss(gamma=1.0, score=score, reduction=reduction)(z, y),
            HingeLoss(score=score, reduction=reduction)(z, y), rtol=0, atol=0)


@pytest.mark.parametrize('alpha', [0.25, 0.5, 0.8])
def test_binary_focal_gamma_zero_is_class_balanced_bce(alpha):
    z = torch.randn(50, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    y = torch.randint(0, 2, (50, ), generator=torch.Generator().manual_seed(1))
    want = [ref_wbce(a, b, 1 - alpha, alpha) for a, b in zip(z.tolist(), y.tolist())]
    got = BinaryFocalLoss(gamma=0.0, alpha=alpha, reduction='none')(z, y)
    assert got.tolist() == pytest.approx(want, rel=1e-10)
    # and without alpha the plain BCE
    torch.testing.assert_close(
        BinaryFocalLoss(gamma=0.0, alpha=None)(z, y),
        F.binary_cross_entropy_with_logits(z, y.double()))


# ------------------------------------------------------------------------- gradients

ALL_LOSSES = {
    'fhl-prob-2': lambda: FocalHingeLoss(gamma=2.0, score='prob'),
    'fhl-tanh-0.5': lambda: FocalHingeLoss(gamma=0.5, score='tanh'),
    'fhl-logit-3': lambda: FocalHingeLoss(gamma=3.0, score='logit'),
    'fhl-logit-0.5': lambda: FocalHingeLoss(gamma=0.5, score='logit'),
    'hinge-prob': lambda: HingeLoss(score='prob'),
    'hinge-tanh': lambda: HingeLoss(score='tanh'),
    'hinge-logit': lambda: HingeLoss(score='logit'),
    'wbce': lambda: WeightedBCELoss(class_weight=[0.6, 2.2]),
    'bce': lambda: WeightedBCELoss(),
    'focal': lambda: BinaryFocalLoss(gamma=2.0, alpha=0.25),
    'focal-0.5': lambda: BinaryFocalLoss(gamma=0.5, alpha=None),
}


@pytest.mark.parametrize('name', list(ALL_LOSSES))
def test_gradcheck_float64(name):
    loss = ALL_LOSSES[name]()
    z = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(Y)
    w = torch.tensor([1.0, 0.5, 2.0, 1.5, 0.3, 1.0, 0.8], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z, ))
    assert torch.autograd.gradcheck(lambda x: loss(x, y, w, avg_factor=4.0), (z, ))
    assert torch.autograd.gradcheck(lambda x: loss(x, y, reduction_override='none'), (z, ))


def test_gradient_direction_logit_hinge():
    """d/dz of max(0, 1 - y' z) is -y' inside the margin and 0 beyond it."""
    z = torch.tensor([0.5, 0.5, 3.0, -3.0], requires_grad=True)
    y = torch.tensor([1, 0, 1, 0])
    HingeLoss(score='logit', reduction='sum')(z, y).backward()
    assert z.grad.tolist() == [-1.0, 1.0, 0.0, 0.0]


# ------------------------------------------------------------- reduction and weights


@pytest.mark.parametrize('name', list(ALL_LOSSES))
def test_reduction_weight_avg_factor_follow_mmdet(name):
    loss = ALL_LOSSES[name]()
    z, y = _inputs()
    w = torch.tensor([1.0, 0.5, 2.0, 1.5, 0.0, 1.0, 0.8], dtype=torch.float64)
    elem = loss(z, y, reduction_override='none')
    assert elem.shape == (7, )
    assert loss(z, y).item() == pytest.approx(elem.mean().item())
    assert loss(z, y, reduction_override='sum').item() == pytest.approx(elem.sum().item())
    torch.testing.assert_close(loss(z, y, w, reduction_override='none'), elem * w)
    for reduction, avg_factor in [('mean', None), ('sum', None), ('mean', 3.5),
                                  ('none', 3.5), ('none', None)]:
        want = weight_reduce_loss(elem, w, reduction, avg_factor)
        got = loss(z, y, w, avg_factor=avg_factor, reduction_override=reduction)
        torch.testing.assert_close(got, want)
    # avg_factor divides the weighted sum (mmdet semantics), not the weighted mean
    assert loss(z, y, w, avg_factor=3.5).item() == pytest.approx(
        (elem * w).sum().item() / 3.5, rel=1e-6)
    with pytest.raises(ValueError, match='avg_factor can not be used with reduction="sum"'):
        loss(z, y, avg_factor=2.0, reduction_override='sum')


def test_loss_weight_and_column_shapes():
    z, y = _inputs()
    base = FocalHingeLoss()(z, y)
    assert FocalHingeLoss(loss_weight=2.5)(z, y).item() == pytest.approx(2.5 * base.item())
    # (N, 1) logits, labels and weights as mmdet dense heads pass them
    z1, y1 = z.view(-1, 1), y.view(-1, 1)
    w1 = torch.ones(7, 1, dtype=torch.float64)
    assert FocalHingeLoss()(z1, y1, w1).item() == pytest.approx(base.item())
    none = FocalHingeLoss(reduction='none')(z1, y1)
    assert none.shape == (7, 1)
    torch.testing.assert_close(none.view(-1), FocalHingeLoss(reduction='none')(z, y))


def test_label_dtypes_and_pos_label():
    z, y = _inputs()
    loss = BinaryFocalLoss()
    ref = loss(z, y)
    for labels in (y.float(), y.bool(), y.to(torch.int32), y.tolist()):
        assert loss(z, labels).item() == pytest.approx(ref.item())
    # pos_label=0 (mmdet single-class heads: 0 = foreground) flips which label is positive
    for cls, kwargs in [(BinaryFocalLoss, dict(alpha=0.3)), (FocalHingeLoss, dict()),
                        (HingeLoss, dict(score='logit'))]:
        assert cls(pos_label=0, **kwargs)(z, y).item() == pytest.approx(
            cls(**kwargs)(z, 1 - y).item())
    # class_weight stays indexed by the label value in the data
    assert WeightedBCELoss(class_weight=[0.4, 1.7], pos_label=0)(z, y).item() == pytest.approx(
        WeightedBCELoss(class_weight=[1.7, 0.4])(z, 1 - y).item())
    assert WeightedBCELoss(class_weight=[0.4, 1.7], pos_label=0)(z, y).item() != pytest.approx(
        WeightedBCELoss(class_weight=[0.4, 1.7])(z, 1 - y).item())


# --------------------------------------------------------------- numerical stability


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize('name', list(ALL_LOSSES))
def test_extreme_logits_finite(name, dtype):
    loss = ALL_LOSSES[name]()
    z = torch.tensor([1e4, -1e4, 1e4, -1e4, 0.0], dtype=dtype, requires_grad=True)
    y = torch.tensor([1, 0, 0, 1, 1])
    out = loss(z, y)
    assert torch.isfinite(out).all(), out
    out.backward()
    assert z.grad is not None and not torch.isnan(z.grad).any(), z.grad
    # The gradient is finite wherever the exact one fits the input dtype: float16 cannot hold
    # the 8.6e6 gradient of a confidently wrong logit under the logit-mode FHL with gamma=3
    # (AMP's GradScaler skips such steps); everything else is finite.
    z32 = z.detach().float().requires_grad_(True)
    loss(z32, y).backward()
    assert torch.isfinite(z32.grad).all()
    fits = z32.grad.abs() < torch.finfo(dtype).max
    assert torch.isfinite(z.grad.float()[fits]).all(), z.grad
    if dtype != torch.float16:
        assert fits.all()
    elem = loss(z.detach(), y, reduction_override='none')
    assert torch.isfinite(elem).all()
    # correct and confident: (near) zero loss and zero gradient
    assert elem[0].item() == pytest.approx(0.0, abs=1e-6)
    if not (isinstance(loss, (HingeLoss, FocalHingeLoss)) and loss.score == 'prob'):
        assert elem[1].item() == pytest.approx(0.0, abs=1e-6)  # 'prob' keeps 1 + q >= 1
    assert z.grad[0].item() == 0.0


def test_extreme_logits_values():
    """Wrong and confident: BCE is |z| (no log(0) = inf), logit hinge 1 + |z|."""
    z = torch.tensor([1e4, -1e4])
    y = torch.tensor([0, 1])
    assert WeightedBCELoss(reduction='none')(z, y).tolist() == [1e4, 1e4]
    assert HingeLoss(score='logit', reduction='none')(z, y).tolist() == [1e4 + 1, 1e4 + 1]
    assert HingeLoss(score='tanh', reduction='none')(z, y).tolist() == [2.0, 2.0]
    assert HingeLoss(score='prob', reduction='none')(z, y).tolist() == [2.0, 1.0]
    focal = BinaryFocalLoss(gamma=2, alpha=0.25, reduction='none')(z, y)
    assert focal.tolist() == pytest.approx([0.75 * 1e4, 0.25 * 1e4])


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('name', list(ALL_LOSSES))
def test_half_precision_inputs(name, dtype):
    loss = ALL_LOSSES[name]()
    z = (torch.randn(64, generator=torch.Generator().manual_seed(0)) * 4).to(dtype)
    y = torch.randint(0, 2, (64, ), generator=torch.Generator().manual_seed(1))
    z.requires_grad_(True)
    out = loss(z, y)
    assert out.dtype == torch.float32  # computed and returned in float32
    ref = loss(z.detach().float(), y)  # the same (rounded) logits in float32
    torch.testing.assert_close(out, ref)
    out.backward()
    assert z.grad.dtype == dtype and torch.isfinite(z.grad.float()).all()
    assert loss(z.detach(), y, reduction_override='none').dtype == torch.float32
    # float32 and float64 keep their dtype
    assert loss(z.detach().double(), y).dtype == torch.float64


# ------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize('cls,kwargs,match', [
    (FocalHingeLoss, dict(gamma=0), r'gamma must be > 0'),
    (FocalHingeLoss, dict(gamma=-1.5), r'gamma must be > 0'),
    (FocalHingeLoss, dict(gamma=float('nan')), r'gamma must be a finite real number'),
    (FocalHingeLoss, dict(score='sigmoid'), r"score must be one of \('prob', 'tanh', 'logit'\)"),
    (HingeLoss, dict(score='z'), r'score must be one of'),
    (BinaryFocalLoss, dict(alpha=1.0), r'alpha must be < 1'),
    (BinaryFocalLoss, dict(gamma=-0.1), r'gamma must be >= 0'),
    (WeightedBCELoss, dict(class_weight=[1.0]), r'class_weight must be two numbers'),
    (WeightedBCELoss, dict(class_weight=[1.0, 2.0, 3.0]), r'class_weight must be two numbers'),
    (WeightedBCELoss, dict(class_weight=[1.0, -2.0]), r'class_weight\[1\] must be > 0'),
    (WeightedBCELoss, dict(class_weight=[0.0, 2.0]), r'class_weight\[0\] must be > 0'),
    (WeightedBCELoss, dict(class_weight='balanced'), r"class_weight must be 'auto'"),
    (HingeLoss, dict(reduction='avg'), r'reduction must be one of'),
    (HingeLoss, dict(loss_weight=-1), r'loss_weight must be >= 0'),
    (HingeLoss, dict(use_sigmoid=False), r'use_sigmoid must be True'),
    (HingeLoss, dict(pos_label=2), r'pos_label must be 0 or 1'),
])
def test_bad_arguments_fail_at_build(cls, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**kwargs)
    # and the same through the registry, as a config builds them
    with pytest.raises(Exception, match=match):
        CLS_MODELS.build(dict(type=cls.__name__, **kwargs))


@pytest.mark.parametrize('name', list(ALL_LOSSES))
def test_bad_inputs_fail_with_clear_message(name):
    loss = ALL_LOSSES[name]()
    z, y = _inputs()
    with pytest.raises(ValueError, match=r'labels must be 0 or 1.*got values \[2\]'):
        loss(z, torch.tensor([0, 1, 2, 0, 1, 0, 0]))
    with pytest.raises(ValueError, match=r'labels must be 0 or 1.*\[0\.5\]'):
        loss(z, torch.tensor([0, 1, 0.5, 0, 1, 0, 0]))
    with pytest.raises(ValueError, match=r'labels must be 0 or 1.*\[-1\]'):
        loss(z, torch.tensor([0, 1, -1, 0, 1, 0, 0]))
    with pytest.raises(ValueError, match=r'pred must hold one logit per sample.*\(7, 2\)'):
        loss(torch.zeros(7, 2), y)
    with pytest.raises(ValueError, match=r'pred must hold one logit per sample'):
        loss(torch.zeros(7, 1, 1), y)
    with pytest.raises(TypeError, match=r'floating-point logits'):
        loss(torch.zeros(7, dtype=torch.long), y)
    with pytest.raises(ValueError, match=r'target \(labels\) must have shape \(7,\)'):
        loss(z, y[:5])
    with pytest.raises(ValueError, match=r'weight has 6 elements .* 7 logits'):
        loss(z, y, torch.ones(6))
    with pytest.raises(ValueError, match=r'weight must have shape \(7,\) or \(7, 1\)'):
        loss(z, y, torch.ones(1, 7))
    with pytest.raises(ValueError, match=r'reduction_override must be one of'):
        loss(z, y, reduction_override='avg')


def test_auto_class_weight_needs_hook():
    loss = WeightedBCELoss(class_weight='auto')
    assert loss.class_weight == 'auto' and loss.weights is None
    z, y = _inputs()
    with pytest.raises(RuntimeError,
                       match=r"no class weights yet: add dict\(type='ClassWeightHook'\)"):
        loss(z, y)
    loss.set_class_weight([0.8, 1.4])
    assert loss.weights == (0.8, 1.4)
    torch.testing.assert_close(loss(z, y), WeightedBCELoss(class_weight=[0.8, 1.4])(z, y))
    with pytest.raises(ValueError, match='two numbers'):
        loss.set_class_weight([0.3, 0.3, 0.4])
    with pytest.raises(RuntimeError, match="for losses built with class_weight='auto'"):
        WeightedBCELoss(class_weight=[1.0, 2.0]).set_class_weight([1.0, 1.0])


# ------------------------------------------------------------------------ registries


@pytest.mark.parametrize('registry', [CLS_MODELS, DET_MODELS], ids=['mmpretrain', 'mmdet'])
@pytest.mark.parametrize('cfg,cls', [
    (dict(type='FocalHingeLoss', gamma=2.0, score='tanh'), FocalHingeLoss),
    (dict(type='HingeLoss', score='logit'), HingeLoss),
    (dict(type='WeightedBCELoss', class_weight='auto'), WeightedBCELoss),
    (dict(type='BinaryFocalLoss', gamma=2.0, alpha=0.25, use_sigmoid=True), BinaryFocalLoss),
])
def test_built_from_both_registries(registry, cfg, cls):
    loss = registry.build(cfg)
    assert type(loss) is cls and loss.use_sigmoid


def test_mmdet_dense_head_call_convention():
    """``loss_cls(cls_score, labels, label_weights, avg_factor=...)`` with (N, 1) scores."""
    loss = DET_MODELS.build(dict(type='FocalHingeLoss', pos_label=0, loss_weight=1.0))
    cls_score = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0])  # 0 = the single foreground class, 1 = background
    label_weights = torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    got = loss(cls_score, labels, label_weights, avg_factor=2.0)
    elem = [ref_fhl(z, 1 - lab, 'prob', 2.0) for z, lab in zip([2.0, -1.0, 0.5, -3.0],
                                                                 [0, 1, 1, 0])]
    assert got.item() == pytest.approx((elem[0] + elem[1] + elem[3]) / 2.0, rel=1e-6)


def test_binary_focal_equals_mmdet_sigmoid_focal_single_class():
    """mmdet's FocalLoss with one sigmoid class (label 0 = foreground, 1 = background) is our
    BinaryFocalLoss with pos_label=0: same values with weights and avg_factor."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(40, 1, generator=g) * 3
    y = torch.randint(0, 2, (40, ), generator=g)
    w = torch.rand(40, generator=g)
    ref = DET_MODELS.build(dict(type='FocalLoss', _scope_='mmdet', use_sigmoid=True, gamma=2.0,
                                alpha=0.25))
    ours = DET_MODELS.build(dict(type='BinaryFocalLoss', _scope_='mmdet', gamma=2.0,
                                 alpha=0.25, pos_label=0))
    torch.testing.assert_close(ours(z, y, w, avg_factor=7.0), ref(z, y, w, avg_factor=7.0))
    torch.testing.assert_close(ours(z, y), ref(z, y))


@pytest.mark.parametrize('loss_cfg', [
    dict(type='FocalHingeLoss', gamma=2.0),
    dict(type='BinaryFocalLoss', gamma=2.0, alpha=0.25),
    dict(type='WeightedBCELoss', class_weight=[1.0, 0.2]),
])
def test_in_mmdet_retina_head(loss_cfg):
    """An mmdet dense head with one sigmoid class takes the losses from its config."""
    from mmengine.structures import InstanceData
    train_cfg = dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                      ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False)
    torch.manual_seed(0)
    head = DET_MODELS.build(
        dict(type='RetinaHead', _scope_='mmdet', num_classes=1, in_channels=8, feat_channels=8,
             stacked_convs=1,
             anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                   scales_per_octave=1, ratios=[1.0], strides=[8, 16]),
             bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                             target_stds=[1.0] * 4),
             loss_cls=dict(use_sigmoid=True, pos_label=0, **loss_cfg),
             loss_bbox=dict(type='L1Loss', loss_weight=1.0), train_cfg=train_cfg))
    assert head.cls_out_channels == 1  # use_sigmoid=True: one sigmoid output, no softmax bg
    cls_scores, bbox_preds = head([torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)])
    gts = [InstanceData(bboxes=torch.tensor([[10., 10., 40., 40.]]), labels=torch.tensor([0]))
           for _ in range(2)]
    metas = [dict(img_shape=(64, 64), pad_shape=(64, 64), scale_factor=1)] * 2
    losses = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    total = sum(sum(v) for v in losses.values())
    assert torch.isfinite(total) and all(v > 0 for v in losses['loss_cls'])
    total.backward()
    assert torch.isfinite(head.retina_cls.weight.grad).all()
    assert head.retina_cls.weight.grad.abs().sum() > 0
