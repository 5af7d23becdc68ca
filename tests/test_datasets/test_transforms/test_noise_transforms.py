"""GaussianNoise and RandomGaussianBlur: statistics, dtype/shape, probability, and use in mmdet
and mmpretrain pipelines built from their registries."""
import numpy as np
import pytest
import torch
from mmdet.registry import TRANSFORMS as DET_TRANSFORMS
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from mmpretrain.registry import TRANSFORMS as CLS_TRANSFORMS
from PIL import Image

import mmbloodcell  # noqa: F401  (registers the transforms)
from mmbloodcell.datasets.transforms import GaussianNoise, RandomGaussianBlur


@pytest.fixture(autouse=True)
def seeded():
    np.random.seed(0)


def _gray(value=128, shape=(200, 200, 3), dtype=np.uint8):
    return np.full(shape, value, dtype=dtype)


def test_noise_statistics():
    img = _gray()
    out = GaussianNoise(prob=1.0, std_range=(5.0, 5.0))(dict(img=img.copy()))['img']
    assert out.dtype == np.uint8 and out.shape == img.shape
    diff = out.astype(np.float64) - 128
    assert abs(diff.mean()) < 0.1
    # rounding adds 1/12 to the variance: sqrt(25 + 1/12) = 5.008
    assert 4.9 < diff.std() < 5.12
    # independent per channel
    assert not np.array_equal(diff[..., 0], diff[..., 1])
    # values are integers of the uint8 range, not wrapped around
    assert out.min() > 90 and out.max() < 166


def test_noise_std_range_is_sampled_per_image():
    t = GaussianNoise(prob=1.0, std_range=(2.0, 12.0))
    stds = [(t(dict(img=_gray(shape=(64, 64, 3))))['img'].astype(float) - 128).std()
            for _ in range(200)]
    assert 1.8 < min(stds) < 3.5 and 10.5 < max(stds) < 12.3
    assert 6.0 < np.mean(stds) < 8.0  # uniform on [2, 12] has mean 7


def test_noise_clips_uint8_and_keeps_float():
    out = GaussianNoise(prob=1.0, std_range=(20.0, 20.0))(dict(img=_gray(250)))['img']
    assert out.dtype == np.uint8 and out.max() == 255
    assert 0.38 < (out == 255).mean() < 0.44  # P(n >= 4.5) = 0.41 -> 255 after clipping
    assert out.min() > 150  # no wrap-around to small values
    img = np.zeros((50, 50, 3), np.float32)
    out = GaussianNoise(prob=1.0, std_range=(1.0, 1.0))(dict(img=img))['img']
    assert out.dtype == np.float32 and out.min() < -2.0  # float images are not clipped


def test_noise_shared_over_channels_and_grayscale():
    out = GaussianNoise(prob=1.0, std_range=(5.0, 5.0), per_channel=False)(
        dict(img=_gray()))['img']
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert out.std() > 4.5
    gray = _gray(shape=(40, 30))
    out = GaussianNoise(prob=1.0, std_range=(5.0, 5.0))(dict(img=gray))['img']
    assert out.shape == (40, 30) and out.dtype == np.uint8 and out.std() > 4


def test_noise_probability():
    img = _gray(shape=(8, 8, 3))
    same = GaussianNoise(prob=0.0, std_range=(5.0, 5.0))(dict(img=img.copy()))['img']
    assert np.array_equal(same, img)
    t = GaussianNoise(prob=0.3, std_range=(5.0, 5.0))
    changed = [not np.array_equal(t(dict(img=img.copy()))['img'], img) for _ in range(2000)]
    assert 0.27 < np.mean(changed) < 0.33


def test_blur_reduces_variance_and_keeps_mean():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    out = RandomGaussianBlur(prob=1.0, sigma_range=(1.5, 1.5))(dict(img=img.copy()))['img']
    assert out.dtype == np.uint8 and out.shape == img.shape
    # white noise blurred by a Gaussian of sigma s keeps ~1 / (4 pi s^2) of its variance
    ratio = out.astype(float).var() / img.astype(float).var()
    assert 0.02 < ratio < 0.06
    assert abs(out.astype(float).mean() - img.astype(float).mean()) < 1.0
    # a stronger blur removes more
    out3 = RandomGaussianBlur(prob=1.0, sigma_range=(3.0, 3.0))(dict(img=img.copy()))['img']
    assert out3.astype(float).var() < out.astype(float).var()
    # a constant image is unchanged (reflected borders)
    flat = _gray(77, (30, 30, 3))
    assert np.array_equal(RandomGaussianBlur(prob=1.0)(dict(img=flat.copy()))['img'], flat)


def test_blur_shapes_dtypes_and_probability():
    rng = np.random.default_rng(1)
    one = rng.integers(0, 256, size=(20, 24, 1), dtype=np.uint8)
    out = RandomGaussianBlur(prob=1.0, sigma_range=(1.0, 1.0))(dict(img=one))['img']
    assert out.shape == (20, 24, 1) and out.dtype == np.uint8
    f = rng.random((20, 24, 3)).astype(np.float32)
    out = RandomGaussianBlur(prob=1.0, sigma_range=(1.0, 1.0))(dict(img=f))['img']
    assert out.dtype == np.float32 and out.var() < f.var()
    img = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    assert np.array_equal(RandomGaussianBlur(prob=0.0)(dict(img=img.copy()))['img'], img)
    t = RandomGaussianBlur(prob=0.7, sigma_range=(1.0, 2.0))
    changed = [not np.array_equal(t(dict(img=img.copy()))['img'], img) for _ in range(1000)]
    assert 0.65 < np.mean(changed) < 0.75


@pytest.mark.parametrize('cls, kwargs', [
    (GaussianNoise, dict(prob=1.5)),
    (GaussianNoise, dict(std_range=(5.0, 1.0))),
    (GaussianNoise, dict(std_range=(-1.0, 1.0))),
    (RandomGaussianBlur, dict(prob=-0.1)),
    (RandomGaussianBlur, dict(sigma_range=(2.0, 1.0))),
])
def test_invalid_arguments(cls, kwargs):
    with pytest.raises(ValueError):
        cls(**kwargs)


def _write_image(path, size=(64, 48)):
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return str(path)


def test_registered_in_both_registries():
    for registry in (DET_TRANSFORMS, CLS_TRANSFORMS):
        assert registry.get('GaussianNoise') is GaussianNoise
        assert registry.get('RandomGaussianBlur') is RandomGaussianBlur
    # mmpretrain's own PIL-based GaussianBlur is left alone
    assert CLS_TRANSFORMS.get('GaussianBlur') is not RandomGaussianBlur


def test_in_mmdet_pipeline(tmp_path):
    path = _write_image(tmp_path / 'cell.png')
    with DefaultScope.overwrite_default_scope('mmdet'):
        pipeline = Compose([
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='GaussianNoise', prob=1.0, std_range=(5.0, 5.0)),
            dict(type='RandomGaussianBlur', prob=1.0, sigma_range=(1.0, 1.0)),
            dict(type='PackDetInputs'),
        ])
    results = pipeline(dict(img_path=path, img_id=0, instances=[
        dict(bbox=[2.0, 3.0, 30.0, 40.0], bbox_label=1, ignore_flag=0)]))
    original = torch.from_numpy(np.asarray(Image.open(path))[..., ::-1].copy()).permute(2, 0, 1)
    assert results['inputs'].shape == (3, 48, 64) and results['inputs'].dtype == torch.uint8
    assert not torch.equal(results['inputs'], original)
    # pixel-only: boxes and labels pass through untouched
    gt = results['data_samples'].gt_instances
    assert gt.bboxes.tensor.tolist() == [[2.0, 3.0, 30.0, 40.0]] and gt.labels.tolist() == [1]


def test_in_mmpretrain_pipeline(tmp_path):
    path = _write_image(tmp_path / 'cell.bmp', size=(40, 30))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose([
            dict(type='LoadImageFromFile'),
            dict(type='GaussianNoise', prob=1.0, std_range=(5.0, 5.0)),
            dict(type='RandomGaussianBlur', prob=1.0, sigma_range=(1.0, 1.0)),
            dict(type='PackInputs'),
        ])
    results = pipeline(dict(img_path=path, gt_label=1))
    assert results['inputs'].shape == (3, 30, 40) and results['inputs'].dtype == torch.uint8
    assert results['data_samples'].gt_label.tolist() == [1]
