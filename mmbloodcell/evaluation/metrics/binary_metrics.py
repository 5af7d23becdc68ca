# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Binary classification metrics of the C-NMC 2019 challenge (``hem`` = 0 vs ``all`` = 1)."""
import json
import math
import os
import os.path as osp
import re
import warnings
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MessageHub, MMLogger
from mmpretrain.evaluation import ConfusionMatrix

from mmbloodcell.registry import CLS_METRICS
from mmbloodcell.utils.fileio import atomic_write_bytes

__all__ = ['BinaryClassificationMetric', 'binary_confusion_matrix', 'binary_scores',
           'roc_auc_score', 'midranks', 'patient_votes']


def binary_confusion_matrix(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The int64 (2, 2) confusion matrix of labels ``gt`` (N,) and predictions ``pred`` (N,)
    in {0, 1} (mmpretrain's :meth:`ConfusionMatrix.calculate`, after checking the labels):
    ``cm[i, j]`` = samples of label ``i`` predicted as ``j``, i.e. ``[[TN, FP], [FN, TP]]``."""
    gt = np.asarray(gt, dtype=np.int64).reshape(-1)
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    if gt.shape != pred.shape:
        raise ValueError(f'binary_confusion_matrix: {gt.size} labels but {pred.size} predictions')
    for name, arr in (('ground-truth', gt), ('predicted', pred)):
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(f'binary_confusion_matrix: {name} labels must be 0 or 1, got '
                             f'values in [{arr.min()}, {arr.max()}]')
    return ConfusionMatrix.calculate(torch.from_numpy(pred), torch.from_numpy(gt),
                                     num_classes=2).numpy().astype(np.int64)


def _ratio(num: float, den: float) -> float:
    """``num / den``, 0 when ``den == 0`` (sklearn's ``zero_division=0``)."""
    return float(num) / float(den) if den > 0 else 0.0


def binary_scores(cm: np.ndarray) -> Dict[str, float]:
    """Rates of a 2x2 confusion matrix ``[[TN, FP], [FN, TP]]`` (class 1 positive), in float64
    (mmpretrain's ``SingleLabelMetric`` has neither specificity nor the weighted F1).

    - precision ``P = TP / (TP + FP)``
    - recall (sensitivity) ``R = TP / (TP + FN)``
    - specificity ``TN / (TN + FP)``
    - accuracy ``(TP + TN) / N``
    - F1 of class 1 ``F1_1 = 2 P R / (P + R) = 2 TP / (2 TP + FP + FN)``; of class 0
      ``F1_0 = 2 TN / (2 TN + FN + FP)``
    - weighted F1 ``(n_0 F1_0 + n_1 F1_1) / N`` with ``n_i`` the samples of label ``i``
      (sklearn's ``average='weighted'``): the C-NMC 2019 leaderboard score.

    A ratio whose denominator is 0 is 0 (sklearn's ``zero_division=0``). Returns fractions in
    [0, 1] under ``precision``, ``recall``, ``specificity``, ``accuracy``, ``f1``, ``f1_hem``,
    ``weighted_f1``.
    """
    (tn, fp), (fn, tp) = np.asarray(cm, dtype=np.float64)
    n0, n1 = tn + fp, fn + tp
    n = n0 + n1
    f1_pos = _ratio(2 * tp, 2 * tp + fp + fn)
    f1_neg = _ratio(2 * tn, 2 * tn + fn + fp)
    return dict(
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        accuracy=_ratio(tp + tn, n),
        f1=f1_pos,
        f1_hem=f1_neg,
        weighted_f1=_ratio(n0 * f1_neg + n1 * f1_pos, n))


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` in ascending order; tied values share their mean rank:
    ``midranks([0.1, 0.4, 0.4, 0.9]) = [1, 2.5, 2.5, 4]``."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    order = np.argsort(x, kind='mergesort')
    _, inverse, counts = np.unique(x[order], return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of the last member of each tie group
    mid = ends - (counts - 1) / 2.0
    ranks = np.empty_like(x)
    ranks[order] = mid[inverse]
    return ranks


def roc_auc_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of labels (N,) in {0, 1} and scores (N,) (larger = more
    positive) by the rank-sum (Mann-Whitney U) formula: ``AUC = (sum of the midranks of the
    positives - n_1 (n_1 + 1) / 2) / (n_1 n_0)``, the probability that a random positive scores
    above a random negative, ties counting 1/2 (the trapezoidal area under the ROC curve).
    NaN, with a warning, when only one class is present.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f'roc_auc_score: {labels.size} labels but {scores.size} scores')
    if not np.isfinite(scores).all():
        raise ValueError('roc_auc_score: the scores contain NaN or infinity')
    n1 = int(labels.sum())
    n0 = labels.size - n1
    if n1 == 0 or n0 == 0:
        warnings.warn(f'roc_auc_score: only one class in the ground truth ({n1} positive, '
                      f'{n0} negative samples); ROC-AUC is undefined and reported as NaN')
        return float('nan')
    rank_sum = midranks(scores)[labels == 1].sum()
    return float((rank_sum - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def patient_votes(patients: Sequence[Optional[str]], gt: np.ndarray, pred: np.ndarray,
                  scores: np.ndarray, threshold: float = 0.5) -> Dict[str, dict]:
    """Majority vote of each patient's cells, from per-sample patient ids (None: left out),
    labels, predicted labels and scores (N,).

    Per patient: ``votes = [n_pred_0, n_pred_1]``; the predicted label is the class with more
    votes, a tie going to ``mean(score) > threshold``; the true label is the majority of its
    cells' labels (in C-NMC all cells of a patient share it), a tie going to 1. Returns patient
    id -> ``gt_label``, ``pred_label``, ``votes``, ``num_cells``, ``mean_score``, ``correct``.
    """
    groups: Dict[str, List[int]] = defaultdict(list)
    for i, pid in enumerate(patients):
        if pid is not None:
            groups[str(pid)].append(i)
    out = {}
    for pid, idx in groups.items():
        idx = np.asarray(idx)
        votes = np.bincount(np.asarray(pred)[idx], minlength=2)
        gt_counts = np.bincount(np.asarray(gt)[idx], minlength=2)
        mean_score = float(np.mean(np.asarray(scores)[idx]))
        if votes[1] != votes[0]:
            pred_label = int(votes[1] > votes[0])
        else:
            pred_label = int(mean_score > threshold)
        gt_label = int(gt_counts[1] >= gt_counts[0])
        out[pid] = dict(gt_label=gt_label, pred_label=pred_label, votes=votes.tolist(),
                        num_cells=int(idx.size), mean_score=mean_score,
                        correct=pred_label == gt_label)
    return out


def _scalar(value, name: str, where: str) -> float:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(-1)
        if value.numel() != 1:
            raise ValueError(f'BinaryClassificationMetric: {where} has {name} of shape '
                             f'{tuple(value.shape)}, expected one value')
        return value.item()
    arr = np.asarray(value).reshape(-1)
    if arr.size != 1:
        raise ValueError(f'BinaryClassificationMetric: {where} has {name} {value!r}, expected '
                         f'one value')
    return arr[0].item()


@CLS_METRICS.register_module()
class BinaryClassificationMetric(BaseMetric):
    """F1, weighted F1, precision, recall, specificity, accuracy, ROC-AUC, the confusion
    matrix and the patient-level accuracy of a binary classifier (C-NMC 2019: ``hem`` = 0,
    ``all`` = 1, class 1 positive).

    Per sample it reads ``gt_label`` (required); the predicted label: ``pred_label``, else the
    arg-max of ``pred_score``, or ``prob > threshold`` with ``threshold`` set; ``prob``, the
    probability of class 1 that ROC-AUC ranks by: ``pred_prob`` (``BinaryClsHead``,
    ``EnsembleClassifier``), else ``pred_score[1]``; and the optional ``patient_id`` of the
    metainfo (list it in ``PackInputs(meta_keys=...)``).

    Metrics under ``<prefix>/`` (formulas: :func:`binary_scores`, :func:`roc_auc_score`):
    ``f1`` (class 1), ``f1_hem`` (class 0), ``weighted_f1`` (the challenge's score),
    ``precision``, ``recall`` (sensitivity), ``specificity``, ``accuracy``, ``auc`` (NaN with a
    warning for a one-class ground truth), ``confusion_matrix`` (``[[TN, FP], [FN, TP]]``, rows
    = ground truth, a nested list, in ``LoggerHook``'s test JSON) and, with patient ids,
    ``patient_accuracy`` (the fraction of right majority votes, :func:`patient_votes`) and
    ``num_patients``. Rates are percentages (mmpretrain's convention) unless ``percent=False``.

    The full result (metrics, confusion matrix, counts, every patient's votes) is written as
    JSON to ``out_file``, by default ``<log dir of the Runner>/<prefix>_metrics.json``
    (overwritten at every evaluation), with the ``stage`` (``'val'`` / ``'test'``) and, during
    training, the ``epoch`` and ``iter`` numbered as the log (``Epoch(val) [12]``) and the
    checkpoint (``epoch_12.pth``); NaN as ``null``.

    With ``submission_file`` (e.g. ``'isbi_valid.predict'``) it also writes the C-NMC 2019
    CodaLab submission: a text file with one line per test image, in the order of the numbered
    file names (``1.bmp``, ``2.bmp``, ...: the sample's ``number``, else the digits of its
    ``file_name`` / ``img_path``; list ``number`` in ``PackInputs(meta_keys=...)``), ``1`` for
    ``all`` and ``0`` for ``hem``, beside the metrics JSON (a relative ``submission_file`` is
    relative to its folder; without ``out_file`` and a Runner log dir, the current
    directory); ``python tools/analysis/cnmc_submission_zip.py FILE`` packs it into the
    ``submission.zip`` CodaLab takes (the package itself writes no archive: see
    ``tests/test_light_import.py``). The numbers must be
    ``1 .. N``, each once. Unlabelled samples (the official final test) are then accepted:
    the metric returns only ``num_samples``, ``num_predicted_all`` and ``num_predicted_hem``
    (labelled and unlabelled samples together raise).

    Args:
        threshold (float, optional): Decide ``prob > threshold`` here instead of using the
            model's ``pred_label``. Defaults to None (the model's decision).
        percent (bool): Report rates in percent. Defaults to True.
        out_file (str, optional): Where to write the JSON. Defaults to None (the log dir).
        write_json (bool): Write the JSON file at all. Defaults to True.
        submission_file (str, optional): Also write the challenge's submission file under
            this name. Defaults to None.
        collect_device (str), prefix (str, optional): As ``BaseMetric``; prefix ``'binary'``.
    """

    default_prefix = 'binary'

    def __init__(self,
                 threshold: Optional[float] = None,
                 percent: bool = True,
                 out_file: Optional[str] = None,
                 write_json: bool = True,
                 submission_file: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if threshold is not None and not 0.0 < float(threshold) < 1.0:
            raise ValueError(f'BinaryClassificationMetric: threshold must be in (0, 1) or None, '
                             f'got {threshold!r}')
        self.threshold = None if threshold is None else float(threshold)
        self.percent = bool(percent)
        self.out_file = out_file
        self.write_json = bool(write_json)
        if submission_file is not None and (not isinstance(submission_file, str)
                                            or not submission_file.strip()):
            raise ValueError(f'BinaryClassificationMetric: submission_file={submission_file!r}, '
                             f"expected a file name such as 'isbi_valid.predict' or None")
        self.submission_file = submission_file

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep ``gt``, ``pred``, ``prob``, ``score`` and ``patient_id`` of every sample."""
        for ds in data_samples:
            where = f"sample {ds.get('img_path', ds.get('sample_idx', '?'))}"
            if 'gt_label' not in ds and self.submission_file is None:
                raise KeyError(f'BinaryClassificationMetric: {where} has no gt_label; metrics '
                               f'need a labelled split (the C-NMC final test is unlabelled: set '
                               f"the metric's submission_file='isbi_valid.predict' to write "
                               f'the challenge submission, or use tools/test.py --out to dump '
                               f'predictions)')
            number = _sample_number(ds, where) if self.submission_file else None
            score = prob = None
            if 'pred_score' in ds:
                pred_score = torch.as_tensor(ds['pred_score']).detach().cpu().reshape(-1)
                if pred_score.numel() != 2:
                    raise ValueError(f'BinaryClassificationMetric: {where} has pred_score of '
                                     f'{pred_score.numel()} classes; a binary model gives 2')
                score = float(pred_score[1])
            if 'pred_prob' in ds:
                prob = _scalar(ds['pred_prob'], 'pred_prob', where)
            elif score is not None:
                prob = score
            if prob is None:
                raise KeyError(f'BinaryClassificationMetric: {where} has neither pred_prob nor '
                               f'pred_score; ROC-AUC needs the probability of class 1')
            if score is None:
                score = prob
            if self.threshold is not None:
                pred = int(prob > self.threshold)
            elif 'pred_label' in ds:
                pred = int(_scalar(ds['pred_label'], 'pred_label', where))
            else:
                pred = int(score > 0.5)
            gt = int(_scalar(ds['gt_label'], 'gt_label', where)) if 'gt_label' in ds else None
            self.results.append(
                dict(gt=gt, pred=pred, prob=float(prob), score=float(score),
                     patient_id=ds.get('patient_id'), number=number))

    def compute_metrics(self, results: List[dict]) -> Dict[str, object]:
        """Compute the metrics (see the class docstring) and write the JSON file."""
        if not results:
            raise ValueError('BinaryClassificationMetric: no sample was evaluated')
        num_labelled = sum(r['gt'] is not None for r in results)
        if num_labelled and num_labelled < len(results):
            raise ValueError(f'BinaryClassificationMetric: {num_labelled} of {len(results)} '
                             f'samples have a gt_label; evaluate a labelled or an unlabelled '
                             f'split, not both together')
        submission = self._submission_path() if self.submission_file else None
        if not num_labelled:
            metrics = self._unlabelled_metrics(results, submission)
        else:
            metrics = self._labelled_metrics(results)
        if submission:
            self._write_submission(results, submission)
        return metrics

    def _unlabelled_metrics(self, results: List[dict], submission: str) -> Dict[str, object]:
        """The counts of the predictions (floats: see ``num_patients``) and their JSON."""
        pred = np.array([r['pred'] for r in results], dtype=np.int64)
        metrics: Dict[str, object] = dict(num_samples=float(pred.size),
                                          num_predicted_all=float((pred == 1).sum()),
                                          num_predicted_hem=float((pred == 0).sum()))
        if self.write_json:
            path = self._json_path()
            if path is not None:
                doc = dict(self._run_info(), labelled=False, num_samples=int(pred.size),
                           num_predicted=dict(hem=int((pred == 0).sum()),
                                              all=int((pred == 1).sum())),
                           threshold=self.threshold, submission_file=submission)
                self._write_doc(doc, path)
        return metrics

    def _labelled_metrics(self, results: List[dict]) -> Dict[str, object]:
        """The metrics of the class docstring, and their JSON."""
        gt = np.array([r['gt'] for r in results], dtype=np.int64)
        pred = np.array([r['pred'] for r in results], dtype=np.int64)
        prob = np.array([r['prob'] for r in results], dtype=np.float64)
        score = np.array([r['score'] for r in results], dtype=np.float64)
        cm = binary_confusion_matrix(gt, pred)
        rates = binary_scores(cm)
        rates['auc'] = roc_auc_score(gt, prob)
        scale = 100.0 if self.percent else 1.0
        metrics: Dict[str, object] = {k: v * scale for k, v in rates.items()}

        patients = [r['patient_id'] for r in results]
        votes = {}
        if any(p is not None for p in patients):
            # ties: the mean score (crossing 0.5 at the model's threshold) against 0.5, or the
            # mean probability against the metric's own threshold
            tie_scores, tie_thr = (score, 0.5) if self.threshold is None else \
                (prob, self.threshold)
            votes = patient_votes(patients, gt, pred, tie_scores, tie_thr)
            correct = sum(v['correct'] for v in votes.values())
            metrics['patient_accuracy'] = scale * correct / len(votes)
            # a float: mmengine's MessageHub keeps an int scalar as np.int64, which
            # LoggerHook's JSON writer drops (it wrote null)
            metrics['num_patients'] = float(len(votes))
        metrics['confusion_matrix'] = cm.tolist()

        if self.write_json:
            self._dump(metrics, cm, gt, votes, missing_patients=sum(p is None for p in patients))
        return metrics

    def _json_path(self) -> Optional[str]:
        if self.out_file:
            return self.out_file
        log_file = getattr(MMLogger.get_current_instance(), 'log_file', None)
        if not log_file:
            return None
        return osp.join(osp.dirname(log_file), f'{self.prefix or "binary"}_metrics.json')

    def _dump(self, metrics: dict, cm: np.ndarray, gt: np.ndarray, votes: dict,
              missing_patients: int) -> None:
        path = self._json_path()
        if path is None:
            MMLogger.get_current_instance().info(
                'BinaryClassificationMetric: no Runner log dir and no out_file; the metrics '
                'JSON is not written')
            return

        def clean(v):
            return None if isinstance(v, float) and math.isnan(v) else v

        doc = dict(
            self._run_info(), num_samples=int(gt.size),
            num_per_class=dict(hem=int((gt == 0).sum()), all=int((gt == 1).sum())),
            threshold=self.threshold, percent=self.percent,
            metrics={k: clean(v) for k, v in metrics.items() if k != 'confusion_matrix'},
            confusion_matrix=dict(rows='ground truth [hem (0), all (1)]',
                                  columns='prediction [hem (0), all (1)]',
                                  matrix=cm.tolist()),
            samples_without_patient=int(missing_patients),
            patients=votes)
        if self.submission_file:
            doc['submission_file'] = self._submission_path()
        self._write_doc(doc, path)

    def _run_info(self) -> dict:
        """``prefix``, ``stage`` and, numbered as the log and the checkpoints, ``epoch`` and
        ``iter`` of the evaluation."""
        hub = MessageHub.get_current_instance()
        stage = hub.get_info('loop_stage')
        epoch, it = hub.get_info('epoch'), hub.get_info('iter')
        if stage == 'val':  # the hub's 0-based epoch / iter -> the count done (epoch_N.pth)
            epoch = None if epoch is None else int(epoch) + 1
            it = None if it is None else int(it) + 1
        return dict(prefix=self.prefix, stage=stage, epoch=epoch, iter=it)

    @staticmethod
    def _write_doc(doc: dict, path: str) -> None:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(doc, f, indent=2)
        MMLogger.get_current_instance().info(f'BinaryClassificationMetric: wrote {path}')

    def _submission_path(self) -> str:
        """``submission_file``, relative to the metrics JSON's folder (else the current
        directory)."""
        if osp.isabs(self.submission_file):
            return self.submission_file
        json_path = self._json_path()
        folder = osp.dirname(json_path) if json_path else ''
        return osp.join(folder, self.submission_file)

    def _write_submission(self, results: List[dict], path: str) -> None:
        """The CodaLab file: one ``0`` / ``1`` line per image, by number."""
        by_number = {}
        for r in results:
            if r['number'] in by_number:
                raise ValueError(f'BinaryClassificationMetric: test image number {r["number"]} '
                                 f'occurs twice; the submission needs each image once')
            by_number[r['number']] = r['pred']
        n = len(by_number)
        missing = sorted(set(range(1, n + 1)) - set(by_number))
        if missing:
            extra = sorted(set(by_number) - set(range(1, n + 1)))
            raise ValueError(
                f'BinaryClassificationMetric: the submission needs one prediction per test '
                f'image 1..{n}; {len(missing)} number(s) are missing ({_first_numbers(missing)}'
                f'; numbers outside 1..{n}: {_first_numbers(extra)}): evaluate the whole test '
                f"folder (no skipped image: the dataset's skipped lists them) before writing "
                f'{self.submission_file}')
        text = ''.join(f'{by_number[i]}\n' for i in range(1, n + 1))
        atomic_write_bytes(text.encode(), path)
        n_all = sum(by_number.values())
        zip_path = osp.join(osp.dirname(path), 'submission.zip')
        MMLogger.get_current_instance().info(
            f'BinaryClassificationMetric: wrote the C-NMC submission {path} ({n} lines: '
            f'{n_all} all, {n - n_all} hem); pack it for CodaLab with: python '
            f'tools/analysis/cnmc_submission_zip.py {path} (writes {zip_path})')


def _first_numbers(numbers: List[int], num: int = 5) -> str:
    shown = ', '.join(str(i) for i in numbers[:num])
    return shown + (f', ... ({len(numbers)} in all)' if len(numbers) > num else '')


def _sample_number(ds: dict, where: str) -> int:
    """N of the test image ``N.bmp``: the sample's ``number``, else the digits of the stem of
    its ``file_name`` or ``img_path``."""
    number = ds.get('number')
    if number is not None:
        return int(_scalar(number, 'number', where))
    for key in ('file_name', 'img_path'):
        if ds.get(key):
            stem = osp.splitext(osp.basename(str(ds[key])))[0]
            if re.fullmatch(r'\d+', stem):
                return int(stem)
    raise ValueError(f"BinaryClassificationMetric: {where} has no 'number' and no numbered "
                     f"file_name (1.bmp, 2.bmp, ...) for the submission file: add 'number' to "
                     f'PackInputs(meta_keys=...) and evaluate the numbered test images')
