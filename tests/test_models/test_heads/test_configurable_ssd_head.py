"""ConfigurableSSDHead computes its focal / L1 / GIoU losses in float32 under AMP."""
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import mmbloodcell  # noqa: F401
REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG = osp.join(REPO, 'configs', 'ssd', 'ssd300_focal-giou-l1_50e_bccd.py')


@pytest.fixture(autouse=True)
def _mmdet_scope():
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _batch(num_images=2, size=300):
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(num_images):
        xy = torch.rand(12, 2, generator=gen) * (size - 60)
        wh = 10 + torch.rand(12, 2, generator=gen) * 40
        s = DetDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size),
                                        batch_input_shape=(size, size)))
        s.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                      labels=torch.randint(0, 3, (12,), generator=gen))
        samples.append(s)
    return samples


def test_focal_ssd_losses_in_float32_under_autocast():
    model_cfg = Config.fromfile(CONFIG).model
    cfg = model_cfg.bbox_head
    cfg.train_cfg = model_cfg.train_cfg
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    head.train()
    seen = []
    for name in ('loss_cls', 'loss_bbox', 'loss_iou'):
        getattr(head, name).register_forward_pre_hook(
            lambda mod, args, name=name: seen.append((name, args[0].dtype)))
    sizes = [38, 19, 10, 5, 3, 1]
    feats = [torch.randn(2, c, s, s) for c, s in zip(cfg.in_channels, sizes)]
    with torch.autocast('cpu', dtype=torch.float16):
        cls_scores, bbox_preds = head(feats)
        assert cls_scores[0].dtype == torch.float16  # the head itself runs in half precision
        losses = head.loss_by_feat(cls_scores, bbox_preds,
                                   [s.gt_instances for s in _batch()],
                                   [s.metainfo for s in _batch()])
    assert {n for n, _ in seen} == {'loss_cls', 'loss_bbox', 'loss_iou'}
    assert all(dtype == torch.float32 for _, dtype in seen), seen
    for key, values in losses.items():
        assert all(torch.isfinite(v).all() and v.dtype == torch.float32 for v in values), key
    ref = head.loss_by_feat([c.float() for c in cls_scores], [b.float() for b in bbox_preds],
                            [s.gt_instances for s in _batch()], [s.metainfo for s in _batch()])
    for key in losses:  # the same losses as from the same (half) outputs in float32
        for a, b in zip(losses[key], ref[key]):
            torch.testing.assert_close(a, b)


def test_stock_losses_are_mmdets_and_the_head_predicts():
    """Without loss_cls the head trains with mmdet's SSDHead losses (same numbers) and, unlike
    mmdet 3.3.0's SSDHead, predicts."""
    stock_cfg = Config.fromfile(osp.join(osp.dirname(CONFIG), 'ssd300_50e_bccd.py')).model
    cfg = dict(stock_cfg.bbox_head, train_cfg=stock_cfg.train_cfg, test_cfg=stock_cfg.test_cfg)
    torch.manual_seed(0)
    ours = MODELS.build(cfg)
    theirs = MODELS.build(dict(cfg, type='SSDHead'))
    theirs.load_state_dict(ours.state_dict())
    sizes = [38, 19, 10, 5, 3, 1]
    feats = [torch.randn(2, c, s, s) for c, s in zip(cfg['in_channels'], sizes)]
    batch = _batch()
    args = ([s.gt_instances for s in batch], [s.metainfo for s in batch])
    a = ours.loss_by_feat(*ours(feats), *args)
    b = theirs.loss_by_feat(*theirs(feats), *args)
    assert set(a) == set(b) == {'loss_cls', 'loss_bbox'}
    for key in a:
        for x, y in zip(a[key], b[key]):
            torch.testing.assert_close(x, y)
    ours.eval()
    with torch.no_grad():
        results = ours.predict_by_feat(*ours(feats), batch_img_metas=args[1], rescale=False)
    assert len(results) == 2 and results[0].bboxes.shape[1] == 4
