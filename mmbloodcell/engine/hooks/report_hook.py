"""The report of every training and test run, written into the run's folder."""
import os
import os.path as osp
import shlex
import time
from typing import List, Optional

from mmengine.dist import collect_results, is_main_process
from mmengine.hooks import Hook
from mmengine.structures import BaseDataElement

from mmbloodcell.registry import HOOKS

#: The file of the collected predictions, beside the report.
PREDICTIONS_FILE = 'predictions.pkl'


@HOOKS.register_module()
class ReportHook(Hook):
    """Write the run's report when ``runner.train()`` (``after_train``) or ``runner.test()``
    (``after_test``) ends, into ``<work_dir>/<timestamp>/<out_dir>/``:

    - ``report.html``: the self-contained page of
      :func:`mmbloodcell.analysis.report.build_report` (config, metrics, figures);
    - ``loss.png``, ``lr.png``, ``val_metrics.png``: curves of the work dir's newest training
      run;
    - detection: ``pr_curves.png``; classification: ``roc.png`` and ``confusion_matrix.png``;
      both: ``samples.png``, the first ``num_samples`` predictions;
    - ``predictions.pkl``: the predictions of those figures, as ``tools/test.py --out``
      writes them (each data sample's ``to_dict()`` on the CPU), one per sample in dataset
      order: of the test loop, or at the end of training of the last validation epoch. The
      tools of ``tools/analysis`` read it (``plot_results.py CONFIG predictions.pkl``).

    Training without a validation loop gives curves only. The metrics on the page are the
    test run's (``after_test``) or the last validation's (``after_train``). Under
    distributed runs every rank's predictions are gathered
    (:func:`mmengine.dist.collect_results`) and rank 0 writes. A failure never fails the run:
    it is logged as a warning with the ``tools/analysis/report.py`` command that redoes it.
    Disable the hook with ``--cfg-options default_hooks.report=None``.

    Args:
        out_dir (str): Folder of the report, relative to the run's ``<timestamp>/`` folder.
            Defaults to ``'report'``.
        num_samples (int): Images in the sample grid. Defaults to 6.
        score_thr (float): Score threshold of the drawn boxes. Defaults to 0.3.
        collect_device (str): ``'cpu'`` or ``'gpu'``, how ranks exchange predictions.
            Defaults to ``'cpu'`` (as mmengine's evaluators).
    """

    # after the other hooks: the logger has written the metrics JSON by then
    priority = 'LOWEST'

    def __init__(self, out_dir: str = 'report', num_samples: int = 6, score_thr: float = 0.3,
                 collect_device: str = 'cpu') -> None:
        if num_samples < 1:
            raise ValueError(f'ReportHook: num_samples must be >= 1, got {num_samples}')
        self.out_dir = out_dir
        self.num_samples = num_samples
        self.score_thr = score_thr
        self.collect_device = collect_device
        self._preds = {'val': None, 'test': None}
        self._errors = {'val': None, 'test': None}

    # ------------------------------------------------------------------------------------------
    # collecting the predictions
    # ------------------------------------------------------------------------------------------

    def _start(self, split: str) -> None:
        self._preds[split] = []
        self._errors[split] = None

    def _add(self, split: str, outputs) -> None:
        if self._errors[split] is not None or self._preds[split] is None:
            return
        try:
            for sample in outputs or []:
                if isinstance(sample, BaseDataElement):
                    sample = sample.cpu().to_dict()
                self._preds[split].append(sample)
        except Exception as e:  # noqa: BLE001 - the report must not stop the loop
            self._errors[split] = f'{type(e).__name__}: {e}'
            self._preds[split] = None

    def before_val_epoch(self, runner) -> None:
        self._start('val')

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._add('val', outputs)

    def before_test_epoch(self, runner) -> None:
        self._start('test')

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._add('test', outputs)

    def _gather(self, runner, split: str) -> Optional[List[dict]]:
        """Every rank's predictions of ``split`` in dataset order (on rank 0; None on the
        others), or None when the loop did not run. Called on every rank."""
        preds = self._preds[split]
        if preds is None:
            return None
        loop = runner.val_loop if split == 'val' else runner.test_loop
        size = len(loop.dataloader.dataset)
        gathered = collect_results(preds, size, device=self.collect_device)
        self._preds[split] = None
        return gathered

    # ------------------------------------------------------------------------------------------
    # writing the report
    # ------------------------------------------------------------------------------------------

    def after_train(self, runner) -> None:
        self._report(runner, 'val')

    def after_test(self, runner) -> None:
        self._report(runner, 'test')

    def _report(self, runner, split: str) -> None:
        out_dir = osp.join(runner.log_dir, self.out_dir)
        html = osp.join(out_dir, 'report.html')
        preds_path = osp.join(out_dir, PREDICTIONS_FILE)
        prefer = 'val' if split == 'val' else 'test'
        what = 'training' if split == 'val' else 'test'
        ann_file = None
        start = time.perf_counter()
        try:
            preds = self._gather(runner, split)
            if not is_main_process():
                return
            if self._errors[split]:
                raise RuntimeError(f'collecting the {split} predictions failed: '
                                   f'{self._errors[split]}')
            from mmengine.fileio import dump

            from mmbloodcell.analysis.report import write_report
            from mmbloodcell.analysis.results import is_detection_preds
            os.makedirs(out_dir, exist_ok=True)
            if preds:
                dump(preds, preds_path)
            else:
                preds, preds_path = [], None
            classes = None
            if is_detection_preds(preds):
                ann_file, classes = self._det_ground_truth(runner, split)
            write_report(runner.work_dir, html, preds_path=preds_path, preds=preds,
                         ann_file=ann_file, classes=classes, score_thr=self.score_thr,
                         num_samples=self.num_samples, prefer=prefer, fig_dir=out_dir)
        except Exception as e:  # noqa: BLE001 - a report never fails the run
            if not is_main_process():
                return
            cmd = ['python', 'tools/analysis/report.py', runner.work_dir, '--prefer', prefer,
                   '--out', html, '--fig-dir', out_dir]
            if preds_path and osp.isfile(preds_path):
                cmd += ['--preds', preds_path]
            if ann_file:
                cmd += ['--ann-file', ann_file]
            runner.logger.warning(
                f'ReportHook: the report of this {what} run was not written '
                f'({type(e).__name__}: {e}); the run itself is complete. Write it by hand: '
                f'{" ".join(shlex.quote(c) for c in cmd)}')
            return
        runner.logger.info(f'ReportHook: {html} (figures' +
                           (f' and {PREDICTIONS_FILE}' if preds_path else '') +
                           f' in {out_dir}; {time.perf_counter() - start:.1f} s)')

    @staticmethod
    def _det_ground_truth(runner, split: str):
        """``(ann_file, classes)`` of the loop's dataset: the COCO file of the ``split``
        evaluator (None when not found: the report falls back to the test set's) and the
        dataset's class names."""
        from mmbloodcell.analysis.results import det_ann_file
        try:
            ann_file = det_ann_file(runner.cfg, split)
        except FileNotFoundError:
            ann_file = None
        loop = runner.val_loop if split == 'val' else runner.test_loop
        classes = loop.dataloader.dataset.metainfo.get('classes')
        return ann_file, (tuple(classes) if classes else None)
