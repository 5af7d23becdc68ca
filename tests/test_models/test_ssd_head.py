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
CONFIG = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs', 'ssd',
                  'ssd300_focal-giou-l1_50e_bccd.py')


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
