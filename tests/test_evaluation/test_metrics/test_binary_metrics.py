"""BinaryClassificationMetric: values against hand-computed numbers, rank AUC with ties, patient
votes, the JSON file, and its use through mmengine's Evaluator."""
import json
import math
import os.path as osp
from itertools import product

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger
from mmpretrain.structures import DataSample

import mmbloodcell  # noqa: F401
from mmbloodcell.evaluation.metrics import BinaryClassificationMetric
from mmbloodcell.evaluation.metrics.binary_metrics import (binary_confusion_matrix, midranks,
                                                           patient_votes, roc_auc_score)
from mmbloodcell.registry import CLS_METRICS


def _sample(gt, prob, label=None, patient=None, with_prob=True):
    """A data sample as BinaryClsHead / EnsembleClassifier produce (threshold 0.5)."""
    ds = DataSample().set_gt_label(gt)
    ds.set_pred_score(torch.tensor([1 - prob, prob]))
    ds.set_pred_label(int(prob > 0.5) if label is None else label)
    if with_prob:
        ds.set_field(torch.tensor(prob), 'pred_prob', dtype=torch.Tensor)
    if patient is not None:
        ds.set_metainfo(dict(patient_id=patient))
    return ds.to_dict()


def _pairwise_auc(labels, scores):
    """Reference AUC: fraction of (positive, negative) pairs ordered right, ties 1/2."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    total = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in product(pos, neg))
    return total / (len(pos) * len(neg))


# 10 samples: TP = 4, FN = 2, FP = 1, TN = 3 (rows gt, cols pred: [[3, 1], [2, 4]])
GT = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
PROB = [0.9, 0.8, 0.7, 0.6, 0.4, 0.2, 0.55, 0.3, 0.1, 0.05]
PATIENTS = ['1', '1', '1', '2', '2', '2', 'H1', 'H1', 'H2', 'H2']


def _run(metric, samples):
    metric.process(None, samples)
    return metric.evaluate(len(samples))


def test_values_match_hand_computation(tmp_path):
    metric = CLS_METRICS.build(dict(type='BinaryClassificationMetric',
                                    out_file=str(tmp_path / 'm.json')))
    assert isinstance(metric, BinaryClassificationMetric)
    res = _run(metric, [_sample(g, p, patient=pid) for g, p, pid in zip(GT, PROB, PATIENTS)])
    tp, fn, fp, tn = 4, 2, 1, 3
    assert res['binary/confusion_matrix'] == [[tn, fp], [fn, tp]]
    precision, recall = tp / (tp + fp), tp / (tp + fn)  # 0.8, 0.6667
    f1 = 2 * precision * recall / (precision + recall)  # 0.72727
    f1_hem = 2 * tn / (2 * tn + fn + fp)  # 6 / 9
    expected = {
        'precision': precision, 'recall': recall, 'specificity': tn / (tn + fp),
        'accuracy': 7 / 10, 'f1': f1, 'f1_hem': f1_hem,
        'weighted_f1': (6 * f1 + 4 * f1_hem) / 10,
        # positives' scores vs negatives': 0.9, 0.8, 0.7, 0.6 beat all 4 negatives; 0.4 beats
        # 3 (not 0.55); 0.2 beats 2 (0.1, 0.05) -> (16 + 3 + 2) / 24
        'auc': 21 / 24,
    }
    for key, value in expected.items():
        assert res[f'binary/{key}'] == pytest.approx(100 * value, abs=1e-9), key
    # patients: '1' 3/3 right -> all; '2' votes [2, 1] -> hem (wrong); 'H1' [1, 1] tie, mean
    # score 0.425 -> hem (right); 'H2' right -> 3 of 4
    assert res['binary/patient_accuracy'] == pytest.approx(75.0)
    assert res['binary/num_patients'] == 4


def test_json_written_with_matrix_and_votes(tmp_path):
    path = tmp_path / 'out' / 'metrics.json'
    metric = BinaryClassificationMetric(out_file=str(path), percent=False)
    res = _run(metric, [_sample(g, p, patient=pid) for g, p, pid in zip(GT, PROB, PATIENTS)])
    doc = json.loads(path.read_text())
    assert doc['confusion_matrix']['matrix'] == [[3, 1], [2, 4]]
    assert doc['num_samples'] == 10 and doc['num_per_class'] == dict(hem=4, all=6)
    assert doc['metrics']['f1'] == pytest.approx(res['binary/f1']) and res['binary/f1'] < 1
    assert doc['patients']['2'] == dict(gt_label=1, pred_label=0, votes=[2, 1], num_cells=3,
                                        mean_score=pytest.approx(0.4), correct=False)
    assert doc['patients']['H1']['votes'] == [1, 1] and doc['patients']['H1']['pred_label'] == 0
    assert doc['samples_without_patient'] == 0


def test_json_goes_to_the_runner_log_dir(tmp_path):
    log_file = tmp_path / 'work' / '20240101_000000' / '20240101_000000.log'
    log_file.parent.mkdir(parents=True)
    MMLogger.get_instance('test_binary_metrics_logdir', log_file=str(log_file))
    metric = BinaryClassificationMetric(prefix='cnmc')
    _run(metric, [_sample(g, p) for g, p in zip(GT, PROB)])
    doc = json.loads((log_file.parent / 'cnmc_metrics.json').read_text())
    assert doc['prefix'] == 'cnmc' and doc['patients'] == {}
    assert doc['samples_without_patient'] == 10


def test_no_patient_ids_no_patient_keys(tmp_path):
    res = _run(BinaryClassificationMetric(write_json=False), [_sample(g, p) for g, p in
                                                              zip(GT, PROB)])
    assert 'binary/patient_accuracy' not in res and 'binary/num_patients' not in res
    assert res['binary/accuracy'] == pytest.approx(70.0)


def test_auc_rank_formula_with_ties_matches_pairwise_count():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        scores = rng.integers(0, 5, n) / 4.0  # many ties
        assert roc_auc_score(labels, scores) == pytest.approx(_pairwise_auc(labels, scores))
    # all tied -> 0.5; perfectly separated -> 1; reversed -> 0
    assert roc_auc_score([0, 1, 0, 1], [0.3] * 4) == 0.5
    assert roc_auc_score([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc_score([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    np.testing.assert_array_equal(midranks([0.1, 0.4, 0.4, 0.9]), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(midranks([3, 1, 3, 3]), [3, 1, 3, 3])


def test_auc_single_class_is_nan_with_warning(tmp_path):
    with pytest.warns(UserWarning, match='only one class'):
        assert math.isnan(roc_auc_score([1, 1, 1], [0.2, 0.5, 0.9]))
    path = tmp_path / 'm.json'
    metric = BinaryClassificationMetric(out_file=str(path))
    with pytest.warns(UserWarning, match='only one class'):
        res = _run(metric, [_sample(1, p) for p in (0.2, 0.7, 0.9)])
    assert math.isnan(res['binary/auc'])
    assert res['binary/recall'] == pytest.approx(200 / 3)
    assert res['binary/specificity'] == 0.0  # no negatives: 0 / 0 -> 0
    assert json.loads(path.read_text())['metrics']['auc'] is None  # strict JSON: NaN -> null


def test_threshold_and_remapped_scores(tmp_path):
    # BinaryClsHead(threshold=0.3) re-maps pred_score so that it crosses 0.5 at p = 0.3; the
    # metric must count pred_label and rank by pred_prob
    probs = [0.35, 0.25, 0.9, 0.1]
    gts = [1, 0, 1, 1]
    thr = 0.3
    samples = []
    for g, p in zip(gts, probs):
        s = p / (2 * thr) if p <= thr else 0.5 + (p - thr) / (2 * (1 - thr))
        ds = DataSample().set_gt_label(g).set_pred_score(torch.tensor([1 - s, s]))
        ds.set_pred_label(int(p > thr)).set_field(torch.tensor(p), 'pred_prob',
                                                  dtype=torch.Tensor)
        samples.append(ds.to_dict())
    res = _run(BinaryClassificationMetric(write_json=False, percent=False), samples)
    assert res['binary/confusion_matrix'] == [[1, 0], [1, 2]]
    assert res['binary/auc'] == pytest.approx(_pairwise_auc(gts, probs))
    # re-thresholding in the metric: p > 0.5 -> only 0.9 is positive
    res = _run(BinaryClassificationMetric(threshold=0.5, write_json=False), samples)
    assert res['binary/confusion_matrix'] == [[1, 0], [2, 1]]


def test_softmax_head_samples_without_pred_prob():
    samples = [_sample(g, p, with_prob=False) for g, p in zip(GT, PROB)]
    res = _run(BinaryClassificationMetric(write_json=False), samples)
    assert res['binary/auc'] == pytest.approx(100 * 21 / 24)
    assert res['binary/confusion_matrix'] == [[3, 1], [2, 4]]


def test_patient_votes_ties_and_missing_ids():
    votes = patient_votes(['a', 'a', None, 'b', 'b'], np.array([1, 1, 0, 0, 0]),
                          np.array([1, 0, 1, 1, 0]), np.array([0.9, 0.2, 0.8, 0.6, 0.3]))
    assert set(votes) == {'a', 'b'}
    assert votes['a']['pred_label'] == 1 and votes['a']['correct']  # mean 0.55 > 0.5
    assert votes['b']['pred_label'] == 0 and votes['b']['correct']  # mean 0.45
    assert votes['a']['votes'] == [1, 1] and votes['a']['num_cells'] == 2


def test_errors():
    with pytest.raises(ValueError, match='threshold'):
        BinaryClassificationMetric(threshold=1.5)
    metric = BinaryClassificationMetric(write_json=False)
    with pytest.raises(KeyError, match='gt_label'):
        metric.process(None, [DataSample().set_pred_score(torch.tensor([0.4, 0.6])).to_dict()])
    with pytest.raises(ValueError, match='2'):
        metric.process(None, [DataSample().set_gt_label(1).set_pred_score(
            torch.tensor([0.2, 0.3, 0.5])).to_dict()])
    with pytest.raises(ValueError, match='no sample'):
        metric.compute_metrics([])
    with pytest.raises(ValueError, match='0 or 1'):
        binary_confusion_matrix([0, 2], [0, 1])


def test_through_mmengine_evaluator(tmp_path):
    evaluator = Evaluator(BinaryClassificationMetric(out_file=str(tmp_path / 'e.json'),
                                                     prefix='cnmc'))
    preds = []
    for g, p, pid in zip(GT, PROB, PATIENTS):
        ds = DataSample().set_gt_label(g).set_pred_score(torch.tensor([1 - p, p]))
        ds.set_pred_label(int(p > 0.5)).set_metainfo(dict(patient_id=pid))
        preds.append(ds)
    evaluator.process(preds[:5], None)
    evaluator.process(preds[5:], None)
    res = evaluator.evaluate(10)
    assert res['cnmc/confusion_matrix'] == [[3, 1], [2, 4]]
    assert res['cnmc/patient_accuracy'] == pytest.approx(75.0)
    assert osp.isfile(tmp_path / 'e.json')


# ---------------------------------------------------------------- the challenge submission
def _numbered(prob, number=None, gt=None, file_name=None):
    ds = DataSample()
    if gt is not None:
        ds.set_gt_label(gt)
    ds.set_pred_score(torch.tensor([1 - prob, prob])).set_pred_label(int(prob > 0.5))
    meta = {}
    if number is not None:
        meta['number'] = number
    if file_name is not None:
        meta['file_name'] = file_name
    ds.set_metainfo(meta)
    return ds.to_dict()


def _lines(path):
    with open(path) as f:
        return f.read().splitlines()


def test_submission_of_a_labelled_set(tmp_path):
    # samples in dataset order 1..10 arrive shuffled: the file follows the numbers
    order = np.random.default_rng(0).permutation(10)
    samples = [_numbered(PROB[i], number=i + 1, gt=GT[i]) for i in order]
    metric = BinaryClassificationMetric(out_file=str(tmp_path / 'binary_metrics.json'),
                                        submission_file='isbi_valid.predict')
    metrics = _run(metric, samples)
    plain = _run(BinaryClassificationMetric(write_json=False),
                 [_numbered(PROB[i], gt=GT[i]) for i in order])
    assert metrics == plain and metrics['binary/weighted_f1'] > 0
    expected = [str(int(p > 0.5)) for p in PROB]
    assert _lines(tmp_path / 'isbi_valid.predict') == expected
    doc = json.loads((tmp_path / 'binary_metrics.json').read_text())
    assert doc['submission_file'] == str(tmp_path / 'isbi_valid.predict')


def test_submission_of_an_unlabelled_set_in_the_log_dir(tmp_path):
    log_file = tmp_path / 'work' / 'run' / 'run.log'
    log_file.parent.mkdir(parents=True)
    MMLogger.get_instance('test_binary_metrics_submission', log_file=str(log_file))
    probs = [0.9, 0.1, 0.2, 0.7, 0.6, 0.3, 0.8, 0.4, 0.95, 0.05, 0.51, 0.49]
    # the number from file_name: 10.bmp sorts after 9.bmp, not after 1.bmp
    samples = [_numbered(p, file_name=f'{i + 1}.bmp') for i, p in enumerate(probs)][::-1]
    metrics = _run(BinaryClassificationMetric(submission_file='final.predict'), samples)
    assert metrics == {'binary/num_samples': 12.0, 'binary/num_predicted_all': 6.0,
                       'binary/num_predicted_hem': 6.0}
    folder = log_file.parent
    assert _lines(folder / 'final.predict') == [str(int(p > 0.5)) for p in probs]
    doc = json.loads((folder / 'binary_metrics.json').read_text())
    assert doc['labelled'] is False and doc['num_predicted'] == dict(hem=6, all=6)
    assert doc['submission_file'] == str(folder / 'final.predict')


def test_submission_errors(tmp_path):
    def metric():
        return BinaryClassificationMetric(out_file=str(tmp_path / 'm.json'),
                                          submission_file='isbi_valid.predict')

    with pytest.raises(ValueError, match="add 'number' to PackInputs"):
        metric().process(None, [_numbered(0.7, file_name='UID_1_1_1_all.bmp')])
    with pytest.raises(ValueError, match=r'1\.\.3; 1 number\(s\) are missing \(2; numbers '
                       r'outside 1\.\.3: 4\)'):
        _run(metric(), [_numbered(0.7, number=n) for n in (1, 3, 4)])
    with pytest.raises(ValueError, match='number 2 occurs twice'):
        _run(metric(), [_numbered(0.7, number=n) for n in (1, 2, 2)])
    with pytest.raises(ValueError, match='1 of 2 samples have a gt_label'):
        _run(metric(), [_numbered(0.7, number=1, gt=1), _numbered(0.7, number=2)])
    with pytest.raises(ValueError, match='submission_file'):
        BinaryClassificationMetric(submission_file='')
    assert not (tmp_path / 'isbi_valid.predict').exists()
    # without submission_file an unlabelled sample still fails, naming the option
    with pytest.raises(KeyError, match="submission_file='isbi_valid.predict'"):
        BinaryClassificationMetric().process(None, [_numbered(0.7, number=1)])
