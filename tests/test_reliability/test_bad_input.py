"""Bad input for both datasets: each case gives a clear error naming the file and the fix, or -
with ``skip`` chosen in the dataset config - a logged and counted skip; never a silent wrong
label or a crash deep inside a transform.

Where each case is tested (cases already covered next to their code are not repeated here):

====================================  =====================================================
case                                  tests
====================================  =====================================================
BCCD converter (VOC XML -> COCO)      tests/test_tools/test_bccd_to_coco.py:
  negative / inverted / zero-area /   test_negative_box, test_inverted_box,
  out-of-bounds boxes                 test_zero_area_box_is_dropped_with_warning,
                                      test_box_far_outside_is_rejected,
                                      test_box_fully_outside_is_rejected (slightly outside:
                                      test_box_slightly_outside_is_clipped)
  unknown class name                  test_unknown_class
  annotation without image            test_annotation_without_image
  image without annotation            test_image_without_annotation
  zero-byte / truncated JPEG /        test_zero_byte_image, test_truncated_jpeg,
  non-image with image extension      test_text_file_named_jpg
  truncated PNG                       here: test_bccd_converter_truncated_png
  image much larger than expected     here: test_bccd_converter_image_too_large
  grayscale, RGBA, 16-bit images      here: test_bccd_grayscale_rgba_16bit_load_as_rgb8
BCCDDataset (COCO json at training)   here:
  zero-byte / truncated / non-image   test_bccd_dataset_bad_image_file[zero_byte, truncated,
                                      not_image]
  annotation without image            test_bccd_dataset_bad_image_file[missing]
  image replaced (size mismatch)      test_bccd_dataset_bad_image_file[size_mismatch]
  image much larger than expected     test_bccd_dataset_image_too_large
  negative / inverted / zero-area /   test_bccd_dataset_bad_box[negative, inverted, zero_area,
  sub-pixel / out-of-bounds box,      sub_pixel, out_of_bounds, fully_outside,
  unknown category                    unknown_category]
  categories in another order         tests/test_datasets/test_bccd_dataset.py:
                                      test_rejects_reordered_categories
CNMCDataset                           tests/test_datasets/test_cnmc_dataset.py:
  zero-byte / truncated / non-image   test_check_images_raise[0..2], test_check_images_skip
  image much larger than expected     test_check_images_too_large
  a name that does not parse          test_unparseable_name, test_final_test_unnumbered_file
  labels CSV names a missing file     test_csv_row_without_image
  (= annotation without image)
  label contradicts the name/folder   test_cell_in_wrong_class_folder,
                                      test_csv_bad_label_and_contradiction
  image without a CSV row             here: test_cnmc_image_without_csv_row
  (= image without annotation)
  grayscale, RGBA, 16-bit images      here: test_cnmc_grayscale_rgba_16bit_load_as_rgb8
Base configs check images at start    here: test_base_dataset_configs_check_images
====================================  =====================================================
"""
import glob
import json
import logging
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from PIL import Image

import mmbloodcell  # noqa: F401
from cnmc_release import make_synthetic_cnmc
from mmbloodcell.datasets import BCCDDataError, BCCDDataset, CNMCDataError, CNMCDataset
from reliability_utils import REPO
from script_loader import load_script

bc = load_script('tools/dataset_converters/bccd_to_coco.py')
BCCDConversionError, convert = bc.BCCDConversionError, bc.convert

BASE_DATASETS = osp.join(REPO, 'configs', '_base_', 'datasets')
W, H = 64, 48
BOXES = [('RBC', (2, 2, 20, 18)), ('WBC', (22, 10, 50, 40)), ('Platelets', (40, 2, 48, 9))]


# ---------------------------------------------------------------------------------- helpers
def _rgb(size=(W, H), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def _xml(path, filename, size=(W, H), objects=BOXES):
    objs = ''.join(f'<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>'
                   f'<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>'
                   for n, b in objects)
    with open(path, 'w') as f:
        f.write(f'<annotation><filename>{filename}</filename><size><width>{size[0]}</width>'
                f'<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>')


def make_voc(root, images):
    """A VOC tree: ``images`` maps a file name to a function writing the image to a path."""
    os.makedirs(osp.join(root, 'Annotations'))
    os.makedirs(osp.join(root, 'JPEGImages'))
    for name, write in images.items():
        path = osp.join(root, 'JPEGImages', name)
        write(path)
        with Image.open(path) as im:
            size = im.size
        _xml(osp.join(root, 'Annotations', osp.splitext(name)[0] + '.xml'), name, size)
    return str(root)


def _jpeg(seed):
    return lambda p: Image.fromarray(_rgb(seed=seed)).save(p, 'JPEG')


def plain_voc(root, n=6):
    return make_voc(root, {f'img_{i}.jpg': _jpeg(i) for i in range(n)})


def convert_and_check(root, out, file_name, reason, kind, **kwargs):
    """Default policy: one error naming ``file_name`` with ``reason``; skip: counted once."""
    with pytest.raises(BCCDConversionError) as exc:
        convert(root, str(out / 'error'), split_sizes=(4, 1, 1), **kwargs)
    line = next((ln for ln in str(exc.value).splitlines() if file_name in ln), '')
    assert reason in line and 'fix:' in line, str(exc.value)
    report = convert(root, str(out / 'skip'), split_sizes=(4, 1, 1), on_error='skip', **kwargs)
    assert report.skipped_images[kind] == 1 and f'{kind}: 1' in report.summary()
    return report


PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape')),
]


def bccd_dataset(out, ann='annotations/train.json', **kwargs):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return BCCDDataset(data_root=str(out) + '/', ann_file=ann,
                           data_prefix=dict(img='JPEGImages/'), pipeline=PIPELINE,
                           serialize_data=False, **kwargs)


# ---------------------------------------------------------------------------------- BCCD
def test_bccd_converter_truncated_png(tmp_path):
    root = plain_voc(tmp_path / 'voc', n=5)
    path = osp.join(root, 'JPEGImages', 'img_5.png')
    Image.fromarray(_rgb(seed=5)).save(path)
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])
    _xml(osp.join(root, 'Annotations', 'img_5.xml'), 'img_5.png')
    convert_and_check(root, tmp_path, 'image img_5.png', 'truncated PNG', 'image_truncated')


def test_bccd_converter_image_too_large(tmp_path):
    root = plain_voc(tmp_path / 'voc', n=5)
    # a whole-slide export instead of a 640x480 field (XML and image agree: only the size is
    # wrong); a uniform colour keeps the JPEG small
    Image.new('RGB', (5000, 3750), (200, 120, 160)).save(
        osp.join(root, 'JPEGImages', 'img_5.jpg'))
    _xml(osp.join(root, 'Annotations', 'img_5.xml'), 'img_5.jpg', (5000, 3750))
    convert_and_check(root, tmp_path, 'image img_5.jpg',
                      'is 5000x3750, larger than --max-image-size=4096; fix: replace it',
                      'image_too_large')
    # the limit is a setting
    report = convert(root, str(tmp_path / 'unlimited'), split_sizes=(4, 1, 1),
                     max_image_size=None)
    assert report.problems == [] and len(report.records) == 6
    assert bc.main([root, '-o', str(tmp_path / 'cli'), '--split', '4', '1', '1',
                    '--max-image-size', '0']) == 0


def test_bccd_grayscale_rgba_16bit_load_as_rgb8(tmp_path):
    """Grayscale JPEG, RGBA PNG, 16-bit RGB and 16-bit grayscale PNG pass the converter and load
    through the BCCD test pipeline as 8-bit 3-channel images with the right values."""
    gray = _rgb(seed=1)[..., 0]
    rgba = np.dstack([_rgb(seed=2), np.full((H, W), 255, np.uint8)])
    rgb16 = np.random.default_rng(3).integers(0, 65536, (H, W, 3), dtype=np.uint16)
    gray16 = np.random.default_rng(4).integers(0, 65536, (H, W), dtype=np.uint16)
    images = {
        'img_0.jpg': _jpeg(0),
        'img_1.png': lambda p: Image.fromarray(gray).save(p),  # lossless, to compare values
        'img_2.png': lambda p: Image.fromarray(rgba, 'RGBA').save(p),
        'img_3.png': lambda p: cv2.imwrite(p, rgb16),  # BGR order, as cv2 reads it back
        'img_4.png': lambda p: cv2.imwrite(p, gray16),
        'img_5.jpg': lambda p: Image.fromarray(gray).save(p, 'JPEG'),
    }
    root = make_voc(tmp_path / 'voc', images)
    out = tmp_path / 'coco'
    report = convert(root, str(out), split_sizes=(4, 1, 1))
    assert report.problems == [] and len(report.records) == 6
    expected = {
        'img_1.png': np.repeat(gray[..., None], 3, axis=2),
        'img_2.png': rgba[..., 2::-1],  # alpha dropped, RGB -> BGR
        'img_3.png': (rgb16 >> 8).astype(np.uint8),
        'img_4.png': np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, axis=2),
    }
    seen = set()
    for ann in ('train', 'val', 'test'):
        ds = bccd_dataset(out, f'annotations/{ann}.json', check_images=True)
        for i in range(len(ds)):
            item = ds[i]
            name = osp.basename(item['data_samples'].img_path)
            x = item['inputs']
            assert x.dtype == torch.uint8 and tuple(x.shape) == (3, H, W), name
            assert len(item['data_samples'].gt_instances) == 3
            if name in expected:
                # CHW (BGR) back to HWC; within 1 grey level (16 -> 8 bit rounding)
                diff = np.abs(x.permute(1, 2, 0).numpy().astype(int) - expected[name])
                assert diff.max() <= 1, name
            seen.add(name)
    assert seen == set(images)


@pytest.fixture(scope='module')
def bccd_coco(tmp_path_factory):
    """A converted synthetic BCCD tree (6 images of 64x48, 3 boxes each) and a 5000x3750 one
    (converted without size limit), as a read-only template."""
    tmp = tmp_path_factory.mktemp('bccd_ds')
    root = plain_voc(tmp / 'voc')
    Image.new('RGB', (5000, 3750), (200, 120, 160)).save(osp.join(root, 'JPEGImages',
                                                                   'img_6.jpg'))
    _xml(osp.join(root, 'Annotations', 'img_6.xml'), 'img_6.jpg', (5000, 3750))
    out = tmp / 'coco'
    convert(root, str(out), split_sizes=(5, 1, 1), max_image_size=None, copy_images=True)
    return out


@pytest.fixture
def bccd_copy(bccd_coco, tmp_path):
    dst = tmp_path / 'coco'
    shutil.copytree(bccd_coco, dst)
    with open(dst / 'annotations' / 'train.json') as f:
        coco = json.load(f)
    # train: the 5000x3750 image and 4 of the small ones; damage the first small one
    names = sorted(im['file_name'] for im in coco['images'])
    victim = next(n for n in names if n != 'img_6.jpg')
    return dst, coco, victim


def _damage_zero(path):
    open(path, 'wb').close()


def _damage_truncate(path):
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])


def _damage_text(path):
    open(path, 'w').write('<html>404 Not Found</html>\n')


def _damage_missing(path):
    os.remove(path)


def _damage_resize(path):
    Image.fromarray(_rgb(size=(32, 24))).save(path, 'JPEG')


@pytest.mark.parametrize('case,damage,kind,message', [
    ('zero_byte', _damage_zero, 'image_empty_file', r'is empty \(0 bytes\); fix: replace it'),
    ('truncated', _damage_truncate, 'image_truncated', r'is a truncated JPEG \(\d+ bytes, no '
     r'end-of-image marker\); fix: replace it'),
    ('not_image', _damage_text, 'image_not_image', r'is not a readable image \(PIL cannot '
     r'identify it\); fix: replace it'),
    ('missing', _damage_missing, 'missing_image', r'image named in .*train\.json \(img_id \d+\) '
     r'does not exist; fix: restore it'),
    ('size_mismatch', _damage_resize, 'size_mismatch', r'is 32x24 but .*train\.json says 64x48, '
     r'so its boxes belong to another image; fix: restore the original image'),
], ids=['zero_byte', 'truncated', 'not_image', 'missing', 'size_mismatch'])
def test_bccd_dataset_bad_image_file(bccd_copy, case, damage, kind, message):
    out, coco, victim = bccd_copy
    damage(str(out / 'JPEGImages' / victim))
    n = len(coco['images'])
    with pytest.raises(BCCDDataError, match=rf'JPEGImages/{victim}: {message}.*on_error=\'skip\''
                       r'.*--cfg-options train_dataloader\.dataset\.on_error=skip'):
        bccd_dataset(out, check_images=True)
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        ds = bccd_dataset(out, check_images=True, on_error='skip')
    finally:
        logger.removeHandler(handler)
    assert len(ds) == n - 1 and ds.skip_counts == {kind: 1} and ds.num_skipped == 1
    assert victim not in {osp.basename(ds.get_data_info(i)['img_path']) for i in range(len(ds))}
    logged = [r.getMessage() for r in records]
    assert any(m.startswith('BCCDDataset: skipping') and victim in m for m in logged), logged
    assert any(f'skipped 1 item(s) {{{kind!r}: 1}}' in m for m in logged), logged


def test_bccd_dataset_image_too_large(bccd_copy):
    out, coco, _ = bccd_copy
    n = len(coco['images'])
    assert len(bccd_dataset(out, check_images=True)) == n  # no limit given: accepted
    with pytest.raises(BCCDDataError, match=r'JPEGImages/img_6\.jpg: is 5000x3750, larger than '
                       r'max_image_size=4096; fix: replace it'):
        bccd_dataset(out, check_images=True, max_image_size=4096)
    ds = bccd_dataset(out, check_images=True, max_image_size=4096, on_error='skip')
    assert len(ds) == n - 1 and ds.skip_counts == {'image_too_large': 1}


@pytest.mark.parametrize('bbox,category,kind,message', [
    ([-4, 2, 10, 10], 1, 'negative_box', r'\[-4, 2, 10, 10\] has a negative coordinate'),
    ([30, 5, -20, 15], 2, 'inverted_box', r'\[30, 5, -20, 15\] is inverted \(xmax < xmin or '
     r'ymax < ymin\)'),
    ([10, 10, 0, 10], 1, 'zero_area_box', r'\[10, 10, 0, 10\] has zero area'),
    ([10, 10, 0.5, 10], 1, 'bad_box', r'\[10, 10, 0.5, 10\] is below 1 px wide or high'),
    ([50, 10, 30, 10], 1, 'outside_box', r'\[50, 10, 30, 10\] extends 16 px past image 64x48'),
    ([70, 10, 5, 5], 1, 'outside_box', r'\[70, 10, 5, 5\] lies outside image 64x48'),
    ([5, 5, 10, 10], 7, 'unknown_category', r"category_id 7 is not one of the classes' "
     r"categories \{1: 'RBC', 2: 'WBC', 3: 'Platelets'\}"),
], ids=['negative', 'inverted', 'zero_area', 'sub_pixel', 'out_of_bounds', 'fully_outside',
        'unknown_category'])
def test_bccd_dataset_bad_box(bccd_copy, bbox, category, kind, message):
    """A hand-edited COCO json: mmdet would silently drop (or keep unclipped) these boxes."""
    out, coco, victim = bccd_copy
    image = next(im for im in coco['images'] if im['file_name'] == victim)
    coco['annotations'].append(dict(id=999, image_id=image['id'], category_id=category,
                                    bbox=bbox, area=abs(bbox[2] * bbox[3]), iscrowd=0))
    with open(out / 'annotations' / 'train.json', 'w') as f:
        json.dump(coco, f)
    with pytest.raises(BCCDDataError, match=rf'train\.json: annotation id 999 of image {victim}: '
                       rf'(bbox \[x, y, w, h\] = )?{message}.*fix: correct the box or '
                       'regenerate the json'):
        bccd_dataset(out)
    ds = bccd_dataset(out, on_error='skip')
    assert ds.skip_counts == {kind: 1} and len(ds) == len(coco['images'])
    info = next(ds.get_data_info(i) for i in range(len(ds))
                if ds.get_data_info(i)['img_id'] == image['id'])
    assert len(info['instances']) == 3  # the good boxes stay


# ---------------------------------------------------------------------------------- C-NMC
@pytest.fixture(scope='module')
def cnmc_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cnmc_bad') / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=40, num_folds=1, patients_per_fold=(1, 1),
                        cells_per_patient=2, prelim_patients=(1, 1), final_patients=(1, 1),
                        seed=0)
    return root


def test_cnmc_image_without_csv_row(cnmc_root, tmp_path):
    root = str(tmp_path / 'root')
    shutil.copytree(cnmc_root, root)
    prelim = osp.join(root, 'validation_data', 'C-NMC_test_prelim_phase_data')
    shutil.copy(osp.join(prelim, '1.bmp'), osp.join(prelim, '99.bmp'))
    with pytest.raises(CNMCDataError, match=r'99\.bmp: image has no row in the labels CSV .*'
                       r'_labels\.csv; add its row \(Patient_ID,new_names,labels\)'):
        CNMCDataset(data_root=root, split='prelim_test', serialize_data=False)
    ds = CNMCDataset(data_root=root, split='prelim_test', on_error='skip', serialize_data=False)
    assert len(ds) == 4 and ds.skip_counts == {'unlabelled_image': 1}


def _cell_rgba(size=40):
    """A cell on a transparent background whose hidden colour is white (a common export)."""
    img = np.zeros((size, size, 4), np.uint8)
    img[..., :3] = 255
    cv2.circle(img, (20, 20), 10, (120, 40, 150, 255), -1)
    return img


@pytest.mark.parametrize('kind', ['gray_bmp', 'gray_png', 'rgba_png', 'rgb16_png', 'gray16_png'])
def test_cnmc_grayscale_rgba_16bit_load_as_rgb8(cnmc_root, tmp_path, kind):
    """C-NMC cells exported in other formats: the dataset's image check accepts them and the
    C-NMC test pipeline (configs/_base_/datasets/cnmc.py) yields 8-bit 3-channel crops. RGBA:
    ``LoadImageFromFile`` drops alpha; with ``color_type='unchanged'`` + ``EnsureRGB8`` the
    transparent background becomes black, so CropToCell crops the cell, not the frame."""
    suffix = '.' + kind.split('_')[1]
    src = sorted(glob.glob(osp.join(cnmc_root, 'training_data', 'fold_0', '*', '*.bmp')))
    root = tmp_path / 'root'
    for path in src:
        cls = osp.basename(osp.dirname(path))
        dst = root / 'training_data' / 'fold_0' / cls / (osp.basename(path)[:-4] + suffix)
        dst.parent.mkdir(parents=True, exist_ok=True)
        bgr = cv2.imread(path)
        if kind.startswith('gray16'):
            cv2.imwrite(str(dst), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)
        elif kind.startswith('gray'):
            Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)).save(dst)
        elif kind.startswith('rgba'):
            Image.fromarray(_cell_rgba()[..., [2, 1, 0, 3]], 'RGBA').save(dst)
        else:
            cv2.imwrite(str(dst), bgr.astype(np.uint16) * 257)
    cfg = Config.fromfile(osp.join(BASE_DATASETS, 'cnmc.py'))
    pipeline = [dict(step, scale=(24, 24)) if step['type'] == 'Resize' else step
                for step in cfg.test_pipeline]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ds = CNMCDataset(data_root=str(root), folds=(0, ), img_suffix=suffix, check_images=True,
                         pipeline=pipeline, serialize_data=False)
        assert len(ds) == 4 and not ds.skipped
        for i in range(len(ds)):
            x = ds[i]['inputs']
            assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 24, 24)
            if kind.startswith('gray'):
                assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
        if kind.startswith('rgba'):
            unchanged = [dict(type='LoadImageFromFile', color_type='unchanged'),
                         dict(type='EnsureRGB8')] + pipeline[1:]
            ds2 = CNMCDataset(data_root=str(root), folds=(0, ), img_suffix=suffix,
                              pipeline=unchanged, serialize_data=False)
            tight, frame = ds2[0]['inputs'], ds[0]['inputs']
            assert tight.dtype == torch.uint8 and tuple(tight.shape) == (3, 24, 24)
            # default loading keeps the white frame around the cell, so CropToCell keeps the
            # whole frame; alpha -> black crops the dark disc: a much darker crop
            assert (frame[:, 0, 0] == 255).all()
            assert tight.float().mean() < frame.float().mean() - 60
    if kind.startswith('rgba'):
        # default loading: alpha dropped, white background kept (the frame is the "cell")
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            img = CNMCDataset(data_root=str(root), folds=(0, ), img_suffix=suffix,
                              pipeline=[dict(type='LoadImageFromFile')],
                              serialize_data=False)[0]['img']
        assert img.shape == (40, 40, 3) and img.dtype == np.uint8 and (img[0, 0] == 255).all()


def test_base_dataset_configs_check_images():
    """The shipped dataset configs check every image at start-up with a size limit."""
    for name in ('bccd_detection.py', 'cnmc.py', 'cnmc_stain-norm.py'):
        cfg = Config.fromfile(osp.join(BASE_DATASETS, name))
        for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            dataset = cfg[split].dataset
            assert dataset.check_images is True and dataset.max_image_size == 4096, (name, split)
