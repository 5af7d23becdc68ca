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
    with pytest.raises(ValueError, match='needs reference=<image or JSON path> or ref_mean'):
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


# ---------------------------------------------------------------- cells unlike C-NMC's
def test_crop_to_cell_never_takes_a_white_frame_for_the_cell(real_cells, tmp_path):
    from cnmc_release import odd_cells
    from mmbloodcell.datasets.transforms.cell import cell_image_warnings
    src = str(tmp_path / 'UID_1_3_1_all.bmp')
    cv2.imwrite(src, real_cells['UID_1_3_1_all.bmp'])
    paths = odd_cells(src, str(tmp_path / 'odd'))
    crop = CropToCell(margin=2)
    original = crop(dict(img=mmcv.imread(paths['original'])))
    assert original['cell_found'] and original['img'].shape[0] < 450
    for kind in ('white', 'transparent'):
        img = mmcv.imread(paths[kind])  # LoadImageFromFile's default: alpha dropped
        out = crop(dict(img=img))
        assert out['cell_found'] is False and out['img'].shape[:2] == (450, 450), kind
        found = cell_image_warnings(img, paths[kind])
        assert len(found) == 1 and found[0].startswith('background is not black'), kind
        assert ("EnsureRGB8(alpha='black')" in found[0]) == (kind == 'transparent')
    # read with its alpha and blackened, the transparent copy is the original cell again
    rgba = mmcv.imread(paths['transparent'], flag='unchanged')
    fixed = EnsureRGB8(alpha='black')(dict(img=rgba))['img']
    again = crop(dict(img=fixed))
    assert again['cell_found'] and np.array_equal(again['cell_bbox'], original['cell_bbox'])
    assert cell_image_warnings(fixed, None) == []
    gray = mmcv.imread(paths['gray'])
    assert [w.split(' (')[0] for w in cell_image_warnings(gray, paths['gray'])] == \
        ['grayscale image']
    jpeg = mmcv.imread(paths['jpeg'])
    assert cell_image_warnings(jpeg, paths['jpeg'])[0].startswith('lossy JPEG')
    assert cell_image_warnings(np.zeros((20, 20, 3), np.uint8))[0].startswith('no cell')
    for name, img in real_cells.items():
        assert cell_image_warnings(img, None) == [], name


def test_dataset_check_warns_per_image(real_cells, tmp_path, monkeypatch):
    from mmengine.logging import MMLogger

    from cnmc_release import odd_cells
    from cnmc_release import make_synthetic_cnmc
    from mmbloodcell.datasets.cnmc import CNMCDataset
    root = str(tmp_path / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=48, num_folds=1, patients_per_fold=(1, 1),
                        cells_per_patient=2)
    all_dir = osp.join(root, 'training_data', 'fold_0', 'all')
    src = str(tmp_path / 'UID_1_3_1_all.bmp')
    cv2.imwrite(src, real_cells['UID_1_3_1_all.bmp'])
    odd = odd_cells(src, str(tmp_path / 'odd'))
    cv2.imwrite(osp.join(all_dir, 'UID_1_90_1_all.bmp'), mmcv.imread(odd['white']))
    cv2.imwrite(osp.join(all_dir, 'UID_1_91_1_all.bmp'), mmcv.imread(odd['gray']))
    lines = []
    monkeypatch.setattr(MMLogger.get_current_instance(), 'warning',
                        lambda msg, *a, **k: lines.append(msg))
    ds = CNMCDataset(data_root=root, folds=(0, ), check_cells=True, serialize_data=False)
    assert len(ds) == 6  # warned, not dropped
    warned = sorted(osp.basename(p) for p in ds.cell_warnings)
    assert warned == ['UID_1_90_1_all.bmp', 'UID_1_91_1_all.bmp']
    text = '\n'.join(lines)
    assert 'UID_1_90_1_all.bmp: background is not black' in text
    assert 'UID_1_91_1_all.bmp: grayscale image' in text
    assert '2 of 6 image(s) unlike C-NMC cells' in text


# ---------------------------------------------------------------- rotation keeps the cell
def test_random_rotate_expand_keeps_a_tail_that_reaches_the_corner():
    # a cell in the middle of a 450 frame with a long tail towards the lower right corner
    img = np.zeros((450, 450, 3), np.uint8)
    cv2.circle(img, (225, 225), 90, (150, 60, 120), -1)
    cv2.line(img, (225, 225), (440, 440), (150, 60, 120), 9)
    fg = img.max(axis=2) > 0
    for angle in (30, 45, 120, 150):  # (multiples of 90 keep a square frame's corners)
        kept = RandomRotate(angle=(angle, angle), prob=1.0)(dict(img=img.copy()))['img']
        grown = RandomRotate(angle=(angle, angle), prob=1.0, expand=True)(
            dict(img=img.copy()))
        mass = img.astype(np.int64).sum()
        assert kept.astype(np.int64).sum() < 0.97 * mass, angle  # the tail leaves the frame
        # expanded: the whole cell is there (bilinear interpolation moves a little mass)
        assert abs(grown['img'].astype(np.int64).sum() - mass) < 0.005 * mass, angle
        assert (grown['img'].max(axis=2) > 0).sum() >= fg.sum()
        assert grown['img_shape'] == grown['img'].shape[:2]
        assert grown['img'].shape[0] >= 450 and grown['img'].shape[0] <= 637
        # a tight crop after it: the cell is whole and touches the crop's edges
        cropped = CropToCell()(dict(img=grown['img']))
        assert cropped['cell_found']


# ---------------------------------------------------------------- stain reference
def test_stain_reference_of_the_training_cells(real_cells, tmp_path):
    """The reference is the median cell: normalising the six real cells to it keeps their
    contrast (the old reference, UID_1_3_1_all, has about twice a typical cell's LAB std and
    inflated every cell's L and b spread by ~1.6x) and no cell pixel turns black."""
    from cnmc_release import _STAIN
    root = tmp_path / 'C-NMC_Leukemia'
    for name, img in real_cells.items():
        cls = name.split('_')[-1][:-4]
        folder = root / 'training_data' / 'fold_0' / cls
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), img)
    stats = _STAIN.cnmc_stain_reference(str(root), folds=(0, ))
    assert stats['num_images'] == 6 and stats['num_macenko'] == 6
    path = _STAIN.write_stain_reference(stats, str(root / 'stain_reference.json'))
    per_cell = np.array([reinhard_stats(img)[1] for img in real_cells.values()])
    np.testing.assert_allclose(stats['reinhard']['std'], np.median(per_cell, axis=0),
                               atol=1e-3)
    old_std = reinhard_stats(real_cells['UID_1_3_1_all.bmp'])[1]
    assert (old_std > 1.5 * np.asarray(stats['reinhard']['std'])).sum() >= 2

    def spread_ratio(transform):
        ratios = []
        for img in real_cells.values():
            out = transform(dict(img=img.copy()))['img']
            fg = img.max(axis=2) > 0
            assert (out[fg].max(axis=1) > 0).all(), 'a cell pixel turned black'
            assert not out[~fg].any()
            ratios.append(_lab_stats(out)[1] / _lab_stats(img)[1])
        return np.mean(ratios, axis=0)

    new = spread_ratio(StainNormalize(reference=path))
    old = spread_ratio(StainNormalize(reference=osp.join(
        osp.dirname(path), 'training_data', 'fold_0', 'all', 'UID_1_3_1_all.bmp')))
    assert new.max() < 1.15 and old[0] > 1.4 and old[2] > 1.4
    macenko = StainNormalize(method='macenko', reference=path)
    out = macenko(dict(img=real_cells['UID_H6_5_1_hem.bmp'].copy()))
    assert out['stain_normalized']


def test_stain_reference_missing_names_the_command(tmp_path):
    path = str(tmp_path / 'C-NMC_Leukemia' / 'stain_reference.json')
    with pytest.raises(FileNotFoundError,
                       match=r'python tools/analysis/cnmc_stain_reference\.py .*C-NMC_Leukemia'):
        StainNormalize(reference=path)
    (tmp_path / 'partial.json').write_text('{"reinhard": {"mean": [1, 2, 3]}}')
    with pytest.raises(ValueError, match='no reinhard statistics'):
        StainNormalize(reference=str(tmp_path / 'partial.json'))


def test_macenko_is_the_identity_on_its_reference(real_cells):
    for name, img in real_cells.items():
        stains, max_conc = macenko_stains(img)
        same = StainNormalize(method='macenko', ref_stains=stains,
                              ref_max_conc=max_conc)(dict(img=img.copy()))['img']
        fg = img.max(axis=2) > 0
        assert np.abs(same.astype(int) - img.astype(int))[fg].max() <= 1, name
        # Macenko's own reconstruction (the residual dropped) is what changed colours before
        dropped = StainNormalize(method='macenko', ref_stains=stains, ref_max_conc=max_conc,
                                 keep_residual=False)(dict(img=img.copy()))['img']
        assert np.abs(dropped.astype(int) - img.astype(int))[fg].mean() > 1, name
