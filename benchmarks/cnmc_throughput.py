# Copyright (c) mmbloodcell contributors. All rights reserved.
"""Training and inference throughput of the C-NMC classifiers, and the equivalence of the fast
training paths with the stock one.

    python benchmarks/cnmc_throughput.py [--models M,...] [--variants V,...|auto|none]
        [--parts train,infer] [--batch 32] [--infer-batches 32,256] [--size 224] [--iters 50]
        [--warmup 3] [--windows 3] [--window-s 0.25] [--device cuda|cpu] [--tf32 on|off]
        [--time-budget-s 200]
        [--equivalence [--equiv-variants fp32,graph,fastest] [--equiv-steps 30]]
        [--out results.json] [--md results.md]

Vocabulary:

* *model*: ``densenet201`` / ``efficientnet-b2`` (mmpretrain backbones) and
  ``efficientnet-b2-timm`` (timm's implementation through ``TIMMBackbone``), each built from
  its C-NMC config (``configs/cnmc/*_fhl_cnmc.py``: ``BinaryClsHead`` + ``FocalHingeLoss``,
  Adam lr 1e-5, betas (0.7, 0.999)) without pretrained weights.
* *variant*: how the step runs, ``+``-joined tokens:

  - ``fp32`` -- mmpretrain's ``ImageClassifier`` and mmengine's ``OptimWrapper`` (baseline);
  - ``amp-bf16`` / ``amp-fp16`` -- the same with mmengine's ``AmpOptimWrapper`` (what
    ``tools/train.py --amp`` does; fp16 with its dynamic ``GradScaler``); inference under
    ``torch.autocast``;
  - any combination of ``cl`` (channels-last), ``bf16`` / ``fp16`` (autocast, no loss
    scaler), ``graph`` (the whole training step as one CUDA graph; inference as one CUDA
    graph too) and one of ``compile`` / ``compile-ro`` (mode ``reduce-overhead``, CUDA graphs
    by torch.compile) / ``compile-mat`` (``max-autotune-no-cudagraphs``) --
    :class:`~mmbloodcell.models.classifiers.FastImageClassifier` with a plain
    ``OptimWrapper``: the path ``configs/cnmc/*_fast_cnmc.py`` train with. ``fp16`` variants
    measure inference only (fp16 training needs a loss scaler: ``amp-fp16``).

* *part*: ``train`` (``model.train_step`` on a fixed batch: data pre-processing, forward,
  loss, backward, Adam step), ``infer<B>`` (``model(x, mode='tensor')`` in eval mode under
  ``no_grad`` on a pre-processed batch of B images: backbone, neck, head logits; no
  ``DataSample`` post-processing). Batches are random uint8 images already on the device
  (data loading and host-to-device copies are not timed).

Throughput = images per second: the median over ``--windows`` timed windows (each ended by
waiting for the device) after warm-up iterations, the iterations per window chosen so a
window lasts about ``--window-s``.

Items (a model and a variant, or a model's equivalence run) run one after the other in this
process, by priority (``plan``). None is started past ``--time-budget-s``, and the one running
when the budget ends is stopped there (its part recorded as ``timeout``, the parts after it
as skipped), so a run ends on time even when a compile is slow. Results are written after
every item.

The GPU run (about 3 minutes):

    python benchmarks/cnmc_throughput.py --device cuda --equivalence --time-budget-s 170 \\
        --out benchmarks/results/cnmc_throughput.json --md benchmarks/results/cnmc_throughput.md

CPU smoke test (what the tests run):

    python benchmarks/cnmc_throughput.py --device cpu --size 64 --batch 4 --iters 2 --warmup 1
"""
import argparse
import contextlib
import copy
import datetime
import gc
import json
import os
import os.path as osp
import shlex
import signal
import statistics
import sys
import threading
import time
from typing import Callable, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import mmengine  # noqa: E402
import mmpretrain  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper as mmengine_build_optim_wrapper  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

import mmbloodcell  # noqa: E402,F401 -- registers FastImageClassifier, BinaryClsHead, ...
from mmbloodcell.utils import synchronize  # noqa: E402

MODEL_CONFIGS = {
    'densenet201': 'cnmc/densenet201_fhl_cnmc.py',
    'efficientnet-b2': 'cnmc/efficientnet-b2_fhl_cnmc.py',
    'efficientnet-b2-timm': 'cnmc/efficientnet-b2-timm_fhl_cnmc.py',
}
STOCK_VARIANTS = {'fp32': None, 'amp-bf16': 'bfloat16', 'amp-fp16': 'float16'}
FAST_TOKENS = ('cl', 'bf16', 'fp16', 'graph', 'compile', 'compile-ro', 'compile-mat')
COMPILE_MODES = {'compile': 'default', 'compile-ro': 'reduce-overhead',
                 'compile-mat': 'max-autotune-no-cudagraphs'}

# 'auto' variants on CUDA, by priority: the core set first (baseline, the fast paths), then
# the equivalence runs, then the other variants (including those that do not help), then
# torch.compile (slow to compile, cut first by the time budget).
AUTO_CORE = ['fp32', 'cl+bf16+graph', 'cl+fp16+graph']
AUTO_MORE = ['amp-bf16', 'amp-fp16', 'graph', 'cl+bf16', 'cl+graph', 'cl']
AUTO_COMPILE = ['cl+bf16+compile-ro', 'cl+bf16+compile-mat']
AUTO_TIMM_MORE = ['amp-fp16', 'cl+fp16']
AUTO_CPU = ['fp32', 'cl']
AUTO_EQUIV_CUDA = ['fp32', 'graph', 'fastest']
AUTO_EQUIV_CPU = ['fp32', 'cl']


# ----------------------------------------------------------------------------- variants
def parse_variant(name: str) -> dict:
    """Parse a variant name into its settings; raises ValueError naming the valid tokens."""
    name = name.strip()
    if name in STOCK_VARIANTS:
        return dict(name=name, stock=True, amp=STOCK_VARIANTS[name], channels_last=False,
                    dtype=None, graph=False, compile=None, needs_cuda=name != 'fp32')
    tokens = name.split('+')
    bad = [t for t in tokens if t not in FAST_TOKENS]
    if bad or len(set(tokens)) != len(tokens):
        raise ValueError(
            f'variant {name!r}: unknown or repeated token(s) {bad or tokens}; a variant is '
            f'one of {sorted(STOCK_VARIANTS)} or a "+"-joined set of {list(FAST_TOKENS)}, '
            f'e.g. cl+bf16+graph')
    dtypes = [t for t in tokens if t in ('bf16', 'fp16')]
    compiles = [t for t in tokens if t in COMPILE_MODES]
    if len(dtypes) > 1 or len(compiles) > 1:
        raise ValueError(f'variant {name!r}: at most one of bf16/fp16 and one compile mode')
    graph = 'graph' in tokens
    mode = COMPILE_MODES[compiles[0]] if compiles else None
    if graph and mode == 'reduce-overhead':
        raise ValueError(f'variant {name!r}: graph and compile-ro both record CUDA graphs; '
                         f'use graph+compile-mat or compile-ro alone')
    return dict(name=name, stock=False, amp=None, channels_last='cl' in tokens,
                dtype={'bf16': 'bfloat16', 'fp16': 'float16'}.get(dtypes[0]) if dtypes
                else None, graph=graph, compile=mode,
                needs_cuda=graph or mode == 'reduce-overhead')


def model_config_path(model: str, config_root: Optional[str] = None) -> str:
    if model not in MODEL_CONFIGS:
        raise ValueError(f'unknown model {model!r}; choose from {sorted(MODEL_CONFIGS)}')
    root = config_root or osp.join(ROOT, 'configs')
    path = osp.join(root, MODEL_CONFIGS[model])
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found: run from an mmbloodcell checkout or pass '
                                f'--config-root <checkout>/configs')
    return path


# ------------------------------------------------------------------------ build helpers
def build_model(model: str, spec: dict, device: str, seed: int = 0,
                config_root: Optional[str] = None, graph_warmup_iters: int = 3):
    """The model of ``model``'s C-NMC config with the settings of variant ``spec``, seeded
    (the same seed gives the same initial weights for every variant), on ``device``."""
    cfg = Config.fromfile(model_config_path(model, config_root))
    model_cfg = copy.deepcopy(cfg.model)
    backbone = model_cfg['backbone']
    backbone['init_cfg'] = None  # no download; random weights
    if backbone.get('type') == 'TIMMBackbone':
        backbone['pretrained'] = False
    if not spec['stock']:
        model_cfg['type'] = 'FastImageClassifier'
        model_cfg.update(
            channels_last=spec['channels_last'], autocast_dtype=spec['dtype'],
            cuda_graph=spec['graph'], graph_warmup_iters=graph_warmup_iters,
            compile=None if spec['compile'] is None else dict(mode=spec['compile'],
                                                              dynamic=False))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(seed)
        net = MODELS.build(model_cfg)
    return net.to(device), cfg


def build_optim_wrapper(net, cfg, spec: dict):
    """The config's optimiser (Adam lr 1e-5, betas (0.7, 0.999)) in an ``OptimWrapper``, or an
    ``AmpOptimWrapper`` of the variant's dtype for ``amp-*``."""
    ow_cfg = copy.deepcopy(cfg.optim_wrapper)
    if spec['amp']:
        ow_cfg['type'] = 'AmpOptimWrapper'
        ow_cfg['dtype'] = spec['amp']
        ow_cfg.setdefault('loss_scale', 'dynamic')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return mmengine_build_optim_wrapper(net, ow_cfg)


def make_batch(batch: int, size: int, generator, device: str) -> dict:
    """A data batch as the C-NMC loaders give it: uint8 BGR images (N, 3, size, size) and
    ``DataSample``s with labels 0 / 1; the images on ``device``, the labels on the host."""
    imgs = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8,
                         generator=generator)
    labels = torch.randint(0, 2, (batch, ), generator=generator)
    samples = [DataSample().set_gt_label(int(v)) for v in labels]
    return dict(inputs=imgs.to(device), data_samples=samples)


def _autocast(spec: dict, device: str):
    """Autocast for the inference of ``amp-*`` variants (FastImageClassifier autocasts
    itself)."""
    if spec['amp']:
        return torch.autocast(str(device).split(':')[0], dtype=getattr(torch, spec['amp']))
    return contextlib.nullcontext()


def timeit(step: Callable[[], None], device: str, batch: int, warmup: int, max_iters: int,
           windows: int, window_s: float) -> dict:
    """Images per second of ``step`` (one batch per call): ``warmup`` untimed calls, then
    ``windows`` timed windows of ``n`` calls each, ``n`` chosen from one timed call so that a
    window lasts about ``window_s`` (1 <= n <= max_iters); the median window counts."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize(device)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    step()
    synchronize(device)
    one = max(time.perf_counter() - t0, 1e-6)
    n = int(max(1, min(max_iters, round(window_s / one))))
    rates = []
    for _ in range(windows):
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        synchronize(device)
        rates.append(batch * n / (time.perf_counter() - t0))
    img_s = statistics.median(rates)
    return dict(img_s=img_s, ms_per_iter=1000.0 * batch / img_s, batch=batch,
                iters_per_window=n, windows=[round(r, 2) for r in rates], warmup=warmup,
                warmup_s=round(warm_s, 3))


class GraphedForward:
    """``net(x, mode='tensor')`` of one static input batch captured as a CUDA graph (eval
    mode, no_grad), after ``warmup`` eager calls on a side stream."""

    def __init__(self, net, x, spec: dict, device: str, warmup: int = 3):
        self.x = x.clone(memory_format=torch.preserve_format)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad(), _autocast(spec, device):
            for _ in range(warmup):
                net(self.x, mode='tensor')
        torch.cuda.current_stream().wait_stream(side)
        synchronize(device)
        self.graph = torch.cuda.CUDAGraph()
        ctx = torch.autocast('cuda', dtype=getattr(torch, spec['amp']), cache_enabled=False) \
            if spec['amp'] else contextlib.nullcontext()
        with torch.cuda.graph(self.graph), torch.no_grad(), ctx:
            self.out = net(self.x, mode='tensor')

    def __call__(self):
        self.graph.replay()
        return self.out


# ------------------------------------------------------------------------------ items
def _error_text(e: BaseException) -> str:
    text = f'{type(e).__name__}: {e}'.strip().replace('\n', ' ')
    return text[:600]


def _cleanup(device: str) -> None:
    gc.collect()
    if str(device).startswith('cuda'):
        synchronize(device)
        torch.cuda.empty_cache()


def run_throughput(item: dict, opts: dict, emit: Callable[[dict], None]) -> None:
    """Measure the parts of a throughput item, calling ``emit`` with each part's result
    (``{'event': 'part', 'part': ..., 'result': {...}}``)."""
    device, spec = opts['device'], parse_variant(item['variant'])
    parts = item['parts']
    gen = torch.Generator().manual_seed(opts['seed'])
    t0 = time.perf_counter()
    net, cfg = build_model(item['model'], spec, device, opts['seed'], opts.get('config_root'),
                           opts['graph_warmup'])
    build_s = time.perf_counter() - t0
    warmup = opts['warmup']
    if spec['graph']:
        warmup = max(warmup, opts['graph_warmup'] + 2)
    if spec['compile']:
        warmup = max(warmup, 3)
    common = dict(device=device, max_iters=opts['iters'], windows=opts['windows'],
                  window_s=opts['window_s'])
    try:
        for part in parts:
            emit(dict(event='start_part', part=part))
            t1 = time.perf_counter()
            try:
                if part == 'train':
                    if spec['dtype'] == 'float16':
                        emit(dict(event='part', part=part, result=dict(
                            na='fp16 training needs a loss scaler: see amp-fp16')))
                        continue
                    res = _measure_train(net, cfg, spec, gen, opts, warmup, common)
                else:
                    bs = int(part[len('infer'):])
                    res = _measure_infer(net, spec, gen, bs, opts, warmup, common)
                res['elapsed_s'] = round(time.perf_counter() - t1, 3)
                if part == parts[0]:
                    res['build_s'] = round(build_s, 3)
                emit(dict(event='part', part=part, result=res))
            except Exception as e:  # noqa: BLE001 -- recorded, never hidden
                emit(dict(event='part', part=part, result=dict(error=_error_text(e))))
    finally:
        if hasattr(net, 'release_graph'):
            net.release_graph()
        del net
        if spec['compile']:
            torch._dynamo.reset()
        _cleanup(device)


def _measure_train(net, cfg, spec, gen, opts, warmup, common) -> dict:
    net.train()
    ow = build_optim_wrapper(net, cfg, spec)
    data = make_batch(opts['batch'], opts['size'], gen, opts['device'])
    out = {}

    def step():
        out['log'] = net.train_step(data, ow)
        if opts.get('sync_each_step'):
            float(out['log']['loss'].detach())  # as mmengine's logging does every iteration

    res = timeit(step, batch=opts['batch'], warmup=warmup, **common)
    loss = out['log']['loss']
    res['last_loss'] = float(loss.detach())
    if hasattr(net, 'release_graph'):
        net.release_graph()
    return res


def _measure_infer(net, spec, gen, bs, opts, warmup, common) -> dict:
    net.eval()
    data = make_batch(bs, opts['size'], gen, opts['device'])
    with torch.no_grad():
        x = net.data_preprocessor(dict(inputs=data['inputs']), False)['inputs']
    if spec['channels_last']:
        x = x.contiguous(memory_format=torch.channels_last)
    if spec['graph']:
        fn = GraphedForward(net, x, spec, opts['device'], warmup=3)
        step = fn.__call__
    else:
        def step():
            with torch.no_grad(), _autocast(spec, opts['device']):
                net(x, mode='tensor')
    res = timeit(step, batch=bs, warmup=warmup, **common)
    step = fn = None  # noqa: F841 -- frees the graph
    return res


def run_equivalence(item: dict, opts: dict, emit: Callable[[dict], None]) -> None:
    """Train the ``fp32`` reference and each variant of ``item['variants']`` from the same
    initial weights on the same fixed batches for ``equiv_steps`` steps; emit per variant the
    loss curves, the largest per-step loss difference, the final losses, the agreement of the
    predictions on an unseen batch and the parameters' divergence relative to how far the
    reference moved."""
    device, seed = opts['device'], opts['seed']
    gen = torch.Generator().manual_seed(seed + 1)
    cpu_batches = [make_batch(opts['batch'], opts['size'], gen, 'cpu')
                   for _ in range(opts['equiv_distinct'])]
    eval_batch = make_batch(opts['equiv_eval_batch'], opts['size'], gen, 'cpu')
    steps = opts['equiv_steps']
    init, _ = build_model(item['model'], parse_variant('fp32'), 'cpu', seed,
                          opts.get('config_root'))
    theta0 = torch.cat([p.detach().reshape(-1).float() for p in init.parameters()])
    del init

    def train(variant):
        spec = parse_variant(variant)
        t0 = time.perf_counter()
        net, cfg = build_model(item['model'], spec, device, seed, opts.get('config_root'),
                               opts['graph_warmup'])
        ow = build_optim_wrapper(net, cfg, spec)
        net.train()
        batches = [dict(inputs=b['inputs'].to(device), data_samples=b['data_samples'])
                   for b in cpu_batches]
        losses = []
        for i in range(steps):
            losses.append(float(net.train_step(batches[i % len(batches)], ow)['loss'].detach()))
        if hasattr(net, 'release_graph'):
            net.release_graph()
        net.eval()
        with torch.no_grad():
            x = net.data_preprocessor(dict(inputs=eval_batch['inputs'].to(device)),
                                      False)['inputs']
            with _autocast(spec, device):
                logits = net(x, mode='tensor')
        prob = torch.sigmoid(logits.float().reshape(-1)).cpu()
        theta = torch.cat([p.detach().reshape(-1).float().cpu() for p in net.parameters()])
        del net, ow
        if spec['compile']:
            torch._dynamo.reset()
        _cleanup(device)
        return dict(losses=losses, prob=prob, theta=theta,
                    seconds=round(time.perf_counter() - t0, 2))

    emit(dict(event='start_part', part='reference'))
    ref = train('fp32')
    moved = float((ref['theta'] - theta0).norm())
    emit(dict(event='part', part='reference', result=dict(
        losses=[round(v, 6) for v in ref['losses']], seconds=ref['seconds'],
        param_change_norm=moved)))
    for variant in item['variants']:
        emit(dict(event='start_part', part=variant))
        try:
            spec = parse_variant(variant)
            if spec['dtype'] == 'float16':
                raise ValueError('fp16 variants do not train without a loss scaler')
            run = train(variant)
            diffs = [abs(a - b) for a, b in zip(ref['losses'], run['losses'])]
            agree = float(((ref['prob'] > 0.5) == (run['prob'] > 0.5)).float().mean())
            res = dict(
                steps=steps, losses=[round(v, 6) for v in run['losses']],
                reference_losses=[round(v, 6) for v in ref['losses']],
                final_loss=run['losses'][-1], reference_final_loss=ref['losses'][-1],
                final_loss_abs_diff=diffs[-1], max_loss_abs_diff=max(diffs),
                pred_agreement=agree,
                max_prob_abs_diff=float((ref['prob'] - run['prob']).abs().max()),
                param_rel_diff=float((ref['theta'] - run['theta']).norm()) / max(moved, 1e-30),
                seconds=run['seconds'])
            emit(dict(event='part', part=variant, result=res))
        except Exception as e:  # noqa: BLE001
            emit(dict(event='part', part=variant, result=dict(error=_error_text(e))))


def environment(device: str, tf32: bool) -> dict:
    """Set cuDNN benchmark and TF32 as requested and describe the machine and stack."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    meta = dict(device=device, torch=torch.__version__, mmengine=mmengine.__version__,
                mmpretrain=mmpretrain.__version__, cudnn_benchmark=True,
                tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                tf32_cudnn=torch.backends.cudnn.allow_tf32,
                float32_matmul_precision=torch.get_float32_matmul_precision())
    try:
        import timm
        meta['timm'] = timm.__version__
    except ImportError:
        meta['timm'] = None
    if device.startswith('cuda'):
        props = torch.cuda.get_device_properties(torch.device(device))
        meta.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f'{props.major}.{props.minor}', cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    else:
        import platform
        meta.update(gpu=None, cpu=platform.processor() or platform.machine(),
                    threads=torch.get_num_threads())
    return meta


def run_item(item: dict, opts: dict, emit: Callable[[dict], None]) -> None:
    if item['kind'] == 'throughput':
        run_throughput(item, opts, emit)
    else:
        run_equivalence(item, opts, emit)


class _BudgetSpent(BaseException):
    """Raised in the main thread when the time budget ends during an item (a BaseException,
    so that the ``except Exception`` that records a failing part does not catch it)."""


@contextlib.contextmanager
def stop_at(deadline: float):
    """Raise ``_BudgetSpent`` in the block when ``time.perf_counter()`` passes ``deadline``
    (a ``SIGALRM`` timer and handler for the block; where there is none, or off the main
    thread, the block runs to its end)."""
    if not hasattr(signal, 'setitimer') or \
            threading.current_thread() is not threading.main_thread():
        yield
        return

    def ring(signum, frame):
        raise _BudgetSpent

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.perf_counter(), 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------ the planner
def _split(value: Optional[str]) -> List[str]:
    return [v.strip() for v in (value or '').split(',') if v.strip()]


def plan(args) -> List[dict]:
    """The ordered work list: throughput items by priority, then equivalence, then compile."""
    cuda = args.device.startswith('cuda')
    models = _split(args.models)
    for m in models:
        if m not in MODEL_CONFIGS:
            raise ValueError(f'--models: unknown model {m!r}; choose from '
                             f'{sorted(MODEL_CONFIGS)}')
    parts = ['train'] + [f'infer{b}' for b in args.infer_batches]
    if args.parts:
        parts = [p for p in parts if p in _split(args.parts) or
                 (p.startswith('infer') and 'infer' in _split(args.parts))]
    ranked = []  # (rank, order, item)
    explicit = args.variants != 'auto'
    for mi, model in enumerate(models):
        if explicit:
            variants = [] if args.variants == 'none' else [(0, v) for v in
                                                           _split(args.variants)]
        elif not cuda:
            variants = [(0, v) for v in AUTO_CPU]
        else:
            more = AUTO_TIMM_MORE if model.endswith('-timm') else AUTO_MORE
            compile_ = [] if model.endswith('-timm') else AUTO_COMPILE
            variants = [(0, v) for v in AUTO_CORE] + [(2, v) for v in more] + \
                [(3, v) for v in compile_]
        for vi, (rank, v) in enumerate(variants):
            spec = parse_variant(v)
            if spec['compile'] and rank < 3:
                rank = 3
            ranked.append((rank, vi, mi, dict(kind='throughput', model=model, variant=v,
                                              parts=list(parts))))
    if args.equivalence:
        equiv = _split(args.equiv_variants) if args.equiv_variants != 'auto' else (
            AUTO_EQUIV_CUDA if cuda else AUTO_EQUIV_CPU)
        for v in equiv:
            if v != 'fastest':
                parse_variant(v)
        for mi, model in enumerate(models):
            if model.endswith('-timm') and not _split(args.models) == [model]:
                continue  # same recipe as efficientnet-b2; keep the budget for the others
            ranked.append((1, 0, mi, dict(kind='equivalence', model=model,
                                          variants=list(equiv))))
    # compile items: EfficientNet-B2 (faster to compile) before DenseNet-201
    ranked.sort(key=lambda r: (r[0], r[1], -r[2] if r[0] == 3 else r[2]))
    return [r[3] for r in ranked]


def _skip_reason(spec: dict, args) -> Optional[str]:
    cuda = args.device.startswith('cuda')
    if not cuda and spec['amp']:
        return "needs CUDA (mmengine's AmpOptimWrapper refuses CPUs)"
    if not cuda and spec['needs_cuda']:
        return 'needs CUDA (CUDA graphs)'
    if not cuda and spec['compile'] and not args.cpu_compile:
        return 'torch.compile skipped on CPU (pass --cpu-compile to run it)'
    return None


# --------------------------------------------------------------------------- results
class Results:
    """Collects the events into records and writes the JSON / markdown files."""

    def __init__(self, args, argv: List[str]):
        self.args = args
        self.meta = dict(
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            command='python benchmarks/cnmc_throughput.py ' + ' '.join(
                shlex.quote(a) for a in argv),
            batch=args.batch, size=args.size, infer_batches=args.infer_batches,
            warmup=args.warmup, iters=args.iters, windows=args.windows,
            window_s=args.window_s, time_budget_s=args.time_budget_s, seed=args.seed,
            sync_each_step=args.sync_each_step)
        self.throughput: List[dict] = []
        self.equivalence: List[dict] = []
        self.skipped: List[dict] = []

    def record(self, item: dict) -> dict:
        if item['kind'] == 'throughput':
            for r in self.throughput:
                if r['model'] == item['model'] and r['variant'] == item['variant']:
                    return r
            rec = dict(model=item['model'], variant=item['variant'], parts={})
            self.throughput.append(rec)
        else:
            for r in self.equivalence:
                if r['model'] == item['model']:
                    return r
            rec = dict(model=item['model'], steps=self.args.equiv_steps,
                       distinct_batches=self.args.equiv_distinct,
                       eval_batch=self.args.equiv_eval_batch, reference=None, variants={})
            self.equivalence.append(rec)
        return rec

    def add(self, item: dict, part: str, result: dict) -> None:
        rec = self.record(item)
        if item['kind'] == 'throughput':
            rec['parts'][part] = result
        elif part == 'reference':
            rec['reference'] = result
        else:
            rec['variants'][part] = result

    def recorded(self, item: dict) -> set:
        """The parts (throughput) or variants and ``reference`` (equivalence) of ``item``
        that have a result."""
        rec = self.record(item)
        if item['kind'] == 'throughput':
            return set(rec['parts'])
        return set(rec['variants']) | ({'reference'} if rec['reference'] else set())

    def skip(self, item: dict, reason: str, parts=None) -> None:
        if item['kind'] == 'throughput':
            for part in parts or item['parts']:
                self.add(item, part, dict(skipped=reason))
        else:
            for v in parts or item['variants']:
                self.add(item, v, dict(skipped=reason))
        self.skipped.append(dict(kind=item['kind'], model=item['model'],
                                 variant=item.get('variant'), parts=parts, reason=reason))

    def fastest(self, model: str) -> Optional[str]:
        best, name = 0.0, None
        for r in self.throughput:
            img_s = r['parts'].get('train', {}).get('img_s')
            if r['model'] == model and r['variant'] != 'fp32' and img_s and img_s > best:
                best, name = img_s, r['variant']
        return name

    def summary(self) -> List[dict]:
        """One row per model / variant with the headline numbers and speed-ups."""
        rows = []
        base = {r['model']: r['parts'] for r in self.throughput if r['variant'] == 'fp32'}
        for r in self.throughput:
            row = dict(model=r['model'], variant=r['variant'])
            notes = []
            for part, res in r['parts'].items():
                row[part] = res.get('img_s')
                ref = base.get(r['model'], {}).get(part, {}).get('img_s')
                if res.get('img_s') and ref:
                    row[f'{part}_speedup'] = res['img_s'] / ref
                for key in ('error', 'skipped', 'timeout', 'na'):
                    if key in res:
                        notes.append(f'{part}: {key}: {res[key]}')
            row['notes'] = notes
            rows.append(row)
        return rows

    def to_json(self) -> dict:
        return dict(meta=self.meta, throughput=self.throughput, summary=self.summary(),
                    equivalence=self.equivalence, skipped=self.skipped)

    def write(self) -> None:
        if self.args.out:
            os.makedirs(osp.dirname(osp.abspath(self.args.out)), exist_ok=True)
            with open(self.args.out, 'w') as f:
                json.dump(self.to_json(), f, indent=1)
        if self.args.md:
            os.makedirs(osp.dirname(osp.abspath(self.args.md)), exist_ok=True)
            with open(self.args.md, 'w') as f:
                f.write(self.markdown())

    def markdown(self) -> str:
        m = self.meta
        env = m.get('env', {})
        parts = ['train'] + [f'infer{b}' for b in self.args.infer_batches]
        lines = [
            f'# C-NMC classification throughput ({env.get("gpu") or env.get("cpu") or "?"})',
            '',
            f'- date: {m["date"]}; device: {env.get("device")}; GPU: {env.get("gpu")}; '
            f'torch {env.get("torch")} (CUDA {env.get("cuda")}, cuDNN {env.get("cudnn")}); '
            f'mmengine {env.get("mmengine")}, mmpretrain {env.get("mmpretrain")}, '
            f'timm {env.get("timm")}',
            f'- settings: {m["size"]}x{m["size"]} random uint8 images, train batch '
            f'{m["batch"]}; cudnn.benchmark on; TF32 matmul {env.get("tf32_matmul")}, '
            f'TF32 cuDNN {env.get("tf32_cudnn")}; median of {m["windows"]} windows of '
            f'~{m["window_s"]} s after >= {m["warmup"]} warm-up iterations',
            f'- command: `{m["command"]}`',
            f'- wall time {m.get("wall_s")} s of a {m["time_budget_s"]} s budget; '
            f'{len(self.skipped)} item(s) skipped',
            '',
            '| model | variant | ' + ' | '.join(
                ('train img/s (bs%d)' % m['batch']) if p == 'train' else
                f'infer img/s bs{p[5:]}' for p in parts) + ' | ' + ' | '.join(
                f'{p} speed-up vs fp32' for p in parts) + ' | notes |',
            '|' + '---|' * (3 + 2 * len(parts)),
        ]
        for row in self.summary():
            vals = [f'{row[p]:.1f}' if row.get(p) else '-' for p in parts]
            ups = [f'{row[p + "_speedup"]:.2f}x' if row.get(p + '_speedup') else '-'
                   for p in parts]
            notes = '; '.join(row['notes']).replace('|', '/')
            lines.append(f'| {row["model"]} | {row["variant"]} | ' + ' | '.join(vals) +
                         ' | ' + ' | '.join(ups) + f' | {notes} |')
        if self.equivalence:
            lines += [
                '', '## Equivalence of the training paths', '',
                'Each variant and the fp32 reference (mmpretrain ImageClassifier + '
                'OptimWrapper) train from the same initial weights on the same fixed random '
                'batches; the `fp32` row repeats the reference itself (cuDNN nondeterminism '
                'floor). `param rel. diff` = |theta_variant - theta_ref| / '
                '|theta_ref - theta_0|; predictions on an unseen batch.', '',
                '| model | variant | steps | final loss (ref) | final loss (variant) | '
                'max abs loss diff | pred. agreement | max abs prob. diff | param rel. diff '
                '| notes |',
                '|---|---|---|---|---|---|---|---|---|---|']
            for rec in self.equivalence:
                for v, res in rec['variants'].items():
                    if 'final_loss' in res:
                        lines.append(
                            f'| {rec["model"]} | {v} | {res["steps"]} | '
                            f'{res["reference_final_loss"]:.6f} | {res["final_loss"]:.6f} | '
                            f'{res["max_loss_abs_diff"]:.2e} | '
                            f'{100 * res["pred_agreement"]:.1f} % | '
                            f'{res["max_prob_abs_diff"]:.2e} | {res["param_rel_diff"]:.2e} | |')
                    else:
                        note = '; '.join(f'{k}: {res[k]}' for k in res).replace('|', '/')
                        lines.append(f'| {rec["model"]} | {v} | | | | | | | | {note} |')
        if self.skipped:
            lines += ['', '## Skipped', '']
            for s in self.skipped:
                what = s['variant'] or 'equivalence'
                lines.append(f'- {s["model"]} {what} {s["parts"] or ""}: {s["reason"]}')
        return '\n'.join(lines) + '\n'


# ------------------------------------------------------------------------------ main
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog='benchmarks/cnmc_throughput.py',
        description='Training / inference throughput of the C-NMC classifiers, and the '
        'equivalence of the fast training paths with the stock one.')
    p.add_argument('--models', default='densenet201,efficientnet-b2,efficientnet-b2-timm',
                   help=f'comma-separated, from {sorted(MODEL_CONFIGS)}')
    p.add_argument('--variants', default='auto',
                   help="comma-separated variants (e.g. fp32,amp-bf16,cl+bf16+graph), or "
                   "'auto' (a prioritised set; CPU: fp32,cl), or 'none' (e.g. only "
                   "--equivalence)")
    p.add_argument('--parts', default=None,
                   help="restrict to some of 'train', 'infer' (all inference batches) or "
                   "'infer<B>'")
    p.add_argument('--batch', type=int, default=32, help='training (and first inference) '
                   'batch size')
    p.add_argument('--infer-batches', default=None,
                   help='comma-separated inference batch sizes (default: BATCH,256 on CUDA, '
                   'BATCH,2*BATCH on CPU)')
    p.add_argument('--size', type=int, default=224, help='image side in pixels')
    p.add_argument('--iters', type=int, default=50, help='most iterations per timed window')
    p.add_argument('--windows', type=int, default=3, help='timed windows (median reported)')
    p.add_argument('--window-s', type=float, default=0.25, help='target seconds per window')
    p.add_argument('--warmup', type=int, default=3, help='untimed iterations first (CUDA '
                   'graph variants: at least graph warm-up + 2, compile: at least 3)')
    p.add_argument('--sync-each-step', action='store_true',
                   help="read the loss on the host after every training step, as mmengine's "
                   'logging does (default: no host sync in the timed loop)')
    p.add_argument('--graph-warmup', type=int, default=3,
                   help='eager steps before a training step is captured')
    p.add_argument('--device', default=None, help="'cuda' (default when available) or 'cpu'")
    p.add_argument('--tf32', choices=['on', 'off'], default='on',
                   help='TF32 for float32 matmuls and convolutions (recorded)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--time-budget-s', type=float, default=200.0,
                   help='seconds for the whole run: no item starts past them and the item '
                   'running then is stopped; everything not run is recorded as skipped')
    p.add_argument('--item-timeout-s', type=float, default=None,
                   help='no effect (--time-budget-s bounds the run); accepted so that '
                   'recorded commands run as written')
    p.add_argument('--cpu-compile', action='store_true', help='run compile variants on CPU')
    p.add_argument('--equivalence', action='store_true',
                   help='also train the fp32 reference and fast variants side by side')
    p.add_argument('--equiv-variants', default='auto',
                   help="variants compared with fp32 ('fastest' = the fastest measured "
                   "training variant); auto: fp32,graph,fastest on CUDA, fp32,cl on CPU")
    p.add_argument('--equiv-steps', type=int, default=30)
    p.add_argument('--equiv-distinct', type=int, default=4,
                   help='distinct fixed batches, cycled over the steps')
    p.add_argument('--equiv-eval-batch', type=int, default=64,
                   help='images of the unseen batch whose predictions are compared')
    p.add_argument('--config-root', default=None, help='the configs/ folder of a checkout')
    p.add_argument('--out', default=None, help='results JSON')
    p.add_argument('--md', default=None, help='results markdown table')
    args = p.parse_args(argv)
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    cuda = args.device.startswith('cuda')
    if args.infer_batches is None:
        args.infer_batches = [args.batch, 256 if cuda else 2 * args.batch]
    else:
        args.infer_batches = [int(b) for b in _split(args.infer_batches)]
    args.infer_batches = list(dict.fromkeys(args.infer_batches))
    for name in ('batch', 'size', 'iters', 'windows', 'equiv_steps', 'equiv_distinct',
                 'equiv_eval_batch', 'graph_warmup'):
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1')
    return args


def _opts(args) -> dict:
    return dict(device=args.device, tf32=args.tf32 == 'on', seed=args.seed, batch=args.batch,
                size=args.size, iters=args.iters, windows=args.windows,
                window_s=args.window_s, warmup=args.warmup, graph_warmup=args.graph_warmup,
                sync_each_step=args.sync_each_step,
                equiv_steps=args.equiv_steps, equiv_distinct=args.equiv_distinct,
                equiv_eval_batch=args.equiv_eval_batch, config_root=args.config_root)


def _describe(item: dict, part: str, res: dict) -> str:
    if 'img_s' in res:
        return f'{res["img_s"]:.1f} img/s ({res["ms_per_iter"]:.2f} ms/iter)'
    if 'max_loss_abs_diff' in res:
        return (f'final loss {res["final_loss"]:.6f} vs {res["reference_final_loss"]:.6f}, '
                f'max |dloss| {res["max_loss_abs_diff"]:.2e}, agreement '
                f'{100 * res["pred_agreement"]:.1f} %')
    if 'losses' in res:
        return f'reference trained ({res["seconds"]} s)'
    return '; '.join(f'{k}: {v}' for k, v in res.items() if k != 'elapsed_s')


def main(argv=None) -> dict:
    """Run the benchmark; returns the results dict (also written to --out / --md)."""
    t_start = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    results = Results(args, argv)
    deadline = t_start + args.time_budget_s
    opts = _opts(args)

    def log(msg):
        print(f'[{time.perf_counter() - t_start:6.1f}s] {msg}', flush=True)

    results.meta['env'] = environment(args.device, opts['tf32'])
    for item in plan(args):
        label = f'{item["model"]} {item.get("variant", "equivalence")}'
        if item['kind'] == 'equivalence':
            resolved = []
            for v in item['variants']:
                if v == 'fastest':
                    v = results.fastest(item['model'])
                    if v is None:
                        results.skip(dict(item, variants=['fastest']),
                                     'no measured training variant to call fastest')
                        continue
                if v not in resolved:
                    resolved.append(v)
            item = dict(item, variants=resolved)
            todo = list(item['variants'])
        else:
            todo = list(item['parts'])
            reason = _skip_reason(parse_variant(item['variant']), args)
            if reason:
                results.skip(item, reason)
                log(f'{label}: skipped ({reason})')
                continue
        if not todo:
            continue
        is_compile = item['kind'] == 'throughput' and \
            parse_variant(item['variant'])['compile'] is not None
        left = deadline - time.perf_counter()
        if left < (30.0 if is_compile else 3.0):
            results.skip(item, f'time budget: {left:.0f} s left of '
                               f'{args.time_budget_s:.0f} s')
            log(f'{label}: skipped (time budget)')
            continue
        log(f'{label}: start')
        _run_until(deadline, item, todo, opts, results, log, label)
        results.meta['wall_s'] = round(time.perf_counter() - t_start, 1)
        results.write()
    results.meta['wall_s'] = round(time.perf_counter() - t_start, 1)
    results.write()
    log(f'done in {results.meta["wall_s"]} s' + (f'; wrote {args.out}' if args.out else '') +
        (f', {args.md}' if args.md else ''))
    print(results.markdown())
    return results.to_json()


def _run_until(deadline: float, item: dict, todo: List[str], opts: dict, results: Results,
               log: Callable[[str], None], label: str) -> None:
    """Run ``item``, recording its parts in ``results``; at ``deadline`` stop it and record
    the running part as ``timeout`` and the rest as skipped. An error that ends the item
    (e.g. its model does not build) is recorded for every part not done. What is done is
    read from ``results``, so a stop between two statements loses no result."""
    t0 = time.perf_counter()
    current = [None]

    def emit(ev):
        if ev['event'] == 'start_part':
            current[0] = ev['part']
        elif ev['event'] == 'part':
            results.add(item, ev['part'], ev['result'])
            log(f'{label} {ev["part"]}: {_describe(item, ev["part"], ev["result"])}')

    try:
        with stop_at(deadline):
            run_item(item, opts, emit)
    except _BudgetSpent:
        done = results.recorded(item)
        rest = [p for p in todo if p not in done]
        if current[0] in rest:
            results.add(item, current[0], dict(
                timeout=f'killed {time.perf_counter() - t0:.0f} s into the item '
                '(time budget)'))
            rest.remove(current[0])
        if rest:
            results.skip(item, f'not run: time budget during {current[0]}', rest)
        log(f'{label}: stopped (time budget) during {current[0]}')
    except Exception as e:  # noqa: BLE001 -- recorded, never hidden
        error = _error_text(e)
        done = results.recorded(item)
        for p in dict.fromkeys([current[0]] + todo):
            if p is not None and p not in done:
                results.add(item, p, dict(error=error))
        log(f'{label}: stopped after: {error[:300]}')


if __name__ == '__main__':
    main()
