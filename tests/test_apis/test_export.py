"""``mmbloodcell export`` and ``--backend onnxruntime``: onnxruntime's results equal PyTorch's.

On the real BCCD smears with the FCOS demo model trained 2 iterations (``detector``), at
``score_thr=0.01`` (many boxes); on the six real C-NMC cells with the two SimpleNet models
(``classifiers``) and their ensemble; RTMDet and SSD with random weights (decoding equality).

Tolerances (stated once): detection records (coordinates rounded to 0.1 px, scores to 1e-4)
match box for box with the same label, coordinates within :data:`BOX_ATOL` px and scores
within :data:`SCORE_ATOL`; probabilities of ``all`` within :data:`PROB_ATOL`.
"""
import json
import os.path as osp

import numpy as np
import onnx
import pytest
from mmengine.config import Config

import mmbloodcell  # noqa: F401
from mmbloodcell.apis.cli import main
from mmbloodcell.apis.export import (SPARSE_RCNN_REASON, ExportError, export_onnx,
                                     read_onnx_metadata)
from mmbloodcell.apis.inference import build_classifier, build_detector
from mmbloodcell.apis.onnx_backend import OnnxCellDetector

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ENSEMBLE = osp.join(REPO, 'configs', 'cnmc', 'ensemble_densenet201-efficientnet-b2_cnmc.py')
SPARSE = osp.join(REPO, 'configs', 'sparse_rcnn', 'sparse-rcnn_r50_fpn_100p_50e_bccd.py')
BOX_ATOL = 0.2
SCORE_ATOL = 2e-4
PROB_ATOL = 1e-5
THR = 0.01


@pytest.fixture(scope='module')
def fcos_onnx(detector):
    """The trained FCOS exported with the default (dynamo) exporter."""
    out = str(detector['base'] / 'fcos.onnx')
    res = export_onnx(detector['config'], detector['ckpt'], out)
    assert res['max_abs_diff'] < 1e-3
    return out


@pytest.fixture(scope='module')
def smears(bccd_images):
    from mmbloodcell.apis.inference import read_image
    paths = [osp.join(bccd_images['folder'], n) for n in bccd_images['good']]
    return paths, [read_image(p)[0] for p in paths]


def test_fcos_graph_and_metadata(fcos_onnx, detector):
    model = onnx.load(fcos_onnx)
    meta = read_onnx_metadata(fcos_onnx)
    assert meta['task'] == 'detection' and meta['classes'] == ['RBC', 'WBC', 'Platelets']
    assert meta['head']['type'] == 'FCOSHead' and meta['head']['with_score_factors']
    assert meta['head']['priors'] == dict(type='point', strides=[[8, 8], [16, 16], [32, 32]],
                                          offset=0.5)
    assert meta['preprocess'] == dict(mean=pytest.approx([123.675, 116.28, 103.53]),
                                      std=pytest.approx([58.395, 57.12, 57.375]),
                                      bgr_to_rgb=True, pad_size_divisor=32, pad_value=0.0)
    assert meta['test_cfg']['nms'] == dict(type='nms', iou_threshold=0.5)
    assert meta['dynamic_hw'] and meta['count_thresholds'] is None
    assert meta['outputs'] == [f'{k}_{i}' for k in ('cls_score', 'bbox_pred', 'centerness')
                               for i in range(3)]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # N, 3, H, W


def test_fcos_onnxruntime_equals_pytorch_on_bccd(detector, fcos_onnx, smears, same_detections):
    paths, imgs = smears
    torch_det = build_detector(detector['config'], detector['ckpt'], 'pytorch', device='cpu',
                               score_thr=THR)
    ort_det = build_detector(detector['config'], fcos_onnx, 'onnxruntime', score_thr=THR)
    assert ort_det.classes == torch_det.classes
    assert ort_det.score_thr == torch_det.score_thr == {c: THR for c in torch_det.classes}
    one_by_one = []
    for path, img in zip(paths, imgs):
        ref, got = torch_det.detect(img, path), ort_det.detect(img, path)
        assert len(ref) >= 20, 'too few boxes for a comparison: lower THR'
        same_detections(ref, got, BOX_ATOL, SCORE_ATOL)
        one_by_one.append(got)
    # dynamic batch: three images in one run give the same boxes as one at a time
    for single, batched in zip(one_by_one, ort_det.detect_batch(imgs, paths)):
        same_detections(single, batched, BOX_ATOL, SCORE_ATOL)
    # another image size (the graph's H and W are dynamic): a 500x371 crop
    crop = imgs[0][:371, :500]
    same_detections(torch_det.detect(crop), ort_det.detect(crop), BOX_ATOL, SCORE_ATOL)


def test_detect_cli_onnxruntime(detector, fcos_onnx, bccd_images, tmp_path):
    outs = {}
    for backend, ckpt in (('pytorch', detector['ckpt']), ('onnxruntime', fcos_onnx)):
        out = str(tmp_path / backend)
        assert main(['detect', detector['config'], ckpt, bccd_images['folder'], '--out', out,
                     '--score-thr', str(THR), '--device', 'cpu', '--backend', backend,
                     '--no-annotated']) == 0
        outs[backend] = json.load(open(osp.join(out, 'detections.json')))
    ref, got = outs['pytorch'], outs['onnxruntime']
    assert got['checkpoint'] == fcos_onnx and got['num_failed'] == 3
    for r, g in zip(ref['images'], got['images']):
        assert (g['file_name'], g['status']) == (r['file_name'], r['status'])
        if g['file_name'] in bccd_images['bad']:
            assert g['error'] == r['error'] != ''
        else:
            assert g['counts'] == r['counts'] and g['counts']['total'] >= 20


def test_score_thresholds_per_class_and_calibrated(random_checkpoint, tmp_path, smears):
    calibrated = {'RBC': 0.9, 'WBC': 0.95, 'Platelets': 0.85}
    m = random_checkpoint('rtmdet', meta=dict(count_thresholds=calibrated))
    out = str(tmp_path / 'rtmdet.onnx')
    export_onnx(m['config'], m['ckpt'], out, exporter='torchscript')
    assert read_onnx_metadata(out)['count_thresholds'] == calibrated
    img = smears[1][0]
    det = OnnxCellDetector(m['config'], out, score_thr=None)
    assert det.score_thr == calibrated
    low = OnnxCellDetector(m['config'], out, score_thr=0.5).detect(img)
    kept = det.detect(img)
    assert 0 < len(kept) < len(low)
    assert all(d['score'] >= calibrated[d['class']] - 1e-4 for d in kept)
    assert OnnxCellDetector(m['config'], out, score_thr={'WBC': 0.9}).score_thr == dict(
        RBC=0.3, WBC=0.9, Platelets=0.3)
    with pytest.raises(ValueError,
                       match="names classes \\['neutrophil'\\] the detector does not have"):
        OnnxCellDetector(m['config'], out, score_thr={'neutrophil': 0.5})


@pytest.mark.parametrize('kind,exporter', [
    ('rtmdet', 'torchscript'),
    ('gfl', 'dynamo'),  # the package's CPU detector: box distributions integrated in numpy
    pytest.param('rtmdet', 'dynamo', marks=pytest.mark.slow),
    pytest.param('ssd', 'torchscript', marks=pytest.mark.slow),  # VGG-16: 15-30 s each
    pytest.param('ssd_focal', 'dynamo', marks=pytest.mark.slow)])
def test_one_stage_onnxruntime_equals_pytorch(kind, exporter, random_checkpoint, smears,
                                              tmp_path, same_detections):
    m = random_checkpoint(kind)
    out = str(tmp_path / f'{kind}.onnx')
    export_onnx(m['config'], m['ckpt'], out, exporter=exporter)
    meta = read_onnx_metadata(out)
    assert meta['dynamic_hw'] is not kind.startswith('ssd')  # SSD300: fixed 300x300 input
    paths, imgs = smears
    torch_det = build_detector(m['config'], m['ckpt'], 'pytorch', device='cpu', score_thr=0.3)
    ort_det = build_detector(m['config'], out, 'onnxruntime', score_thr=0.3)
    for path, img in zip(paths[:2], imgs[:2]):
        ref = torch_det.detect(img, path)
        assert len(ref) >= 10
        same_detections(ref, ort_det.detect(img, path), BOX_ATOL, SCORE_ATOL)


# ----------------------------------------------------------------------------------------------
# Classifiers
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def classifier_onnx(classifiers):
    out = str(classifiers['base'] / 'simplenet_a.onnx')
    res = export_onnx(classifiers['a']['config'], classifiers['a']['ckpt'], out)
    assert res['max_abs_diff'] < 1e-4
    return out


@pytest.fixture(scope='module')
def cell_images(cells):
    from mmbloodcell.apis.inference import read_image
    paths = [osp.join(cells['folder'], n[-7:-4], n) for n in cells['good']]
    return paths, [read_image(p)[0] for p in paths]


def test_classifier_onnxruntime_equals_pytorch(classifiers, classifier_onnx, cell_images):
    meta = read_onnx_metadata(classifier_onnx)
    assert meta['outputs'] == ['logit', 'prob'] and meta['classes'] == ['hem', 'all']
    assert meta['positive'] == 1 and not meta['ensemble']
    _, imgs = cell_images
    a = classifiers['a']
    ref = build_classifier(a['config'], a['ckpt'], 'pytorch', device='cpu').predict(imgs)
    clf = build_classifier(a['config'], classifier_onnx, 'onnxruntime')
    assert (clf.classes, clf.positive, clf.member_names) == (('hem', 'all'), 1, [])
    got = clf.predict(imgs, batch_size=4)
    single = clf.predict(imgs, batch_size=1)
    for r, g, s in zip(ref, got, single):
        assert g['error'] is None and g['label'] == r['label']
        assert abs(g['prob'] - r['prob']) < PROB_ATOL and abs(s['prob'] - g['prob']) < PROB_ATOL
    with pytest.raises(ValueError, match='Grad-CAM.*--backend pytorch'):
        clf.predict(imgs[:1], saliency=True)


def test_classify_cli_onnxruntime_bad_images(classifiers, classifier_onnx, cells, tmp_path):
    docs = {}
    for backend, ckpt in (('pytorch', classifiers['a']['ckpt']),
                          ('onnxruntime', classifier_onnx)):
        out = str(tmp_path / backend)
        assert main(['classify', classifiers['a']['config'], ckpt, cells['folder'], '--out',
                     out, '--device', 'cpu', '--backend', backend, '--batch-size', '4']) == 0
        docs[backend] = json.load(open(osp.join(out, 'predictions.json')))
    ref, got = docs['pytorch'], docs['onnxruntime']
    assert got['num_failed'] == 3 and got['num_images'] == 9
    for r, g in zip(ref['images'], got['images']):
        assert (g['file_name'], g['status'], g['label']) == (r['file_name'], r['status'],
                                                             r['label'])
        if g['status'] == 'ok':
            assert abs(g['prob_all'] - r['prob_all']) < PROB_ATOL
        else:
            assert g['error'] == r['error'] != ''
    assert got['patients'] == ref['patients']


def test_ensemble_one_graph(classifiers, cell_images, tmp_path):
    cfg = Config.fromfile(ENSEMBLE)
    cfg.model.members = [
        dict(config=classifiers['a']['config'], checkpoint=classifiers['a']['ckpt'], name='a'),
        dict(config=classifiers['b']['config'], checkpoint=classifiers['b']['ckpt'], name='b',
             weight=3.0),
    ]
    cfg.test_dataloader = Config.fromfile(classifiers['a']['config']).test_dataloader
    cfg_path = str(tmp_path / 'ensemble.py')
    cfg.dump(cfg_path)
    out = str(tmp_path / 'ensemble.onnx')
    res = export_onnx(cfg_path, '-', out)
    meta = res['metadata']
    assert meta['outputs'] == ['prob', 'member_probs'] and meta['ensemble']
    assert meta['member_names'] == ['a', 'b'] and meta['member_weights'] == [0.25, 0.75]
    assert meta['preprocess']['mean'] == [0.0, 0.0, 0.0]  # members normalise in the graph
    _, imgs = cell_images
    ref = build_classifier(cfg_path, '-', 'pytorch', device='cpu').predict(imgs)
    clf = build_classifier(cfg_path, out, 'onnxruntime')
    assert clf.member_names == ['a', 'b']
    for r, g in zip(ref, clf.predict(imgs)):
        assert abs(g['prob'] - r['prob']) < PROB_ATOL and g['label'] == r['label']
        np.testing.assert_allclose(g['member_probs'], r['member_probs'], atol=PROB_ATOL)
        assert abs(g['prob'] - (0.25 * g['member_probs'][0] + 0.75 * g['member_probs'][1])) \
            < 1e-6


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------

def test_export_errors(detector, classifiers, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match='missing.pth not found: train first'):
        export_onnx(detector['config'], str(tmp_path / 'missing.pth'))
    with pytest.raises(ExportError, match="mmdeploy's own converter does not convert it") as e:
        export_onnx(SPARSE, str(tmp_path / 'never_read.pth'))
    assert 'mmbloodcell detect CONFIG CKPT' in str(e.value) and 'RoIAlign' in SPARSE_RCNN_REASON
    # the CLI: exit status 2 and the message
    assert main(['export', SPARSE, detector['ckpt'], '--format', 'onnx']) == 2
    assert 'Sparse R-CNN cannot be exported' in capsys.readouterr().err
    with pytest.raises(ValueError, match='must end with .onnx'):
        export_onnx(detector['config'], detector['ckpt'], str(tmp_path / 'model.pth'))


def test_backend_errors(detector, classifiers, fcos_onnx, classifier_onnx, bccd_images,
                        tmp_path, capsys):
    cfg, ckpt = detector['config'], detector['ckpt']
    missing = str(tmp_path / 'missing.onnx')
    with pytest.raises(FileNotFoundError, match='missing.onnx not found: export it first'):
        build_detector(cfg, missing, 'onnxruntime')
    with pytest.raises(ValueError, match='epoch_2.pth is not an .onnx file.*--backend pytorch'):
        build_detector(cfg, ckpt, 'onnxruntime')
    fake = tmp_path / 'fake.onnx'
    fake.write_text('not a model\n')
    with pytest.raises(ValueError, match='fake.onnx is not an ONNX model'):
        build_detector(cfg, str(fake), 'onnxruntime')
    # the classifier's file given to detect, a classification config with the detector's
    with pytest.raises(ValueError, match='is a classification model; use `mmbloodcell classify`'):
        build_detector(cfg, classifier_onnx, 'onnxruntime')
    with pytest.raises(ValueError, match='is not a classification config.*mmbloodcell detect'):
        build_classifier(cfg, fcos_onnx, 'onnxruntime')
    with pytest.raises(ValueError, match='runs on the CPU'):
        build_detector(cfg, fcos_onnx, 'onnxruntime', device='cuda:0')
    # the CLI: exit 2 with the message, e.g. --saliency with onnxruntime
    assert main(['detect', cfg, ckpt, bccd_images['folder'], '--out', str(tmp_path / 'x'),
                 '--backend', 'onnxruntime']) == 2
    assert 'is not an .onnx file' in capsys.readouterr().err
    assert main(['classify', classifiers['a']['config'], classifier_onnx,
                 bccd_images['folder'], '--out', str(tmp_path / 'y'), '--backend',
                 'onnxruntime', '--saliency']) == 2
    assert 'Grad-CAM' in capsys.readouterr().err
