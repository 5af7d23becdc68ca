"""Time RTMDet's loss step (target assignment + losses + backward through the head) with mmdet's
per-image ``RTMDetSepBNHead`` and with mmbloodcell's ``BatchRTMDetSepBNHead`` (issue 8).

    python benchmarks/rtmdet_assign_speed.py [--device cpu|cuda] [--batch 32] [--size 640]
        [--boxes 60] [--repeats 5] [--config configs/rtmdet/rtmdet_tiny_640_240s-budget_bccd.py]
        [--out results.json]

Both heads are built from the config's ``bbox_head`` (the stock one with mmdet's
``RTMDetSepBNHead`` + ``DynamicSoftLabelAssigner``) and given the same weights, the same random
neck features for a ``--size`` square batch and the same boxes: ``--boxes`` cells per image,
sized like BCCD's (RBC ~100 px, WBC ~200 px, platelets ~40 px at 640 px; a mosaic image holds
20-80). It prints, per head, the median wall time of ``head.loss`` + ``backward`` over
``--repeats`` runs and the number of aten operator calls one step dispatches (counted with a
``TorchDispatchMode``; each is at least one kernel launch on a GPU, which is what bounds a
small model's step there), and checks that both heads give the same loss.
"""
import argparse
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
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', help='write the results as JSON here')
    return p.parse_args(argv)


def make_batch(args, strides, channels):
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(args.seed)
    sizes = torch.tensor([100., 200., 40.])  # RBC, WBC, platelets (px at 640)
    samples = []
    for _ in range(args.batch):
        labels = torch.multinomial(torch.tensor([0.85, 0.05, 0.10]), args.boxes,
                                   replacement=True, generator=gen)
        wh = sizes[labels, None] * (0.7 + 0.6 * torch.rand(args.boxes, 2, generator=gen))
        xy = torch.rand(args.boxes, 2, generator=gen) * (args.size - wh)
        boxes = torch.cat([xy, xy + wh], 1)
        shape = (args.size, args.size)
        s = DetDataSample(metainfo=dict(img_shape=shape, pad_shape=shape,
                                        batch_input_shape=shape))
        # plain tensors, as DetDataPreprocessor(boxtype2tensor=True) hands them to the head
        s.gt_instances = InstanceData(bboxes=boxes.to(args.device), labels=labels.to(args.device))
        samples.append(s)
    feats = [torch.randn(args.batch, channels, args.size // s, args.size // s, generator=gen)
             .to(args.device) for s in strides]
    return feats, samples


def count_ops(fn):
    """Number of aten operator calls ``fn`` dispatches (forward and backward)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Counter.n += 1
            return func(*args, **(kwargs or {}))

    with Counter():
        fn()
    return Counter.n


def main(argv=None):
    args = parse_args(argv)
    import copy

    import torch
    from mmengine.config import Config
    from mmdet.registry import MODELS

    import mmbloodcell  # noqa: F401
    cfg = Config.fromfile(args.config).model.bbox_head
    cfg.train_cfg = Config.fromfile(args.config).model.train_cfg
    stock_cfg = copy.deepcopy(cfg)
    stock_cfg.type = 'RTMDetSepBNHead'
    stock_cfg.train_cfg.assigner.type = 'DynamicSoftLabelAssigner'
    cfg.type = 'BatchRTMDetSepBNHead'
    cfg.train_cfg.assigner.type = 'BatchDynamicSoftLabelAssigner'
    torch.manual_seed(args.seed)
    heads = {'stock RTMDetSepBNHead': MODELS.build(stock_cfg).to(args.device),
             'BatchRTMDetSepBNHead': MODELS.build(cfg).to(args.device)}
    state = next(iter(heads.values())).state_dict()
    strides = [s if isinstance(s, int) else s[0] for s in cfg.anchor_generator.strides]
    feats, samples = make_batch(args, strides, cfg.in_channels)
    sync = torch.cuda.synchronize if args.device.startswith('cuda') else (lambda: None)
    rows = []
    for name, head in heads.items():
        head.load_state_dict(state)
        head.train()

        def step():
            head.zero_grad(set_to_none=True)
            losses = head.loss([f.requires_grad_() for f in feats], copy.deepcopy(samples))
            total = sum(sum(v) for v in losses.values())
            total.backward()
            return float(total)

        loss = step()  # warm-up
        times = []
        for _ in range(args.repeats):
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - t0)
        rows.append(dict(head=name, ms=round(1000 * statistics.median(times), 2),
                         aten_ops=count_ops(step), loss=loss))
    same = abs(rows[0]['loss'] - rows[1]['loss']) <= 1e-4 * max(1.0, abs(rows[0]['loss']))
    env = dict(device=args.device, batch=args.batch, size=args.size, boxes=args.boxes,
               torch=torch.__version__, gpu=torch.cuda.get_device_name()
               if args.device.startswith('cuda') else None, same_loss=same,
               command=' '.join(['benchmarks/rtmdet_assign_speed.py'] + sys.argv[1:]))
    print(f"| head | ms per loss+backward | aten ops | loss |  (device {args.device}, batch "
          f"{args.batch}, {args.size} px, {args.boxes} boxes per image)")
    print('| --- | --- | --- | --- |')
    for r in rows:
        print(f"| {r['head']} | {r['ms']:.1f} | {r['aten_ops']} | {r['loss']:.5f} |")
    print(f"speed-up {rows[0]['ms'] / rows[1]['ms']:.2f}x, ops {rows[0]['aten_ops']} -> "
          f"{rows[1]['aten_ops']}; same loss: {same}")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(env=env, results=rows), f, indent=2)
    if not same:
        raise SystemExit('the two heads gave different losses')
    return rows


if __name__ == '__main__':
    main()
