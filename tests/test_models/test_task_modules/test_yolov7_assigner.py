"""YOLOv7Assigner on hand-made cases: the anchor-shape filter, the neighbour cells, SimOTA's
dynamic k and its one-box-per-prediction rule, empty images, and batching over images."""
import pytest
import torch
from mmdet.registry import TASK_UTILS
from mmengine.registry import DefaultScope

import mmbloodcell  # noqa: F401

STRIDE = 8
SIZE = 8  # one 8x8 level: a 64x64 input


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """mmdet's registries, whatever scope an earlier test left (the suite mixes libraries)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _assigner(**kwargs):
    return TASK_UTILS.build(dict(type='YOLOv7Assigner', **kwargs))


def _maps(box, num_imgs=1, num_anchors=3, num_classes=2):
    """One level whose every prediction is ``box`` with equal (zero) logits."""
    boxes = torch.tensor(box, dtype=torch.float32).expand(num_imgs, num_anchors, SIZE, SIZE, 4)
    return [boxes.clone()], [torch.zeros(num_imgs, num_anchors, SIZE, SIZE, 1 + num_classes)]


def _gt(*boxes, labels=None):
    gt = torch.tensor([boxes], dtype=torch.float32)
    labels = torch.tensor([labels or [0] * len(boxes)])
    return gt, labels, torch.ones(labels.shape, dtype=torch.bool)


def _assign(boxes, logits, anchors, gt, assigner=None):
    anchors = [torch.tensor(anchors, dtype=torch.float32)]
    return (assigner or _assigner()).assign(boxes, logits, anchors, [STRIDE], *gt)[0]


def _cells(t):
    return sorted(zip(t.anchor_inds.tolist(), t.grid_x.tolist(), t.grid_y.tolist()))


def test_anchor_shape_ratio_limit():
    # 20x12 box centred (26, 38): cells (3, 4) + left (2, 4) + down (3, 5). Ratios to the
    # anchors: 16x16 -> 1.33 (kept); 90x12 -> 4.5 (out); 20x48 -> exactly 4.0 (out: < 4 needed)
    box = [16., 32., 36., 44.]
    boxes, logits = _maps(box)  # every prediction is the box itself: IoU 1, k = all
    t = _assign(boxes, logits, [(16, 16), (90, 12), (20, 48)], _gt(box))
    assert _cells(t) == [(0, 2, 4), (0, 3, 4), (0, 3, 5)]
    t = _assign(boxes, logits, [(16, 16), (90, 12), (20, 48)], _gt(box),
                _assigner(anchor_t=4.2))
    assert sorted(set(t.anchor_inds.tolist())) == [0, 2]


@pytest.mark.parametrize('centre, cells', [
    ((26., 38.), [(2, 4), (3, 4), (3, 5)]),  # frac (.25, .75): left and down neighbours
    ((30., 34.), [(3, 4), (4, 4), (3, 3)]),  # frac (.75, .25): right and up neighbours
    ((2., 2.), [(0, 0)]),  # centre in the corner cell, gxy < 1: no neighbour outside the map
    ((62., 62.), [(7, 7)]),  # the far corner: W - gxy < 1, likewise
])
def test_neighbour_cells_follow_the_centre_fraction(centre, cells):
    cx, cy = centre
    box = [cx - 8, cy - 8, cx + 8, cy + 8]
    boxes, logits = _maps(box)
    t = _assign(boxes, logits, [(16, 16), (300, 300), (300, 300)], _gt(box))
    assert sorted(zip(t.grid_x.tolist(), t.grid_y.tolist())) == sorted(cells)
    assert (t.anchor_inds == 0).all() and (t.gt_inds == 0).all()
    torch.testing.assert_close(t.gt_bboxes, torch.tensor([box] * len(cells)))


def _narrowed(box, frac):
    """A box inside ``box`` whose IoU with it is ``frac``."""
    x1, y1, x2, y2 = box
    return [x1, y1, x1 + frac * (x2 - x1), y2]


def test_dynamic_k_is_the_sum_of_the_top_ious():
    box = [16., 28., 36., 48.]  # 20x20 centred (26, 38): candidates (3, 4), (2, 4), (3, 5)
    boxes, logits = _maps(box)
    for (x, y), iou in zip([(3, 4), (2, 4), (3, 5)], [0.9, 0.8, 0.5]):
        boxes[0][0, 0, y, x] = torch.tensor(_narrowed(box, iou))
    t = _assign(boxes, logits, [(20, 20), (300, 300), (300, 300)], _gt(box))
    # k = int(0.9 + 0.8 + 0.5) = 2: the two of least cost, i.e. of highest IoU
    assert sorted(zip(t.grid_x.tolist(), t.grid_y.tolist())) == [(2, 4), (3, 4)]


def test_dynamic_k_is_at_least_one():
    box = [16., 28., 36., 48.]
    boxes, logits = _maps([50., 0., 60., 10.])  # no prediction overlaps the box
    logits[0][0, 0, 5, 3, 1] = 5.  # the class cost picks the candidate (3, 5)
    t = _assign(boxes, logits, [(20, 20), (300, 300), (300, 300)], _gt(box))
    assert list(zip(t.grid_x.tolist(), t.grid_y.tolist())) == [(3, 5)]


def test_the_class_cost_uses_the_box_label():
    box = [16., 28., 36., 48.]
    boxes, logits = _maps([50., 0., 60., 10.])
    logits[0][0, 0, 4, 2, 2] = 5.  # class 1 at (2, 4)
    logits[0][0, 0, 5, 3, 1] = 5.  # class 0 at (3, 5)
    t = _assign(boxes, logits, [(20, 20), (300, 300), (300, 300)], _gt(box, labels=[1]))
    assert list(zip(t.grid_x.tolist(), t.grid_y.tolist())) == [(2, 4)]
    assert t.gt_labels.tolist() == [1]


def test_a_prediction_claimed_by_two_boxes_keeps_the_cheaper():
    # two boxes with the same candidate cells (3, 4), (2, 4), (3, 5) and anchor: each cell is
    # a candidate twice (once per box). IoU(b1, b2) = 0.55
    b1, b2 = [16., 28., 36., 48.], [17., 31., 37., 43.]
    anchors = [(20, 20), (300, 300), (300, 300)]
    boxes, logits = _maps(b1)
    alone = _assign(boxes, logits, anchors, _gt(b2))
    assert len(alone) == 1  # without b1, b2 takes k = int(3 * 0.55) = 1 prediction
    # every prediction is b1: b1 takes all 6 columns (k = 6), b2 wants k = int(6 * 0.55) = 3
    # of them, all also taken by b1 at a lower cost: b2 is left with none
    t = _assign(boxes, logits, anchors, _gt(b1, b2))
    assert len(t) == 6 and (t.gt_inds == 0).all()
    # the prediction at (3, 4) is b2: there b2 is cheaper, at the two other cells b1 is
    boxes[0][0, 0, 4, 3] = torch.tensor(b2)
    t = _assign(boxes, logits, anchors, _gt(b1, b2))
    owner = {(x, y): set() for x, y in [(3, 4), (2, 4), (3, 5)]}
    for x, y, g in zip(t.grid_x.tolist(), t.grid_y.tolist(), t.gt_inds.tolist()):
        owner[(x, y)].add(g)
    assert owner == {(3, 4): {1}, (2, 4): {0}, (3, 5): {0}}
    torch.testing.assert_close(t.gt_bboxes, torch.tensor([[b1, b2][g] for g in t.gt_inds]))


def test_empty_images():
    boxes, logits = _maps([16., 28., 36., 48.], num_imgs=2)
    anchors = [torch.tensor([(20., 20.), (300., 300.), (300., 300.)])]
    for num in (0, 2):  # no box at all; two padded slots that are not real boxes
        gt = (torch.zeros(2, num, 4), torch.zeros(2, num, dtype=torch.long),
              torch.zeros(2, num, dtype=torch.bool))
        t = _assigner().assign(boxes, logits, anchors, [STRIDE], *gt)[0]
        assert len(t) == 0 and t.gt_bboxes.shape == (0, 4)


def _random_case(gen, counts, num_classes=3):
    strides, sizes = [8, 16, 32], [(12, 16), (6, 8), (3, 4)]  # a 96x128 input
    anchors = [torch.tensor(a, dtype=torch.float32) for a in
               ([(12, 16), (19, 36), (40, 28)], [(36, 75), (76, 55), (72, 146)],
                [(142, 110), (192, 243), (459, 401)])]
    boxes, logits = [], []
    for (h, w) in sizes:
        xy = torch.rand(len(counts), 3, h, w, 2, generator=gen) * torch.tensor([128., 96.])
        wh = 4 + torch.rand(len(counts), 3, h, w, 2, generator=gen) * 60
        boxes.append(torch.cat([xy - wh / 2, xy + wh / 2], -1))
        logits.append(torch.randn(len(counts), 3, h, w, 1 + num_classes, generator=gen) * 2)
    gts = []
    for n in counts:
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([110., 80.])
        gts.append((torch.cat([xy, xy + 6 + torch.rand(n, 2, generator=gen) * 50], 1),
                    torch.randint(0, num_classes, (n,), generator=gen)))
    return boxes, logits, anchors, strides, gts


def _pad(gts):
    num = max(len(b) for b, _ in gts)
    boxes, labels = torch.zeros(len(gts), num, 4), torch.zeros(len(gts), num, dtype=torch.long)
    valid = torch.zeros(len(gts), num, dtype=torch.bool)
    for i, (b, lab) in enumerate(gts):
        boxes[i, :len(b)], labels[i, :len(b)], valid[i, :len(b)] = b, lab, True
    return boxes, labels, valid


def test_batch_equals_image_by_image():
    gen = torch.Generator().manual_seed(0)
    boxes, logits, anchors, strides, gts = _random_case(gen, [9, 0, 30, 2])
    batch = _assigner().assign(boxes, logits, anchors, strides, *_pad(gts))
    total = 0
    for i, gt in enumerate(gts):
        if not len(gt[0]):
            assert all((t.img_inds != i).all() for t in batch)
            continue
        alone = _assigner().assign([b[i:i + 1] for b in boxes], [lg[i:i + 1] for lg in logits],
                                   anchors, strides, *_pad([gt]))
        for t_b, t_a in zip(batch, alone):
            sel = t_b.img_inds == i
            total += int(sel.sum())
            for field in ('anchor_inds', 'grid_y', 'grid_x', 'gt_inds', 'gt_bboxes', 'gt_labels'):
                assert torch.equal(getattr(t_b, field)[sel], getattr(t_a, field)), field
    assert total > 40  # real positives were compared, on several levels
