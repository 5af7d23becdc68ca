"""YOLOv7RandomAffine: the warp about the input's centre (the window a mosaic's border leaves is
its centre), the zoom and translation ranges, the reference's box filter, and inputs that are
not mosaics; on a real BCCD smear after mmdet's CachedMosaic."""
import copy
import os.path as osp

import numpy as np
import pytest
from mmdet.registry import TRANSFORMS
from mmengine.registry import DefaultScope

import mmbloodcell  # noqa: F401


@pytest.fixture(autouse=True)
def _mmdet_scope():
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _sample(img, boxes):
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return dict(img=img, img_shape=img.shape[:2], gt_bboxes=boxes,
                gt_bboxes_labels=np.arange(len(boxes), dtype=np.int64),
                gt_ignore_flags=np.zeros(len(boxes), dtype=bool))


def _affine(**kwargs):
    cfg = dict(type='YOLOv7RandomAffine', max_translate_ratio=0.0, scaling_ratio_range=(1, 1),
               border=(-320, -320))
    cfg.update(kwargs)
    return TRANSFORMS.build(cfg)


def _canvas(seed=0, size=1280):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_no_zoom_no_translation_is_the_centre_crop():
    img = _canvas()
    out = _affine()(_sample(img.copy(), [[400, 500, 460, 540], [10, 10, 60, 60]]))
    assert out['img'].shape == (640, 640, 3) and out['img_shape'] == (640, 640)
    assert np.array_equal(out['img'], img[320:960, 320:960])
    # the first box moves with the window; the second (top-left corner) is outside it
    assert np.allclose(np.asarray(out['gt_bboxes']), [[80, 180, 140, 220]], atol=1e-3)
    assert out['gt_bboxes_labels'].tolist() == [0]


def test_zoom_is_about_the_centre():
    img = _canvas(1)
    out = _affine(scaling_ratio_range=(0.5, 0.5))(
        _sample(img.copy(), [[600, 600, 680, 680], [0, 0, 80, 40]]))
    # x -> 0.5 (x - 640) + 320: the whole 1280 canvas in the 640 output
    assert np.allclose(np.asarray(out['gt_bboxes']), [[300, 300, 340, 340], [0, 0, 40, 20]],
                       atol=1e-3)
    assert np.abs(out['img'].astype(int) - img[::2, ::2]).max() <= 1


def test_the_reference_box_filter():
    img = _canvas(2)
    boxes = [[300, 400, 340, 440],    # 20 of 40 px inside the window (x >= 320): kept
             [310, 400, 323, 430],    # 3 of 13 px inside: 23% of its area, kept
             [316, 400, 350, 402],    # 2 px high (not more than min_bbox_size), dropped
             [315, 400, 365, 440],    # 45 of 50 px inside, kept
             [280, 400, 323.5, 430],  # 3.5 of 43.5 px inside: 8% of its area, dropped
             [400, 400, 401.5, 420],  # 1.5 px wide, dropped
             [400, 500, 460, 502.5],  # 60 x 2.5: aspect ratio 24 (>= 20), dropped
             [500, 500, 540, 520]]    # inside, kept
    out = _affine()(_sample(img.copy(), boxes))
    assert out['gt_bboxes_labels'].tolist() == [0, 1, 3, 7]
    assert not out['gt_ignore_flags'].any() and len(out['gt_ignore_flags']) == 4
    assert np.allclose(np.asarray(out['gt_bboxes'])[0], [0, 80, 20, 120], atol=1e-3)
    # the area is counted against the zoomed box. At zoom 2 (x -> 2 (x - 640) + 320) 4 of
    # the first box's 50 zoomed pixels are in the window: 8% of its zoomed area (32% of its
    # area before the zoom), dropped; the second keeps 20 of its 40
    out = _affine(scaling_ratio_range=(2.0, 2.0))(
        _sample(img.copy(), [[457, 600, 482, 620], [470, 600, 490, 620]]))
    assert out['gt_bboxes_labels'].tolist() == [1]
    assert np.allclose(np.asarray(out['gt_bboxes']), [[0, 240, 20, 280]], atol=1e-3)


def test_zoom_and_translation_ranges():
    t = _affine(max_translate_ratio=0.1, scaling_ratio_range=(0.5, 1.6))
    np.random.seed(0)
    centres, zooms = [], []
    for _ in range(300):
        matrix, zoom = t._random_warp((1280, 1280), (640, 640))
        centres.append(matrix @ np.array([640., 640., 1.]))
        zooms.append(zoom)
        assert np.allclose(matrix[:2, :2], np.eye(2) * zoom, atol=1e-6)  # no rotation, shear
    centres, zooms = np.array(centres), np.array(zooms)
    # the canvas centre lands at U(0.4, 0.6) x 640 of the output
    assert centres[:, :2].min() >= 256 - 1e-3 and centres[:, :2].max() <= 384 + 1e-3
    assert centres[:, :2].std() > 20
    assert zooms.min() >= 0.5 and zooms.max() <= 1.6 and zooms.max() - zooms.min() > 0.9
    with pytest.raises(ValueError, match='max_translate_ratio must be in'):
        _affine(max_translate_ratio=0.6)


def test_an_input_that_is_not_a_mosaic_keeps_its_size():
    img = _canvas(3)[:480, :640]
    out = _affine()(_sample(img.copy(), [[100, 100, 200, 150]]))
    assert out['img'].shape == (480, 640, 3)
    assert np.array_equal(out['img'], img)  # its own centre crop: itself
    assert np.allclose(np.asarray(out['gt_bboxes']), [[100, 100, 200, 150]], atol=1e-3)


def test_after_a_cached_mosaic_of_real_smears(bccd_root):
    """The window shows the four tiles around a real mosaic's centre (mmdet's RandomAffine the
    canvas' top-left quarter: one tile), and boxes cut by the window are clipped to it."""
    load = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    mosaic = TRANSFORMS.build(dict(type='CachedMosaic', img_scale=(640, 640), pad_val=114.0,
                                   center_ratio_range=(1.0, 1.0), max_cached_images=10))
    np.random.seed(0)
    for i in range(5):  # CachedMosaic mosaics once its cache holds 5 images
        results = load(dict(img_path=osp.join(bccd_root, 'JPEGImages',
                                              f'BloodImage_0000{i}.jpg')))
        # one box per image, at its centre
        results.update(gt_bboxes=np.array([[300, 220, 340, 260]], dtype=np.float32),
                       gt_bboxes_labels=np.array([i]), gt_ignore_flags=np.array([False]))
        canvas = mosaic(results)
    assert canvas['img'].shape == (1280, 1280, 3)
    # tiles of 640x480 around the centre (640, 640): the window [320, 960]^2 is all smear
    out = _affine()(copy.deepcopy(canvas))
    assert out['img'].shape == (640, 640, 3)
    assert (out['img'] == 114).all(-1).mean() < 0.01
    assert np.array_equal(out['img'], canvas['img'][320:960, 320:960])
    # each tile's box (x 300-340 and y 220-260 of its image) is half in the window
    boxes = sorted(map(tuple, np.round(np.asarray(out['gt_bboxes']), 3).tolist()))
    assert boxes == [(0, 60, 20, 100), (0, 540, 20, 580), (620, 60, 640, 100),
                     (620, 540, 640, 580)]
    stock = TRANSFORMS.build(dict(type='RandomAffine', max_rotate_degree=0,
                                  max_translate_ratio=0, scaling_ratio_range=(1, 1),
                                  max_shear_degree=0, border=(-320, -320)))
    top_left = stock(copy.deepcopy(canvas))
    assert np.array_equal(top_left['img'], canvas['img'][:640, :640])
    assert len(top_left['gt_bboxes']) == 1
