"""YOLOv8 baseline (tools/yolo_baseline.py): the COCO -> YOLO export (exact label values,
determinism, errors), the scoring through mmdet's CocoMetric (ground truth scores 1.0, known
shifts score the exact COCO values, YOLO labels round-trip to the right classes), and a real
one-epoch ultralytics training on a few BCCD images, offline."""
import filecmp
import importlib.util
import json
import os
import os.path as osp
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from script_loader import load_script
from mmbloodcell.analysis.logs import YOLO_METRICS_FILE

yb = load_script('tools/yolo_baseline.py')
HAS_ULTRALYTICS = importlib.util.find_spec('ultralytics') is not None
COCO_KEYS = ['coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/bbox_mAP_s',
             'coco/bbox_mAP_m', 'coco/bbox_mAP_l', 'coco/RBC_precision', 'coco/WBC_precision',
             'coco/Platelets_precision']


# ----------------------------------------------------------------------------------------------
# A tiny synthetic COCO tree: annotations/{train,val,test}.json + JPEGImages/
# ----------------------------------------------------------------------------------------------

# category ids deliberately not 1, 2, 3 in list order: class i must be the i-th listed category
CATEGORIES = [{'id': 7, 'name': 'RBC'}, {'id': 2, 'name': 'WBC'}, {'id': 5, 'name': 'Platelets'}]
IMAGES = [  # (id, file, width, height)
    (1, 'a.jpg', 640, 480),
    (2, 'b.jpg', 100, 50),
    (3, 'c.jpg', 640, 480),  # no boxes: an empty label file
]
ANNOTATIONS = [  # (id, image id, category id, [x, y, w, h], iscrowd)
    (1, 1, 7, [10, 20, 100, 50], 0),
    (2, 1, 2, [0, 0, 640, 480], 0),
    (3, 2, 5, [25, 10, 50, 30], 0),
    (4, 2, 7, [1, 1, 10, 10], 1),  # crowd: not exported
    (5, 1, 5, [300, 200, 40, 40], 0),
]
# the exact YOLO lines: cx = (x + w/2) / W, cy = (y + h/2) / H, w / W, h / H
EXPECTED_LABELS = {
    'a': ['0 0.093750 0.093750 0.156250 0.104167',   # 60/640, 45/480, 100/640, 50/480
          '1 0.500000 0.500000 1.000000 1.000000',
          '2 0.500000 0.458333 0.062500 0.083333'],  # 320/640, 220/480, 40/640, 40/480
    'b': ['2 0.500000 0.500000 0.500000 0.600000'],  # 50/100, 25/50, 50/100, 30/50
    'c': [],
}


def _coco(images=IMAGES, annotations=ANNOTATIONS, categories=CATEGORIES):
    keep = {i for i, *_ in images}
    return {
        'images': [dict(id=i, file_name=f, width=w, height=h) for i, f, w, h in images],
        'annotations': [dict(id=i, image_id=im, category_id=c, bbox=b, area=b[2] * b[3],
                             iscrowd=cr) for i, im, c, b, cr in annotations if im in keep],
        'categories': categories,
    }


@pytest.fixture
def coco_root(tmp_path):
    root = tmp_path / 'bccd'
    (root / 'annotations').mkdir(parents=True)
    (root / 'JPEGImages').mkdir()
    for i, f, w, h in IMAGES:
        Image.new('RGB', (w, h), (i * 40, 100, 200)).save(root / 'JPEGImages' / f)
    # same tiny set in every split (the export treats them independently)
    for split in yb.SPLITS:
        with open(root / 'annotations' / f'{split}.json', 'w') as f:
            json.dump(_coco(), f)
    return str(root)


def _read_labels(out, split='train'):
    d = osp.join(out, 'labels', split)
    return {osp.splitext(n)[0]: open(osp.join(d, n)).read().splitlines()
            for n in sorted(os.listdir(d))}


# ----------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------

def test_label_line_math():
    assert yb.yolo_label_line(0, [10, 20, 100, 50], 640, 480) == \
        '0 0.093750 0.093750 0.156250 0.104167'
    assert yb.yolo_label_line(2, [0.5, 0.5, 3, 2], 4, 4) == '2 0.500000 0.375000 0.750000 0.500000'


def test_export_exact_labels_and_yaml(coco_root, tmp_path):
    out = str(tmp_path / 'yolo')
    data_yaml = yb.main(['export', '--data-root', coco_root, '--out', out])
    assert data_yaml == osp.join(out, 'data.yaml')
    for split in yb.SPLITS:
        assert _read_labels(out, split) == EXPECTED_LABELS
        imgs = sorted(os.listdir(osp.join(out, 'images', split)))
        assert imgs == ['a.jpg', 'b.jpg', 'c.jpg']
        for name in imgs:  # symlinks to the source images by default
            link = osp.join(out, 'images', split, name)
            assert osp.islink(link)
            assert osp.samefile(link, osp.join(coco_root, 'JPEGImages', name))
    with open(data_yaml) as f:
        data = yaml.safe_load(f)
    # names in the COCO category order (not sorted by id), folders relative to the yaml
    assert data['names'] == {0: 'RBC', 1: 'WBC', 2: 'Platelets'}
    assert data['nc'] == 3
    assert {k: data[k] for k in yb.SPLITS} == {s: f'images/{s}' for s in yb.SPLITS}
    assert 'path' not in data


def test_export_copy_and_imagesets_prefix(coco_root, tmp_path):
    ann = osp.join(coco_root, 'annotations')
    two = dict(images=IMAGES[:2])
    for split in yb.SPLITS:
        with open(osp.join(ann, f'imagesets_{split}.json'), 'w') as f:
            json.dump(_coco(**two), f)
    out = str(tmp_path / 'yolo')
    yb.export_yolo_dataset(coco_root, out, split_prefix='imagesets_', copy=True)
    assert _read_labels(out, 'test') == {k: EXPECTED_LABELS[k] for k in ('a', 'b')}
    copied = osp.join(out, 'images', 'test', 'a.jpg')
    assert not osp.islink(copied)
    assert filecmp.cmp(copied, osp.join(coco_root, 'JPEGImages', 'a.jpg'), shallow=False)


def test_export_is_deterministic_and_replaces_stale_files(coco_root, tmp_path):
    out1, out2 = str(tmp_path / 'o1'), str(tmp_path / 'o2')
    yb.export_yolo_dataset(coco_root, out1)
    yb.export_yolo_dataset(coco_root, out2)
    assert filecmp.cmp(osp.join(out1, 'data.yaml'), osp.join(out2, 'data.yaml'), shallow=False)
    for split in yb.SPLITS:
        d1, d2 = (osp.join(o, 'labels', split) for o in (out1, out2))
        names = sorted(os.listdir(d1))
        assert names == sorted(os.listdir(d2)) == ['a.txt', 'b.txt', 'c.txt']
        match, mismatch, errors = filecmp.cmpfiles(d1, d2, names, shallow=False)
        assert (mismatch, errors) == ([], [])
        assert [os.readlink(osp.join(o, 'images', split, 'a.jpg')) for o in (out1, out2)] == \
            [osp.abspath(osp.join(coco_root, 'JPEGImages', 'a.jpg'))] * 2
    # a re-export into the same folder drops files that no longer belong there
    stale = [osp.join(out1, 'labels', 'train', 'old.txt'), osp.join(out1, 'labels', 'train.cache'),
             osp.join(out1, 'images', 'train', 'old.jpg')]
    for path in stale:
        open(path, 'w').close()
    yb.export_yolo_dataset(coco_root, out1)
    assert not any(osp.exists(p) for p in stale)
    assert _read_labels(out1) == EXPECTED_LABELS


def test_export_errors_name_the_file(coco_root, tmp_path):
    ann_file = osp.join(coco_root, 'annotations', 'val.json')
    bad = _coco(annotations=ANNOTATIONS + [(9, 2, 7, [90, 10, 20, 10], 0)])  # x + w = 110 > 100
    with open(ann_file, 'w') as f:
        json.dump(bad, f)
    with pytest.raises(ValueError, match=r'val\.json.*b\.jpg.*outside the 100x50 image'):
        yb.export_yolo_dataset(coco_root, str(tmp_path / 'o'))

    with open(ann_file, 'w') as f:
        json.dump(_coco(), f)
    os.remove(osp.join(coco_root, 'JPEGImages', 'c.jpg'))
    with pytest.raises(FileNotFoundError, match=r'train\.json: image c\.jpg not found'):
        yb.export_yolo_dataset(coco_root, str(tmp_path / 'o'))

    with pytest.raises(FileNotFoundError, match='bccd_to_coco.py'):
        yb.export_yolo_dataset(str(tmp_path / 'nowhere'), str(tmp_path / 'o'))


# ----------------------------------------------------------------------------------------------
# Scoring with mmdet's CocoMetric
# ----------------------------------------------------------------------------------------------

def _gt_detections(coco, shift=0.0):
    """Ground-truth boxes as predictions (score 1), optionally moved right by ``shift * w``."""
    label_of = {c['id']: i for i, c in enumerate(coco['categories'])}
    dets = {im['id']: dict(bboxes=[], scores=[], labels=[]) for im in coco['images']}
    for a in coco['annotations']:
        if a.get('iscrowd'):
            continue
        x, y, w, h = a['bbox']
        d = dets[a['image_id']]
        d['bboxes'].append([x + shift * w, y, x + w + shift * w, y + h])
        d['scores'].append(1.0)
        d['labels'].append(label_of[a['category_id']])
    return {k: {n: np.array(v, np.float32).reshape((-1, 4) if n == 'bboxes' else -1)
                for n, v in d.items()} for k, d in dets.items()}


@pytest.fixture
def ann_file(tmp_path):
    # enough boxes of every class for a meaningful AP (shifting keeps them inside the image)
    rng = np.random.RandomState(0)
    anns, k = [], 0
    for img_id in (1, 2, 3):
        for cat in (7, 2, 5):
            for _ in range(3):
                k += 1
                x, y = rng.randint(0, 400), rng.randint(0, 300)
                w, h = rng.randint(20, 120), rng.randint(20, 120)
                anns.append((k, img_id, cat, [int(x), int(y), int(w), int(h)], 0))
    path = str(tmp_path / 'gt.json')
    with open(path, 'w') as f:
        json.dump(_coco(annotations=anns), f)
    return path


def test_ground_truth_scores_one(ann_file):
    with open(ann_file) as f:
        coco = json.load(f)
    metrics = yb.evaluate_detections(ann_file, _gt_detections(coco))
    assert set(COCO_KEYS) <= set(metrics)
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/RBC_precision',
                'coco/WBC_precision', 'coco/Platelets_precision'):
        assert metrics[key] == 1.0, key
    # the package's count metric too: every count right (3 per class and image)
    for c in ('RBC', 'WBC', 'Platelets'):
        assert metrics[f'count/{c}_mae'] == 0.0 and metrics[f'count/{c}_within1'] == 1.0


def test_counts_at_the_calibrated_thresholds(ann_file):
    """Counts at the fixed 0.3 and at calibrated thresholds per class, against the file's
    boxes: scores 0.2 for one class are counted at 0.1, not at 0.3."""
    with open(ann_file) as f:
        coco = json.load(f)
    dets = _gt_detections(coco)
    for d in dets.values():
        d['scores'] = np.where(d['labels'] == 2, 0.2, 0.9).astype(np.float32)
    fixed = yb.evaluate_detections(ann_file, dets)
    assert fixed['count/Platelets_mae'] == 3.0 and fixed['count/RBC_mae'] == 0.0
    cal = yb.evaluate_detections(ann_file, dets, calibrated_thrs=dict(Platelets=0.1))
    assert cal['count/Platelets_mae_calibrated'] == 0.0
    assert cal['count/Platelets_thr_calibrated'] == 0.1


def test_shifted_boxes_score_lower_exactly(ann_file):
    with open(ann_file) as f:
        coco = json.load(f)
    # a shift by 0.2 w gives IoU = 0.8 / 1.2 = 2/3 for every box: a hit at the COCO IoU
    # thresholds 0.50, 0.55, 0.60, 0.65 and a miss at 0.70 ... 0.95 -> mAP = 4 / 10
    metrics = yb.evaluate_detections(ann_file, _gt_detections(coco, shift=0.2))
    assert metrics['coco/bbox_mAP_50'] == 1.0
    assert metrics['coco/bbox_mAP_75'] == 0.0
    assert metrics['coco/bbox_mAP'] == pytest.approx(0.4, abs=1e-3)
    # no detections for one image: its boxes are missed
    dets = _gt_detections(coco)
    del dets[3]
    assert yb.evaluate_detections(ann_file, dets)['coco/bbox_mAP'] < 0.7


def test_yolo_labels_round_trip_to_the_right_classes(coco_root, tmp_path):
    """Exported labels, read back as predictions, score 1.0 against the COCO json: YOLO class i
    and the evaluator's label i are the same category (ids 7, 2, 5 here)."""
    out = str(tmp_path / 'yolo')
    yb.export_yolo_dataset(coco_root, out)
    ann_file = osp.join(coco_root, 'annotations', 'test.json')
    sizes = {osp.splitext(f)[0]: (i, w, h) for i, f, w, h in IMAGES}
    dets = {}
    for stem, lines in _read_labels(out, 'test').items():
        img_id, W, H = sizes[stem]
        v = np.array([[float(t) for t in ln.split()] for ln in lines]).reshape(-1, 5)
        boxes = np.stack([(v[:, 1] - v[:, 3] / 2) * W, (v[:, 2] - v[:, 4] / 2) * H,
                          (v[:, 1] + v[:, 3] / 2) * W, (v[:, 2] + v[:, 4] / 2) * H], 1)
        dets[img_id] = dict(bboxes=boxes, scores=np.ones(len(v)), labels=v[:, 0].astype(int))
    metrics = yb.evaluate_detections(ann_file, dets)
    assert metrics['coco/bbox_mAP'] == 1.0
    # the same boxes with the classes rotated are all wrong
    for d in dets.values():
        d['labels'] = (d['labels'] + 1) % 3
    assert yb.evaluate_detections(ann_file, dets)['coco/bbox_mAP'] == 0.0


def test_evaluate_rejects_bad_input(ann_file):
    with pytest.raises(KeyError, match='image ids \\[99\\]'):
        yb.evaluate_detections(ann_file, {99: dict(bboxes=np.zeros((0, 4)), scores=[], labels=[])})
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 3\)'):
        yb.evaluate_detections(ann_file, {1: dict(bboxes=np.zeros((1, 4)), scores=[1.0],
                                                  labels=[3])})


def test_metrics_table():
    table = yb.format_metrics_table({'coco/bbox_mAP': 0.5, 'speed/latency_ms': 12.25})
    assert '| coco/bbox_mAP    |  0.500 |' in table
    assert '| speed/latency_ms | 12.250 |' in table


# ----------------------------------------------------------------------------------------------
# A real ultralytics training: 1 epoch, imgsz 160, CPU, a few BCCD images, nothing downloaded
# ----------------------------------------------------------------------------------------------

_NET_EVENTS = {'socket.getaddrinfo', 'socket.gethostbyname', 'socket.gethostbyaddr',
               'socket.connect', 'urllib.Request'}
_net_log = {'on': False, 'calls': []}


def _net_audit(event, args):
    if _net_log['on'] and event in _NET_EVENTS:
        if event == 'socket.connect' and isinstance(args[1], (str, bytes)):
            return  # AF_UNIX (local IPC), not the network
        _net_log['calls'].append((event, repr(args)[:120]))


@pytest.fixture(scope='module')
def net_audit():
    """Records name look-ups and connections while ``_net_log['on']`` (audit hooks cannot be
    removed, so the hook stays installed but idle)."""
    if not getattr(sys, '_mmbc_yolo_net_audit', False):
        sys.addaudithook(_net_audit)
        sys._mmbc_yolo_net_audit = True
    return _net_log


def _all_class_subset(src: str, dst: str, num_images: int) -> None:
    """The first ``num_images`` images of ``src`` (by id) that show all three classes."""
    with open(src) as f:
        coco = json.load(f)
    classes = {}
    for a in coco['annotations']:
        classes.setdefault(a['image_id'], set()).add(a['category_id'])
    full = {c['id'] for c in coco['categories']}
    coco['images'] = [im for im in sorted(coco['images'], key=lambda im: im['id'])
                      if classes.get(im['id']) == full][:num_images]
    assert len(coco['images']) == num_images, src
    keep = {im['id'] for im in coco['images']}
    coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] in keep]
    with open(dst, 'w') as f:
        json.dump(coco, f)


@pytest.mark.skipif(not HAS_ULTRALYTICS, reason='the optional ultralytics package is missing '
                    '(pip install -e .[yolo])')
def test_real_tiny_training_offline(bccd_coco, tmp_path, monkeypatch, net_audit):
    already_imported = 'ultralytics' in sys.modules
    monkeypatch.setenv('YOLO_CONFIG_DIR', str(tmp_path / 'ulcfg'))
    monkeypatch.setenv('YOLO_OFFLINE', '1')
    # the converter's real output (conftest: bccd_to_coco's convert()), cut to 8 / 2 / 3 images
    root = tmp_path / 'mini'
    (root / 'annotations').mkdir(parents=True)
    os.symlink(osp.join(bccd_coco, 'JPEGImages'), root / 'JPEGImages')
    for split, n in (('train', 8), ('val', 2), ('test', 3)):
        _all_class_subset(osp.join(bccd_coco, 'annotations', f'{split}.json'),
                          str(root / 'annotations' / f'{split}.json'), n)
    work = tmp_path / 'work'

    net_audit['on'], net_audit['calls'] = True, []
    try:
        metrics = yb.main([
            'run', '--data-root', str(root), '--work-dir', str(work), '--epochs', '1',
            '--imgsz', '160', '--batch', '4', '--device', 'cpu', '--workers', '0',
            '--warmup', '1', '--quiet'])
    finally:
        net_audit['on'] = False
    assert net_audit['calls'] == [], 'ultralytics tried to reach the network'

    assert set(COCO_KEYS) <= set(metrics)
    for key in COCO_KEYS:  # -1 is COCO's "no box of this size" (BCCD has no small boxes)
        assert metrics[key] == -1 or 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics['speed/latency_ms'] > 0 and metrics['speed/fps'] > 0
    # counts at the thresholds calibrated on the validation split's predictions
    for c in ('RBC', 'WBC', 'Platelets'):
        assert metrics[f'count/{c}_mae_calibrated'] >= 0
        assert 0.05 <= metrics[f'count/{c}_thr_calibrated'] <= 0.95
    run_dir = work / 'train'
    assert (run_dir / 'weights' / 'best.pt').is_file()
    with open(run_dir / YOLO_METRICS_FILE) as f:
        saved = json.load(f)
    assert saved['metrics'] == metrics
    assert saved['settings']['num_images'] == 3 and saved['settings']['max_det'] == 100
    assert sorted(os.listdir(work / 'dataset' / 'labels' / 'train'))[:1] == \
        [osp.splitext(sorted(os.listdir(work / 'dataset' / 'images' / 'train'))[0])[0] + '.txt']
    if not already_imported:  # ultralytics' settings went to YOLO_CONFIG_DIR, not $HOME
        assert (tmp_path / 'ulcfg' / 'Ultralytics' / 'settings.json').is_file()


@pytest.mark.skipif(not HAS_ULTRALYTICS, reason='the optional ultralytics package is missing '
                    '(pip install -e .[yolo])')
def test_pil_open_is_not_left_patched(tmp_path):
    """ultralytics patches PIL.Image.open to pip-install pi-heif on unknown files; after using
    it, an unreadable file must still give PIL's own error (the image checks rely on it)."""
    from PIL import Image, UnidentifiedImageError
    with yb.ultralytics_offline(str(tmp_path / 'cfg')):
        pass
    bad = tmp_path / 'notes.png'
    bad.write_text('not an image')
    with pytest.raises(UnidentifiedImageError):
        Image.open(str(bad))
