"""Result plots of a predictions pickle (``tools/test.py CONFIG CKPT --out preds.pkl``).

    python tools/analysis/plot_results.py CONFIG PREDS.pkl [--out DIR] [--ann-file COCO.json]
                                          [--score-thr 0.3] [--num-samples 6]
    python tools/analysis/plot_results.py CONFIG --binary-metrics WORK_DIR/<ts>/binary_metrics.json

Detection predictions: ``pr_curves.png`` (per-class precision-recall at IoU 0.5 and averaged
over 0.50:0.95, from pycocotools' COCOeval on the config's test ``ann_file`` or
``--ann-file``) and ``samples.png`` (images with the predicted and ground-truth boxes).
Classification predictions: ``roc.png``, ``confusion_matrix.png`` and ``samples.png`` (cells
captioned with p(all), the label and the ground truth); with ``--binary-metrics`` alone, the
confusion matrix that BinaryClassificationMetric wrote. CONFIG may also be a work dir (its
dumped config is used). Output: ``--out`` (default: the pickle's folder + ``/plots``).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.config import Config  # noqa: E402

from mmbloodcell.analysis.logs import find_config  # noqa: E402
from mmbloodcell.analysis.results import (load_predictions, result_figures,  # noqa: E402
                                          save_figures)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the config of the predictions, or their work dir')
    parser.add_argument('preds', nargs='?', help='predictions pickle of tools/test.py --out')
    parser.add_argument('--out', help='output folder (default: <pickle folder>/plots)')
    parser.add_argument('--ann-file', help='COCO ground truth (default: the config\'s '
                        'test_evaluator.ann_file)')
    parser.add_argument('--binary-metrics', help='binary_metrics.json of a classification run '
                        '(confusion matrix without a pickle)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='score threshold of the drawn boxes (default: %(default)s)')
    parser.add_argument('--num-samples', type=int, default=6,
                        help='images in the sample grid (default: %(default)s)')
    parser.add_argument('--title', default='', help='figure title prefix')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.preds and not args.binary_metrics:
        raise SystemExit('give a predictions pickle (tools/test.py --out) or --binary-metrics')
    cfg_path = find_config(args.config)[0] if osp.isdir(args.config) else args.config
    cfg = Config.fromfile(cfg_path)
    preds = load_predictions(args.preds) if args.preds else []
    figs = result_figures(preds, cfg=cfg, ann_file=args.ann_file, score_thr=args.score_thr,
                          num_samples=args.num_samples, title=args.title,
                          binary_metrics_json=args.binary_metrics)
    base = osp.dirname(osp.abspath(args.preds or args.binary_metrics))
    paths = save_figures(figs, args.out or osp.join(base, 'plots'))
    for name, path in paths.items():
        print(f'{name}: {path}')
    return paths


if __name__ == '__main__':
    main()
