"""Cell transforms: CropToCell, CLAHE, RandomRotate, StainNormalize, EnsureRGB8."""
import glob
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest

from mmbloodcell.datasets.transforms import (CLAHE, CropToCell, EnsureRGB8, RandomRotate,
                                             StainNormalize)
from mmbloodcell.datasets.transforms.cell import macenko_stains, reinhard_stats
from mmbloodcell.registry import CLS_TRANSFORMS, DET_TRANSFORMS


@pytest.fixture(scope='module')
def real_cells(cnmc_samples_root):
    paths = sorted(glob.glob(osp.join(cnmc_samples_root, '*', '*.bmp')))
    assert len(paths) == 6
    return {osp.basename(p): mmcv.imread(p) for p in paths}


def _lab_stats(img):
    mask = img.max(axis=2) > 0
    lab = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)[mask]
    return lab.mean(axis=0), lab.std(axis=0)


def _synthetic_cell(h=40, w=60):
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.uint8)
    cv2.ellipse(img, (w // 2, h // 2), (w // 3, h // 3), 20, 0, 360, (150, 60, 120), -1)
    mask = img.max(axis=2) > 0
    img[mask] = np.clip(img[mask] + rng.integers(-30, 30, size=(mask.sum(), 3)), 1, 255)
    return img


# ---------------------------------------------------------------- registration
def test_registered():
    for name in ('CropToCell', 'CLAHE', 'RandomRotate', 'StainNormalize', 'EnsureRGB8'):
        assert CLS_TRANSFORMS.get(name) is not None
    # pixel-only transforms serve detection too; geometric ones do not move boxes
    for name in ('CLAHE', 'EnsureRGB8', 'StainNormalize'):
        assert DET_TRANSFORMS.get(name) is not None
    assert 'CropToCell' not in DET_TRANSFORMS.module_dict
    assert 'RandomRotate' not in DET_TRANSFORMS.module_dict
    t = CLS_TRANSFORMS.build(dict(type='CropToCell', margin=3))
    assert isinstance(t, CropToCell) and t.margin == 3


# ---------------------------------------------------------------- CropToCell
def test_crop_to_cell_real_cells(real_cells):
    for name, img in real_cells.items():
        out = CropToCell()(dict(img=img.copy(), img_path=name))
        x1, y1, x2, y2 = out['cell_bbox'].astype(int)
        fg = img.max(axis=2) > 0
        # every non-black pixel lies inside the box ...
        assert not fg[:y1].any() and not fg[y2:].any(), name
        assert not fg[:, :x1].any() and not fg[:, x2:].any(), name
        # ... and the box is no more than 2 px larger than the pixels' extent on any side
        ys, xs = np.nonzero(fg)
        assert 0 <= xs.min() - x1 <= 2 and 0 <= x2 - 1 - xs.max() <= 2, name
        assert 0 <= ys.min() - y1 <= 2 and 0 <= y2 - 1 - ys.max() <= 2, name
        # the crop is a square holding every cell pixel; the padding is black
        crop = out['img']
        side = max(x2 - x1, y2 - y1)
        assert crop.shape == (side, side, 3) and out['img_shape'] == (side, side)
        assert out['cell_found'] is True
        assert (crop.max(axis=2) > 0).sum() == fg.sum()
        assert crop.sum(dtype=np.int64) == img.sum(dtype=np.int64)
        # C-NMC cells are 190..270 px in a 450 px image: the crop really is tighter
        assert 150 < side < 300


def test_crop_to_cell_margin_threshold_and_edges():
    img = np.zeros((50, 80, 3), np.uint8)
    img[10:20, 30:60] = 200  # 30 wide, 10 high
    img[0, 0] = 5  # dim noise at the corner
    out = CropToCell(threshold=10, margin=4)(dict(img=img.copy()))
    assert out['cell_bbox'].tolist() == [26, 6, 64, 24]
    crop = out['img']
    assert crop.shape == (38, 38, 3)
    # centred padding: (38 - 18) / 2 = 10 rows above, the cell row band at 10 + 4
    assert (crop[14:24, 4:34] == 200).all() and crop[:14].max() == 0 and crop[24:].max() == 0
    # with the default threshold 0 the dim corner pixel counts as cell
    assert CropToCell()(dict(img=img.copy()))['cell_bbox'].tolist() == [0, 0, 60, 20]
    # the margin is clipped at the image border
    edge = np.zeros((30, 30, 3), np.uint8)
    edge[0:5, 25:30] = 99
    assert CropToCell(margin=10)(dict(img=edge))['cell_bbox'].tolist() == [15, 0, 30, 15]
    # square=False keeps the tight crop
    assert CropToCell(square=False)(dict(img=img.copy()))['img'].shape == (20, 60, 3)


def test_crop_to_cell_keeps_aspect_ratio_after_resize():
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 10:90] = 255  # an 80 x 20 bar
    out = CropToCell()(dict(img=img))
    small = mmcv.imresize(out['img'], (40, 40))
    rows = np.flatnonzero(small.max(axis=(1, 2)) > 127)
    cols = np.flatnonzero(small.max(axis=(0, 2)) > 127)
    assert len(cols) == 40 and len(rows) == 10  # still 4:1


def test_crop_to_cell_all_black_and_other_inputs():
    black = np.zeros((20, 30, 3), np.uint8)
    out = CropToCell()(dict(img=black))
    assert out['cell_found'] is False
    assert out['cell_bbox'].tolist() == [0, 0, 30, 20] and out['img'].shape == (30, 30, 3)
    gray = np.zeros((20, 30), np.uint16)
    gray[5:9, 10:12] = 4000
    out = CropToCell(threshold=100)(dict(img=gray))
    assert out['cell_bbox'].tolist() == [10, 5, 12, 9]
    assert out['img'].shape == (4, 4) and out['img'].dtype == np.uint16
    with pytest.raises(ValueError, match='margin'):
        CropToCell(margin=-1)


# ---------------------------------------------------------------- CLAHE
def test_clahe_changes_contrast_keeps_shape_and_background(real_cells):
    img = real_cells['UID_H6_5_1_hem.bmp']
    out = CLAHE(clip_limit=3.0, tile_grid_size=(8, 8))(dict(img=img.copy()))['img']
    assert out.shape == img.shape and out.dtype == np.uint8
    fg = img.max(axis=2) > 0
    assert (out[~fg] == 0).all()
    l_in = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)[..., 0][fg].astype(float)
    l_out = cv2.cvtColor(out, cv2.COLOR_BGR2LAB)[..., 0][fg].astype(float)
    assert l_out.std() > 1.3 * l_in.std()
    # hue is kept: chroma channels barely move
    ab_in = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)[..., 1:][fg].astype(float).mean(axis=0)
    ab_out = cv2.cvtColor(out, cv2.COLOR_BGR2LAB)[..., 1:][fg].astype(float).mean(axis=0)
    assert np.abs(ab_in - ab_out).max() < 6
    # without keep_background CLAHE lifts the black background to grey
    lifted = CLAHE(clip_limit=3.0, keep_background=False)(dict(img=img.copy()))['img']
    assert (lifted[~fg].max(axis=1) > 0).all()
    assert np.array_equal(lifted[fg], out[fg])


def test_clahe_and_stain_reject_non_rgb8_with_clear_message(tmp_path):
    for t in (CLAHE(), StainNormalize(ref_mean=[50, 20, -20], ref_std=[10, 5, 5])):
        for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                    np.zeros((8, 8, 3), np.uint16)):
            with pytest.raises(TypeError, match=r"needs a HxWx3 uint8 BGR image, got shape "
                               r".* \(cell\.png\)\. Add dict\(type='EnsureRGB8'\)"):
                t(dict(img=bad, img_path='cell.png'))
    with pytest.raises(ValueError, match='clip_limit'):
        CLAHE(clip_limit=0)


# ---------------------------------------------------------------- RandomRotate
def test_random_rotate_keeps_size_and_fills_black():
    img = np.full((41, 61, 3), 200, np.uint8)
    np.random.seed(0)
    out = RandomRotate(angle=(30, 60), prob=1.0)(dict(img=img.copy()))
    assert out['img'].shape == img.shape and out['img'].dtype == np.uint8
    assert 30 <= out['rotate_angle'] <= 60
    # corners rotate out of a full frame: black; the centre stays
    for y, x in ((0, 0), (0, 60), (40, 0), (40, 60)):
        assert (out['img'][y, x] == 0).all()
    assert (out['img'][20, 30] == 200).all()
    # prob=0 leaves the image untouched
    same = RandomRotate(prob=0.0)(dict(img=img.copy()))
    assert same['rotate_angle'] == 0.0 and np.array_equal(same['img'], img)


def test_random_rotate_angle_distribution_and_seed():
    t = RandomRotate(angle=45, prob=0.5)
    np.random.seed(1)
    angles = [t(dict(img=np.zeros((8, 8, 3), np.uint8)))['rotate_angle'] for _ in range(400)]
    rotated = [a for a in angles if a != 0]
    assert 140 < len(rotated) < 260
    assert min(rotated) >= -45 and max(rotated) <= 45 and min(rotated) < -30 < 30 < max(rotated)
    np.random.seed(1)
    again = [t(dict(img=np.zeros((8, 8, 3), np.uint8)))['rotate_angle'] for _ in range(400)]
    assert again == angles


def test_random_rotate_exact_quarter_turn_and_channels():
    img = np.zeros((21, 21, 3), np.uint8)
    img[10, 15] = (10, 20, 30)  # right of centre
    out = RandomRotate(angle=(90, 90), prob=1.0, interpolation='nearest')(dict(img=img))
    # +90 degrees is clockwise on screen (mmcv.imrotate): right of centre goes below it
    assert (out['img'][15, 10] == (10, 20, 30)).all() and out['img'].sum() == 60
    for shape in ((9, 13), (9, 13, 1), (9, 13, 4), (9, 13, 6)):
        x = np.full(shape, 7, np.uint8)
        y = RandomRotate(angle=(45, 45), prob=1.0)(dict(img=x))['img']
        assert y.shape == shape and y[0, 0].max() == 0 and y[4, 6].min() == 7


# ---------------------------------------------------------------- StainNormalize
def test_reinhard_moves_stats_to_reference(real_cells, cnmc_samples_root, tmp_path):
    src = real_cells['UID_1_3_1_all.bmp']
    ref_path = osp.join(cnmc_samples_root, 'hem', 'UID_H6_5_1_hem.bmp')
    ref_mean, ref_std = reinhard_stats(mmcv.imread(ref_path))
    before_mean, before_std = _lab_stats(src)
    out = StainNormalize(reference=ref_path)(dict(img=src.copy()))
    assert out['stain_normalized'] is True
    after_mean, after_std = _lab_stats(out['img'])
    assert np.abs(after_mean - ref_mean).max() < 1.0 < np.abs(before_mean - ref_mean).max()
    assert np.abs(after_std - ref_std).max() < 1.0
    fg = src.max(axis=2) > 0
    assert (out['img'][~fg] == 0).all() and out['img'].shape == src.shape
    # explicit statistics give the same as the reference image
    out2 = StainNormalize(ref_mean=ref_mean, ref_std=ref_std)(dict(img=src.copy()))
    assert np.array_equal(out2['img'], out['img'])


def test_reinhard_ignores_background():
    cell = _synthetic_cell()
    big = np.zeros((120, 120, 3), np.uint8)
    big[40:80, 30:90] = cell
    m1, s1 = reinhard_stats(cell)
    m2, s2 = reinhard_stats(big)
    np.testing.assert_allclose(m1, m2, atol=1e-6)
    np.testing.assert_allclose(s1, s2, atol=1e-6)


def test_macenko_moves_colour_towards_reference(real_cells, cnmc_samples_root):
    src = real_cells['UID_1_9_1_all.bmp']
    ref_path = osp.join(cnmc_samples_root, 'hem', 'UID_H6_14_1_hem.bmp')
    ref = mmcv.imread(ref_path)
    stains, max_conc = macenko_stains(ref)
    assert stains.shape == (3, 2) and max_conc.shape == (2, )
    np.testing.assert_allclose(np.linalg.norm(stains, axis=0), 1, atol=1e-9)
    assert (stains > -1e-6).all() and (max_conc > 0).all()
    out = StainNormalize(method='macenko', reference=ref_path)(dict(img=src.copy()))
    assert out['stain_normalized'] is True and out['img'].shape == src.shape

    def mean_rgb(x):
        return x[x.max(axis=2) > 0].astype(float).mean(axis=0)

    before = np.abs(mean_rgb(src) - mean_rgb(ref)).sum()
    after = np.abs(mean_rgb(out['img']) - mean_rgb(ref)).sum()
    assert after < 0.5 * before
    fg = src.max(axis=2) > 0
    assert (out['img'][~fg] == 0).all()
    # normalising the reference to itself changes little
    self_norm = StainNormalize(method='macenko', ref_stains=stains,
                               ref_max_conc=max_conc)(dict(img=ref.copy()))['img']
    assert np.abs(self_norm.astype(int) - ref.astype(int))[ref.max(axis=2) > 0].mean() < 3


def test_stain_normalize_arguments_and_degenerate_images(tmp_path):
    with pytest.raises(ValueError, match='needs reference=<image path> or ref_mean'):
        StainNormalize()
    with pytest.raises(ValueError, match='ref_stains'):
        StainNormalize(method='macenko')
    with pytest.raises(ValueError, match="method='vahadane'"):
        StainNormalize(method='vahadane', ref_mean=[0, 0, 0], ref_std=[1, 1, 1])
    with pytest.raises(FileNotFoundError, match='missing.bmp'):
        StainNormalize(reference=str(tmp_path / 'missing.bmp'))
    black = np.zeros((10, 10, 3), np.uint8)
    out = StainNormalize(ref_mean=[50, 20, -20], ref_std=[10, 5, 5])(dict(img=black.copy()))
    assert out['stain_normalized'] is False and not out['img'].any()


# ---------------------------------------------------------------- EnsureRGB8
def test_ensure_rgb8_conversions():
    t = EnsureRGB8()
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for g in (gray, gray[..., None]):
        out = t(dict(img=g.copy()))
        assert out['img'].shape == (3, 4, 3) and out['img_shape'] == (3, 4)
        assert (out['img'] == gray[..., None]).all()
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[0, 0, 3], rgba[0, 1, 3], rgba[1, :, 3] = 0, 255, 51
    out = t(dict(img=rgba.copy()))['img']
    assert out.shape == (2, 2, 3)
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [200] * 3
    assert out[1, 0].tolist() == [40] * 3  # 200 * 51 / 255
    assert EnsureRGB8(alpha='drop')(dict(img=rgba.copy()))['img'][0, 0].tolist() == [200] * 3
    img16 = np.array([[0, 257, 65535], [32896, 1000, 2570]], np.uint16)
    out = t(dict(img=img16.copy()))['img']
    assert out.dtype == np.uint8 and out[..., 0].tolist() == [[0, 1, 255], [128, 4, 10]]
    out12 = EnsureRGB8(bit_depth=12)(dict(img=np.array([[4095, 2048]], np.uint16)))['img']
    assert out12[..., 0].tolist() == [[255, 128]]
    rgb16 = np.full((2, 2, 3), 65535, np.uint16)
    assert (t(dict(img=rgb16))['img'] == 255).all()
    f = np.array([[0.0, 0.5, 1.0]], np.float32)
    assert t(dict(img=f))['img'][..., 0].tolist() == [[0, 128, 255]]
    same = np.zeros((2, 2, 3), np.uint8)
    assert t(dict(img=same))['img'] is same


def test_ensure_rgb8_errors_name_the_file():
    t = EnsureRGB8()
    with pytest.raises(TypeError, match=r'float image with values in \[0.0, 3.0\].*\(a\.tif\)'):
        t(dict(img=np.array([[0.0, 3.0]], np.float32), img_path='a.tif'))
    with pytest.raises(TypeError, match=r'shape \(2, 2, 5\) \(b\.tif\)'):
        t(dict(img=np.zeros((2, 2, 5), np.uint8), img_path='b.tif'))
    with pytest.raises(TypeError, match='unsupported dtype int32'):
        t(dict(img=np.zeros((2, 2), np.int32)))
    with pytest.raises(ValueError, match='alpha'):
        EnsureRGB8(alpha='white')


def test_unchanged_loading_then_ensure_rgb8_then_cell_transforms(tmp_path):
    """Grayscale, RGBA and 16-bit files read with color_type='unchanged' go through."""
    from mmcv.transforms import LoadImageFromFile
    cell = _synthetic_cell()
    gray = cv2.cvtColor(cell, cv2.COLOR_BGR2GRAY)
    bgra = np.dstack([cell, np.where(cell.max(axis=2) > 0, 255, 0).astype(np.uint8)])
    files = {
        'gray.png': gray,
        'rgba.png': bgra,
        'deep.png': cell.astype(np.uint16) * 257,
    }
    load = LoadImageFromFile(color_type='unchanged')
    pipeline = [EnsureRGB8(), CropToCell(), CLAHE(),
                StainNormalize(ref_mean=[40, 30, -20], ref_std=[8, 6, 6]),
                RandomRotate(prob=1.0)]
    for name, img in files.items():
        path = str(tmp_path / name)
        cv2.imwrite(path, img)
        results = load(dict(img_path=path))
        assert results['img'].shape == img.shape and results['img'].dtype == img.dtype
        for t in pipeline:
            results = t(results)
        assert results['img'].dtype == np.uint8 and results['img'].ndim == 3
        assert results['img'].shape[2] == 3 and results['img'].shape[0] == results['img'].shape[1]
        assert results['cell_found'] and results['stain_normalized']
