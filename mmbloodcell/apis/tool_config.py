"""Config handling of ``tools/train.py`` and ``tools/test.py`` for detection
(``default_scope='mmdet'``) and classification (``'mmpretrain'``) configs: command-line flags
into config fields, as mmdet's and mmpretrain's own tools do."""
import contextlib
import glob
import logging
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmbloodcell  # noqa: F401  (registers all modules, allows safe checkpoint loading)


class UsageError(RuntimeError):
    """A command that cannot run as given (a flag, the machine, the network); the message
    says what is wrong and the fix, and the tools print it without a traceback."""


def _walk_strings(node, fn):
    """Apply ``fn`` to every string inside nested dicts / lists (in place for containers)."""
    if isinstance(node, dict):
        for key in list(node.keys()):
            node[key] = _walk_strings(node[key], fn)
        return node
    if isinstance(node, list):
        return [_walk_strings(v, fn) for v in node]
    if isinstance(node, tuple):
        return tuple(_walk_strings(v, fn) for v in node)
    return fn(node) if isinstance(node, str) else node


def dicts_with_key(node, key: str):
    """Yield every dict inside nested dicts / lists / tuples that holds ``key`` (depth first;
    the value under ``key`` is not searched)."""
    if isinstance(node, dict):
        if key in node:
            yield node
        for k, value in node.items():
            if k != key:
                yield from dicts_with_key(value, key)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from dicts_with_key(value, key)


def evaluator_metrics(evaluator) -> list:
    """The metric configs of an evaluator config (``val_evaluator`` / ``test_evaluator``): a
    dict is one metric, a list or tuple several (e.g. ``[CocoMetric, CellCountMetric]``), None
    none."""
    if evaluator is None:
        return []
    if isinstance(evaluator, (list, tuple)):
        return [m for m in evaluator if isinstance(m, dict)]
    return [evaluator] if isinstance(evaluator, dict) else []


def set_evaluator_ann_file(cfg: Config, key: str, ann_file: str) -> None:
    """Set ``ann_file`` of every metric of ``cfg[key]`` that reads one (mmdet's
    ``CocoMetric``), whether the evaluator is one dict or a list of them."""
    found = [m for m in evaluator_metrics(cfg.get(key)) if 'ann_file' in m]
    if not found:
        raise KeyError(f'{getattr(cfg, "filename", None) or "the config"}: {key} has no metric '
                       f'with an ann_file (e.g. CocoMetric)')
    for metric in found:
        metric['ann_file'] = ann_file


def set_data_root(cfg: Config, data_root: str) -> Config:
    """Point every split of ``cfg`` at another dataset folder (``--data-root``).

    The old root is the config's top-level ``data_root``, else the one its datasets share:
    every ``data_root`` key is set to ``data_root``, and every string under the old root
    (``ann_file`` of datasets and evaluators, a stain reference, ...) is moved under the new.

    Raises:
        UsageError: the config names no data root, or several different ones.
    """
    if not data_root:
        raise UsageError('--data-root needs a folder')
    old = cfg.get('data_root', None)
    if not isinstance(old, str):
        roots = {d['data_root'] for d in dicts_with_key(cfg._cfg_dict.to_dict(), 'data_root')
                 if isinstance(d['data_root'], str)}
        if len(roots) != 1:
            where = getattr(cfg, 'filename', None) or 'the config'
            raise UsageError(
                f'{where}: --data-root needs one data root to replace; the config has '
                f'{"none" if not roots else "several: " + ", ".join(sorted(roots))}. Set each '
                f'dataset with --cfg-options train_dataloader.dataset.data_root=DIR '
                f'val_dataloader.dataset.data_root=DIR test_dataloader.dataset.data_root=DIR')
        old = roots.pop()
    new = data_root.rstrip('/') + ('/' if old.endswith('/') else '')
    old_bare = old.rstrip('/')

    def move(value: str) -> str:
        if value == old or value == old_bare:
            return new
        if value.startswith(old_bare + '/'):
            return new.rstrip('/') + value[len(old_bare):]
        return value

    moved = _walk_strings(cfg._cfg_dict.to_dict(), move)
    for node in dicts_with_key(moved, 'data_root'):
        node['data_root'] = new
    for key, value in moved.items():
        cfg[key] = value
    return cfg


def merge_cfg_options(cfg: Config, options: Optional[dict] = None,
                      data_root: Optional[str] = None) -> Config:
    """Apply ``--data-root`` and ``--cfg-options`` to ``cfg`` (in place). ``data_root=X``
    among the options is ``--data-root X`` (merged as a plain key it would not reach the
    datasets' copies of the variable)."""
    options = dict(options or {})
    data_root = data_root or options.pop('data_root', None)
    options.pop('data_root', None)
    if data_root:
        set_data_root(cfg, data_root)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def _common(cfg: Config, args) -> Config:
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, getattr(args, 'cfg_options', None), getattr(args, 'data_root', None))
    # work_dir priority: CLI > config > beside the checkpoint (test) > ./work_dirs/<config name>
    if getattr(args, 'work_dir', None):
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        ckpt_dir = _checkpoint_work_dir(getattr(args, 'checkpoint', None))
        cfg.work_dir = ckpt_dir or osp.join('./work_dirs',
                                            osp.splitext(osp.basename(args.config))[0])
    if args.launcher != 'none' and not torch.cuda.is_available():
        # NCCL needs GPUs: distributed runs on CPU machines use gloo.
        env_cfg = cfg.setdefault('env_cfg', {})
        env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    return cfg


def init_cpu_distributed(cfg: Config) -> None:
    """Start the gloo process group of a CPU-only distributed run before the Runner does.

    mmengine 0.10.7's ``init_dist`` binds every process to a GPU whatever the backend, and
    wraps the model with ``device_ids=[LOCAL_RANK]``. Without a GPU this joins torchrun's group
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) with gloo, which the Runner
    then uses, and wraps the model with ``device_ids=None``. Does nothing with a GPU, without a
    launcher, or when a group exists.
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
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def _complete_checkpoint(path: str) -> bool:
    """A file torch can read back: torch's zip format ends with an end-of-central-directory
    record (signature ``PK\\x05\\x06``, within the last 64 KiB + 22 bytes), which a truncated
    (half-written) file lacks."""
    if not osp.isfile(path) or osp.getsize(path) < 22:
        return False
    with open(path, 'rb') as f:
        f.seek(max(0, osp.getsize(path) - (1 << 16) - 22))
        return b'PK\x05\x06' in f.read()


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (without a path) continues from: the one named by
    ``<work_dir>/last_checkpoint``, else (that file empty, or naming a missing or incomplete
    checkpoint) the newest complete ``epoch_*.pth`` / ``iter_*.pth``, with a warning; None
    when ``work_dir`` holds none (training starts from scratch, as mmengine does).

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
              logger='current', level=logging.WARNING)
    return newest


def _checkpoint_work_dir(checkpoint: Optional[str]) -> Optional[str]:
    """The training work dir a checkpoint sits in (it holds ``last_checkpoint`` or the config
    mmengine's Runner dumps there), else None."""
    if not checkpoint or '://' in checkpoint or not osp.isfile(checkpoint):
        return None
    folder = osp.dirname(osp.abspath(checkpoint))
    if not os.access(folder, os.W_OK):
        return None
    if osp.isfile(osp.join(folder, 'last_checkpoint')) or glob.glob(osp.join(folder, '*.py')):
        return folder
    return None


def merge_train_args(cfg: Config, args) -> Config:
    """Apply ``tools/train.py`` flags to ``cfg``."""
    cfg = _common(cfg, args)
    if args.amp and not _has_accelerator():
        raise UsageError(
            f'{args.config}: --amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper trains in '
            f'float16 on CUDA) and this machine has none; on a CPU drop --amp to train in '
            f'float32')
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
    out = getattr(args, 'out', None)
    # a relative --out lands in the work dir, beside the metrics report.py / plot_results.py read
    cfg.out_file = osp.join(cfg.work_dir, out) if out and not osp.isabs(out) else out
    return cfg


def _has_accelerator() -> bool:
    from mmengine.device import is_cuda_available, is_mlu_available, is_npu_available
    return is_cuda_available() or is_npu_available() or is_mlu_available()


def shutdown_distributed() -> None:
    """Leave the process group at the end of a distributed run, after a barrier (left to
    interpreter shutdown, gloo's threads can be torn down while running: exit status -6)."""
    import torch.distributed as torch_dist
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


#: The default hooks of mmengine's ``Runner.register_default_hooks``: set to None in a config,
#: mmengine leaves them out; any other ``default_hooks`` entry set to None is dropped here.
_MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger', 'param_scheduler',
                           'checkpoint')


def build_runner(cfg: Config) -> Runner:
    """Build the runner named by ``runner_type`` (default: mmengine's ``Runner``), without
    the visualizer's ``name``: mmengine would hand a second run in one process the first run's
    instance of that name, writing into the first run's folder. A ``default_hooks`` entry set
    to None is off (``--cfg-options default_hooks.report=None``), mmbloodcell's hooks too."""
    out_file = cfg.pop('out_file', None)
    hooks = cfg.get('default_hooks')
    if isinstance(hooks, dict):
        for name in [k for k, v in hooks.items() if v is None]:
            if name not in _MMENGINE_DEFAULT_HOOKS:
                hooks.pop(name)
    if isinstance(cfg.get('visualizer'), dict):
        cfg.visualizer.pop('name', None)
    init_cpu_distributed(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    if out_file:
        from mmengine.evaluator import DumpResults
        if not out_file.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {out_file}: the output file must be a .pkl file')
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out_file))
    return runner


#: Exception class names (anywhere in an exception's chain) that mean "could not download".
_DOWNLOAD_ERRORS = ('URLError', 'HTTPError', 'ConnectionError', 'gaierror', 'MaxRetryError',
                    'NewConnectionError', 'ConnectTimeout', 'ReadTimeout',
                    'LocalEntryNotFoundError', 'OfflineModeIsEnabled')


def _is_download_error(exc: Optional[BaseException]) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if any(cls.__name__ in _DOWNLOAD_ERRORS for cls in type(exc).__mro__):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def remote_weights(cfg) -> list:
    """``(config key, what)`` of every pretrained weight the config fetches from the network:
    ``init_cfg`` checkpoints and ``load_from`` given as URLs, timm backbones with
    ``pretrained=True``."""
    found = []

    def walk(node, key):
        if isinstance(node, dict):
            ckpt = node.get('checkpoint')
            if node.get('type') == 'Pretrained' and isinstance(ckpt, str) and '://' in ckpt:
                found.append((f'{key}.checkpoint', ckpt))
            if str(node.get('type', '')).endswith('TIMMBackbone') and node.get('pretrained'):
                found.append((f'{key}.pretrained', f"timm weights of {node.get('model_name')}"))
            for k, v in node.items():
                walk(v, f'{key}.{k}' if key else str(k))
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f'{key}.{i}')

    walk(cfg.get('model', {}), 'model')
    load_from = cfg.get('load_from')
    if isinstance(load_from, str) and '://' in load_from:
        found.append(('load_from', load_from))
    return found


def weights_url(what: str) -> str:
    """The URL mmengine downloads for a checkpoint name: its model-zoo tables resolve
    ``torchvision://NAME`` (``modelzoo://``), ``open-mmlab://NAME`` (``openmmlab://``, deprecated
    names followed) and ``mmcls://NAME``; anything else is returned as given."""
    from mmengine.runner import checkpoint as ckpt
    zoos = {'torchvision://': ckpt.get_torchvision_models,
            'modelzoo://': ckpt.get_torchvision_models,
            'open-mmlab://': ckpt.get_external_models,
            'openmmlab://': ckpt.get_external_models,
            'mmcls://': ckpt.get_mmcls_models}
    for prefix, table in zoos.items():
        if what.startswith(prefix):
            name = what[len(prefix):]
            if table is ckpt.get_external_models:
                name = ckpt.get_deprecated_model_names().get(name, name)
            return table().get(name, what)
    return what


def offline_message(cfg, exc: BaseException) -> str:
    """What could not be downloaded and the three ways around it."""
    from torch.hub import get_dir
    where = getattr(cfg, 'filename', None) or 'the config'
    lines = [f'{where}: pretrained weights could not be downloaded ({type(exc).__name__}: '
             f'{exc}); this machine seems to have no internet access. The config fetches:']
    weights = remote_weights(cfg)
    lines += [f'  {key} = {what}' for key, what in weights] or ['  (no URL found in the config)']
    lines.append('Fix, one of:')
    for key, what in weights:
        if key.endswith('.checkpoint') or key == 'load_from':
            name = osp.basename(weights_url(what).split('?')[0])
            lines.append(f'  - copy {name} (downloaded elsewhere) to '
                         f'{osp.join(get_dir(), "checkpoints", name)}, where mmengine finds it '
                         f'without downloading')
            if key == 'load_from':
                lines.append('  - or pass a local checkpoint file instead of the URL')
            else:
                init_key = key[:-len('.checkpoint')]
                lines.append(f'  - or use a local file: --cfg-options {key}=/path/to/{name}')
                lines.append(f'  - or train from scratch: --cfg-options {init_key}=None')
        else:
            lines.append(f'  - put the timm weights in the Hugging Face cache, or train from '
                         f'scratch: --cfg-options {key}=False')
    return '\n'.join(lines)


@contextlib.contextmanager
def explain_download_errors(cfg):
    """Turn a failed download of pretrained weights (``URLError``, a Hugging Face hub error,
    ...) into a :class:`UsageError` naming the weights and the fixes (:func:`offline_message`)."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - re-raised unless it is a download failure
        if not _is_download_error(e):
            raise
        raise UsageError(offline_message(cfg, e)) from e
