"""Time one training iteration of a detection budget config (RTMDet, Sparse R-CNN) with
stock mmdet / mmengine pieces and with mmbloodcell's, and count the operators each dispatches.

    python benchmarks/rtmdet_step_speed.py [--device cpu|cuda] [--batch 32] [--size 640]
        [--boxes 60] [--repeats 5] [--amp] [--config CONFIG] [--out results.json]

An iteration is what the runner does per batch: ``model.train_step`` (data pre-processing,
forward, loss, backward, optimizer step) and the EMA update. Two set-ups of the same model,
same weights, same batch:

- ``stock``: mmdet's ``RTMDetSepBNHead`` + ``DynamicSoftLabelAssigner`` (targets image by
  image, one ``topk`` per box), mmengine's ``DefaultOptimWrapperConstructor`` (one parameter
  group per tensor with ``paramwise_cfg``, so AdamW cannot fuse its update) and mmdet's
  ``ExpMomentumEMA`` (two kernels per tensor);
- ``config``: what the config builds: ``BatchRTMDetSepBNHead`` + ``BatchDynamicSoftLabelAssigner``,
  ``GroupedOptimWrapperConstructor``, ``ForeachExpMomentumEMA``.

With ``--config configs/sparse_rcnn/sparse-rcnn_cspnext-t_fpn_100p_640_240s-budget_bccd.py`` the
head swapped is the RoI head: mmdet's ``SparseRoIHead`` + ``Fp32HungarianAssigner`` (image by
image at each stage) against ``BatchSparseRoIHead`` + ``BatchHungarianAssigner``. Both set-ups
start from the same weights, initialised as the runner does (``init_weights``).

The batch: random images, ``--boxes`` cells per image sized like BCCD's (RBC ~100 px, WBC
~200 px, platelets ~40 px at 640 px; a mosaic image holds 20-80). AdamW runs with
``foreach=True`` on every device (PyTorch's default on CUDA). Printed per set-up: the median
wall time over ``--repeats`` iterations and the number of aten operator calls of one iteration
(``mmbloodcell.utils.count_aten_ops``; on a GPU each is at least one kernel launch, which is
what bounds a small model's step). The first iteration's losses must agree.
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', default=osp.join(ROOT, 'configs', 'rtmdet',
                                                'rtmdet_tiny_640_240s-budget_bccd.py'))
    p.add_argument('--device', default='cpu')
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=640)
    p.add_argument('--boxes', type=int, default=60, help='cells per image')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--amp', action='store_true', help='AmpOptimWrapper (fp16), as --amp trains')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', help='write the results as JSON here')
    return p.parse_args(argv)


def make_batch(args):
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(args.seed)
    sizes = torch.tensor([100., 200., 40.])  # RBC, WBC, platelets (px at 640)
    inputs, samples = [], []
    shape = (args.size, args.size)
    for _ in range(args.batch):
        labels = torch.multinomial(torch.tensor([0.85, 0.05, 0.10]), args.boxes,
                                   replacement=True, generator=gen)
        wh = sizes[labels, None] * (0.7 + 0.6 * torch.rand(args.boxes, 2, generator=gen))
        wh = wh * args.size / 640
        xy = torch.rand(args.boxes, 2, generator=gen) * (args.size - wh)
        s = DetDataSample(metainfo=dict(img_shape=shape, pad_shape=shape))
        s.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1), labels=labels)
        samples.append(s)
        inputs.append(torch.randint(0, 256, (3, ) + shape, dtype=torch.uint8, generator=gen))
    return dict(inputs=inputs, data_samples=samples)


def build_setup(cfg, stock: bool, args, state=None):
    """(model, optim_wrapper, ema) as the config builds them, or with the stock pieces."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmdet.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    ow_cfg = copy.deepcopy(cfg.optim_wrapper)
    ema_cfg = copy.deepcopy([h for h in cfg.custom_hooks if h['type'] == 'EMAHook'][0])
    ema_cfg.pop('type')
    ema_cfg.pop('priority', None)
    ema_type = ema_cfg.pop('ema_type')
    if stock:
        if model_cfg.get('bbox_head', {}).get('type') == 'BatchRTMDetSepBNHead':
            model_cfg.bbox_head.type = 'RTMDetSepBNHead'
            model_cfg.train_cfg.assigner.type = 'DynamicSoftLabelAssigner'
        if model_cfg.get('roi_head', {}).get('type') == 'BatchSparseRoIHead':
            model_cfg.roi_head.type = 'SparseRoIHead'
            for stage in model_cfg.train_cfg.rcnn:
                stage.assigner.type = 'Fp32HungarianAssigner'
        ow_cfg.pop('constructor', None)
        ema_type = 'ExpMomentumEMA'
    ow_cfg.optimizer['foreach'] = True
    if args.amp:
        ow_cfg['type'] = 'AmpOptimWrapper'
    torch.manual_seed(args.seed)
    model = MODELS.build(model_cfg)
    if state is None:
        model.init_weights()  # as the runner does (Sparse R-CNN's proposals need it)
    else:
        model.load_state_dict(state)
    model = model.to(args.device)
    model.train()
    optim_wrapper = build_optim_wrapper(model, ow_cfg)
    ema = MODELS.build(dict(type=ema_type, model=model, **ema_cfg))
    return model, optim_wrapper, ema


def main(argv=None):
    args = parse_args(argv)
    import torch
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    import mmbloodcell  # noqa: F401
    from mmbloodcell.utils import count_aten_ops
    MMLogger.get_instance('mmengine', log_level='WARNING')
    cfg = Config.fromfile(args.config)
    init_default_scope('mmdet')
    data = make_batch(args)
    sync = torch.cuda.synchronize if args.device.startswith('cuda') else (lambda: None)
    rows, state = [], None
    for name, stock in (('stock mmdet/mmengine', True), ('config (mmbloodcell)', False)):
        model, optim_wrapper, ema = build_setup(cfg, stock, args, state)
        state = state or copy.deepcopy(model.state_dict())

        def step():
            losses = model.train_step(copy.deepcopy(data), optim_wrapper)
            ema.update_parameters(model)
            return {k: float(v) for k, v in losses.items()}

        ema.update_parameters(model)  # the EMA's first call only copies
        first = step()
        times = []
        for _ in range(args.repeats):
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - t0)
        rows.append(dict(setup=name, ms=round(1000 * statistics.median(times), 2),
                         aten_ops=count_aten_ops(step), first_losses=first,
                         param_groups=len(optim_wrapper.optimizer.param_groups),
                         head=type(getattr(model, 'roi_head', None) or model.bbox_head).__name__,
                         ema=type(ema).__name__))
    a, b = rows[0]['first_losses'], rows[1]['first_losses']
    same = all(abs(a[k] - b[k]) <= 1e-4 * max(1.0, abs(a[k])) for k in a)
    env = dict(device=args.device, batch=args.batch, size=args.size, boxes=args.boxes,
               amp=args.amp, torch=torch.__version__,
               gpu=torch.cuda.get_device_name() if args.device.startswith('cuda') else None,
               same_first_losses=same,
               command=' '.join(['benchmarks/rtmdet_step_speed.py'] + sys.argv[1:]))
    print(f'| set-up | head | param groups | EMA | ms per iteration | aten ops |  (device '
          f'{args.device}, batch {args.batch}, {args.size} px, {args.boxes} boxes per image, '
          f'amp={args.amp})')
    print('| --- | --- | --- | --- | --- | --- |')
    for r in rows:
        print(f"| {r['setup']} | {r['head']} | {r['param_groups']} | {r['ema']} | "
              f"{r['ms']:.1f} | {r['aten_ops']} |")
    print(f"speed-up {rows[0]['ms'] / rows[1]['ms']:.2f}x, aten ops {rows[0]['aten_ops']} -> "
          f"{rows[1]['aten_ops']}; same first losses: {same}")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(env=env, results=rows), f, indent=2)
    if not same:
        raise SystemExit(f'the two set-ups gave different losses: {a} vs {b}')
    return rows


if __name__ == '__main__':
    main()
