"""FastYOLOXHSVRandomAug / FastCachedMixUp give mmdet's YOLOXHSVRandomAug / CachedMixUp results
(same random draws) on uint8 images."""
import copy

import cv2
import numpy as np
import pytest
from mmdet.registry import TRANSFORMS
from mmengine.registry import DefaultScope

import mmbloodcell  # noqa: F401


@pytest.fixture(autouse=True)
def _mmdet_scope():
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _samples(n, seed=0, size=(640, 640)):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        num = int(rng.integers(0 if i == 2 else 1, 12))  # one sample without boxes
        xy = rng.uniform(0, size[1] - 100, (num, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 90, (num, 2))], 1).astype(np.float32)
        out.append(dict(img=rng.integers(0, 256, size + (3,), dtype=np.uint8),
                        img_shape=size, gt_bboxes=boxes,
                        gt_bboxes_labels=rng.integers(0, 3, num).astype(np.int64),
                        gt_ignore_flags=np.zeros(num, dtype=bool)))
    return out


def _run(cfg, samples, seed):
    t = TRANSFORMS.build(cfg)
    np.random.seed(seed)  # mmdet's transforms draw from numpy's generator
    return [t(copy.deepcopy(s)) for s in samples]


def test_hsv_equal_to_mmdet():
    samples = _samples(6)
    ref = _run(dict(type='YOLOXHSVRandomAug'), samples, 3)
    fast = _run(dict(type='FastYOLOXHSVRandomAug'), samples, 3)
    changed = 0
    for s, a, b in zip(samples, ref, fast):
        assert a['img'].dtype == b['img'].dtype == np.uint8
        assert np.array_equal(a['img'], b['img'])
        changed += not np.array_equal(s['img'], b['img'])
    assert changed >= 3  # the gains were not all zero


# the budget config's settings (exact), and a scale jitter (mmdet resizes in float64 and
# truncates, here in uint8 with rounding: one grey level apart at most)
@pytest.mark.parametrize('ratio_range,pad_val,random_pop,max_diff', [
    ((1.0, 1.0), (114, 114, 114), False, 0), ((0.5, 1.5), 114.0, True, 1)])
def test_mixup_equal_to_mmdet(ratio_range, pad_val, random_pop, max_diff):
    samples = _samples(24, seed=1)
    cfg = dict(img_scale=(640, 640), ratio_range=ratio_range, max_cached_images=10,
               random_pop=random_pop, pad_val=pad_val, prob=0.5)
    ref = _run(dict(type='CachedMixUp', **cfg), samples, 7)
    fast = _run(dict(type='FastCachedMixUp', **cfg), samples, 7)
    mixed = 0
    for s, a, b in zip(samples, ref, fast):
        assert a['img'].dtype == b['img'].dtype == np.uint8 and a['img_shape'] == b['img_shape']
        diff = np.abs(a['img'].astype(int) - b['img'].astype(int))
        assert diff.max() <= max_diff
        np.testing.assert_array_equal(a['gt_bboxes'], b['gt_bboxes'])
        np.testing.assert_array_equal(a['gt_bboxes_labels'], b['gt_bboxes_labels'])
        np.testing.assert_array_equal(a['gt_ignore_flags'], b['gt_ignore_flags'])
        mixed += len(b['gt_bboxes']) > len(s['gt_bboxes'])
    assert mixed >= 5  # mix-up really happened, with the other sample's boxes added


def test_mixup_scale_jitter_with_a_per_channel_pad_value():
    """mmdet's CachedMixUp builds an int64 canvas from a tuple pad value, which cv2.resize
    rejects once the jitter is not 1; this one stays in uint8."""
    samples = _samples(12, seed=2)
    cfg = dict(img_scale=(640, 640), ratio_range=(0.5, 1.5), max_cached_images=5,
               pad_val=(114, 114, 114), prob=1.0)
    with pytest.raises(cv2.error):
        _run(dict(type='CachedMixUp', **cfg), samples, 0)
    out = _run(dict(type='FastCachedMixUp', **cfg), samples, 0)
    assert sum(len(o['gt_bboxes']) > len(s['gt_bboxes']) for s, o in zip(samples, out)) >= 5
    for o in out:
        assert o['img'].dtype == np.uint8 and o['img'].shape == (640, 640, 3)
        boxes = o['gt_bboxes']
        assert ((boxes >= 0) & (boxes <= 640)).all()
        assert len(o['gt_bboxes_labels']) == len(o['gt_ignore_flags']) == len(boxes)
