"""``mmbloodcell screen``: smears -> white cells on black -> probability of ALL.

The segmentation is checked on the annotated white cells of real BCCD smears (VOC boxes);
the command runs end to end on real smears with the tiny FCOS detector and the SimpleNet
classifiers trained by tests/test_apis/conftest.py, its numbers checked against
``mmbloodcell detect`` and ``mmbloodcell classify`` on the same inputs.
"""
import csv
import glob
import json
import os.path as osp
import re
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from mmbloodcell.apis.cli import main
from mmbloodcell.apis.screen import CROP_PAD, crop_box, find_wbc_class
from mmbloodcell.datasets.transforms.cell import cell_on_black, segment_stained_cell

BCCD_CLASSES = ['RBC', 'WBC', 'Platelets']


def _read_csv(path):
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def _voc_wbcs(bccd_root, num_smears):
    """``(image path, [x1, y1, x2, y2])`` of the annotated WBCs of ``num_smears`` smears
    spread over the dataset."""
    xmls = sorted(glob.glob(osp.join(bccd_root, 'Annotations', '*.xml')))
    out = []
    for path in xmls[::max(1, len(xmls) // num_smears)][:num_smears]:
        tree = ET.parse(path)
        img = osp.join(bccd_root, 'JPEGImages', tree.find('filename').text)
        for obj in tree.findall('object'):
            if obj.find('name').text.strip() == 'WBC':
                bnd = obj.find('bndbox')
                out.append((img, [float(bnd.find(k).text)
                                  for k in ('xmin', 'ymin', 'xmax', 'ymax')]))
    return out


# ----------------------------------------------------------------------------------------------
# Segmentation on real smears
# ----------------------------------------------------------------------------------------------

def test_segmentation_covers_the_stained_white_cell(bccd_root):
    """For the annotated WBCs of 12 real smears: the nucleus (by a fixed colour rule, not
    the method's adaptive saturation threshold) in the central half of the box lies inside
    the mask, the mask is one region, and the crop's background is left black."""
    wbcs = _voc_wbcs(bccd_root, 12)
    assert len(wbcs) >= 12
    for path, box in wbcs:
        img = cv2.imread(path)
        crop, cbox = crop_box(img, box, 0.15)
        x1, y1, x2, y2 = box[0] - cbox[0], box[1] - cbox[1], box[2] - cbox[0], box[3] - cbox[1]
        mask = segment_stained_cell(crop, ((x1 + x2) / 2, (y1 + y2) / 2))
        assert mask.shape == crop.shape[:2] and mask.dtype == bool

        # strongly purple / blue (Giemsa-stained nucleus): blue well above green, not redder
        b, g, r = (crop[..., i].astype(int) for i in range(3))
        nucleus = (b - g >= 60) & (b >= r)
        centre = np.zeros_like(nucleus)
        w, h = x2 - x1, y2 - y1
        centre[int(y1 + h / 4):int(y2 - h / 4), int(x1 + w / 4):int(x2 - w / 4)] = True
        stained = nucleus & centre
        assert stained.sum() > 500, (path, box)  # the rule finds the nucleus
        assert mask[stained].mean() >= 0.9, (path, box, mask[stained].mean())

        num, _ = cv2.connectedComponents(mask.astype(np.uint8))
        assert num - 1 == 1, (path, box)
        assert 0.05 < mask.mean() < 0.85, (path, box, mask.mean())
        cell = cell_on_black(crop, mask)
        assert (cell[~mask] == 0).all() and np.array_equal(cell[mask], crop[mask])
        # most of the nucleus-free crop border is background, left black
        ring = np.ones(mask.shape, bool)
        ring[3:-3, 3:-3] = False
        assert mask[ring].mean() < 0.5, (path, box)


def test_segmentation_of_a_uniform_crop_is_empty():
    flat = np.full((40, 50, 3), (200, 180, 210), np.uint8)
    assert not segment_stained_cell(flat).any()
    with pytest.raises(TypeError, match='HxWx3 uint8'):
        segment_stained_cell(flat[..., 0])


def test_crop_box_margin_and_clipping():
    img = np.zeros((100, 200, 3), np.uint8)
    crop, box = crop_box(img, [50, 20, 90, 60], 0.25)
    assert box == [40, 10, 100, 70] and crop.shape == (60, 60, 3)
    crop, box = crop_box(img, [0, 0, 40, 100], 0.5)  # clipped to the image
    assert box == [0, 0, 60, 100]


def test_find_wbc_class(tmp_path):
    assert find_wbc_class(('RBC', 'WBC', 'Platelets'), 'det.py') == 1
    assert find_wbc_class(('rbc', 'wbc'), 'det.py') == 1
    assert find_wbc_class(('RBC', 'Neutrophil'), 'det.py', 'neutrophil') == 1
    with pytest.raises(ValueError, match=r"det\.py.*\('RBC', 'Platelets'\).*--wbc-class"):
        find_wbc_class(('RBC', 'Platelets'), 'det.py')


# ----------------------------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------------------------

#: the tiny detector ranks its RBC boxes first: its 100 best boxes per smear (the config's
#: max_per_img) are all RBC, so more are kept for its WBC boxes to be seen, and a stricter NMS
#: keeps the boxes (and the drawing) few
DET_OPTIONS = ['model.test_cfg.max_per_img=1000', 'model.test_cfg.nms.iou_threshold=0.1']


@pytest.fixture(scope='module')
def score_thr(detector, bccd_images, tmp_path_factory):
    """A --score-thr that keeps the detector's 4 to 9 best WBC boxes on the three smears:
    half-way between two WBC scores that differ in their 4 written decimals (the raw scores
    are within 5e-5 of those, on either side of it)."""
    out = str(tmp_path_factory.mktemp('det_all'))
    files = [osp.join(bccd_images['folder'], n) for n in bccd_images['good']]
    assert main(['detect', detector['config'], detector['ckpt'], *files, '--out', out,
                 '--score-thr', '0', '--device', 'cpu', '--no-annotated',
                 '--cfg-options', *DET_OPTIONS]) == 0
    doc = json.load(open(osp.join(out, 'detections.json')))
    scores = sorted((d['score'] for r in doc['images'] for d in r['detections']
                     if d['class'] == 'WBC'), reverse=True)
    for k in range(4, 10):
        if scores[k - 1] - scores[k] > 9e-5:
            return str(round((scores[k - 1] + scores[k]) / 2, 6))
    pytest.fail(f'no gap between the best WBC scores {scores[:10]}')


@pytest.fixture(scope='module')
def screened(detector, classifiers, bccd_images, score_thr, tmp_path_factory):
    """``main(['screen', ...])`` on the smear folder (3 real smears, 3 bad files), model a,
    --saliency, the detector's few best WBC boxes (:func:`score_thr`)."""
    out = str(tmp_path_factory.mktemp('screen'))
    rc = main(['screen', detector['config'], detector['ckpt'], classifiers['a']['config'],
               classifiers['a']['ckpt'], bccd_images['folder'], '--out', out, '--score-thr',
               score_thr, '--saliency', '--device', 'cpu', '--no-progress',
               '--det-cfg-options', *DET_OPTIONS])
    assert rc == 0
    return dict(out=out, thr=score_thr, doc=json.load(open(osp.join(out, 'screening.json'))))


def test_screen_files_and_counts(screened, detector, bccd_images, tmp_path):
    out, doc = screened['out'], screened['doc']
    assert doc['task'] == 'screen' and doc['detector']['classes'] == BCCD_CLASSES
    assert doc['detector']['wbc_class'] == 'WBC'
    assert doc['num_images'] == 6 and doc['num_failed'] == 3
    records = {r['file_name']: r for r in doc['images']}
    for name in bccd_images['bad']:
        r = records[name]
        assert r['status'] == 'error' and r['error'] and r['flag'] is None
        assert r['counts'] is None and r['wbcs'] == []

    # the counts are those of `mmbloodcell detect` at the same threshold
    det_out = str(tmp_path / 'det')
    assert main(['detect', detector['config'], detector['ckpt'], bccd_images['folder'],
                 '--out', det_out, '--score-thr', screened['thr'], '--device', 'cpu',
                 '--no-progress', '--no-annotated', '--cfg-options', *DET_OPTIONS]) == 0
    detected = {r['file_name']: r for r in
                json.load(open(osp.join(det_out, 'detections.json')))['images']}
    header, rows = _read_csv(osp.join(out, 'screening.csv'))
    assert header == ['image'] + BCCD_CLASSES + ['total', 'num_wbc', 'max_prob_all', 'flag',
                                                 'status', 'error']
    by_name = {osp.basename(r['image']): r for r in rows}
    assert sorted(by_name) == sorted(records)
    num_wbc = 0
    for name in bccd_images['good']:
        r, row = records[name], by_name[name]
        assert r['status'] == 'ok' and row['status'] == 'ok'
        assert r['counts'] == detected[name]['counts']
        assert r['detections'] == detected[name]['detections']
        assert [int(row[c]) for c in BCCD_CLASSES] == [r['counts'][c] for c in BCCD_CLASSES]
        assert r['num_wbc'] == r['counts']['WBC'] == int(row['num_wbc']) == len(r['wbcs'])
        num_wbc += r['num_wbc']
        img = cv2.imread(osp.join(out, r['annotated']))
        assert img is not None and img.shape == (480, 640, 3)
    assert 4 <= num_wbc <= 9


def test_screen_crops_are_cells_on_black_classified_as_classify_does(screened, classifiers,
                                                                     bccd_images, tmp_path):
    out, doc = screened['out'], screened['doc']
    header, rows = _read_csv(osp.join(out, 'wbc.csv'))
    assert header == ['image', 'wbc', 'x1', 'y1', 'x2', 'y2', 'score', 'prob_all', 'label',
                      'label_name', 'crop', 'saliency', 'status', 'error']
    wbcs = [(r, w) for r in doc['images'] for w in r['wbcs']]
    assert len(rows) == len(wbcs)
    crops = []
    for (r, w), row in zip(wbcs, rows):
        assert w['status'] == 'ok', w['error']
        assert row['crop'] == w['crop'] and float(row['prob_all']) == w['prob_all']
        assert [float(row[k]) for k in ('x1', 'y1', 'x2', 'y2')] == w['bbox']
        smear = cv2.imread(osp.join(bccd_images['folder'], r['file_name']))
        x1, y1, x2, y2 = w['crop_box']
        padded = cv2.imread(osp.join(out, w['crop']))
        assert padded.shape[:2] == (y2 - y1 + 2 * CROP_PAD, x2 - x1 + 2 * CROP_PAD)
        assert padded[:CROP_PAD].max() == padded[-CROP_PAD:].max() == 0
        assert padded[:, :CROP_PAD].max() == padded[:, -CROP_PAD:].max() == 0
        cell = padded[CROP_PAD:-CROP_PAD, CROP_PAD:-CROP_PAD]
        inside = cell.max(axis=2) > 0
        # the crop is the smear where the mask is, black elsewhere; not the whole box
        assert np.array_equal(cell[inside], smear[y1:y2, x1:x2][inside])
        assert 0 < inside.mean() < 1
        assert w['mask_fraction'] == pytest.approx(inside.mean(), abs=0.02)
        sal = cv2.imread(osp.join(out, w['saliency']))
        assert sal is not None and sal.shape == padded.shape
        assert w['warnings'] == []
        crops.append(osp.join(out, w['crop']))

    # `mmbloodcell classify` on the written crops gives the same probabilities
    cls_out = str(tmp_path / 'cls')
    assert main(['classify', classifiers['a']['config'], classifiers['a']['ckpt'], *crops,
                 '--out', cls_out, '--device', 'cpu', '--no-progress']) == 0
    cls_doc = json.load(open(osp.join(cls_out, 'predictions.json')))
    assert doc['all_thr'] == cls_doc['threshold']
    for (r, w), c in zip(wbcs, cls_doc['images']):
        assert c['status'] == 'ok' and c['warnings'] == []
        assert w['prob_all'] == pytest.approx(c['prob_all'], abs=1e-5)
        assert w['label'] == c['label']


def _check_flags(doc):
    for r in doc['images']:
        if r['status'] != 'ok':
            continue
        probs = [w['prob_all'] for w in r['wbcs']]
        assert r['flag'] == any(p > doc['all_thr'] for p in probs)
        assert r['max_prob_all'] == (max(probs) if probs else None)
        for w in r['wbcs']:
            assert w['label'] == int(w['prob_all'] > doc['all_thr'])
    assert doc['num_flagged'] == sum(bool(r['flag']) for r in doc['images'])


def test_screen_flag_rule_and_html(screened):
    out, doc = screened['out'], screened['doc']
    _check_flags(doc)
    _, rows = _read_csv(osp.join(out, 'screening.csv'))
    for r, row in zip(doc['images'], rows):
        assert row['flag'] == ('' if r['flag'] is None else str(r['flag']))
    page = open(osp.join(out, 'screening.html'), encoding='utf-8').read()
    srcs = re.findall(r'<img [^>]*src="([^"]*)"', page)
    ok = [r for r in doc['images'] if r['status'] == 'ok']
    num_wbc = sum(r['num_wbc'] for r in ok)
    # every smear's annotated image, every crop and its Grad-CAM, all embedded
    assert len(srcs) == len(ok) + 2 * num_wbc
    assert all(s.startswith('data:image/png;base64,') for s in srcs)
    for r in doc['images']:
        assert r['file_name'] in page
    assert page.count('ALL suspected') >= doc['num_flagged']
    for r in ok:
        for w in r['wbcs']:
            assert f'prob_all {w["prob_all"]:.4f}' in page


def test_screen_ensemble(screened, detector, classifiers, ensemble_config, bccd_images,
                         tmp_path):
    """An ensemble of classifiers a and b, CKPT '-': each white cell's probability is the
    mean of its members', the flag follows --all-thr, set between two smears' best cells."""
    cfg_path = ensemble_config
    # model b on the crops of the first run: the ensemble's expected probabilities
    good = [r for r in screened['doc']['images'] if r['status'] == 'ok']
    crops = [osp.join(screened['out'], w['crop']) for r in good for w in r['wbcs']]
    out_b = str(tmp_path / 'b')
    assert main(['classify', classifiers['b']['config'], classifiers['b']['ckpt'], *crops,
                 '--out', out_b, '--device', 'cpu', '--no-progress']) == 0
    probs_b = iter(r['prob_all'] for r in
                   json.load(open(osp.join(out_b, 'predictions.json')))['images'])
    expected = {(r['file_name'], w['index']): (w['prob_all'] + next(probs_b)) / 2
                for r in good for w in r['wbcs']}
    best = sorted({max(p for (n, _), p in expected.items() if n == r['file_name'])
                   for r in good if r['wbcs']})
    gaps = [(b - a, (a + b) / 2) for a, b in zip(best, best[1:]) if b - a > 1e-4]
    assert gaps, f"the smears' best cells are too close to split: {best}"
    thr = round(max(gaps)[1], 6)
    out = str(tmp_path / 'ens')
    files = [osp.join(bccd_images['folder'], n) for n in bccd_images['good']]
    assert main(['screen', detector['config'], detector['ckpt'], cfg_path, '-', *files,
                 '--out', out, '--score-thr', screened['thr'], '--all-thr', str(thr),
                 '--device', 'cpu', '--batch-size', '2', '--det-cfg-options',
                 *DET_OPTIONS]) == 0
    doc = json.load(open(osp.join(out, 'screening.json')))
    assert doc['classifier']['members'] == ['a', 'b'] and doc['all_thr'] == pytest.approx(thr)
    header, rows = _read_csv(osp.join(out, 'wbc.csv'))
    assert header[-2:] == ['prob_all_a', 'prob_all_b']
    first = {(r['file_name'], w['index']): w for r in screened['doc']['images']
             for w in r['wbcs']}
    wbcs = [w for r in doc['images'] for w in r['wbcs']]
    assert len(wbcs) == len(first) == len(rows)
    for r in doc['images']:
        for w in r['wbcs']:
            assert w['saliency'] is None
            a, b = w['member_probs']['a'], w['member_probs']['b']
            assert a == pytest.approx(first[(r['file_name'], w['index'])]['prob_all'],
                                      abs=2e-6)
            assert w['prob_all'] == pytest.approx((a + b) / 2, abs=2e-6)
            assert w['prob_all'] == pytest.approx(expected[(r['file_name'], w['index'])],
                                                  abs=2e-6)
    _check_flags(doc)
    assert 0 < doc['num_flagged'] < len(good)


# ----------------------------------------------------------------------------------------------
# Bad inputs
# ----------------------------------------------------------------------------------------------

def test_screen_bad_inputs(detector, classifiers, bccd_images, tmp_path, capsys):
    det_cfg, det_ckpt = detector['config'], detector['ckpt']
    cls_cfg, cls_ckpt = classifiers['a']['config'], classifiers['a']['ckpt']
    smear = osp.join(bccd_images['folder'], bccd_images['good'][0])
    out = str(tmp_path / 'out')

    def error(*args):
        rc = main(['screen', *args, '--out', out, '--device', 'cpu'])
        assert rc == 2
        return capsys.readouterr().err

    missing = str(tmp_path / 'nowhere.pth')
    for args in ((det_cfg, missing, cls_cfg, cls_ckpt), (det_cfg, det_ckpt, cls_cfg, missing)):
        err = error(*args, smear)
        assert f'checkpoint {missing} not found' in err and 'tools/train.py' in err
    err = error(cls_cfg, cls_ckpt, det_cfg, det_ckpt, smear)  # swapped
    assert cls_cfg in err and 'DET_CONFIG' in err and 'swap' in err
    err = error(det_cfg, det_ckpt, det_cfg, det_ckpt, smear)  # a detector as classifier
    assert det_cfg in err and 'CLS_CONFIG' in err and 'detection config' in err
    empty = tmp_path / 'empty'
    empty.mkdir()
    err = error(det_cfg, det_ckpt, cls_cfg, cls_ckpt, str(empty))
    assert 'no images found' in err and str(empty) in err
    err = error(det_cfg, det_ckpt, cls_cfg, cls_ckpt, smear, '--wbc-class', 'Neutrophil')
    assert det_cfg in err and "('RBC', 'WBC', 'Platelets')" in err and '--wbc-class' in err

    # only unreadable smears: each one reported, exit status 1
    bad = [osp.join(bccd_images['folder'], n) for n in bccd_images['bad']]
    assert main(['screen', det_cfg, det_ckpt, cls_cfg, cls_ckpt, *bad, '--out', out,
                 '--device', 'cpu']) == 1
    doc = json.load(open(osp.join(out, 'screening.json')))
    assert [r['status'] for r in doc['images']] == ['error'] * 3
    assert 'empty (0 bytes)' in doc['images'][0]['error']


def test_a_white_cell_that_cannot_be_segmented_is_a_per_cell_error(classifiers, bccd_root,
                                                                   tmp_path):
    """A real smear, one box on its annotated WBC and one on a patch painted flat (nothing
    stained to segment): the second is a per-cell error, the first is classified."""
    from mmbloodcell.apis.inference import build_classifier
    from mmbloodcell.apis.screen import _screen_wbcs
    (path, box), = _voc_wbcs(bccd_root, 1)
    img = cv2.imread(path)
    img[380:480, 0:120] = (200, 190, 210)
    clf = build_classifier(classifiers['a']['config'], classifiers['a']['ckpt'], device='cpu')
    (tmp_path / 'crops').mkdir()
    rec = dict(wbcs=[])
    dets = [dict(label=1, score=0.9, bbox=box), dict(label=1, score=0.8, bbox=[20, 400, 100, 470])]
    _screen_wbcs(rec, img, 'smear', dets, clf, 0.15, False, 8, str(tmp_path))
    good, flat = rec['wbcs']
    assert good['status'] == 'ok' and 0 <= good['prob_all'] <= 1
    assert osp.isfile(tmp_path / good['crop'])
    assert flat['status'] == 'error' and 'no stained cell' in flat['error']
    assert flat['crop'] is None and flat['prob_all'] is None
    assert rec['num_wbc'] == 2 and rec['max_prob_all'] == good['prob_all']
    assert rec['flag'] == (good['prob_all'] > clf.threshold)


def test_screen_onnxruntime_backend_matches_pytorch(screened, detector, classifiers,
                                                    bccd_images, tmp_path):
    """Both models exported to ONNX: the same smears give the same counts, the same white
    cells and the same probabilities of ALL as the PyTorch run (within onnxruntime's
    tolerance)."""
    from mmbloodcell.apis.export import export_onnx
    det_onnx = str(tmp_path / 'fcos.onnx')
    cls_onnx = str(tmp_path / 'simplenet_a.onnx')
    export_onnx(detector['config'], detector['ckpt'], det_onnx, exporter='torchscript')
    export_onnx(classifiers['a']['config'], classifiers['a']['ckpt'], cls_onnx,
                exporter='torchscript')
    out = str(tmp_path / 'screen_onnx')
    rc = main(['screen', detector['config'], det_onnx, classifiers['a']['config'], cls_onnx,
               bccd_images['folder'], '--out', out, '--score-thr', screened['thr'],
               '--backend', 'onnxruntime', '--no-progress', '--det-cfg-options', *DET_OPTIONS])
    assert rc == 0
    doc = json.load(open(osp.join(out, 'screening.json')))
    ref = {r['file_name']: r for r in screened['doc']['images']}
    assert doc['num_images'] == screened['doc']['num_images']
    for rec in doc['images']:
        want = ref[rec['file_name']]
        assert rec['status'] == want['status'], rec['file_name']
        assert rec['counts'] == want['counts'], rec['file_name']
        assert len(rec['wbcs']) == len(want['wbcs'])
        for got, exp in zip(rec['wbcs'], want['wbcs']):
            assert np.allclose(got['bbox'], exp['bbox'], atol=0.2)
            assert abs(got['prob_all'] - exp['prob_all']) < 1e-4
