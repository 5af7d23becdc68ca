"""BatchDynamicSoftLabelAssigner / BatchRTMDetSepBNHead give the stock RTMDet assignment,
targets, losses and gradients (mmdet's per-image DynamicSoftLabelAssigner / RTMDetSepBNHead)."""
import copy

import pytest
import torch
from mmdet.models.task_modules.prior_generators import MlvlPointGenerator
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import mmbloodcell  # noqa: F401


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """mmdet's registries, whatever scope an earlier test left (the suite mixes libraries)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield

STRIDES = [8, 16, 32]
IMG = (96, 128)  # h, w
NUM_CLASSES = 3


def _priors(device='cpu'):
    gen = MlvlPointGenerator(STRIDES, offset=0)
    sizes = [(IMG[0] // s, IMG[1] // s) for s in STRIDES]
    return torch.cat(gen.grid_priors(sizes, device=device, with_stride=True))


def _random_gt(gen, num, grid_aligned):
    """``num`` boxes inside the image; grid-aligned ones put prior centres on box borders."""
    xy1 = torch.rand(num, 2, generator=gen) * torch.tensor([IMG[1] - 20., IMG[0] - 20.])
    wh = 4 + torch.rand(num, 2, generator=gen) * 40
    boxes = torch.cat([xy1, (xy1 + wh).minimum(torch.tensor([IMG[1] - 1., IMG[0] - 1.]))], 1)
    if grid_aligned:
        boxes = (boxes / 8).round() * 8
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 8)
    labels = torch.randint(0, NUM_CLASSES, (num,), generator=gen)
    return boxes, labels


def _random_preds(gen, priors, num_imgs):
    scores = torch.randn(num_imgs, priors.size(0), NUM_CLASSES, generator=gen) * 2
    dist = torch.rand(num_imgs, priors.size(0), 4, generator=gen) * priors[None, :, 2:3] * 3
    centers = priors[None, :, :2]
    boxes = torch.cat([centers - dist[..., :2], centers + dist[..., 2:]], -1)
    return scores, boxes


def _pad(gts):
    num = max([len(b) for b, _ in gts] + [0])
    boxes = torch.zeros(len(gts), num, 4)
    labels = torch.zeros(len(gts), num, dtype=torch.long)
    valid = torch.zeros(len(gts), num, dtype=torch.bool)
    for i, (b, lab) in enumerate(gts):
        boxes[i, :len(b)], labels[i, :len(b)], valid[i, :len(b)] = b, lab, True
    return boxes, labels, valid


@pytest.mark.parametrize('grid_aligned', [False, True])
@pytest.mark.parametrize('box_type', ['hbox', 'tensor'])
def test_batch_assign_equals_mmdet_per_image(grid_aligned, box_type):
    gen = torch.Generator().manual_seed(7 + grid_aligned)
    priors = _priors()
    counts = [0, 1, 5, 23, 40, 2]
    gts = [_random_gt(gen, n, grid_aligned) for n in counts]
    scores, boxes = _random_preds(gen, priors, len(counts))
    batch = TASK_UTILS.build(dict(type='BatchDynamicSoftLabelAssigner', topk=13))
    stock = TASK_UTILS.build(dict(type='DynamicSoftLabelAssigner', topk=13))
    fg, matched, labels, ious = batch.batch_assign(scores, boxes, priors, *_pad(gts),
                                                   inclusive=box_type == 'hbox')
    total_pos = 0
    for i, (gt_boxes, gt_labels) in enumerate(gts):
        gt = InstanceData(bboxes=HorizontalBoxes(gt_boxes) if box_type == 'hbox' else gt_boxes,
                          labels=gt_labels)
        res = stock.assign(InstanceData(scores=scores[i], bboxes=boxes[i], priors=priors), gt)
        pos = res.gt_inds > 0
        total_pos += int(pos.sum())
        assert torch.equal(fg[i], pos), f'image {i}: positives differ'
        assert torch.equal(matched[i][pos], res.gt_inds[pos] - 1)
        assert torch.equal(labels[i], res.labels.masked_fill(~pos, -1))
        assert torch.equal(ious[i][pos], res.max_overlaps[pos])
        assert not ious[i][~pos].any()
    assert total_pos > 50  # the comparison covered real matches, multi-claims included


def test_batch_assign_no_boxes_at_all():
    priors = _priors()
    scores, boxes = _random_preds(torch.Generator().manual_seed(0), priors, 2)
    batch = TASK_UTILS.build(dict(type='BatchDynamicSoftLabelAssigner'))
    fg, matched, labels, ious = batch.batch_assign(
        scores, boxes, priors, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.long),
        torch.zeros(2, 0, dtype=torch.bool))
    assert fg.shape == (2, priors.size(0)) and not fg.any()
    assert (labels == -1).all() and not ious.any() and not matched.any()


def _head_cfg(head_type, assigner_type):
    return dict(
        type=head_type, num_classes=NUM_CLASSES, in_channels=16, stacked_convs=1,
        feat_channels=16, anchor_generator=dict(type='MlvlPointGenerator', offset=0,
                                                strides=STRIDES),
        bbox_coder=dict(type='DistancePointBBoxCoder'),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        with_objectness=False, exp_on_reg=False, share_conv=True, pred_kernel_size=1,
        norm_cfg=dict(type='BN'), act_cfg=dict(type='SiLU'),
        train_cfg=dict(assigner=dict(type=assigner_type, topk=13), allowed_border=-1,
                       pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.6), max_per_img=100))


def _heads():
    torch.manual_seed(0)
    stock = MODELS.build(_head_cfg('RTMDetSepBNHead', 'DynamicSoftLabelAssigner'))
    batch = MODELS.build(_head_cfg('BatchRTMDetSepBNHead', 'BatchDynamicSoftLabelAssigner'))
    batch.load_state_dict(stock.state_dict())
    return stock, batch


def _samples(gen, counts):
    samples = []
    for n in counts:
        boxes, labels = _random_gt(gen, n, grid_aligned=False)
        s = DetDataSample(metainfo=dict(img_shape=IMG, pad_shape=IMG, batch_input_shape=IMG))
        # plain tensors: DetDataPreprocessor(boxtype2tensor=True) hands the head these
        s.gt_instances = InstanceData(bboxes=boxes, labels=labels)
        samples.append(s)
    return samples


def test_head_targets_losses_and_grads_equal_stock_head():
    stock, batch = _heads()
    stock.train(), batch.train()
    gen = torch.Generator().manual_seed(3)
    samples = _samples(gen, [12, 0, 30, 3])
    feats = [torch.randn(4, 16, IMG[0] // s, IMG[1] // s, generator=gen) for s in STRIDES]
    losses = []
    for head in (stock, batch):
        head.zero_grad()
        x = [f.clone().requires_grad_() for f in feats]
        loss = head.loss(x, copy.deepcopy(samples))
        total = sum(sum(v) for v in loss.values())
        total.backward()
        losses.append((loss, [xi.grad for xi in x],
                       {n: p.grad.clone() for n, p in head.named_parameters()}))
    (ls, gs, ps), (lb, gb, pb) = losses
    assert ls.keys() == lb.keys() == {'loss_cls', 'loss_bbox'}
    for key in ls:
        for a, b in zip(ls[key], lb[key]):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
    assert float(sum(ls['loss_bbox'])) > 0  # real positives were compared
    for a, b in zip(gs, gb):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    for name in ps:
        torch.testing.assert_close(pb[name], ps[name], rtol=1e-5, atol=1e-7)


def _targets(heads, seed, counts, ignore=None, score_dtype=torch.float32):
    """``get_targets`` of each head on the same random predictions and boxes."""
    gen = torch.Generator().manual_seed(seed)
    samples = _samples(gen, counts)
    scores, boxes = _random_preds(gen, _priors(), len(counts))
    scores = scores.to(score_dtype)
    sizes = [(IMG[0] // s, IMG[1] // s) for s in STRIDES]
    metas = [s.metainfo for s in samples]
    gts = [s.gt_instances for s in samples]
    outs = []
    for head in heads:
        anchors, flags = head.get_anchors(sizes, metas, device='cpu')
        outs.append(head.get_targets(scores, boxes, anchors, flags, gts, metas, ignore))
    return outs


def _assert_same_targets(a, b):
    for what, la, lb in zip(['priors', 'labels', 'label_weights', 'bbox_targets', 'metrics'],
                            a[:5], b[:5]):
        assert len(la) == len(lb) == 3, what
        for xa, xb in zip(la, lb):
            assert xa.dtype == xb.dtype and xa.shape == xb.shape, what
            assert torch.equal(xa, xb), what


def test_head_get_targets_equal_stock_per_level():
    stock, batch = _targets(_heads(), 11, [7, 19])
    _assert_same_targets(stock, batch)
    assert batch[5] is None  # no sampling results: the loss does not read them


def test_head_get_targets_equal_stock_under_autocast():
    """AMP: the head's logits come in half precision, the costs mix dtypes as mmdet's do."""
    with torch.autocast('cpu', dtype=torch.bfloat16):
        stock, batch = _targets(_heads(), 13, [9, 25, 1], score_dtype=torch.bfloat16)
    _assert_same_targets(stock, batch)
    assert (batch[1][0] < NUM_CLASSES).any()  # there are positives


def test_head_falls_back_to_stock_code_with_ignored_boxes():
    ignore = [InstanceData(bboxes=HorizontalBoxes(torch.tensor([[0., 0., 10., 10.]]))),
              InstanceData(bboxes=HorizontalBoxes(torch.zeros(0, 4)))]
    stock, batch = _targets(_heads(), 5, [6, 4], ignore)
    assert batch[5] is not None  # the stock path ran: it returns its sampling results
    _assert_same_targets(stock, batch)


def test_head_rejects_a_per_image_assigner():
    with pytest.raises(TypeError, match='BatchDynamicSoftLabelAssigner'):
        MODELS.build(_head_cfg('BatchRTMDetSepBNHead', 'DynamicSoftLabelAssigner'))
