"""Evaluate a trained checkpoint with an mmbloodcell config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--data-root DIR]
                         [--out preds.pkl] [--show-dir DIR] [--cfg-options ...]
                         [--launcher none|pytorch|slurm|mpi]

The work dir defaults to the training work dir the checkpoint sits in (else
``./work_dirs/<config name>``). Metrics are printed and written as JSON to
``<work_dir>/<timestamp>/<timestamp>.json``; a relative ``--out`` goes into the work dir.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmbloodcell.apis.tool_config import (UsageError, build_runner,  # noqa: E402
                                          explain_download_errors, merge_test_args,
                                          shutdown_distributed)
from mmbloodcell.datasets import BCCDDataError, CNMCDataError  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) an mmbloodcell model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics '
                        "(default: the checkpoint's training work dir, else "
                        './work_dirs/<config name>)')
    parser.add_argument('--out', help='dump the raw predictions to a pickle file (a relative '
                        'path is taken in the work dir)')
    parser.add_argument('--show-dir', help='draw predictions into this dir '
                        '(relative to the work dir), detection configs only')
    parser.add_argument('--amp', action='store_true', help='test with mixed precision')
    parser.add_argument(
        '--data-root', help='read every split from this dataset folder instead of the '
        "config's data_root (annotation files and evaluators follow)")
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
    with explain_download_errors(cfg):
        runner = build_runner(cfg)
        metrics = runner.test()
    shutdown_distributed()
    return metrics


if __name__ == '__main__':
    try:
        main()
    except (UsageError, BCCDDataError, CNMCDataError) as e:  # they say the fix: no traceback
        sys.exit(f'{osp.basename(__file__)}: error: {e}')
