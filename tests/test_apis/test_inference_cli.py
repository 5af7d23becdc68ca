"""``mmbloodcell detect`` / ``mmbloodcell classify`` end to end on real images.

Checkpoints come from short CPU trainings run here (module-scoped, once): the FCOS CPU demo
config on two real BCCD images at 320x240, and two SimpleNet C-NMC models (different seeds) at
64 px on synthetic cells. The installed console script runs in a subprocess; ``main()`` runs
in-process for the reference and ensemble runs. Real inputs: three BCCD smears and the six
C-NMC cells, next to a zero-byte ``.jpg`` and a text file named ``.png``.
"""
import csv
import glob
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_checkpoint

import mmbloodcell  # noqa: F401
from mmbloodcell.apis.cli import main
from mmbloodcell.apis.gradcam import cam_to_image, grad_cam
from mmbloodcell.apis.inference import CellClassifier, output_stems

from mmbloodcell.registry import CLS_MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FCOS_DEMO = osp.join(REPO, 'configs', 'fcos', 'fcos_r18_fpn_gn_320_12e_bccd_cpu-demo.py')
SIMPLENET = osp.join(REPO, 'configs', 'cnmc', 'simplenet_bce_stain-norm_cnmc.py')
BCCD_CLASSES = ['RBC', 'WBC', 'Platelets']
SIZE = 64
SCRIPT = osp.join(osp.dirname(sys.executable), 'mmbloodcell')


def _console(*args):
    if not osp.isfile(SCRIPT):
        pytest.fail(f'{SCRIPT} not found: the console script is installed by '
                    f'`pip install --no-build-isolation -e .` (setup.py entry_points)')
    env = dict(os.environ, OMP_NUM_THREADS='2')
    proc = subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=600)
    return proc


def _read_csv(path):
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


@pytest.fixture(scope='module')
def reference_detections(detector, bccd_images, tmp_path_factory):
    """In-process ``main`` at --score-thr 0 on the three good images: every box the model
    keeps (its own 0.05 threshold lowered to 0)."""
    out = str(tmp_path_factory.mktemp('det_ref'))
    files = [osp.join(bccd_images['folder'], n) for n in bccd_images['good']]
    rc = main(['detect', detector['config'], detector['ckpt'], *files, '--out', out,
               '--score-thr', '0', '--device', 'cpu', '--no-annotated'])
    assert rc == 0
    doc = json.load(open(osp.join(out, 'detections.json')))
    return {r['file_name']: r for r in doc['images']}


@pytest.fixture(scope='module')
def classify_a(classifiers, cells, tmp_path_factory):
    """The console script on the cell folder with model a and --saliency."""
    out = str(tmp_path_factory.mktemp('cls_out_a'))
    proc = _console('classify', classifiers['a']['config'], classifiers['a']['ckpt'],
                    cells['folder'], '--out', out, '--saliency', '--device', 'cpu')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(out=out, proc=proc)


# ----------------------------------------------------------------------------------------------
# detect
# ----------------------------------------------------------------------------------------------

def _threshold_between(reference):
    """A threshold in a clear gap (>= 2e-4) between two scores of the reference boxes, near
    their median, so that the box scores (rounded to 4 decimals) fall clearly on one side."""
    scores = sorted({d['score'] for r in reference.values() for d in r['detections']})
    assert len(scores) > 10, f'too few boxes to test a threshold: {scores}'
    gaps = [(abs(i - len(scores) // 2), (a + b) / 2) for i, (a, b) in
            enumerate(zip(scores, scores[1:])) if b - a >= 2e-4]
    assert gaps, 'no gap between the box scores'
    return round(min(gaps)[1], 6)


def test_detect_console_script(detector, bccd_images, reference_detections, tmp_path):
    thr = _threshold_between(reference_detections)
    out = str(tmp_path / 'det')
    proc = _console('detect', detector['config'], detector['ckpt'], bccd_images['folder'],
                    '--out', out, '--score-thr', thr, '--device', 'cpu')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '6 image(s): 3 processed, 3 failed' in proc.stdout
    assert '6/6' in proc.stderr  # the progress bar of a folder

    # counts.csv: one row per image, the schema of the brief
    header, rows = _read_csv(osp.join(out, 'counts.csv'))
    assert header == ['image'] + BCCD_CLASSES + ['total', 'status', 'error']
    by_name = {osp.basename(r['image']): r for r in rows}
    assert sorted(by_name) == sorted(bccd_images['good'] + bccd_images['bad'])

    # bad files: reported with their reason, no counts
    assert by_name['empty.jpg']['status'] == 'error'
    assert 'empty (0 bytes)' in by_name['empty.jpg']['error']
    assert by_name['notes.png']['status'] == 'error'
    assert 'not a readable image' in by_name['notes.png']['error']
    assert 'truncated' in by_name['truncated.jpg']['error']
    for name in bccd_images['bad']:
        assert by_name[name]['status'] == 'error'
        assert all(by_name[name][c] == '' for c in BCCD_CLASSES + ['total'])

    doc = json.load(open(osp.join(out, 'detections.json')))
    assert doc['task'] == 'detect' and doc['classes'] == BCCD_CLASSES
    assert doc['score_thr'] == {c: pytest.approx(thr) for c in BCCD_CLASSES}
    assert doc['score_thr_source'] == 'given'
    assert doc['num_images'] == 6 and doc['num_failed'] == 3
    records = {r['file_name']: r for r in doc['images']}
    for name in bccd_images['bad']:
        r = records[name]
        assert r['status'] == 'error' and r['error'] == by_name[name]['error']
        assert r['detections'] == [] and r['counts'] is None and r['annotated'] is None

    total_kept = total_dropped = 0
    for name in bccd_images['good']:
        r, row = records[name], by_name[name]
        assert r['status'] == 'ok' and r['error'] == '' and row['status'] == 'ok'
        assert (r['width'], r['height']) == (640, 480)
        for det in r['detections']:
            assert set(det) == {'label', 'class', 'score', 'bbox'}
            assert det['class'] == BCCD_CLASSES[det['label']]
            assert det['score'] >= thr
            x1, y1, x2, y2 = det['bbox']
            assert -1 <= x1 <= x2 <= 641 and -1 <= y1 <= y2 <= 481
        # counts == boxes per class, in the JSON and in the CSV
        per_class = {c: sum(d['class'] == c for d in r['detections']) for c in BCCD_CLASSES}
        assert r['counts'] == dict(per_class, total=len(r['detections']))
        assert {c: int(row[c]) for c in BCCD_CLASSES} == per_class
        assert int(row['total']) == len(r['detections'])
        # ... and == the boxes of the threshold-0 run that are above the threshold
        ref = reference_detections[name]['detections']
        expected = {c: sum(d['class'] == c and d['score'] > thr for d in ref)
                    for c in BCCD_CLASSES}
        assert per_class == expected, name
        kept = sorted((d['label'], d['score']) for d in r['detections'])
        assert kept == sorted((d['label'], d['score']) for d in ref if d['score'] > thr)
        total_kept += len(kept)
        total_dropped += len(ref) - len(kept)

        # annotated image: exists, same size as the input, not the input
        assert r['annotated'] == osp.join('annotated', osp.splitext(name)[0] + '.png')
        drawn = cv2.imread(osp.join(out, r['annotated']))
        original = cv2.imread(osp.join(bccd_images['folder'], name))
        assert drawn is not None and drawn.shape == original.shape
        assert np.abs(drawn.astype(int) - original.astype(int)).max() > 100
    # the threshold really split the boxes
    assert total_kept > 0 and total_dropped > 0
    assert sorted(os.listdir(osp.join(out, 'annotated'))) == \
        sorted(osp.splitext(n)[0] + '.png' for n in bccd_images['good'])


def test_detect_uses_the_checkpoint_thresholds_without_score_thr(detector, bccd_images,
                                                                 reference_detections, tmp_path):
    """A checkpoint with calibrated count thresholds (meta['count_thresholds'], as
    CountCalibrationHook writes them): used per class without --score-thr, replaced for every
    class by --score-thr; without them 0.3."""
    thrs = dict(RBC=_threshold_between(reference_detections), WBC=0.0, Platelets=1.0)
    ckpt = torch.load(detector['ckpt'], map_location='cpu', weights_only=False)
    ckpt['meta']['count_thresholds'] = thrs
    calibrated = str(tmp_path / 'calibrated.pth')
    torch.save(ckpt, calibrated)
    files = [osp.join(bccd_images['folder'], n) for n in bccd_images['good']]

    def detect(ckpt_path, *extra):
        out = str(tmp_path / f'out{len(os.listdir(tmp_path))}')
        assert main(['detect', detector['config'], ckpt_path, *files, '--out', out,
                     '--device', 'cpu', '--no-annotated', *extra]) == 0
        return json.load(open(osp.join(out, 'detections.json')))

    doc = detect(calibrated)
    assert doc['score_thr'] == thrs and doc['score_thr_source'] == 'checkpoint'
    for r in doc['images']:
        ref = reference_detections[r['file_name']]['detections']
        # the per-class thresholds on the boxes of the threshold-0 run
        assert sorted((d['label'], d['score']) for d in r['detections']) == sorted(
            (d['label'], d['score']) for d in ref if d['score'] >= thrs[d['class']])
        assert r['counts']['Platelets'] == 0
        assert r['counts']['WBC'] == sum(d['class'] == 'WBC' for d in ref)
    given = detect(calibrated, '--score-thr', '0.2')
    assert given['score_thr'] == {c: 0.2 for c in BCCD_CLASSES}
    assert given['score_thr_source'] == 'given'
    default = detect(detector['ckpt'])
    assert default['score_thr'] == {c: 0.3 for c in BCCD_CLASSES}
    assert default['score_thr_source'] == 'default'
    for r in default['images']:
        assert all(d['score'] >= 0.3 for d in r['detections'])


def test_detect_reference_lowered_the_model_threshold(reference_detections):
    """At --score-thr 0 the boxes under the config's own 0.05 are kept too."""
    scores = [d['score'] for r in reference_detections.values() for d in r['detections']]
    assert scores and min(scores) < 0.05
    for r in reference_detections.values():
        assert r['annotated'] is None  # --no-annotated
        assert len(r['detections']) <= 100  # the config's max_per_img


def test_usage_errors(detector, classifiers, bccd_images, tmp_path, capsys):
    image = osp.join(bccd_images['folder'], bccd_images['good'][0])
    assert main(['detect', detector['config'], str(tmp_path / 'missing.pth'), image,
                 '--out', str(tmp_path / 'o')]) == 2
    assert 'missing.pth not found' in capsys.readouterr().err
    # checkpoints are loaded strictly: another model's weights are refused
    assert main(['detect', detector['config'], classifiers['a']['ckpt'], image, '--out',
                 str(tmp_path / 'o'), '--device', 'cpu']) == 2
    assert 'does not match the model of' in capsys.readouterr().err
    assert main(['classify', classifiers['a']['config'], detector['ckpt'], image, '--out',
                 str(tmp_path / 'o'), '--device', 'cpu']) == 2
    assert 'does not match the model of' in capsys.readouterr().err
    # a classification config is refused with the command to use
    assert main(['detect', SIMPLENET, detector['ckpt'], image, '--out', str(tmp_path)]) == 2
    assert 'mmbloodcell classify' in capsys.readouterr().err
    # only bad images: nothing processed -> exit status 1, still reported
    bad = [osp.join(bccd_images['folder'], n) for n in bccd_images['bad']]
    out = str(tmp_path / 'bad')
    assert main(['detect', detector['config'], detector['ckpt'], *bad, str(tmp_path / 'no.jpg'),
                 '--out', out, '--device', 'cpu']) == 1
    _, rows = _read_csv(osp.join(out, 'counts.csv'))
    assert [r['status'] for r in rows] == ['error'] * 4
    assert rows[3]['error'] == 'does not exist'


# ----------------------------------------------------------------------------------------------
# classify
# ----------------------------------------------------------------------------------------------

def _direct_probs(cfg_path, ckpt, cells):
    """Probabilities of ``all`` of the real cells through the config's own test pipeline
    (LoadImageFromFile included) and ``model.test_step``, without the inference API."""
    cfg = Config.fromfile(cfg_path)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
        model = CLS_MODELS.build(cfg.model)
        load_checkpoint(model, ckpt, map_location='cpu', strict=True)
        model.eval()
        out = {}
        for cls in ('all', 'hem'):
            for path in sorted(glob.glob(osp.join(cells['root'], cls, '*.bmp'))):
                batch = pseudo_collate([pipeline(dict(img_path=path))])
                with torch.no_grad():
                    pred = model.test_step(batch)[0]
                out[osp.basename(path)] = float(pred.pred_prob)
    return out


def test_classify_console_script(classifiers, cells, classify_a):
    out, proc = classify_a['out'], classify_a['proc']
    assert '9 image(s): 6 processed, 3 failed' in proc.stdout

    header, rows = _read_csv(osp.join(out, 'predictions.csv'))
    assert header == ['image', 'prob_all', 'label', 'label_name', 'threshold', 'patient_id',
                      'saliency', 'status', 'error', 'warnings']
    assert all(r['warnings'] == '' for r in rows)  # real C-NMC cells: nothing to say
    by_name = {osp.basename(r['image']): r for r in rows}
    assert sorted(by_name) == sorted(cells['good'] + cells['bad'])
    assert 'empty (0 bytes)' in by_name['empty.jpg']['error']
    assert 'not a readable image' in by_name['notes.png']['error']
    assert 'is truncated' in by_name['UID_1_99_1_all.bmp']['error']
    for name in cells['bad']:
        assert by_name[name]['status'] == 'error'
        assert by_name[name]['prob_all'] == by_name[name]['saliency'] == ''

    doc = json.load(open(osp.join(out, 'predictions.json')))
    assert doc['task'] == 'classify' and doc['classes'] == ['hem', 'all']
    assert doc['threshold'] == 0.5 and doc['members'] == []  # BinaryClsHead's default
    assert doc['num_images'] == 9 and doc['num_failed'] == 3
    records = {r['file_name']: r for r in doc['images']}
    direct = _direct_probs(classifiers['a']['config'], classifiers['a']['ckpt'], cells)
    for name in cells['good']:
        r, row = records[name], by_name[name]
        assert r['status'] == 'ok' and row['status'] == 'ok' and r['error'] == ''
        p = r['prob_all']
        assert 0.0 < p < 1.0 and float(row['prob_all']) == pytest.approx(p)
        # the API's preprocessing is the config's test pipeline
        assert p == pytest.approx(direct[name], abs=1e-5)
        assert r['label'] == int(p > 0.5) == int(row['label'])
        assert r['label_name'] == row['label_name'] == ('all' if p > 0.5 else 'hem')
        assert float(row['threshold']) == 0.5
        expected_patient = '1' if name.endswith('_all.bmp') else 'H6'
        assert r['patient_id'] == row['patient_id'] == expected_patient
        assert r['class_in_name'] == name[-7:-4]
        # Grad-CAM overlay: at the image's size, not the image
        assert r['saliency'] == row['saliency'] == osp.splitext(name)[0] + '_gradcam.png'
        cam = cv2.imread(osp.join(out, r['saliency']))
        original = cv2.imread(osp.join(cells['root'], name[-7:-4], name))
        assert cam is not None and cam.shape == original.shape == (450, 450, 3)
        assert np.abs(cam.astype(int) - original.astype(int)).max() > 50
    assert len(glob.glob(osp.join(out, '*_gradcam.png'))) == 6

    # patient summary: two patients, three cells each, majority vote of the cell labels
    assert set(doc['patients']) == {'1', 'H6'}
    header, prow = _read_csv(osp.join(out, 'patients.csv'))
    assert header == ['patient_id', 'num_cells', 'mean_prob_all', 'votes_hem', 'votes_all',
                      'label', 'label_name', 'class_in_name', 'agrees_with_name']
    assert [r['patient_id'] for r in prow] == ['1', 'H6']
    for row in prow:
        pid = row['patient_id']
        mine = [records[n] for n in cells['good'] if records[n]['patient_id'] == pid]
        assert len(mine) == 3 == int(row['num_cells'])
        summary = doc['patients'][pid]
        mean = float(np.mean([r['prob_all'] for r in mine]))
        assert summary['mean_prob_all'] == pytest.approx(mean, abs=1e-6)
        assert float(row['mean_prob_all']) == pytest.approx(mean, abs=1e-6)
        n_all = sum(r['label'] for r in mine)
        assert summary['votes'] == dict(hem=3 - n_all, all=n_all)
        assert (int(row['votes_hem']), int(row['votes_all'])) == (3 - n_all, n_all)
        assert summary['label'] == int(n_all >= 2) == int(row['label'])
        assert summary['label_name'] == row['label_name'] == ('all' if n_all >= 2 else 'hem')
        truth = 'all' if pid == '1' else 'hem'
        assert summary['class_in_name'] == row['class_in_name'] == truth
        assert summary['agrees_with_name'] == (summary['label_name'] == truth)


def test_classify_ensemble_without_checkpoint_and_threshold(classifiers, ensemble_config, cells,
                                                            classify_a, tmp_path):
    """An ensemble config naming its members' checkpoints, CKPT '-': the probability is the
    mean of the two models', the label follows --threshold, Grad-CAM works on it."""
    # model b alone, in-process, on the good cells given as files
    files = [osp.join(cells['folder'], n[-7:-4], n) for n in cells['good']]
    out_b = str(tmp_path / 'b')
    assert main(['classify', classifiers['b']['config'], classifiers['b']['ckpt'], *files,
                 '--out', out_b, '--device', 'cpu', '--batch-size', '4']) == 0
    prob_b = {r['file_name']: r['prob_all']
              for r in json.load(open(osp.join(out_b, 'predictions.json')))['images']}
    prob_a = {r['file_name']: r['prob_all']
              for r in json.load(open(osp.join(classify_a['out'], 'predictions.json')))['images']
              if r['status'] == 'ok'}
    assert set(prob_b) == set(prob_a) == set(cells['good'])

    cfg_path = ensemble_config
    mean = {n: (prob_a[n] + prob_b[n]) / 2 for n in prob_a}
    values = sorted(mean.values())
    thr = round((values[2] + values[3]) / 2, 6)  # three cells on each side
    assert values[2] < thr < values[3]

    out = str(tmp_path / 'ens')
    assert main(['classify', cfg_path, '-', cells['folder'], '--out', out, '--threshold',
                 str(thr), '--saliency', '--device', 'cpu', '--no-progress']) == 0
    doc = json.load(open(osp.join(out, 'predictions.json')))
    assert doc['members'] == ['a', 'b'] and doc['threshold'] == pytest.approx(thr)
    header, rows = _read_csv(osp.join(out, 'predictions.csv'))
    assert header[-2:] == ['prob_all_a', 'prob_all_b']
    ok = [r for r in doc['images'] if r['status'] == 'ok']
    assert len(ok) == 6 and doc['num_failed'] == 3
    for r in ok:
        n = r['file_name']
        assert r['member_probs']['a'] == pytest.approx(prob_a[n], abs=2e-6)
        assert r['member_probs']['b'] == pytest.approx(prob_b[n], abs=2e-6)
        assert r['prob_all'] == pytest.approx(mean[n], abs=2e-6)
        assert r['label'] == int(mean[n] > thr)
        img = cv2.imread(osp.join(out, r['saliency']))
        assert img is not None and img.shape == (450, 450, 3)
    assert sum(r['label'] for r in ok) == 3
    # patient summary of mixed labels: the majority of each patient's three cells
    for pid in ('1', 'H6'):
        labels = [r['label'] for r in ok if r['patient_id'] == pid]
        summary = doc['patients'][pid]
        assert len(labels) == 3 == summary['num_cells']
        assert summary['votes'] == dict(hem=labels.count(0), all=labels.count(1))
        assert summary['label'] == int(labels.count(1) >= 2)

    # the same ensemble config without member checkpoints: an error naming the fix
    cfg = Config.fromfile(ensemble_config)
    for m in cfg.model.members:
        m['checkpoint'] = None
    bare = str(tmp_path / 'ensemble_bare.py')
    cfg.dump(bare)
    with pytest.raises(ValueError, match=r'model.members.<i>.checkpoint'):
        CellClassifier(bare, '-', device='cpu')
    # a single model needs its checkpoint
    with pytest.raises(ValueError, match='checkpoint'):
        CellClassifier(classifiers['a']['config'], 'none', device='cpu')


# ----------------------------------------------------------------------------------------------
# Grad-CAM and helpers
# ----------------------------------------------------------------------------------------------

def _linear_head_model(config, **head):
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    cfg.model.head.update(hidden_channels=None, **head)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = CLS_MODELS.build(cfg.model)
    # random weights: set the BN statistics from one batch, or the deep random EfficientNet
    # gives features of ~1e-13
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model.backbone(torch.randn(4, 3, SIZE, SIZE))
    return model.eval()


@pytest.mark.parametrize('config,head', [
    ('simplenet_bce_stain-norm_cnmc.py', {}),
    ('densenet201_fhl_cnmc.py', {}),
    ('efficientnet-b2_fhl_cnmc.py', dict(freeze_backbone=True)),
])
def test_grad_cam_is_the_class_activation_map(config, head):
    """With GAP and a single linear layer, Grad-CAM on the backbone's last stage equals
    ReLU(sum_k w_k A_k) (Zhou et al.), normalised: checks the hook, the gradient and the
    weights on the three backbones (and through a head that detaches its input)."""
    torch.manual_seed(0)
    model = _linear_head_model(osp.join(REPO, 'configs', 'cnmc', config), **head)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        feat = model.backbone(x)[-1]
        if (model.head.fc.weight.reshape(1, -1, 1, 1) * feat).sum(1).amax() <= 0:
            model.head.fc.weight.neg_()  # a map that is not all zero
    cam = grad_cam(model, x)
    assert cam.shape == (2, SIZE, SIZE)
    with torch.no_grad():
        w = model.head.fc.weight.reshape(1, -1, 1, 1)
        ref = torch.relu((w * feat).sum(1, keepdim=True))
        ref = torch.nn.functional.interpolate(ref, size=(SIZE, SIZE), mode='bilinear',
                                              align_corners=False)[:, 0]
        peak = ref.flatten(1).amax(1).view(-1, 1, 1)
        ref = torch.where(peak > 0, ref / peak.clamp_min(1e-12), torch.zeros_like(ref))
    assert torch.allclose(cam, ref, atol=1e-4)
    peaks = cam.flatten(1).amax(1).tolist()
    assert cam.min() >= 0 and max(peaks) == pytest.approx(1.0)
    assert all(p == pytest.approx(1.0) or p == 0 for p in peaks)
    # no gradient left on the weights, the head's switch restored
    assert all(p.grad is None for p in model.parameters())
    assert model.head.freeze_backbone == bool(head.get('freeze_backbone', False))


def test_cam_to_image_undoes_crop_to_cell():
    cam = np.ones((SIZE, SIZE), np.float32)
    # a 40 x 20 cell box in a 100 x 80 image, padded to a 40 x 40 square (10 px above/below)
    out = cam_to_image(cam, (80, 100), cell_bbox=[10, 20, 50, 40])
    assert out.shape == (80, 100)
    assert np.allclose(out[20:40, 10:50], 1) and out.sum() == pytest.approx(40 * 20)
    # a map lit only in the padding lands nowhere
    pad = np.zeros((SIZE, SIZE), np.float32)
    pad[:SIZE // 8] = 1
    assert cam_to_image(pad, (80, 100), cell_bbox=[10, 20, 50, 40]).max() < 0.05
    assert cam_to_image(cam, (30, 70)).shape == (30, 70)  # no crop: the whole image


_INFER_THEN_TRAIN = """
import json, sys
from mmengine.config import Config
from mmbloodcell.apis.inference import run_detection
from mmbloodcell.apis.tool_config import build_runner
config, ckpt, image, out, work_dir = sys.argv[1:]
run_detection(config, ckpt, [image], out, device='cpu', progress=False)
cfg = Config.fromfile(config)
cfg.work_dir = work_dir
cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=100)
cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
runner = build_runner(cfg)
runner.train()
print(json.dumps(dict(log_dir=runner.log_dir)))
"""


def test_detect_then_train_in_one_process(detector, bccd_images, tmp_path):
    """A notebook session: detection, then a training of a config that names its visualizer
    'visualizer' (as mmdet's runtime does). The training writes its own scalars: inference left
    no global visualizer for its Runner to take over. A fresh process, as the session is."""
    image = osp.join(bccd_images['folder'], bccd_images['good'][0])
    work_dir = str(tmp_path / 'work')
    env = dict(os.environ, OMP_NUM_THREADS='2',
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run([sys.executable, '-c', _INFER_THEN_TRAIN, detector['config'],
                           detector['ckpt'], image, str(tmp_path / 'det'), work_dir],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert osp.isfile(osp.join(str(tmp_path / 'det'), 'annotated', 'BloodImage_00000.png'))
    log_dir = json.loads(proc.stdout.strip().splitlines()[-1])['log_dir']
    assert osp.dirname(log_dir) == work_dir
    scalars = osp.join(log_dir, 'vis_data', 'scalars.json')
    assert osp.isfile(scalars), f'the training wrote no {scalars}: {os.listdir(log_dir)}'
    with open(scalars) as f:
        records = [json.loads(line) for line in f if line.strip()]
    assert records and all('loss' in r for r in records)


def test_output_stems_unique_and_tools_script():
    assert output_stems(['a/x.jpg', 'b/x.png', 'c/x_1.jpg', 'y.bmp']) == \
        ['x', 'x_1', 'x_1_1', 'y']
    spec = importlib.util.spec_from_file_location('infer_tool',
                                                  osp.join(REPO, 'tools', 'infer.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main is main


def test_classify_release_names_order_and_unusual_cells(classifiers, cnmc_samples_root,
                                                        tmp_path, capsys):
    """Cells named as in the real release (``UID_h6_...``: patient H6), numbered test images
    past 10 (natural order) and cells unlike C-NMC's (each warned about, still classified)."""
    import shutil

    from cnmc_release import odd_cells
    folder = tmp_path / 'cells'
    folder.mkdir()
    hem = sorted(glob.glob(osp.join(cnmc_samples_root, 'hem', '*.bmp')))
    shutil.copyfile(hem[0], folder / osp.basename(hem[0]))  # UID_H6_14_1_hem.bmp
    shutil.copyfile(hem[1], folder / osp.basename(hem[1]).replace('UID_H6', 'UID_h6'))
    numbered = folder / 'numbered'
    numbered.mkdir()
    for n in range(1, 12):
        shutil.copyfile(hem[2], numbered / f'{n}.bmp')
    odd = odd_cells(glob.glob(osp.join(cnmc_samples_root, 'all', 'UID_1_3_1_all.bmp'))[0],
                    str(folder / 'odd'))
    out = str(tmp_path / 'out')
    rc = main(['classify', classifiers['a']['config'], classifiers['a']['ckpt'], str(folder),
               '--out', out, '--device', 'cpu', '--no-progress'])
    assert rc == 0
    summary = capsys.readouterr().out
    header, rows = _read_csv(osp.join(out, 'predictions.csv'))
    names = [osp.relpath(r['image'], str(folder)) for r in rows]
    assert [n for n in names if n.startswith('numbered')] == \
        [f'numbered/{n}.bmp' for n in range(1, 12)]
    by_name = {osp.basename(r['image']): r for r in rows}
    assert by_name['UID_h6_5_1_hem.bmp']['patient_id'] == 'H6'
    _, prow = _read_csv(osp.join(out, 'patients.csv'))
    assert [(r['patient_id'], r['num_cells']) for r in prow] == [('1', '1'), ('H6', '2')]
    for kind, what in (('white', 'background is not black'),
                       ('transparent', 'background is not black'),
                       ('gray', 'grayscale image'), ('jpeg', 'lossy JPEG')):
        row = by_name[osp.basename(odd[kind])]
        assert row['status'] == 'ok' and row['prob_all'] != '', kind
        assert row['warnings'].startswith(what), (kind, row['warnings'])
        assert f'warning: {odd[kind]}: {what}' in summary
    assert by_name['UID_1_3_1_all.bmp']['warnings'] == ''
    assert '4 with warnings' in summary
    doc = json.load(open(osp.join(out, 'predictions.json')))
    assert doc['num_warned'] == 4


def test_cpu_detector_runs_channels_last_with_the_same_boxes(detector, bccd_images):
    """On a CPU the PyTorch detector switches its model to channels-last memory format (faster
    convolutions) at the first image: the boxes equal those of the contiguous model."""
    from mmbloodcell.apis.inference import CellDetector, read_image
    paths = [osp.join(bccd_images['folder'], n) for n in bccd_images['good']]
    fast = CellDetector(detector['config'], detector['ckpt'], device='cpu', score_thr=0.01)
    plain = CellDetector(detector['config'], detector['ckpt'], device='cpu', score_thr=0.01)
    plain.channels_last = False
    for path in paths:
        img = read_image(path)[0]
        ref, got = plain.detect(img, path), fast.detect(img, path)
        assert len(ref) >= 10
        assert [d['label'] for d in got] == [d['label'] for d in ref]
        np.testing.assert_allclose([d['bbox'] for d in got], [d['bbox'] for d in ref], atol=0.2)
        np.testing.assert_allclose([d['score'] for d in got], [d['score'] for d in ref],
                                   atol=1e-4)
    conv = next(m for m in fast.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.channels_last
    conv = next(m for m in plain.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert not conv.weight.is_contiguous(memory_format=torch.channels_last)
