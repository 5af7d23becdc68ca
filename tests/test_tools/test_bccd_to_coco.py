"""BCCD -> COCO converter: the real dataset (split, determinism, ImageSets) and every kind of bad
input on small synthetic VOC trees (error message names the file and the reason; ``skip`` mode
logs and counts it)."""
import filecmp
import json
import logging
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from script_loader import load_script

bc = load_script('tools/dataset_converters/bccd_to_coco.py')
BCCDConversionError, Box, ImageRecord = bc.BCCDConversionError, bc.Box, bc.ImageRecord
convert, load_voc, main, stratified_split = bc.convert, bc.load_voc, bc.main, bc.stratified_split

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SPLIT_FILES = ['train.json', 'val.json', 'test.json']
IMAGESET_FILES = [f'imagesets_{n}.json' for n in ('train', 'val', 'test', 'trainval')]


def _load(path):
    with open(path) as f:
        return json.load(f)


def _classes_in(coco):
    names = {c['id']: c['name'] for c in coco['categories']}
    return {names[a['category_id']] for a in coco['annotations']}


# ----------------------------------------------------------------------------------------------
# Real BCCD
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def real_out(bccd_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('bccd_coco'))
    report = convert(bccd_root, out)
    return out, report


def test_real_split_sizes_and_classes(real_out, bccd_root):
    out, report = real_out
    cocos = {n: _load(osp.join(out, 'annotations', n)) for n in SPLIT_FILES}
    assert [len(cocos[n]['images']) for n in SPLIT_FILES] == [256, 74, 34]
    ids = [{im['id'] for im in cocos[n]['images']} for n in SPLIT_FILES]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(ids[0] | ids[1] | ids[2]) == 364
    for n in SPLIT_FILES:
        coco = cocos[n]
        # every class in every split, categories in the fixed order with ids 1..3
        assert _classes_in(coco) == {'RBC', 'WBC', 'Platelets'}, n
        assert [(c['id'], c['name']) for c in coco['categories']] == [
            (1, 'RBC'), (2, 'WBC'), (3, 'Platelets')]
        for im in coco['images']:
            assert (im['width'], im['height']) == (640, 480)
            # the referenced image exists through the output folder's JPEGImages
            assert osp.isfile(osp.join(out, 'JPEGImages', im['file_name']))
        for a in coco['annotations']:
            x, y, w, h = a['bbox']
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 640 and y + h <= 480
            assert a['area'] == w * h and a['iscrowd'] == 0
    # JPEGImages is a symlink to the source by default
    assert osp.islink(osp.join(out, 'JPEGImages'))
    assert osp.samefile(osp.join(out, 'JPEGImages'), osp.join(bccd_root, 'JPEGImages'))
    # annotation ids are unique across the splits; 4888 boxes minus the 2 zero-area ones
    ann_ids = [a['id'] for n in SPLIT_FILES for a in cocos[n]['annotations']]
    assert len(ann_ids) == len(set(ann_ids)) == 4886


def test_real_quirks_are_reported(real_out):
    """The real BCCD has two single-pixel RBC "boxes"; they are dropped with a warning."""
    _, report = real_out
    assert report.problems == []
    assert report.clipped_boxes == 0
    assert report.dropped_boxes == 2
    dropped = sorted(str(w) for w in report.warnings if w.kind == 'zero_area_box')
    assert dropped[0].startswith('annotation BloodImage_00338.xml:')
    assert '(504, 337, 504, 337) has zero area' in dropped[0]
    assert dropped[1].startswith('annotation BloodImage_00343.xml:')
    summary = report.summary()
    assert 'dropped zero-area boxes: 2' in summary and 'skipped images: 0' in summary
    train_row = next(line for line in summary.splitlines() if line.startswith('train '))
    assert train_row.split()[1] == '256'


def test_real_imagesets(real_out, bccd_root):
    out, _ = real_out
    for name, size in zip(('train', 'val', 'test', 'trainval'), (205, 87, 72, 292)):
        coco = _load(osp.join(out, 'annotations', f'imagesets_{name}.json'))
        with open(osp.join(bccd_root, 'ImageSets', 'Main', f'{name}.txt')) as f:
            stems = {line.strip() for line in f if line.strip()}
        assert len(coco['images']) == size
        assert {osp.splitext(im['file_name'])[0] for im in coco['images']} == stems
    # the same image has the same id in both kinds of files
    split_ids = {im['file_name']: im['id'] for n in SPLIT_FILES
                 for im in _load(osp.join(out, 'annotations', n))['images']}
    for im in _load(osp.join(out, 'annotations', 'imagesets_trainval.json'))['images']:
        assert split_ids[im['file_name']] == im['id']


def test_real_deterministic_bytes(real_out, bccd_root, tmp_path):
    out, _ = real_out
    convert(bccd_root, str(tmp_path))
    for n in SPLIT_FILES + IMAGESET_FILES:
        assert filecmp.cmp(osp.join(out, 'annotations', n),
                           osp.join(tmp_path, 'annotations', n), shallow=False), n


def test_real_seed_changes_split(real_out, bccd_root, tmp_path):
    out, _ = real_out
    convert(bccd_root, str(tmp_path), seed=1)
    a = {im['file_name'] for im in _load(osp.join(out, 'annotations', 'test.json'))['images']}
    b = {im['file_name'] for im in _load(osp.join(tmp_path, 'annotations', 'test.json'))['images']}
    assert len(a) == len(b) == 34 and a != b


def test_real_cli_main(bccd_root, tmp_path, capsys):
    rc = main([bccd_root, '-o', str(tmp_path), '--split', '200', '100', '64', '--copy'])
    assert rc == 0
    printed = capsys.readouterr().out
    assert 'train' in printed and 'imagesets_trainval' in printed
    coco = _load(osp.join(tmp_path, 'annotations', 'val.json'))
    assert len(coco['images']) == 100
    # --copy gives a real folder holding the images
    assert not osp.islink(osp.join(tmp_path, 'JPEGImages'))
    assert len(os.listdir(osp.join(tmp_path, 'JPEGImages'))) == 364


# ----------------------------------------------------------------------------------------------
# Synthetic VOC trees
# ----------------------------------------------------------------------------------------------

W, H = 64, 48
GOOD_OBJECTS = [('RBC', (2, 2, 20, 18)), ('WBC', (22, 10, 50, 40)), ('Platelets', (40, 2, 48, 9))]


def write_image(path, size=(W, H), fmt='JPEG', seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, fmt)


def write_xml(path, filename, objects, size=(W, H)):
    objs = ''.join(
        f'<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>'
        f'<difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>'
        f'<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>' for name, b in objects)
    with open(path, 'w') as f:
        f.write(f'<annotation><folder>JPEGImages</folder><filename>{filename}</filename>'
                f'<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth>'
                f'</size><segmented>0</segmented>{objs}</annotation>')


def make_voc(root, n=6):
    """``n`` valid 64x48 images ``img_0000.jpg``..., each with one box of every class."""
    os.makedirs(osp.join(root, 'Annotations'))
    os.makedirs(osp.join(root, 'JPEGImages'))
    os.makedirs(osp.join(root, 'ImageSets', 'Main'))
    stems = [f'img_{i:04d}' for i in range(n)]
    for i, stem in enumerate(stems):
        write_image(osp.join(root, 'JPEGImages', stem + '.jpg'), seed=i)
        write_xml(osp.join(root, 'Annotations', stem + '.xml'), stem + '.jpg', GOOD_OBJECTS)
    for name, part in (('train', stems[:4]), ('val', stems[4:5]), ('test', stems[5:]),
                       ('trainval', stems[:5])):
        with open(osp.join(root, 'ImageSets', 'Main', f'{name}.txt'), 'w') as f:
            f.write('\n'.join(part) + '\n')
    return str(root)


def add_objects(root, stem, objects):
    write_xml(osp.join(root, 'Annotations', stem + '.xml'), stem + '.jpg',
              GOOD_OBJECTS + list(objects))


def check_error_then_skip(root, tmp_path, file_name, reason, kind, level='images'):
    """Default policy raises naming ``file_name`` and ``reason``; ``skip`` counts ``kind``."""
    with pytest.raises(BCCDConversionError) as exc:
        convert(root, str(tmp_path / 'out_error'), split_sizes=(4, 1, 1))
    msg = str(exc.value)
    line = next((ln for ln in msg.splitlines() if file_name in ln and reason in ln), None)
    assert line is not None, msg
    assert '--on-error skip' in msg
    assert not osp.exists(tmp_path / 'out_error' / 'annotations')  # nothing half-written
    report = convert(root, str(tmp_path / 'out_skip'), split_sizes=(4, 1, 1), on_error='skip')
    counts = report.skipped_images if level == 'images' else report.skipped_boxes
    assert counts[kind] == 1, (counts, report.problems)
    assert any(file_name in str(p) and reason in str(p) for p in report.problems)
    assert f'{kind}: 1' in report.summary()
    return report


def test_synthetic_clean_tree(tmp_path):
    root = make_voc(tmp_path / 'voc')
    report = convert(root, str(tmp_path / 'out'), split_sizes=(4, 1, 1))
    assert report.problems == [] and report.warnings == []
    train = _load(tmp_path / 'out' / 'annotations' / 'train.json')
    assert len(train['images']) == 4
    ann = next(a for a in train['annotations'] if a['category_id'] == 2)
    assert ann['bbox'] == [22, 10, 28, 30] and ann['area'] == 840  # VOC (22,10,50,40) -> xywh
    assert [len(_load(tmp_path / 'out' / 'annotations' / n)['images'])
            for n in IMAGESET_FILES] == [4, 1, 1, 5]


def test_negative_box(tmp_path):
    root = make_voc(tmp_path / 'voc')
    add_objects(root, 'img_0001', [('RBC', (-5, 2, 10, 10))])
    report = check_error_then_skip(root, tmp_path, 'annotation img_0001.xml',
                                   'box (-5, 2, 10, 10) has a negative coordinate',
                                   'negative_box', level='boxes')
    rec = next(r for r in report.records if r.stem == 'img_0001')
    assert len(rec.boxes) == 3  # the good boxes stay, the bad one is skipped


def test_inverted_box(tmp_path):
    root = make_voc(tmp_path / 'voc')
    add_objects(root, 'img_0002', [('WBC', (30, 5, 10, 20))])
    check_error_then_skip(root, tmp_path, 'annotation img_0002.xml',
                          'box (30, 5, 10, 20) is inverted', 'inverted_box', level='boxes')


def test_zero_area_box_is_dropped_with_warning(tmp_path, caplog):
    root = make_voc(tmp_path / 'voc')
    add_objects(root, 'img_0003', [('RBC', (10, 10, 10, 20))])
    for mode in ('raise', 'skip'):
        with caplog.at_level(logging.WARNING, logger=bc.__name__):
            report = convert(root, str(tmp_path / mode), split_sizes=(4, 1, 1), on_error=mode)
        assert report.dropped_boxes == 1 and report.problems == []
        assert 'annotation img_0003.xml' in caplog.text
        assert 'box (10, 10, 10, 20) has zero area; dropped' in caplog.text
        assert 'dropped zero-area boxes: 1' in report.summary()
        caplog.clear()


def test_zero_area_only_box_leaves_empty_image(tmp_path):
    root = make_voc(tmp_path / 'voc')
    write_xml(osp.join(root, 'Annotations', 'img_0003.xml'), 'img_0003.jpg',
              [('RBC', (10, 10, 10, 10))])
    check_error_then_skip(root, tmp_path, 'annotation img_0003.xml', 'no valid object left of 1',
                          'no_objects')


def test_box_slightly_outside_is_clipped(tmp_path, caplog):
    root = make_voc(tmp_path / 'voc')
    add_objects(root, 'img_0004', [('RBC', (50, 10, 70, 20))])  # 6 px past the 64 px width
    with caplog.at_level(logging.WARNING, logger=bc.__name__):
        report = convert(root, str(tmp_path / 'out'), split_sizes=(4, 1, 1))
    assert report.clipped_boxes == 1 and report.problems == []
    assert ('annotation img_0004.xml: object #4 (RBC): box (50, 10, 70, 20) extends 6 px past '
            'image 64x48; clipped to (50, 10, 64, 20)') in caplog.text
    rec = next(r for r in report.records if r.stem == 'img_0004')
    assert rec.boxes[-1].coco_bbox() == [50, 10, 14, 10]
    assert 'clipped boxes: 1' in report.summary()


def test_box_far_outside_is_rejected(tmp_path):
    root = make_voc(tmp_path / 'voc')
    add_objects(root, 'img_0004', [('RBC', (50, 10, 100, 20))])  # 36 px past the edge
    check_error_then_skip(root, tmp_path, 'annotation img_0004.xml',
                          'box (50, 10, 100, 20) extends 36 px past image 64x48',
                          'outside_box', level='boxes')
    # a larger tolerance clips it instead
    report = convert(root, str(tmp_path / 'tol'), split_sizes=(4, 1, 1), clip_tolerance=40)
    assert report.clipped_boxes == 1 and report.problems == []


def test_box_fully_outside_is_rejected(tmp_path):
    root = make_voc(tmp_path / 'voc')
    add_objects(root, 'img_0000', [('Platelets', (70, 10, 80, 20))])
    check_error_then_skip(root, tmp_path, 'annotation img_0000.xml',
                          'box (70, 10, 80, 20) lies outside image 64x48', 'outside_box',
                          level='boxes')


def test_non_numeric_box(tmp_path):
    root = make_voc(tmp_path / 'voc')
    add_objects(root, 'img_0000', [('RBC', ('ten', 1, 5, 5))])
    check_error_then_skip(root, tmp_path, 'annotation img_0000.xml',
                          '<bndbox> (ten, 1, 5, 5) is missing or not numeric', 'bad_box',
                          level='boxes')


def test_unknown_class(tmp_path):
    root = make_voc(tmp_path / 'voc')
    add_objects(root, 'img_0005', [('Neutrophil', (5, 5, 15, 15))])
    report = check_error_then_skip(root, tmp_path, 'annotation img_0005.xml',
                                   "unknown class 'Neutrophil'", 'unknown_class', level='boxes')
    rec = next(r for r in report.records if r.stem == 'img_0005')
    assert [b.label for b in rec.boxes] == ['RBC', 'WBC', 'Platelets']


def test_annotation_without_image(tmp_path):
    root = make_voc(tmp_path / 'voc')
    write_xml(osp.join(root, 'Annotations', 'img_0099.xml'), 'img_0099.jpg', GOOD_OBJECTS)
    report = check_error_then_skip(root, tmp_path, 'annotation img_0099.xml',
                                   'image img_0099.jpg (from its <filename>) not found',
                                   'image_missing')
    assert len(report.records) == 6


def test_image_without_annotation(tmp_path):
    root = make_voc(tmp_path / 'voc')
    write_image(osp.join(root, 'JPEGImages', 'img_0100.jpg'))
    check_error_then_skip(root, tmp_path, 'image img_0100.jpg',
                          'no annotation names it (expected Annotations/img_0100.xml)',
                          'annotation_missing')


def test_zero_byte_image(tmp_path):
    root = make_voc(tmp_path / 'voc')
    open(osp.join(root, 'JPEGImages', 'img_0001.jpg'), 'wb').close()
    report = check_error_then_skip(root, tmp_path, 'image img_0001.jpg', 'is empty (0 bytes)',
                                   'image_empty_file')
    assert 'img_0001' not in {r.stem for r in report.records}


def test_truncated_jpeg(tmp_path):
    root = make_voc(tmp_path / 'voc')
    path = osp.join(root, 'JPEGImages', 'img_0002.jpg')
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])  # header intact, pixels cut off
    check_error_then_skip(root, tmp_path, 'image img_0002.jpg',
                          'truncated JPEG', 'image_truncated')


def test_text_file_named_jpg(tmp_path):
    root = make_voc(tmp_path / 'voc')
    with open(osp.join(root, 'JPEGImages', 'img_0003.jpg'), 'w') as f:
        f.write('this is not a picture\n')
    check_error_then_skip(root, tmp_path, 'image img_0003.jpg',
                          'is not a readable image (PIL cannot identify it)',
                          'image_not_image')


def test_duplicate_filename_field(tmp_path):
    root = make_voc(tmp_path / 'voc')
    # img_0002.xml claims img_0001.jpg too; img_0002.jpg is then left without annotation
    write_xml(osp.join(root, 'Annotations', 'img_0002.xml'), 'img_0001.jpg', GOOD_OBJECTS)
    report = check_error_then_skip(root, tmp_path, 'annotation img_0002.xml',
                                   'duplicate file name: names image img_0001.jpg, as '
                                   'img_0001.xml does', 'duplicate_file_name')
    # the annotation whose name matches the image is kept
    kept = next(r for r in report.records if r.file_name == 'img_0001.jpg')
    assert kept.xml_name == 'img_0001.xml'
    assert report.skipped_images['annotation_missing'] == 1


def test_duplicate_image_stems(tmp_path):
    root = make_voc(tmp_path / 'voc')
    write_image(osp.join(root, 'JPEGImages', 'img_0003.png'), fmt='PNG')
    with pytest.raises(BCCDConversionError) as exc:
        convert(root, str(tmp_path / 'out'), split_sizes=(4, 1, 1))
    assert ('image img_0003.jpg: duplicate file name: img_0003.jpg, img_0003.png share the stem'
            in str(exc.value))
    report = convert(root, str(tmp_path / 'skip'), split_sizes=(4, 1, 1), on_error='skip')
    assert report.skipped_images['duplicate_file_name'] == 2
    assert 'img_0003' not in {r.stem for r in report.records}


def test_empty_image_without_objects(tmp_path):
    root = make_voc(tmp_path / 'voc')
    write_xml(osp.join(root, 'Annotations', 'img_0004.xml'), 'img_0004.jpg', [])
    check_error_then_skip(root, tmp_path, 'annotation img_0004.xml',
                          'no objects (image without boxes)', 'no_objects')


def test_size_mismatch(tmp_path):
    root = make_voc(tmp_path / 'voc')
    write_xml(osp.join(root, 'Annotations', 'img_0005.xml'), 'img_0005.jpg', GOOD_OBJECTS,
              size=(640, 480))
    check_error_then_skip(root, tmp_path, 'annotation img_0005.xml',
                          '<size> 640x480 disagrees with image img_0005.jpg 64x48',
                          'size_mismatch')


def test_unreadable_xml(tmp_path):
    root = make_voc(tmp_path / 'voc')
    with open(osp.join(root, 'Annotations', 'img_0000.xml'), 'w') as f:
        f.write('<annotation><filename>img_0000.jpg</filename>')
    report = check_error_then_skip(root, tmp_path, 'annotation img_0000.xml', 'not valid XML',
                                   'xml_unreadable')
    # its image is not reported a second time as "without annotation"
    assert report.skipped_images['annotation_missing'] == 0


def test_imageset_unknown_id(tmp_path):
    root = make_voc(tmp_path / 'voc')
    with open(osp.join(root, 'ImageSets', 'Main', 'val.txt'), 'a') as f:
        f.write('img_0777\n')
    check_error_then_skip(root, tmp_path, 'image set ImageSets/Main/val.txt',
                          "id 'img_0777' has no Annotations/img_0777.xml", 'imageset_unknown_id')


def test_all_problems_listed_at_once(tmp_path):
    root = make_voc(tmp_path / 'voc')
    add_objects(root, 'img_0001', [('rbc', (1, 1, 5, 5))])
    open(osp.join(root, 'JPEGImages', 'img_0002.jpg'), 'wb').close()
    with pytest.raises(BCCDConversionError) as exc:
        load_voc(root)
    assert len(exc.value.problems) == 2
    assert str(exc.value).startswith('2 problem(s) in the BCCD data at')
    assert "annotation img_0001.xml: object #4 (rbc) has unknown class 'rbc'" in str(exc.value)
    assert 'image img_0002.jpg: is empty (0 bytes)' in str(exc.value)


def test_missing_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match='Annotations'):
        load_voc(str(tmp_path))
    assert main([str(tmp_path / 'nowhere'), '-o', str(tmp_path / 'out')]) == 1


def test_synthetic_deterministic_and_cli_script(tmp_path):
    """The thin CLI script runs as a program and gives the same bytes as ``convert``."""
    root = make_voc(tmp_path / 'voc')
    convert(root, str(tmp_path / 'a'), split_sizes=(4, 1, 1), seed=3)
    script = osp.join(REPO_ROOT, 'tools', 'dataset_converters', 'bccd_to_coco.py')
    proc = subprocess.run([sys.executable, script, root, '-o', str(tmp_path / 'b'), '--split',
                           '4', '1', '1', '--seed', '3'], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'clipped boxes: 0' in proc.stdout
    for n in SPLIT_FILES + IMAGESET_FILES:
        assert filecmp.cmp(tmp_path / 'a' / 'annotations' / n,
                           tmp_path / 'b' / 'annotations' / n, shallow=False), n


def test_cli_exit_status_on_bad_data(tmp_path, capsys):
    root = make_voc(tmp_path / 'voc')
    open(osp.join(root, 'JPEGImages', 'img_0002.jpg'), 'wb').close()
    assert main([root, '-o', str(tmp_path / 'c'), '--split', '4', '1', '1']) == 1
    err = capsys.readouterr().err
    assert 'image img_0002.jpg: is empty (0 bytes)' in err and '--on-error skip' in err
    assert main([root, '-o', str(tmp_path / 'd'), '--split', '4', '1', '1',
                 '--on-error', 'skip']) == 0
    assert 'skipped images: 1 (image_empty_file: 1)' in capsys.readouterr().out


def test_on_error_is_raise_or_skip(tmp_path, capsys):
    """``on_error`` / ``--on-error`` take the datasets' values, ``raise`` or ``skip``, only."""
    root = make_voc(tmp_path / 'voc')
    with pytest.raises(ValueError, match=r"on_error must be one of \('raise', 'skip'\), got "
                       r"'error'"):
        convert(root, str(tmp_path / 'a'), split_sizes=(4, 1, 1), on_error='error')
    with pytest.raises(SystemExit):
        main([root, '-o', str(tmp_path / 'b'), '--split', '4', '1', '1', '--on-error', 'error'])
    assert "invalid choice: 'error'" in capsys.readouterr().err
    assert main([root, '-o', str(tmp_path / 'c'), '--split', '4', '1', '1',
                 '--on-error', 'raise']) == 0


# ----------------------------------------------------------------------------------------------
# Split algorithm
# ----------------------------------------------------------------------------------------------

def _records(class_sets):
    return [ImageRecord(f'r{i:03d}', f'r{i:03d}.xml', f'r{i:03d}.jpg', W, H,
                        [Box(c, 0, 0, 5, 5) for c in sorted(cs)], image_id=i + 1)
            for i, cs in enumerate(class_sets)]


def test_split_exact_sizes_stratified_and_seeded():
    recs = _records([{'RBC', 'WBC'}] * 40 + [{'RBC', 'WBC', 'Platelets'}] * 20 + [{'WBC'}] * 4)
    splits = stratified_split(recs, (40, 16, 8), seed=0)
    assert [len(splits[n]) for n in ('train', 'val', 'test')] == [40, 16, 8]
    for n, part in splits.items():
        plate = sum('Platelets' in r.classes for r in part)
        # platelets (20 of 64 images) spread in proportion: 12.5 / 5 / 2.5 expected
        assert abs(plate - 20 * len(part) / 64) <= 1, (n, plate)
        assert {'RBC', 'WBC', 'Platelets'} <= {c for r in part for c in r.classes}
    again = stratified_split(recs, (40, 16, 8), seed=0)
    other = stratified_split(recs, (40, 16, 8), seed=1)
    assert [r.stem for r in again['test']] == [r.stem for r in splits['test']]
    assert [r.stem for r in other['test']] != [r.stem for r in splits['test']]


def test_split_repairs_class_coverage():
    # 3 platelet images, sizes 20/5/5: the proportional walk gives train 2, val 1, test 0;
    # the repair swaps one into test
    recs = _records([{'RBC', 'WBC', 'Platelets'}] * 3 + [{'RBC', 'WBC'}] * 27)
    splits = stratified_split(recs, (20, 5, 5), seed=0)
    assert [len(splits[n]) for n in ('train', 'val', 'test')] == [20, 5, 5]
    for part in splits.values():
        assert sum('Platelets' in r.classes for r in part) == 1


def test_split_impossible_and_scaled(caplog):
    recs = _records([{'RBC', 'Platelets'}] * 2 + [{'RBC'}] * 10)
    with pytest.raises(ValueError, match="class 'Platelets' appears in only 2 image"):
        stratified_split(recs, (8, 2, 2))
    recs = _records([{'RBC', 'WBC', 'Platelets'}] * 10)
    with caplog.at_level(logging.WARNING, logger=bc.__name__):
        splits = stratified_split(recs, (256, 74, 34))
    assert [len(splits[n]) for n in ('train', 'val', 'test')] == [7, 2, 1]
    assert 'scaled to 7/2/1' in caplog.text
    with pytest.raises(ValueError, match='>= 1'):
        stratified_split(recs, (10, 0, 0))
