"""The numpy post-processor against mmdet / mmcv themselves: ``DensePostProcessor`` on the raw
outputs of FCOS, GFL, RTMDet and both SSD variants equals their head's ``predict_by_feat`` (random,
perturbed weights: decoding is the point, not accuracy), ``nms`` / ``batched_nms`` equal mmcv's
ops, the priors equal mmdet's generators."""
import numpy as np
import pytest
import torch
from mmcv.ops import batched_nms as mmcv_batched_nms
from mmcv.ops import nms as mmcv_nms
from mmengine.config import Config

import mmbloodcell  # noqa: F401
from mmbloodcell.apis.export import describe_dense_head
from mmbloodcell.apis.onnx_postprocess import (DensePostProcessor, anchor_priors,
                                               batched_nms, nms, point_priors)


@pytest.mark.parametrize('kind', ['fcos', 'gfl', 'rtmdet', 'ssd', 'ssd_focal'])
def test_postprocess_equals_predict_by_feat(kind, random_detector, same_detections):
    model = random_detector(kind)
    head = model.bbox_head
    desc = describe_dense_head(head)
    size = (300, 300) if kind.startswith('ssd') else (256, 320)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        outs = model._forward(x)
    desc['with_score_factors'] = len(outs) == 3
    # image 0: resized 0.5x and padded; image 1: resized 0.625x, full input
    metas = [dict(img_shape=(size[0] - 20, size[1] - 36), scale_factor=(0.5, 0.5)),
             dict(img_shape=size, scale_factor=(0.625, 0.6))]
    test_cfg = dict(head.test_cfg)
    test_cfg['score_thr'] = 0.02
    with torch.no_grad():
        ref = head.predict_by_feat(*outs, batch_img_metas=metas, cfg=Config(test_cfg),
                                   rescale=True)
    names = ['cls_score', 'bbox_pred', 'centerness'][:len(outs)]
    arrays = {f'{k}_{i}': t.numpy() for k, lv in zip(names, outs) for i, t in enumerate(lv)}
    got = DensePostProcessor(desc, test_cfg)(arrays, metas)
    for r, g in zip(ref, got):
        r = {k: r[k].numpy() for k in ('bboxes', 'scores', 'labels')}
        assert len(r['bboxes']) > 10, f'{kind}: too few boxes to compare'
        assert np.unique(r['scores']).size > len(r['scores']) // 2, f'{kind}: scores tie'
        same_detections(r, g, box_atol=1e-3, score_atol=1e-6)


def test_priors_equal_mmdet_generators(random_detector):
    from mmdet.models.task_modules.prior_generators import (MlvlPointGenerator,
                                                            SSDAnchorGenerator)
    gen = MlvlPointGenerator([8, 16], offset=0.5)
    ref = gen.grid_priors([(5, 7), (3, 4)], device='cpu')
    for lvl, size in enumerate([(5, 7), (3, 4)]):
        np.testing.assert_array_equal(point_priors(size, gen.strides[lvl], 0.5),
                                      ref[lvl].numpy())
    ssd = random_detector('ssd').bbox_head.prior_generator
    assert isinstance(ssd, SSDAnchorGenerator)
    sizes = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    ref = ssd.grid_priors(sizes, device='cpu')
    for lvl, size in enumerate(sizes):
        np.testing.assert_allclose(
            anchor_priors(size, ssd.strides[lvl], ssd.base_anchors[lvl].numpy()),
            ref[lvl].numpy(), atol=1e-4)


def _random_boxes(rng, n, classes=3):
    xy = rng.uniform(0, 300, (n, 2)).astype(np.float32)
    wh = rng.uniform(2, 60, (n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], 1)
    return boxes, rng.uniform(0, 1, n).astype(np.float32), rng.integers(0, classes, n)


@pytest.mark.parametrize('thr', [0.3, 0.5, 0.7])
def test_nms_equals_mmcv(thr):
    rng = np.random.default_rng(0)
    boxes, scores, labels = _random_boxes(rng, 600)
    _, keep = mmcv_nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr)
    np.testing.assert_array_equal(nms(boxes, scores, thr), keep.numpy())
    for split in (10000, 100):  # one pass with class offsets, or class by class
        _, keep = mmcv_batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                                   torch.from_numpy(labels),
                                   dict(type='nms', iou_threshold=thr, split_thr=split))
        got = batched_nms(boxes, scores, labels, thr, split_thr=split)
        np.testing.assert_array_equal(got, keep.numpy())
    assert len(batched_nms(boxes[:0], scores[:0], labels[:0], thr)) == 0


def test_unsupported_nms_type_is_an_error():
    with pytest.raises(ValueError, match="soft_nms.*dict\\(type='nms'"):
        DensePostProcessor(dict(), dict(nms=dict(type='soft_nms', iou_threshold=0.5)))
