"""One self-contained HTML page per run: config summary, metrics, training curves, result
plots and sample predictions (PNG figures embedded as base64 data URIs).

    python tools/analysis/report.py WORK_DIR [--out report.html] [--preds preds.pkl]
                                    [--ann-file COCO.json] [--score-thr 0.3] [--num-samples 6]
                                    [--prefer test|val] [--fig-dir DIR]

For result plots, dump the test predictions into the work dir first:

    python tools/test.py CONFIG CKPT --work-dir WORK_DIR --out WORK_DIR/preds.pkl

(the newest ``WORK_DIR/*.pkl`` is used unless ``--preds`` is given). Default output:
``WORK_DIR/report.html``; ``--fig-dir`` also writes every figure as a PNG there. Training and
test runs write this report by themselves (``ReportHook``, into ``<timestamp>/report/``). The
logic lives in :mod:`mmbloodcell.analysis.report`.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.analysis.report import write_report  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir', help='the run\'s work dir')
    parser.add_argument('--out', help='the HTML file (default: WORK_DIR/report.html)')
    parser.add_argument('--preds', help='predictions pickle (default: newest WORK_DIR/*.pkl)')
    parser.add_argument('--ann-file', help='COCO ground truth of detection predictions '
                        '(default: the config\'s test_evaluator.ann_file)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='score threshold of the drawn boxes (default: %(default)s)')
    parser.add_argument('--num-samples', type=int, default=6,
                        help='images in the sample grid (default: %(default)s)')
    parser.add_argument('--prefer', choices=['test', 'val'], default='test',
                        help='metrics of the newest test run or the last validation first')
    parser.add_argument('--fig-dir', help='also write every figure as DIR/<name>.png')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        path = write_report(args.work_dir, args.out, preds_path=args.preds,
                            ann_file=args.ann_file, score_thr=args.score_thr,
                            num_samples=args.num_samples, prefer=args.prefer,
                            fig_dir=args.fig_dir)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(str(e))
    print(f'report: {path}')
    return path


if __name__ == '__main__':
    main()
