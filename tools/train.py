"""Train a detector or a classifier from an mmbloodcell config.

    python tools/train.py CONFIG [--work-dir DIR] [--data-root DIR] [--resume [CKPT]] [--amp]
                          [--cfg-options key=value ...] [--launcher none|pytorch|slurm|mpi]

The config's ``default_scope`` (``mmdet`` or ``mmpretrain``) decides which library builds the
model and the datasets; mmbloodcell's modules are imported through the config's
``custom_imports`` (and here, so configs without it work too).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmbloodcell.apis.tool_config import (UsageError, build_runner,  # noqa: E402
                                          explain_download_errors, merge_train_args,
                                          shutdown_distributed)
from mmbloodcell.datasets import BCCDDataError, CNMCDataError  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train an mmbloodcell model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CKPT, or from the latest checkpoint in the work dir when no '
        'path is given')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic mixed precision training (needs a CUDA GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual batch size')
    parser.add_argument(
        '--data-root', help='read every split from this dataset folder instead of the '
        "config's data_root (annotation files and evaluators follow)")
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_cfg.max_epochs=2 "model.backbone.init_cfg=None"')
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
    cfg = merge_train_args(cfg, args)
    with explain_download_errors(cfg):
        runner = build_runner(cfg)
        runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    try:
        main()
    except (UsageError, BCCDDataError, CNMCDataError) as e:  # they say the fix: no traceback
        sys.exit(f'{osp.basename(__file__)}: error: {e}')
