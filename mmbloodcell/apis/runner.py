"""Config handling shared by ``tools/train.py`` and ``tools/test.py``.

Both tools work for detection (``default_scope='mmdet'``) and classification
(``default_scope='mmpretrain'``) configs: the scope picks the registries, and the helpers below
only translate command-line flags into config fields, the way mmdet's and mmpretrain's own
tools do.
"""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmbloodcell  # noqa: F401  (registers all modules, allows safe checkpoint loading)


def _common(cfg: Config, args) -> Config:
    cfg.launcher = args.launcher
    if getattr(args, 'cfg_options', None):
        cfg.merge_from_dict(args.cfg_options)
    # work_dir priority: CLI > config > ./work_dirs/<config file name>
    if getattr(args, 'work_dir', None):
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.launcher != 'none' and not torch.cuda.is_available():
        # NCCL needs GPUs: distributed runs on CPU machines use gloo.
        env_cfg = cfg.setdefault('env_cfg', {})
        env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    return cfg


def merge_train_args(cfg: Config, args) -> Config:
    """Apply ``tools/train.py`` flags to ``cfg``."""
    cfg = _common(cfg, args)
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.')
        else:
            assert optim_wrapper == 'OptimWrapper', (
                f'--amp needs an OptimWrapper config, got {optim_wrapper}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError(f'{args.config}: --auto-scale-lr needs '
                               '`auto_scale_lr = dict(base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def merge_test_args(cfg: Config, args) -> Config:
    """Apply ``tools/test.py`` flags to ``cfg``."""
    cfg = _common(cfg, args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        hooks = cfg.get('default_hooks', {})
        if 'visualization' not in hooks:
            raise RuntimeError(f'{args.config}: --show-dir needs a `visualization` entry in '
                               'default_hooks')
        vis = hooks['visualization']
        if cfg.get('default_scope') == 'mmpretrain':
            vis.update(enable=True, out_dir=args.show_dir)
        else:
            vis.update(draw=True, test_out_dir=args.show_dir)
    if args.amp:
        cfg.setdefault('test_cfg', {})['fp16'] = True
    cfg.out_file = getattr(args, 'out', None)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """Build the runner named by ``runner_type`` (default: mmengine's ``Runner``)."""
    out_file = cfg.pop('out_file', None)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    if out_file:
        from mmengine.evaluator import DumpResults
        if not out_file.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {out_file}: the output file must be a .pkl file')
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out_file))
    return runner
