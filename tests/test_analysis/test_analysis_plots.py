"""Plots from real short runs (see conftest.py): training curves from the scalar logs, detection
precision-recall curves that agree with mmdet's CocoMetric, classification ROC curve and
confusion matrix that agree with BinaryClassificationMetric, sample-prediction grids."""
import json
import os.path as osp

import numpy as np
import pytest
from analysis_helpers import assert_png, tool
from mmengine.config import Config

from mmbloodcell.analysis.logs import (final_metrics, find_config, latest_training_log,
                                       load_json_lines)
from mmbloodcell.analysis.plots import (classification_arrays, coco_pr_curves,
                                        detection_confusion_matrix,
                                        plot_training_curves, roc_curve)
from mmbloodcell.analysis.results import det_classes, load_predictions, result_figures
from mmbloodcell.evaluation.metrics.binary_metrics import roc_auc_score

RUNS = ['det_run', 'cls_run']


def _scalars(run):
    recs = load_json_lines(osp.join(run['train_log'], 'vis_data', 'scalars.json'))
    return [r for r in recs if 'iter' in r], [r for r in recs if 'iter' not in r]


@pytest.mark.parametrize('run_name', RUNS)
def test_training_curves_from_a_real_log(run_name, request, tmp_path):
    run = request.getfixturevalue(run_name)
    paths = tool('analysis/plot_curves.py').main([run['work_dir'], '--out', str(tmp_path)])
    assert sorted(paths) == ['loss', 'lr', 'val_metrics']
    for path in paths.values():
        assert osp.dirname(path) == str(tmp_path)
        assert_png(path)

    # the training run is found (not the later test run) and the figures draw its numbers
    log = latest_training_log(run['work_dir'])
    assert log.log_dir == run['train_log']
    train, val = _scalars(run)
    iters_per_epoch = {'det_run': 1, 'cls_run': 2}[run_name]
    assert len(train) == 2 * iters_per_epoch and [r['step'] for r in val] == [1, 2]
    figs = plot_training_curves(log.train_records, log.val_records)
    lines = {ln.get_label(): ln for ln in figs['loss'].axes[0].get_lines()
             if not ln.get_label().startswith('_')}  # '_child<i>': the epoch-end lines
    loss_keys = [k for k in train[0] if k.startswith('loss')]
    assert set(lines) == set(loss_keys)
    for key in loss_keys:
        np.testing.assert_allclose(lines[key].get_ydata(), [r[key] for r in train])
        np.testing.assert_allclose(lines[key].get_xdata(), [r['step'] for r in train])
    lr_line, = figs['lr'].axes[0].get_lines()
    np.testing.assert_allclose(lr_line.get_ydata(), [r['lr'] for r in train])

    drawn = {}
    for ax in figs['val_metrics'].axes:
        for ln in ax.get_lines():
            drawn[ln.get_label()] = ln
    main = {'det_run': 'bbox_mAP_50', 'cls_run': 'weighted_f1'}[run_name]
    prefixes = {'det_run': ('coco/', 'count/'), 'cls_run': ('binary/', )}[run_name]
    assert main in drawn
    if run_name == 'det_run':  # the count MAE per class (fixed threshold) and its mean
        assert {k for k in drawn if k.endswith('_mae')} == {
            'RBC_mae', 'WBC_mae', 'Platelets_mae', 'mean_mae'}
    for label, ln in drawn.items():
        np.testing.assert_allclose(ln.get_xdata(), [1, 2])
        (key, ) = [p + label for p in prefixes if p + label in val[0]]
        expected = np.array([r[key] for r in val], float)
        if key.startswith('coco/'):
            expected[expected < 0] = np.nan
        np.testing.assert_allclose(ln.get_ydata(), expected)


def test_curve_tool_errors_name_the_work_dir(tmp_path):
    with pytest.raises(SystemExit, match='no training log found'):
        tool('analysis/plot_curves.py').main([str(tmp_path)])
    with pytest.raises(SystemExit, match='no such work dir'):
        tool('analysis/plot_curves.py').main([str(tmp_path / 'missing')])


def test_pr_curves_agree_with_coco_metric(det_run, tmp_path):
    preds = load_predictions(det_run['preds'])
    assert len(preds) == 2
    classes = det_classes(Config.fromfile(det_run['cfg']))
    assert classes == ('RBC', 'WBC', 'Platelets')
    pr = coco_pr_curves(det_run['ann_file'], preds, classes)
    metrics = det_run['metrics']
    assert pr['num_images'] == 2
    assert pr['precision_50'].shape == pr['precision'].shape == (3, 101)
    # CocoMetric rounds its numbers to 3 decimals
    for k, name in enumerate(classes):
        # (NaN for a class without ground truth in these images, as CocoMetric)
        assert round(float(pr['ap'][k]), 3) == pytest.approx(
            metrics[f'coco/{name}_precision'], nan_ok=True)
    assert round(pr['mAP'], 3) == pytest.approx(metrics['coco/bbox_mAP'])
    assert round(pr['mAP_50'], 3) == pytest.approx(metrics['coco/bbox_mAP_50'])
    with open(det_run['ann_file']) as f:
        coco = json.load(f)
    ids = {c['name']: c['id'] for c in coco['categories']}
    for k, name in enumerate(classes):
        assert pr['num_gt'][k] == sum(a['category_id'] == ids[name] for a in coco['annotations'])

    # the ground truth itself, as predictions with score 1, is a perfect detector
    perfect = [dict(p, pred_instances=dict(bboxes=p['gt_instances']['bboxes'],
                                           labels=p['gt_instances']['labels'],
                                           scores=np.ones(len(p['gt_instances']['labels']))))
               for p in preds]
    pr_gt = coco_pr_curves(det_run['ann_file'], perfect, classes)
    has_gt = pr_gt['num_gt'] > 0
    assert has_gt.any()
    np.testing.assert_allclose(pr_gt['ap'][has_gt], 1.0)
    np.testing.assert_allclose(pr_gt['precision_50'][has_gt], 1.0)
    assert pr_gt['mAP'] == pytest.approx(1.0)

    # every box shrunk about its centre to IoU 0.62 with its ground truth: a hit at the IoU
    # thresholds 0.50, 0.55 and 0.60, a miss at the seven others -> AP 1 at IoU 0.5 and 0.3 over
    # 0.50:0.95 (checked on WBC, one cell per image, so no neighbour of the same class interferes)
    shrunk = []
    f = 0.62 ** 0.5
    for p in perfect:
        b = np.asarray(p['gt_instances']['bboxes'], float)
        c, half = (b[:, :2] + b[:, 2:]) / 2, f * (b[:, 2:] - b[:, :2]) / 2
        shrunk.append(dict(p, pred_instances=dict(p['pred_instances'],
                                                  bboxes=np.hstack([c - half, c + half]))))
    pr_shrunk = coco_pr_curves(det_run['ann_file'], shrunk, classes)
    wbc = classes.index('WBC')
    assert pr_shrunk['num_gt'][wbc] > 0
    assert pr_shrunk['ap_50'][wbc] == pytest.approx(1.0)
    assert pr_shrunk['ap'][wbc] == pytest.approx(0.3)

    with pytest.raises(ValueError, match='not in the file'):
        coco_pr_curves(det_run['ann_file'], [dict(preds[0], img_id=10 ** 9)], classes)


def test_detection_result_plots(det_run, tmp_path):
    paths = tool('analysis/plot_results.py').main(
        [det_run['work_dir'], det_run['preds'], '--out', str(tmp_path), '--score-thr', '0.0'])
    assert sorted(paths) == ['confusion_matrix', 'pr_curves', 'samples']
    for path in paths.values():
        assert_png(path)
    # the sample grid shows the real smears: one panel per predicted image
    figs = result_figures(load_predictions(det_run['preds']),
                          cfg=Config.fromfile(det_run['cfg']), score_thr=0.0)
    panels = [ax for ax in figs['samples'].axes if ax.images]
    assert len(panels) == 2
    for ax, p in zip(panels, load_predictions(det_run['preds'])):
        assert ax.images[0].get_array().shape[:2] == tuple(p['ori_shape'])
        assert osp.basename(p['img_path']) in ax.get_title()


def test_roc_curve_by_hand():
    gt = np.array([0, 0, 1, 1, 0, 1])
    prob = np.array([0.1, 0.4, 0.4, 0.8, 0.9, 0.95])
    fpr, tpr, thr = roc_curve(gt, prob)
    # thresholds: inf, 0.95, 0.9, 0.8, 0.4 (one positive and one negative tie), 0.1
    np.testing.assert_allclose(thr, [np.inf, 0.95, 0.9, 0.8, 0.4, 0.1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(roc_auc_score(gt, prob))
    with pytest.raises(ValueError, match='both classes'):
        roc_curve(np.array([1, 1]), np.array([0.2, 0.3]))


def test_classification_result_plots_agree_with_the_metric(cls_run, tmp_path):
    preds = load_predictions(cls_run['preds'])
    gt, prob, pred = classification_arrays(preds)
    metrics = cls_run['metrics']
    cm = np.bincount(2 * gt + pred, minlength=4).reshape(2, 2).tolist()
    assert cm == metrics['binary/confusion_matrix']
    fpr, tpr, _ = roc_curve(gt, prob)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert 100 * area == pytest.approx(metrics['binary/auc'])

    paths = tool('analysis/plot_results.py').main(
        [cls_run['cfg'], cls_run['preds'], '--out', str(tmp_path / 'from_pickle')])
    assert sorted(paths) == ['confusion_matrix', 'roc', 'samples']
    for path in paths.values():
        assert_png(path)
    figs = result_figures(preds, cfg=Config.fromfile(cls_run['cfg']))
    roc_line = figs['roc'].axes[0].get_lines()[0]
    np.testing.assert_allclose(roc_line.get_xdata(), fpr)
    np.testing.assert_allclose(roc_line.get_ydata(), tpr)
    texts = [t.get_text().split('\n')[0] for t in figs['confusion_matrix'].axes[0].texts]
    assert texts == [str(v) for row in cm for v in row]
    assert len([ax for ax in figs['samples'].axes if ax.images]) == 6

    # without a pickle: the confusion matrix that BinaryClassificationMetric wrote
    binary_json = osp.join(cls_run['test_log'], 'binary_metrics.json')
    paths = tool('analysis/plot_results.py').main(
        [cls_run['work_dir'], '--binary-metrics', binary_json, '--out',
         str(tmp_path / 'from_json')])
    assert sorted(paths) == ['confusion_matrix']
    assert_png(paths['confusion_matrix'])


def test_final_metrics_and_config_of_a_work_dir(det_run, cls_run):
    for run in (det_run, cls_run):
        metrics, source, log = final_metrics(run['work_dir'])
        assert source == 'test' and log.log_dir == run['test_log']
        with open(osp.join(run['test_log'], osp.basename(run['test_log']) + '.json')) as f:
            assert metrics == json.load(f)
        metrics, source, log = final_metrics(run['work_dir'], prefer='val')
        assert source == 'val (epoch 2)' and log.log_dir == run['train_log']
        assert metrics == _scalars(run)[1][-1]
        path, name = find_config(run['work_dir'], log)
        assert name == run['name']
        assert path == osp.join(run['train_log'], 'vis_data', 'config.py')


def test_binary_metrics_json_names_the_epoch_of_the_log(cls_run):
    """The validation after the 2nd epoch is logged as "Epoch(val) [2]" and followed by
    epoch_2.pth: binary_metrics.json says epoch 2 too; the test run's says stage 'test'."""
    with open(osp.join(cls_run['train_log'], 'binary_metrics.json')) as f:
        val = json.load(f)
    log_file = osp.join(cls_run['train_log'], osp.basename(cls_run['train_log']) + '.log')
    with open(log_file) as f:
        text = f.read()
    assert 'Epoch(val) [2]' in text and 'Epoch(val) [3]' not in text
    assert val['stage'] == 'val' and val['epoch'] == 2
    assert osp.isfile(osp.join(cls_run['work_dir'], 'epoch_2.pth'))
    with open(osp.join(cls_run['test_log'], 'binary_metrics.json')) as f:
        test = json.load(f)
    assert test['stage'] == 'test' and test['epoch'] is None


def _overlaps(fig):
    """Pairs of (title/suptitle text, other title or axes) whose drawn boxes intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [ax.title for ax in fig.axes if ax.get_title()]
    if fig._suptitle is not None:
        texts.append(fig._suptitle)
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    found = []
    for i, (name, box) in enumerate(boxes):
        for other, obox in boxes[i + 1:]:
            if box.overlaps(obox):
                found.append((name, other))
        for ax in fig.axes:
            if ax.title is not None and ax.title.get_text() == name:
                continue
            if box.overlaps(ax.get_window_extent(renderer)):
                found.append((name, 'axes'))
    return found


def test_titles_do_not_overlap(cnmc_samples_root):
    import glob

    import torch

    from mmbloodcell.analysis.plots import plot_classification_samples, plot_pr_curves
    paths = sorted(glob.glob(osp.join(cnmc_samples_root, '*', '*.bmp')))
    preds = [dict(img_path=p, pred_prob=torch.tensor(0.1 * i), gt_label=torch.tensor(1),
                  pred_label=torch.tensor(0)) for i, p in enumerate(paths + paths)]
    assert _overlaps(plot_classification_samples(preds, title='a_long_config_name: test')) == []
    rec = np.linspace(0, 1, 101)
    pr = dict(classes=['RBC', 'WBC', 'Platelets'], recall=rec,
              precision_50=np.stack([1 - rec] * 3), precision=np.stack([1 - rec] * 3),
              ap_50=np.array([.8, .9, .3]), ap=np.array([.5, .6, .1]), mAP=.4, mAP_50=.66,
              num_gt=np.array([300, 40, 30]))
    assert _overlaps(plot_pr_curves(pr, title='fcos_r18_fpn_gn_320_12e_bccd_cpu-demo')) == []


def test_report_numbers_keep_small_learning_rates():
    from mmbloodcell.analysis.report import _fmt
    assert _fmt(1e-5) == '1e-05' and _fmt(2.5e-4) == '0.00025'
    assert _fmt(0.5) == '0.5' and _fmt(0.0) == '0' and _fmt(0.8825) == '0.8825'
    assert _fmt(3) == '3' and _fmt(12345678.0) == '1.235e+07'


def test_detection_confusion_matrix_hand_made():
    """Rows ground truth, columns prediction, index 3 background: a right match, a match of
    the wrong class, a false detection, a missed cell, a box below the threshold, and a second
    prediction on an already matched cell (a duplicate counts as a false detection)."""
    def box(x, y):
        return [x, y, x + 10, y + 10]

    pred = dict(pred_instances=dict(
        bboxes=np.array([box(0, 0), box(1, 0), box(50, 50), box(100, 0), box(200, 200)],
                        np.float32),
        scores=np.array([0.9, 0.8, 0.7, 0.6, 0.1], np.float32),
        labels=np.array([0, 0, 1, 2, 1])),
        gt_instances=dict(bboxes=np.array([box(0, 0), box(50, 51), box(300, 300)], np.float32),
                          labels=np.array([0, 2, 1])))
    cm = detection_confusion_matrix([pred], 3, score_thr=0.3)
    want = np.zeros((4, 4), np.int64)
    want[0, 0] = 1  # RBC box on the RBC
    want[3, 0] = 1  # the duplicate RBC box: the cell is taken
    want[2, 1] = 1  # a WBC box on a platelet (IoU 0.82)
    want[3, 2] = 1  # a platelet box on nothing
    want[1, 3] = 1  # the WBC at (300, 300) is missed
    assert (cm == want).all(), cm
    # per-class thresholds: the 0.1 WBC box kept with a WBC threshold of 0.05
    cm = detection_confusion_matrix([pred], 3, score_thr=[0.3, 0.05, 0.3])
    assert cm[3, 1] == 1 and cm.sum() == want.sum() + 1
    # an image without ground truth: every kept box is a false detection
    empty = dict(pred, gt_instances=dict(bboxes=np.zeros((0, 4)), labels=np.zeros(0)))
    assert detection_confusion_matrix([empty], 3)[3].tolist() == [2, 1, 1, 0]
