"""BCCDDataset on COCO files converted from the real BCCD data (the ``bccd_coco`` fixture of
tests/conftest.py)."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS
from mmdet.structures import DetDataSample
from mmengine.registry import DefaultScope

import mmbloodcell  # noqa: F401  (registers BCCDDataset)
from mmbloodcell.datasets import BCCDDataset

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Build pipelines in mmdet's scope, as a config with ``default_scope='mmdet'`` does."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _dataset(data_root, ann_file='annotations/test.json', **kwargs):
    return DATASETS.build(
        dict(type='BCCDDataset', data_root=data_root + '/', ann_file=ann_file,
             data_prefix=dict(img='JPEGImages/'), pipeline=PIPELINE, **kwargs))


def test_metainfo():
    assert BCCDDataset.METAINFO['classes'] == ('RBC', 'WBC', 'Platelets')
    palette = BCCDDataset.METAINFO['palette']
    assert len(palette) == 3 and len(set(palette)) == 3
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in palette)


def test_load_converted_split(bccd_coco):
    ds = _dataset(bccd_coco)
    assert isinstance(ds, BCCDDataset)
    assert len(ds) == 34
    assert ds.metainfo['classes'] == ('RBC', 'WBC', 'Platelets')
    with open(osp.join(bccd_coco, 'annotations', 'test.json')) as f:
        coco = json.load(f)
    names = {im['id']: im['file_name'] for im in coco['images']}
    by_image = {}
    for a in coco['annotations']:
        by_image.setdefault(a['image_id'], []).append(a)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        anns = sorted(by_image[info['img_id']], key=lambda a: a['id'])
        assert len(info['instances']) == len(anns)
        for inst, ann in zip(info['instances'], anns):
            x, y, w, h = ann['bbox']
            assert inst['bbox'] == [x, y, x + w, y + h]
            # label i is category id i + 1 (RBC=1, WBC=2, Platelets=3)
            assert inst['bbox_label'] == ann['category_id'] - 1
        assert info['img_path'] == osp.join(bccd_coco, 'JPEGImages', names[info['img_id']])
        assert (info['width'], info['height']) == (640, 480)
    labels = np.concatenate([[inst['bbox_label'] for inst in ds.get_data_info(i)['instances']]
                             for i in range(len(ds))])
    assert set(labels.tolist()) == {0, 1, 2}


def test_pipeline_output(bccd_coco):
    ds = _dataset(bccd_coco)
    info = ds.get_data_info(0)
    out = ds[0]
    img = out['inputs']
    assert isinstance(img, torch.Tensor) and img.dtype == torch.uint8
    assert tuple(img.shape) == (3, 480, 640)
    sample = out['data_samples']
    assert isinstance(sample, DetDataSample)
    assert sample.img_id == info['img_id'] and sample.ori_shape == (480, 640)
    gt = sample.gt_instances
    n = len(info['instances'])
    assert tuple(gt.bboxes.shape) == (n, 4) and tuple(gt.labels.shape) == (n, )
    expected = torch.tensor([inst['bbox'] for inst in info['instances']], dtype=torch.float32)
    assert torch.equal(gt.bboxes.tensor, expected)
    assert gt.labels.tolist() == [inst['bbox_label'] for inst in info['instances']]
    assert (gt.bboxes.tensor[:, 2] > gt.bboxes.tensor[:, 0]).all()


def test_train_split_with_filter(bccd_coco):
    ds = _dataset(bccd_coco, ann_file='annotations/train.json',
                  filter_cfg=dict(filter_empty_gt=True, min_size=32))
    assert len(ds) == 256


def test_rejects_reordered_categories(bccd_coco, tmp_path):
    with open(osp.join(bccd_coco, 'annotations', 'val.json')) as f:
        coco = json.load(f)
    coco['categories'] = coco['categories'][::-1]  # Platelets, WBC, RBC
    bad = tmp_path / 'reordered.json'
    bad.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match='do not list the classes'):
        DATASETS.build(dict(type='BCCDDataset', data_root=bccd_coco + '/', ann_file=str(bad),
                            data_prefix=dict(img='JPEGImages/'), pipeline=PIPELINE))
