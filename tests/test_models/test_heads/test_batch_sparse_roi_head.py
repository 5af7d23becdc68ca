"""BatchHungarianAssigner / BatchSparseRoIHead give mmdet's Sparse R-CNN assignment, losses and
gradients (per-image HungarianAssigner + SparseRoIHead + DIIHead targets)."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import mmbloodcell  # noqa: F401
from mmbloodcell.utils import count_aten_ops

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG = osp.join(ROOT, 'configs', 'sparse_rcnn',
                  'sparse-rcnn_cspnext-t_fpn_100p_640_240s-budget_bccd.py')
COSTS = [dict(type='FocalLossCost', weight=2.0),
         dict(type='BBoxL1Cost', weight=5.0, box_format='xyxy'),
         dict(type='IoUCost', iou_mode='giou', weight=2.0)]


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """mmdet's registries, whatever scope an earlier test left (the suite mixes libraries)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _gt(gen, num, size=(96, 128), box_type=False):
    h, w = size
    xy = torch.rand(num, 2, generator=gen) * torch.tensor([w - 30., h - 30.])
    boxes = torch.cat([xy, xy + 6 + torch.rand(num, 2, generator=gen) * 24], 1)
    return InstanceData(bboxes=HorizontalBoxes(boxes) if box_type else boxes,
                        labels=torch.randint(0, 3, (num,), generator=gen))


def _preds(gen, num_imgs, num_preds):
    xy = torch.rand(num_imgs, num_preds, 2, generator=gen) * 90
    boxes = torch.cat([xy, xy + 4 + torch.rand(num_imgs, num_preds, 2, generator=gen) * 40], -1)
    return boxes, torch.randn(num_imgs, num_preds, 3, generator=gen) * 3


@pytest.mark.parametrize('counts', [(5, 0, 9, 1), (3, 3), (0, 0), (12,)])
def test_batch_assign_equals_per_image(counts):
    gen = torch.Generator().manual_seed(sum(counts) + len(counts))
    boxes, scores = _preds(gen, len(counts), 20)
    gts = [_gt(gen, n, box_type=i % 2 == 1) for i, n in enumerate(counts)]
    metas = [dict(img_shape=(96, 128))] * len(counts)
    stock = TASK_UTILS.build(dict(type='HungarianAssigner', match_costs=COSTS))
    batch = TASK_UTILS.build(dict(type='BatchHungarianAssigner', match_costs=COSTS))
    got = batch.batch_assign(boxes, scores, gts, metas)
    assert got.shape == (len(counts), 20) and got.dtype == torch.long
    for i in range(len(counts)):
        gt = InstanceData(bboxes=torch.as_tensor(gts[i].bboxes.tensor if hasattr(
            gts[i].bboxes, 'tensor') else gts[i].bboxes), labels=gts[i].labels)
        want = stock.assign(InstanceData(bboxes=boxes[i], scores=scores[i]), gt,
                            img_meta=metas[i]).gt_inds
        assert torch.equal(got[i], want), i
        assert (got[i] > 0).sum() == counts[i]


def test_batch_assign_costs_are_the_per_image_blocks():
    gen = torch.Generator().manual_seed(3)
    boxes, scores = _preds(gen, 3, 15)
    gts = [_gt(gen, n) for n in (4, 7, 2)]
    meta = dict(img_shape=(96, 128))
    batch = TASK_UTILS.build(dict(type='BatchHungarianAssigner', match_costs=COSTS))
    cost = batch._batch_cost(boxes, scores, gts, meta, [4, 7, 2])
    assert cost.shape == (3, 15, 7)
    for i, gt in enumerate(gts):
        pred = InstanceData(bboxes=boxes[i], scores=scores[i])
        want = torch.stack([c(pred_instances=pred, gt_instances=gt, img_meta=meta)
                            for c in batch.match_costs]).sum(0)
        torch.testing.assert_close(cost[i, :, :len(gt)], want, rtol=0, atol=1e-6)
        assert (cost[i, :, len(gt):] == 0).all()


def test_batch_assign_image_sizes_differ_falls_back_per_image():
    gen = torch.Generator().manual_seed(4)
    boxes, scores = _preds(gen, 2, 12)
    gts = [_gt(gen, 4), _gt(gen, 5)]
    metas = [dict(img_shape=(96, 128)), dict(img_shape=(64, 200))]
    stock = TASK_UTILS.build(dict(type='HungarianAssigner', match_costs=COSTS))
    got = TASK_UTILS.build(dict(type='BatchHungarianAssigner',
                                match_costs=COSTS)).batch_assign(boxes, scores, gts, metas)
    for i in range(2):
        want = stock.assign(InstanceData(bboxes=boxes[i], scores=scores[i]), gts[i],
                            img_meta=metas[i]).gt_inds
        assert torch.equal(got[i], want)


def test_batch_assign_non_finite_names_the_fix():
    gen = torch.Generator().manual_seed(5)
    boxes, scores = _preds(gen, 2, 6)
    scores[1, 2, 0] = float('nan')
    batch = TASK_UTILS.build(dict(type='BatchHungarianAssigner', match_costs=COSTS))
    with pytest.raises(ValueError, match='diverged.*clip_grad'):
        batch.batch_assign(boxes, scores, [_gt(gen, 2), _gt(gen, 3)],
                           [dict(img_shape=(96, 128))] * 2)


# ------------------------------------------------------------------ the RoI head in a model
def _models(num_stages=2, **roi_overrides):
    """The budget config's Sparse R-CNN (small), built twice: stock mmdet pieces and ours."""
    cfg = Config.fromfile(CONFIG).model
    cfg.rpn_head.num_proposals = 16
    cfg.test_cfg.rcnn.max_per_img = 16
    cfg.roi_head.num_stages = num_stages
    cfg.roi_head.stage_loss_weights = [1] * num_stages
    cfg.roi_head.bbox_head = cfg.roi_head.bbox_head[:num_stages]
    cfg.train_cfg.rcnn = cfg.train_cfg.rcnn[:num_stages]
    cfg.roi_head.update(roi_overrides)
    assert cfg.roi_head.type == 'BatchSparseRoIHead'
    assert cfg.train_cfg.rcnn[0].assigner.type == 'BatchHungarianAssigner'
    stock_cfg = copy.deepcopy(cfg)
    stock_cfg.roi_head.type = 'SparseRoIHead'
    for stage in stock_cfg.train_cfg.rcnn:
        stage.assigner.type = 'HungarianAssigner'
    torch.manual_seed(0)
    ours = MODELS.build(cfg)
    ours.init_weights()
    stock = MODELS.build(stock_cfg)
    stock.load_state_dict(ours.state_dict())
    return stock, ours


def _batch(counts, size=(128, 128), seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for n in counts:
        inputs.append(torch.randint(0, 255, (3, *size), generator=gen, dtype=torch.uint8))
        s = DetDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size,
                                        scale_factor=(1., 1.), batch_input_shape=size))
        s.gt_instances = _gt(gen, n, size, box_type=True)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def _losses_and_grads(model, data):
    model.train()
    processed = model.data_preprocessor(copy.deepcopy(data), True)
    model.zero_grad()
    losses = model.loss(processed["inputs"], processed["data_samples"])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


@pytest.mark.parametrize('counts', [(6, 0, 11), (4, 4)])
def test_losses_and_gradients_equal_mmdet(counts):
    stock, ours = _models()
    data = _batch(counts)
    ls, gs = _losses_and_grads(stock, data)
    lo, go = _losses_and_grads(ours, data)
    assert ls.keys() == lo.keys() and 's1.loss_iou' in lo
    for k in ls:
        torch.testing.assert_close(lo[k], ls[k], rtol=1e-5, atol=1e-6, msg=k)
    assert gs.keys() == go.keys()
    for k in gs:
        torch.testing.assert_close(go[k], gs[k], rtol=1e-4, atol=1e-6, msg=k)


def test_predictions_equal_mmdet():
    stock, ours = _models()
    data = _batch((3, 5), seed=1)
    stock.eval()
    ours.eval()
    with torch.no_grad():
        a = stock.test_step(copy.deepcopy(data))
        b = ours.test_step(copy.deepcopy(data))
    for x, y in zip(a, b):
        torch.testing.assert_close(y.pred_instances.bboxes, x.pred_instances.bboxes)
        torch.testing.assert_close(y.pred_instances.scores, x.pred_instances.scores)
        assert torch.equal(y.pred_instances.labels, x.pred_instances.labels)


def test_fewer_operator_calls_than_mmdet():
    stock, ours = _models(num_stages=2)
    data = _batch((8, 8, 8, 8), seed=2)
    ops = {}
    for name, model in (('stock', stock), ('ours', ours)):
        ops[name] = count_aten_ops(lambda: _losses_and_grads(model, data))
    # per image and stage mmdet's assignment and targets cost hundreds of calls
    assert ops['ours'] < 0.8 * ops['stock'], ops


def test_clipping_coder_uses_the_stock_path():
    stock, ours = _models(num_stages=1)
    for head in (stock.roi_head.bbox_head[0], ours.roi_head.bbox_head[0]):
        head.bbox_coder.clip_border = True
    assert not ours.roi_head._batched(0)
    data = _batch((3, 2), seed=3)
    ls, _ = _losses_and_grads(stock, data)
    lo, _ = _losses_and_grads(ours, data)
    for k in ls:
        torch.testing.assert_close(lo[k], ls[k], msg=k)
    assert np.isfinite(float(lo['s0.loss_cls']))


def test_losses_equal_mmdet_with_half_precision_head_outputs():
    """As under --amp on a GPU: the DII heads' logits and deltas arrive in float16 (mmcv's CPU
    RoIAlign has no half kernels, so the heads' outputs are cast here instead of autocast)."""
    stock, ours = _models(num_stages=2)
    for model in (stock, ours):
        for head in model.roi_head.bbox_head:
            forward = head.forward

            def half_forward(*args, _forward=forward):
                cls_score, bbox_pred, *rest = _forward(*args)
                return (cls_score.half(), bbox_pred.half(), *rest)

            head.forward = half_forward
    data = _batch((5, 3), seed=4)
    ls, _ = _losses_and_grads(stock, data)
    lo, _ = _losses_and_grads(ours, data)
    assert ls.keys() == lo.keys()
    for k in ls:
        torch.testing.assert_close(lo[k].float(), ls[k].float(), rtol=1e-3, atol=1e-4, msg=k)
    # ours in float32 (mmcv's CUDA focal loss is infinite for saturated float16 logits)
    assert lo['s0.loss_cls'].dtype == torch.float32
