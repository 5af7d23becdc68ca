"""Tests of BinaryClsHead: shapes, loss wiring, predictions with mmpretrain's metrics, frozen
backbone, and a tiny classifier trained with each of the five binary losses."""
import copy

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

import mmbloodcell.models  # noqa: F401  (registers the head and the losses)
from mmbloodcell.models.heads import BinaryClsHead
from mmbloodcell.models.losses import FocalHingeLoss
from mmbloodcell.registry import CLS_METRICS, CLS_MODELS


def _samples(labels):
    return [DataSample().set_gt_label(int(v)) for v in labels]


def test_registered_and_layers():
    head = CLS_MODELS.build(dict(type='BinaryClsHead', in_channels=16))
    assert isinstance(head, BinaryClsHead)
    assert isinstance(head.loss_module, FocalHingeLoss)  # the study's loss by default
    assert [type(m).__name__ for m in head.hidden] == ['Linear', 'ReLU']
    assert head.hidden[0].out_features == 256 and head.fc.in_features == 256
    assert head.fc.out_features == 1
    # the EfficientNet variant: 320 hidden units, dropout
    head = BinaryClsHead(in_channels=16, hidden_channels=320, dropout=0.3)
    assert [type(m).__name__ for m in head.hidden] == ['Linear', 'ReLU', 'Dropout']
    assert head.hidden[0].out_features == 320 and head.hidden[2].p == 0.3
    # a single linear layer
    head = BinaryClsHead(in_channels=16, hidden_channels=None)
    assert len(head.hidden) == 0 and head.fc.in_features == 16


def test_init_weights_xavier_zero_bias():
    head = BinaryClsHead(in_channels=64, hidden_channels=32)
    head.init_weights()
    assert torch.count_nonzero(head.fc.bias) == 0 and torch.count_nonzero(head.hidden[0].bias) == 0
    bound = (6 / (64 + 32))**0.5  # Xavier uniform
    w = head.hidden[0].weight
    assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound


@pytest.mark.parametrize('feats', [
    (torch.randn(4, 16), ),
    (torch.randn(4, 8), torch.randn(4, 16)),
    torch.randn(4, 16),
    (torch.randn(4, 16, 5, 7), ),
])
def test_forward_shapes(feats):
    head = BinaryClsHead(in_channels=16, hidden_channels=8)
    assert head(feats).shape == (4, 1)
    assert head.pre_logits(feats).shape == (4, 8)


def test_feature_map_is_average_pooled():
    head = BinaryClsHead(in_channels=16, hidden_channels=8)
    fmap = torch.randn(3, 16, 4, 6)
    torch.testing.assert_close(head((fmap, )), head((fmap.mean(dim=(2, 3)), )))


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match='threshold must be in'):
        BinaryClsHead(in_channels=16, threshold=1.0)
    with pytest.raises(ValueError, match='hidden_channels must be a positive int or None'):
        BinaryClsHead(in_channels=16, hidden_channels=0)
    with pytest.raises(ValueError, match='dropout must be in'):
        BinaryClsHead(in_channels=16, dropout=1.0)
    with pytest.raises(ValueError, match='gamma must be > 0'):  # the loss is checked at build
        BinaryClsHead(in_channels=16, loss=dict(type='FocalHingeLoss', gamma=0))
    head = BinaryClsHead(in_channels=16)
    with pytest.raises(ValueError, match=r'in_channels=16\) got features with 12 channels'):
        head((torch.randn(2, 12), ))
    samples = _samples([0, 1])
    for s in samples:
        s.set_gt_score(torch.tensor([0.3, 0.7]))
    with pytest.raises(ValueError, match='Mixup / CutMix'):
        head.loss((torch.randn(2, 16), ), samples)


def test_loss_gets_flat_logits_and_labels():
    head = BinaryClsHead(in_channels=16, hidden_channels=8,
                         loss=dict(type='BinaryFocalLoss', gamma=2.0, alpha=0.25))
    feats = (torch.randn(5, 16), )
    labels = [0, 1, 1, 0, 1]
    losses = head.loss(feats, _samples(labels))
    assert set(losses) == {'loss'}
    logits = head(feats).view(-1)
    want = head.loss_module(logits, torch.tensor(labels))
    torch.testing.assert_close(losses['loss'], want)
    # per-sample weights are passed through to the loss, as mmpretrain's ClsHead does
    w = torch.tensor([1.0, 0.0, 2.0, 1.0, 1.0])
    torch.testing.assert_close(
        head.loss(feats, _samples(labels), weight=w)['loss'],
        head.loss_module(logits, torch.tensor(labels), w, avg_factor=5))


def _head_with_logits(logits, threshold=0.5):
    """A single-linear head whose logit is the first input channel."""
    head = BinaryClsHead(in_channels=2, hidden_channels=None, threshold=threshold)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1.0, 0.0]]))
        head.fc.bias.zero_()
    feats = torch.stack([torch.tensor(logits), torch.zeros(len(logits))], dim=1)
    return head, (feats, )


def test_predict_scores_and_labels():
    logits = [-2.0, -0.1, 0.1, 3.0]
    head, feats = _head_with_logits(logits)
    preds = head.predict(feats)
    p = torch.sigmoid(torch.tensor(logits))
    for ds, prob in zip(preds, p):
        assert ds.pred_score.shape == (2, )
        torch.testing.assert_close(ds.pred_score, torch.stack([1 - prob, prob]))
        torch.testing.assert_close(ds.pred_prob, prob)
    assert [int(ds.pred_label) for ds in preds] == [0, 0, 1, 1]
    # data samples given: the predictions are added to them
    given = _samples([0, 1, 0, 1])
    out = head.predict(feats, given)
    assert out[1] is given[1] and int(out[1].gt_label) == 1 and int(out[1].pred_label) == 0


def test_threshold_decides_labels_and_metrics_agree():
    logits = [-2.0, 0.2, 0.6, 1.0, 3.0]  # p = 0.119, 0.550, 0.646, 0.731, 0.953
    head, feats = _head_with_logits(logits, threshold=0.7)
    preds = head.predict(feats)
    assert [int(ds.pred_label) for ds in preds] == [0, 0, 0, 1, 1]
    # the arg-max of pred_score (what mmpretrain's metrics use) matches pred_label
    assert [int(ds.pred_score.argmax()) for ds in preds] == [0, 0, 0, 1, 1]
    for ds in preds:
        assert ds.pred_score.sum().item() == pytest.approx(1.0)
    scores = torch.stack([ds.pred_score[1] for ds in preds])
    assert (scores.diff() > 0).all()  # ranking of p preserved
    torch.testing.assert_close(preds[3].pred_prob, torch.sigmoid(torch.tensor(1.0)))


@pytest.mark.parametrize('threshold', [0.5, 0.7])
def test_mmpretrain_metrics_on_predictions(threshold):
    logits = [-2.0, 0.2, 0.6, 1.0, 3.0, -0.5, 2.0, -1.0]
    gt = [0, 1, 0, 1, 1, 0, 0, 1]
    head, feats = _head_with_logits(logits, threshold=threshold)
    preds = head.predict(feats, _samples(gt))
    pred = [int(ds.pred_label) for ds in preds]
    want_pred = [int(torch.sigmoid(torch.tensor(z)) > threshold) for z in logits]
    assert pred == want_pred

    accuracy = CLS_METRICS.build(dict(type='Accuracy', topk=(1, )))
    f1 = CLS_METRICS.build(dict(type='SingleLabelMetric', items=('precision', 'recall',
                                                                 'f1-score'), average=None))
    batch = [ds.to_dict() for ds in preds]
    accuracy.process(None, batch)
    f1.process(None, batch)
    acc = accuracy.evaluate(len(batch))
    prf = f1.evaluate(len(batch))

    tp = sum(p == 1 and g == 1 for p, g in zip(pred, gt))
    tn = sum(p == 0 and g == 0 for p, g in zip(pred, gt))
    fp = sum(p == 1 and g == 0 for p, g in zip(pred, gt))
    fn = sum(p == 0 and g == 1 for p, g in zip(pred, gt))
    assert acc['accuracy/top1'] == pytest.approx(100 * (tp + tn) / len(gt))
    assert prf['single-label/precision_classwise'][1] == pytest.approx(100 * tp / (tp + fp))
    assert prf['single-label/recall_classwise'][1] == pytest.approx(100 * tp / (tp + fn))
    assert prf['single-label/recall_classwise'][0] == pytest.approx(100 * tn / (tn + fp))


# ------------------------------------------------------------ classifier-level tests


def _classifier(loss, freeze_backbone=False, norm_eval=False, seed=0):
    torch.manual_seed(seed)
    model = CLS_MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                          norm_eval=norm_eval, init_cfg=None),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='BinaryClsHead', in_channels=64, hidden_channels=16,
                      freeze_backbone=freeze_backbone, loss=loss)))
    model.init_weights()
    return model


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = [0, 0, 0, 0, 0, 1, 1, 1][:n]
    return dict(inputs=torch.rand(n, 3, 32, 32, generator=g) * 255, data_samples=_samples(labels))


def test_freeze_backbone_keeps_backbone_weights():
    model = _classifier(dict(type='FocalHingeLoss'), freeze_backbone=True, norm_eval=True)
    model.train()
    backbone0 = copy.deepcopy(model.backbone.state_dict())
    head0 = copy.deepcopy(model.head.state_dict())
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9,
                                         weight_decay=0.1))
    for _ in range(2):
        log = model.train_step(_batch(), optim)
    assert torch.isfinite(log['loss'])
    for k, v in model.backbone.state_dict().items():  # weights and BN statistics
        assert torch.equal(v, backbone0[k]), k
    assert all(p.grad is None for p in model.backbone.parameters())
    assert any(not torch.equal(v, head0[k]) for k, v in model.head.state_dict().items())

    # without the option the same step does move the backbone
    model = _classifier(dict(type='FocalHingeLoss'), freeze_backbone=False, norm_eval=True)
    model.train()
    backbone0 = copy.deepcopy(model.backbone.state_dict())
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9))
    model.train_step(_batch(), optim)
    assert any(not torch.equal(v, backbone0[k]) for k, v in model.backbone.state_dict().items())


# One config line -- the head's ``loss`` -- switches between the study's five losses.
FIVE_LOSSES = {
    'bce': dict(type='WeightedBCELoss'),
    'weighted_bce': dict(type='WeightedBCELoss', class_weight=[0.8, 1.33]),
    'focal': dict(type='BinaryFocalLoss', gamma=2.0, alpha=0.25),
    'hinge': dict(type='HingeLoss'),
    'focal_hinge': dict(type='FocalHingeLoss', gamma=2.0),
    'focal_hinge_logit': dict(type='FocalHingeLoss', gamma=2.0, score='logit'),
}


@pytest.mark.parametrize('name', list(FIVE_LOSSES))
def test_classifier_trains_with_each_loss(name):
    model = _classifier(FIVE_LOSSES[name])
    model.train()
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=3e-3))
    data = _batch()
    losses = []
    for _ in range(12):
        log = model.train_step(data, optim)
        losses.append(log['loss'].item())
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert sum(losses[-3:]) / 3 < 0.9 * losses[0], losses
    # the trained model predicts the fixed batch through the same classifier API
    model.eval()
    preds = model.val_step(data)
    assert len(preds) == 8 and preds[0].pred_score.shape == (2, )
