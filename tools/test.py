"""Evaluate a trained checkpoint with an mmbloodcell config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--show-dir DIR] [--cfg-options ...] [--launcher none|pytorch|slurm]

Metrics are printed and written as JSON to ``<work_dir>/<timestamp>/<timestamp>.json``.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmbloodcell.apis.runner import (build_runner, merge_test_args,  # noqa: E402
                                     shutdown_distributed)
from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) an mmbloodcell model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--out', help='dump the raw predictions to a pickle file')
    parser.add_argument('--show-dir', help='draw predictions into this dir '
                        '(relative to the work dir), detection configs only')
    parser.add_argument('--amp', action='store_true', help='test with mixed precision')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg = merge_test_args(cfg, args)
    runner = build_runner(cfg)
    metrics = runner.test()
    shutdown_distributed()
    return metrics


if __name__ == '__main__':
    main()
