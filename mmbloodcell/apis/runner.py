"""Config handling shared by ``tools/train.py`` and ``tools/test.py``.

Both tools work for detection (``default_scope='mmdet'``) and classification
(``default_scope='mmpretrain'``) configs: the scope picks the registries, and the helpers below
only translate command-line flags into config fields, the way mmdet's and mmpretrain's own
tools do.
"""
import glob
import logging
import os.path as osp
import zipfile
from typing import Optional

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


def init_cpu_distributed(cfg: Config) -> None:
    """Start the gloo process group of a CPU-only distributed run before the Runner does.

    mmengine 0.10.7's ``init_dist`` binds every process to a GPU (``torch.cuda.set_device``)
    whatever the backend, and its model wrapping passes ``device_ids=[LOCAL_RANK]`` to
    ``DistributedDataParallel``, so ``--launcher pytorch`` fails on a machine without CUDA.
    When no GPU is visible this joins the group torchrun describes (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``) with the gloo backend, which the Runner then finds and
    uses, and sets ``model_wrapper_cfg`` to wrap the CPU model with ``device_ids=None``. Does
    nothing with a GPU, without a launcher, or when a group exists.
    """
    import torch.distributed as torch_dist
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available() or torch_dist.is_initialized():
        return
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} needs CUDA with mmengine 0.10.7 (it binds each process to a '
            'GPU); on CPU-only machines start the processes with torchrun, i.e. '
            'tools/dist_train.sh / tools/dist_test.sh (--launcher pytorch, gloo backend)')
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    dist_cfg['backend'] = 'gloo'
    torch_dist.init_process_group(**dist_cfg)
    # mmengine also passes device_ids=[LOCAL_RANK] to DistributedDataParallel, which only
    # accepts device_ids for GPU modules: a CPU model needs device_ids=None
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def _complete_checkpoint(path: str) -> bool:
    """A file torch can read back: torch's zip format ends with a central directory, which a
    truncated (half-written) file lacks."""
    return osp.isfile(path) and osp.getsize(path) > 0 and zipfile.is_zipfile(path)


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (without a path) continues from.

    mmengine reads the path named by ``<work_dir>/last_checkpoint``. That file is written in
    place by ``CheckpointHook``; if a job died while writing it (empty file), or the checkpoint
    it names is missing or incomplete (written by a backend without atomic renames), the newest
    complete ``epoch_*.pth`` / ``iter_*.pth`` of ``work_dir`` is used instead, with a warning.

    Returns:
        str | None: The checkpoint, or None when ``work_dir`` holds none (training starts from
        scratch, as mmengine does).

    Raises:
        FileNotFoundError: ``last_checkpoint`` exists but no complete checkpoint does.
    """
    from mmengine.logging import print_log
    marker = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(marker):
        with open(marker) as f:
            named = f.read().strip() or None
        if named and _complete_checkpoint(named):
            return named
    candidates = [p for p in glob.glob(osp.join(work_dir, '*.pth'))
                  if osp.basename(p).startswith(('epoch_', 'iter_')) and _complete_checkpoint(p)]
    if not candidates:
        if osp.isfile(marker):
            raise FileNotFoundError(
                f'{marker} names {named!r}, which is missing or incomplete, and {work_dir} has '
                'no other complete epoch_*.pth / iter_*.pth; fix: pass --resume CHECKPOINT, or '
                'remove last_checkpoint to train from scratch')
        return None
    newest = max(candidates, key=lambda p: (osp.getmtime(p), p))
    why = (f'{marker} names {named!r}, which is missing or incomplete' if osp.isfile(marker)
           else f'{work_dir} has no last_checkpoint file')
    print_log(f'--resume: {why}; resuming from the newest complete checkpoint {newest}',
              logger='current',
              level=logging.WARNING)
    return newest


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
        # None: no checkpoint in work_dir yet, mmengine starts from scratch
        cfg.load_from = find_resume_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
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


def shutdown_distributed() -> None:
    """Leave the process group at the end of a distributed run.

    Left to interpreter shutdown, gloo's worker threads can be torn down while still running
    ("terminate called without an active exception", exit status -6 for a run that finished).
    A barrier first, so that no rank leaves while another still needs it.
    """
    import torch.distributed as torch_dist
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def build_runner(cfg: Config) -> Runner:
    """Build the runner named by ``runner_type`` (default: mmengine's ``Runner``)."""
    out_file = cfg.pop('out_file', None)
    init_cpu_distributed(cfg)
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
