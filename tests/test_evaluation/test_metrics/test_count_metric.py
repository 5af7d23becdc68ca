"""CellCountMetric on hand-made mmdet data samples whose count errors are worked out below."""
import json
import math

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

import mmbloodcell  # noqa: F401
from mmbloodcell.evaluation.metrics import CellCountMetric
from mmbloodcell.evaluation.metrics.count_metric import (DEFAULT_THR_GRID,
                                                         best_count_threshold, count_errors)

CLASSES = ('RBC', 'WBC', 'Platelets')


def _sample(path, gt_labels, preds, ignore=None):
    """``preds``: {class index: [scores]}."""
    s = DetDataSample(metainfo=dict(img_id=path, img_path=path))
    gt = InstanceData(labels=torch.tensor(gt_labels, dtype=torch.long),
                      bboxes=torch.zeros(len(gt_labels), 4))
    if ignore is not None:
        gt.ignore_flags = torch.tensor(ignore, dtype=torch.bool)
    s.gt_instances = gt
    labels = [k for k, scores in preds.items() for _ in scores]
    scores = [v for _, vs in preds.items() for v in vs]
    s.pred_instances = InstanceData(labels=torch.tensor(labels, dtype=torch.long),
                                    scores=torch.tensor(scores, dtype=torch.float32).double(),
                                    bboxes=torch.zeros(len(labels), 4))
    return s


def _samples():
    # A: 4 RBC, 1 WBC, 0 platelets annotated; B: 2 RBC, 1 WBC, 2 platelets; C: empty
    a = _sample('a.jpg', [0, 0, 0, 0, 1], {0: [0.9, 0.8, 0.5, 0.2, 0.1], 1: [0.7], 2: [0.35]})
    b = _sample('b.jpg', [0, 0, 1, 2, 2], {0: [0.95, 0.6, 0.4, 0.32], 1: [0.25]})
    c = _sample('c.jpg', [], {})
    return [a, b, c]


def _evaluate(tmp_path, samples, **kwargs):
    ev = Evaluator(CellCountMetric(out_dir=str(tmp_path), **kwargs))
    ev.dataset_meta = dict(classes=CLASSES)
    ev.process(samples[:2])
    ev.process(samples[2:])
    return ev.evaluate(len(samples))


def test_errors_at_the_fixed_threshold(tmp_path):
    m = _evaluate(tmp_path, _samples())
    # score >= 0.3: RBC 3 / 4 / 0 vs 4 / 2 / 0 -> |e| 1, 2, 0
    assert m['count/RBC_mae'] == pytest.approx(1.0)
    assert m['count/RBC_rmse'] == pytest.approx(math.sqrt(5 / 3))
    assert m['count/RBC_rel_err'] == pytest.approx((1 / 4 + 2 / 2) / 2)
    assert m['count/RBC_within1'] == pytest.approx(2 / 3)
    assert m['count/RBC_within10pct'] == pytest.approx(1 / 3)  # only the empty image
    # WBC 1 / 0 / 0 vs 1 / 1 / 0
    assert m['count/WBC_mae'] == pytest.approx(1 / 3)
    assert m['count/WBC_rel_err'] == pytest.approx(0.5)
    assert m['count/WBC_within1'] == 1.0
    assert m['count/WBC_within10pct'] == pytest.approx(2 / 3)
    # platelets 1 / 0 / 0 vs 0 / 2 / 0: only B has a relative error (an image without an
    # annotated platelet has none)
    assert m['count/Platelets_mae'] == pytest.approx(1.0)
    assert m['count/Platelets_rel_err'] == pytest.approx(1.0)
    assert m['count/mean_mae'] == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert not any(k.endswith('_calibrated') for k in m)  # no calibration given


def test_best_threshold_and_its_ties(tmp_path):
    m = _evaluate(tmp_path, _samples())
    # RBC MAE is 1/3 for 0.4 < t <= 0.5 only: 0.41 ... 0.50 tie, the middle one is 0.45
    assert m['count/RBC_best_thr'] == pytest.approx(0.45)
    assert m['count/RBC_best_mae'] == pytest.approx(1 / 3)
    # WBC exact for t <= 0.25 (0.05 ... 0.25): middle 0.15
    assert m['count/WBC_best_thr'] == pytest.approx(0.15)
    assert m['count/WBC_best_mae'] == 0.0
    # platelets: 2/3 for t > 0.35 (0.36 ... 0.95, 60 values): lower middle 0.65
    assert m['count/Platelets_best_thr'] == pytest.approx(0.65)
    assert m['count/Platelets_best_mae'] == pytest.approx(2 / 3)


def test_rmse_breaks_a_tie_of_the_mae():
    # t <= 0.5: |e| 1, 1 (MAE 1, MSE 1); t > 0.5: |e| 0, 2 (MAE 1, MSE 2)
    scores = [np.array([0.5]), np.array([0.5, 0.5, 0.5])]
    gt = np.array([0, 2])
    assert best_count_threshold(scores, gt, (0.4, 0.6)) == (0.4, 1.0)
    assert best_count_threshold(scores, gt, (0.6, 0.7, 0.8))[0] == 0.7  # full tie: middle
    assert all(math.isnan(v) for v in best_count_threshold([], np.array([]), (0.5, )))


def test_empty_images_and_ignored_boxes(tmp_path):
    samples = [_sample('e1.jpg', [], {}), _sample('e2.jpg', [0, 0], {}, ignore=[True, True])]
    m = _evaluate(tmp_path, samples)
    assert m['count/RBC_mae'] == 0.0 and m['count/RBC_within1'] == 1.0
    assert math.isnan(m['count/RBC_rel_err'])  # no image with an annotated cell
    assert m['count/RBC_best_thr'] == DEFAULT_THR_GRID[45] == 0.5  # all tied: the middle
    assert count_errors(np.array([9, 0]), np.array([10, 0]))['within10pct'] == 1.0  # 1 of 10


def test_calibrated_thresholds_side_by_side_and_the_per_image_file(tmp_path):
    m = _evaluate(tmp_path, _samples(), calibrated_thrs=dict(RBC=0.45))
    assert m['count/RBC_mae'] == pytest.approx(1.0)
    assert m['count/RBC_mae_calibrated'] == pytest.approx(1 / 3)
    assert m['count/RBC_thr_calibrated'] == 0.45
    # a class without a calibrated threshold keeps score_thr
    assert m['count/WBC_thr_calibrated'] == 0.3
    assert m['count/WBC_mae_calibrated'] == m['count/WBC_mae']
    assert m['count/mean_mae_calibrated'] == pytest.approx((1 / 3 + 1 / 3 + 1) / 3)
    with open(tmp_path / 'count_errors_eval.json') as f:
        doc = json.load(f)
    assert doc['classes'] == list(CLASSES) and doc['score_thr'] == 0.3
    assert doc['calibrated_thrs']['RBC'] == 0.45 and doc['calibration_source'] == 'config'
    a, b, c = doc['images']
    assert a['img_path'] == 'a.jpg'
    assert a['annotated'] == dict(RBC=4, WBC=1, Platelets=0)
    assert a['predicted'] == dict(RBC=3, WBC=1, Platelets=1) and a['abs_error'] == 2
    assert b['predicted_calibrated'] == dict(RBC=2, WBC=0, Platelets=0)
    assert b['abs_error_calibrated'] == 3
    assert c['abs_error'] == 0


def test_bad_arguments_and_unlabelled_images():
    with pytest.raises(ValueError, match='score_thr'):
        CellCountMetric(score_thr=1.5)
    with pytest.raises(ValueError, match='calibrated_thrs'):
        CellCountMetric(calibrated_thrs=dict(RBC='high'))
    metric = CellCountMetric()
    s = DetDataSample(metainfo=dict(img_path='x.jpg'))
    s.pred_instances = InstanceData(labels=torch.zeros(0, dtype=torch.long),
                                    scores=torch.zeros(0))
    with pytest.raises(ValueError, match='LoadAnnotations'):
        metric.process(None, [s.to_dict()])
