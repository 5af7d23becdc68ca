"""Training curves of a run: loss (total and parts), learning rate and validation metrics.

    python tools/analysis/plot_curves.py WORK_DIR [--out DIR] [--log-dir WORK_DIR/<timestamp>]

Reads the newest ``WORK_DIR/<timestamp>/vis_data/scalars.json`` that holds training records
(mmengine's LocalVisBackend; the configs' ``vis_backends``) and writes ``loss.png``,
``lr.png`` and ``val_metrics.png`` (when the run validated) to ``--out`` (default:
``WORK_DIR/plots``). Works for detection (``coco/bbox_mAP`` ...) and classification
(``binary/f1`` ...) runs. The logic lives in :mod:`mmbloodcell.analysis`.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.analysis.logs import RunLog, find_config, latest_training_log  # noqa: E402
from mmbloodcell.analysis.plots import plot_training_curves  # noqa: E402
from mmbloodcell.analysis.results import save_figures  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir', help='the run\'s work dir')
    parser.add_argument('--out', help='output folder (default: WORK_DIR/plots)')
    parser.add_argument('--log-dir', help='plot this <timestamp> folder instead of the newest '
                        'training run')
    parser.add_argument('--title', help='figure title prefix (default: the config name)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.log_dir:
        log = RunLog(args.log_dir)
        if not log.scalars:
            raise SystemExit(f'{args.log_dir}: no vis_data/scalars.json in this run folder')
    else:
        try:
            log = latest_training_log(args.work_dir)
        except FileNotFoundError as e:
            raise SystemExit(str(e))
    title = args.title
    if title is None:
        try:
            title = find_config(args.work_dir, log)[1]
        except FileNotFoundError:
            title = osp.basename(osp.abspath(args.work_dir))
    figs = plot_training_curves(log.train_records, log.val_records, title=title)
    out = args.out or osp.join(args.work_dir, 'plots')
    paths = save_figures(figs, out)
    print(f'training log: {log.scalars} ({len(log.train_records)} training and '
          f'{len(log.val_records)} validation records)')
    for name, path in paths.items():
        print(f'{name}: {path}')
    return paths


if __name__ == '__main__':
    main()
