"""Fp32HungarianAssigner: mmdet's Hungarian matching, also with half-precision predictions."""
import pytest
import torch
from mmdet.registry import TASK_UTILS
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import mmbloodcell  # noqa: F401


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """mmdet's registries, whatever scope an earlier test left (the suite mixes libraries)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield

COSTS = [dict(type='FocalLossCost', weight=2.0),
         dict(type='BBoxL1Cost', weight=5.0, box_format='xyxy'),
         dict(type='IoUCost', iou_mode='giou', weight=2.0)]
META = dict(img_shape=(96, 128))


def _case(seed=0, num_preds=20, num_gts=6):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_preds, 2, generator=gen) * 80
    boxes = torch.cat([xy, xy + 8 + torch.rand(num_preds, 2, generator=gen) * 30], 1)
    scores = torch.randn(num_preds, 3, generator=gen) * 3
    scores[:4, 1] = 12.0  # saturated: sigmoid is exactly 1 in float16
    gxy = torch.rand(num_gts, 2, generator=gen) * 80
    gt = InstanceData(bboxes=torch.cat([gxy, gxy + 10 + torch.rand(num_gts, 2, generator=gen)
                                        * 30], 1),
                      labels=torch.randint(0, 3, (num_gts,), generator=gen))
    return InstanceData(scores=scores, bboxes=boxes), gt


def _build(type_):
    return TASK_UTILS.build(dict(type=type_, match_costs=COSTS))


def test_float32_same_as_mmdet():
    pred, gt = _case()
    a = _build('HungarianAssigner').assign(pred, gt, img_meta=META)
    b = _build('Fp32HungarianAssigner').assign(pred, gt, img_meta=META)
    assert torch.equal(a.gt_inds, b.gt_inds) and torch.equal(a.labels, b.labels)
    assert (b.gt_inds > 0).sum() == len(gt)


def test_float16_predictions_match_like_float32():
    pred, gt = _case(seed=1)
    half = InstanceData(scores=pred.scores.half(), bboxes=pred.bboxes.half())
    with pytest.raises(ValueError, match='invalid numeric entries'):
        _build('HungarianAssigner').assign(half, gt, img_meta=META)  # mmdet's failure
    res = _build('Fp32HungarianAssigner').assign(half, gt, img_meta=META)
    ref = _build('HungarianAssigner').assign(
        InstanceData(scores=half.scores.float(), bboxes=half.bboxes.float()), gt, img_meta=META)
    assert torch.equal(res.gt_inds, ref.gt_inds)
    assert half.scores.dtype == torch.float16  # the caller's predictions are left as they were


def test_diverged_predictions_are_named():
    pred, gt = _case(seed=2)
    pred.bboxes[3, 0] = float('nan')
    with pytest.raises(ValueError, match='model diverged'):
        _build('Fp32HungarianAssigner').assign(pred, gt, img_meta=META)
