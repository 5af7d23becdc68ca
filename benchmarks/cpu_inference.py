# Copyright (c) mmbloodcell contributors. All rights reserved.
"""CPU inference speed: PyTorch eager vs ONNX Runtime for mmbloodcell's detectors and
classifiers, next to ultralytics YOLOv8n in PyTorch and in its own ONNX export.

    python benchmarks/cpu_inference.py [--detectors CONFIG[=CKPT] ...]
        [--classifiers CONFIG[=CKPT] ...] [--images FILE_OR_DIR ...] [--cells FILE_OR_DIR ...]
        [--num-images 8] [--iters 3] [--warmup 1] [--threads N] [--score-thr 0.3]
        [--yolo yolov8n.yaml|PATH.pt] [--yolo-imgsz 640] [--no-yolo]
        [--exporter dynamo|torchscript] [--work-dir work_dirs/cpu_inference]
        [--out-json F] [--out-md F]

What is timed, per model and backend, on the same decoded images:

* **batch 1, ms / image**: the whole path from image file to boxes (or to the probability of
  ``all``): file decode (``read``), the config's test pipeline, the forward pass,
  post-processing (mmdet's ``predict_by_feat`` in PyTorch, the numpy post-processor with
  ONNX Runtime; ultralytics: its ``predict`` of the file: letterbox, forward, NMS), boxes in
  image pixels. Mean over ``--iters`` passes over the images, after ``--warmup`` passes;
* **batch 8, images / s**: the same path for 8 files at a time (decode of all 8, one batched
  forward).

Threads: ``torch.set_num_threads(N)``, ONNX Runtime ``intra_op_num_threads=N`` (for ultralytics'
ONNX model too: its session is rebuilt with these options), OpenCV ``setNumThreads(N)``; N
defaults to the machine's cores and is printed. Models without a checkpoint (``CONFIG`` alone)
use initialised weights, saved once under ``--work-dir`` so both backends run the same
weights; the table says ``initialised`` (speed only: their boxes mean nothing). The ONNX files
are exported there with ``mmbloodcell.apis.export.export_onnx``. YOLOv8n: ``--yolo`` a
``.yaml`` (built from scratch, untrained, offline) or a trained ``.pt``; its ONNX file is
``YOLO(model).export(format='onnx', imgsz=--yolo-imgsz)``, run offline (``YOLO_OFFLINE=1``,
``tools/yolo_baseline.py``'s ``ultralytics_offline``; the graph is simplified with onnxslim when
it is installed, else exported unsimplified, and the table says so).

Prints a markdown table (and the environment); ``--out-json`` / ``--out-md`` write them.
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import platform
import sys
import time
from typing import Callable, List, Sequence

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

DEFAULT_DETECTORS = [
    'configs/rtmdet/rtmdet_tiny_640_240s-budget_bccd.py',
    'configs/fcos/fcos_r18_fpn_gn_320_12e_bccd_cpu-demo.py',
]
DEFAULT_CLASSIFIERS = ['configs/cnmc/efficientnet-b2_fhl_cnmc.py']
# the smears of the converted BCCD (make demo writes it), the six real C-NMC cells beside
# the checkout
DEFAULT_IMAGES = [osp.join(ROOT, 'data', 'bccd', 'JPEGImages')]
DEFAULT_CELLS = [osp.join(osp.dirname(ROOT), 'shared', 'data', 'cnmc_samples')]
BATCH = 8


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='CPU inference speed: PyTorch vs ONNX Runtime, '
                                'and ultralytics YOLOv8n (PyTorch and ONNX)')
    p.add_argument('--detectors', nargs='*', default=DEFAULT_DETECTORS,
                   help='CONFIG or CONFIG=CKPT (default: RTMDet-tiny and the FCOS demo, '
                   'initialised weights); none: no detectors')
    p.add_argument('--classifiers', nargs='*', default=DEFAULT_CLASSIFIERS,
                   help='CONFIG or CONFIG=CKPT (default: EfficientNet-B2, initialised)')
    p.add_argument('--images', nargs='+', default=DEFAULT_IMAGES,
                   help='real BCCD smears (files / folders; default data/BCCD/JPEGImages)')
    p.add_argument('--cells', nargs='+', default=DEFAULT_CELLS,
                   help='real C-NMC cells for the classifiers (default data/cnmc_samples)')
    p.add_argument('--num-images', type=int, default=8, help='images used (the first N)')
    p.add_argument('--iters', type=int, default=3, help='timed passes over the images')
    p.add_argument('--warmup', type=int, default=1, help='untimed passes first')
    p.add_argument('--threads', type=int, default=None,
                   help='torch / ONNX Runtime / OpenCV threads (default: all cores)')
    p.add_argument('--score-thr', type=float, default=0.3, help="detectors' score threshold")
    p.add_argument('--yolo', default='yolov8n.yaml',
                   help='ultralytics model: a .yaml (from scratch) or a trained .pt')
    p.add_argument('--yolo-imgsz', type=int, default=640)
    p.add_argument('--no-yolo', action='store_true', help='skip ultralytics')
    p.add_argument('--exporter', choices=['dynamo', 'torchscript'], default='dynamo')
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'cpu_inference'))
    p.add_argument('--out-json')
    p.add_argument('--out-md')
    return p.parse_args(argv)


def image_files(inputs: Sequence[str], n: int) -> List[str]:
    from mmbloodcell.apis.inference import expand_images
    paths = [p for p in expand_images(list(inputs))[0] if osp.isfile(p)]
    if not paths:
        raise SystemExit(f'no images found in {list(inputs)}: give --images / --cells')
    return paths[:max(1, n)]


def _model_arg(spec: str):
    config, _, ckpt = spec.partition('=')
    return config, (ckpt or None)


def initialised_checkpoint(config: str, task: str, work_dir: str) -> str:
    """Initialised weights of ``config`` (no download) saved as a checkpoint."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner.checkpoint import save_checkpoint
    from mmbloodcell.datasets.cnmc import CNMC_CLASSES
    out = osp.join(work_dir, osp.splitext(osp.basename(config))[0] + '_initialised.pth')
    if osp.isfile(out):
        return out
    cfg = Config.fromfile(config)
    if cfg.model.get('backbone', {}).get('init_cfg') is not None:
        cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    if task == 'detection':
        from mmdet.registry import MODELS
        scope, classes = 'mmdet', ('RBC', 'WBC', 'Platelets')
    else:
        from mmpretrain.registry import MODELS
        scope, classes = 'mmpretrain', CNMC_CLASSES
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    os.makedirs(work_dir, exist_ok=True)
    save_checkpoint(dict(state_dict=model.state_dict(),
                         meta=dict(dataset_meta=dict(classes=classes))), out)
    return out


def _timed(fn: Callable[[list], int], groups: List[list], iters: int, warmup: int):
    """Seconds per call of ``fn(group)`` over ``groups`` (mean over ``iters`` passes after
    ``warmup``) and the mean of what it returns (boxes per image)."""
    for _ in range(warmup):
        for g in groups:
            fn(g)
    counts, start = [], time.perf_counter()
    for _ in range(max(1, iters)):
        for g in groups:
            counts.append(fn(g))
    elapsed = time.perf_counter() - start
    return elapsed / (max(1, iters) * len(groups)), float(np.mean(counts))


def _batches(paths: List[str]) -> List[list]:
    reps = -(-BATCH // len(paths))
    pool = (paths * reps)[:max(BATCH, len(paths) // BATCH * BATCH)]
    return [pool[i:i + BATCH] for i in range(0, len(pool), BATCH)]


def measure(row: dict, one: Callable, batch: Callable, paths: List[str], args) -> dict:
    s1, n1 = _timed(lambda g: one(g[0]), [[p] for p in paths], args.iters, args.warmup)
    s8, _ = _timed(batch, _batches(paths), args.iters, args.warmup)
    row.update(ms_per_image_b1=round(s1 * 1000, 2), images_per_s_b8=round(BATCH / s8, 2),
               outputs_per_image=round(n1, 2))
    return row


def _backends(spec: str, task: str, args):
    """``(config, name, weights, [(backend, weights file), ...])`` of a ``CONFIG[=CKPT]``
    argument: the checkpoint (or initialised weights) for PyTorch and its ONNX export."""
    from mmbloodcell.apis.export import export_onnx
    config, ckpt = _model_arg(spec)
    weights = 'trained' if ckpt else 'initialised'
    ckpt = ckpt or initialised_checkpoint(config, task, args.work_dir)
    onnx_file = osp.join(args.work_dir, osp.splitext(osp.basename(ckpt))[0] + '.onnx')
    export_onnx(config, ckpt, onnx_file, exporter=args.exporter)
    name = osp.splitext(osp.basename(config))[0]
    return config, name, weights, [('pytorch', ckpt), ('onnxruntime', onnx_file)]


def detector_rows(spec: str, paths: List[str], args) -> List[dict]:
    from mmbloodcell.apis.inference import build_detector, read_image
    from mmbloodcell.structures import instances_to_detections
    config, name, weights, backends = _backends(spec, 'detection', args)
    rows = []
    for backend, weights_file in backends:
        det = build_detector(config, weights_file, backend, device='cpu',
                             score_thr=args.score_thr)

        def one(path, det=det):
            return len(det.detect(read_image(path)[0], path))

        if backend == 'pytorch':
            def batch(group, det=det):
                imgs = [read_image(p)[0] for p in group]
                preds = det(imgs, batch_size=len(imgs), return_datasamples=True)['predictions']
                return sum(len(instances_to_detections(p.pred_instances, det.classes))
                           for p in preds)
        else:
            def batch(group, det=det):
                return sum(map(len, det.detect_batch([read_image(p)[0] for p in group], group)))
        rows.append(measure(dict(model=name, task='detection', backend=backend, weights=weights,
                                 file=weights_file), one, batch, paths, args))
    return rows


def classifier_rows(spec: str, paths: List[str], args) -> List[dict]:
    from mmbloodcell.apis.inference import build_classifier, read_image
    config, name, weights, backends = _backends(spec, 'classification', args)
    rows = []
    for backend, weights_file in backends:
        clf = build_classifier(config, weights_file, backend, device='cpu')

        def one(path, clf=clf):
            return int(clf.predict([read_image(path)[0]], batch_size=1)[0]['error'] is None)

        def batch(group, clf=clf):
            res = clf.predict([read_image(p)[0] for p in group], batch_size=len(group))
            return sum(r['error'] is None for r in res)
        rows.append(measure(dict(model=name, task='classification', backend=backend,
                                 weights=weights, file=weights_file), one, batch, paths, args))
    return rows


def _yolo_tool():
    spec = importlib.util.spec_from_file_location(
        'mmbloodcell_yolo_baseline', osp.join(ROOT, 'tools', 'yolo_baseline.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def yolo_rows(paths: List[str], args, threads: int) -> List[dict]:
    tool = _yolo_tool()
    with tool.ultralytics_offline(osp.join(args.work_dir, '.ultralytics')) as ul:
        from mmbloodcell.apis.onnx_backend import ort_session
        weights = 'trained' if args.yolo.endswith('.pt') else 'initialised'
        model = ul.YOLO(args.yolo)
        stem = osp.splitext(osp.basename(args.yolo))[0]
        pt_file = osp.join(args.work_dir, f'{stem}.pt')
        if weights == 'initialised':
            model.save(pt_file)  # export writes its .onnx beside the model file
            model = ul.YOLO(pt_file)
        else:
            pt_file = args.yolo
        simplify = importlib.util.find_spec('onnxslim') is not None
        onnx_file = model.export(format='onnx', imgsz=args.yolo_imgsz, simplify=simplify,
                                 device='cpu', verbose=False)
        rows = []
        for backend, path in (('pytorch', pt_file), ('onnxruntime', onnx_file)):
            yolo = ul.YOLO(path, task='detect')
            kw = dict(imgsz=args.yolo_imgsz, conf=args.score_thr, device='cpu', verbose=False)
            yolo.predict(paths[0], **kw)  # sets the predictor up
            if backend == 'onnxruntime':  # the same threads as ours
                holder = getattr(yolo.predictor.model, 'backend', yolo.predictor.model)
                holder.session = ort_session(onnx_file, threads)

            def one(path, yolo=yolo, kw=kw):
                return len(yolo.predict(path, **kw)[0].boxes)

            def batch(group, yolo=yolo, kw=kw):
                results = yolo.predict(list(group), batch=len(group), **kw)
                return sum(len(r.boxes) for r in results)
            note = f'imgsz {args.yolo_imgsz}'
            if backend == 'onnxruntime':
                note += (f', static {args.yolo_imgsz}x{args.yolo_imgsz} letterbox'
                         + ('' if simplify else ', not simplified (onnxslim not installed)'))
            rows.append(measure(dict(model=f'{stem} (ultralytics)', task='detection',
                                     backend=backend, weights=weights, file=path, notes=note),
                                one, batch, paths, args))
    return rows


def markdown(doc: dict) -> str:
    env = doc['env']
    lines = [f"CPU inference, {env['threads']} thread(s) (torch, ONNX Runtime, OpenCV) on "
             f"{env['cpu_count']} cores ({env['processor'] or env['machine']}); "
             f"{env['num_images']} BCCD image(s), {env['iters']} timed pass(es) after "
             f"{env['warmup']}; batch 1: the whole path from image file to boxes (decode, "
             f'pipeline, forward, post-process), batch 8: the same for 8 files at a time.', '',
             '| model | backend | weights | batch 1 ms / image | batch 8 images / s | '
             'outputs / image | notes |', '|---|---|---|---:|---:|---:|---|']
    for r in doc['results']:
        if 'error' in r:
            lines.append(f"| {r['model']} | {r.get('backend', '')} | | | | | "
                         f"error: {r['error']} |")
            continue
        lines.append(f"| {r['model']} | {r['backend']} | {r['weights']} | "
                     f"{r['ms_per_image_b1']:.1f} | {r['images_per_s_b8']:.2f} | "
                     f"{r['outputs_per_image']:g} | {r.get('notes', '')} |")
    if any(r.get('weights') == 'initialised' for r in doc['results']):
        lines += ['', 'initialised: no checkpoint given, random initial weights (speed only; '
                  'their boxes and the number of boxes mean nothing).']
    return '\n'.join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault('YOLO_OFFLINE', '1')
    import cv2
    import onnxruntime
    import torch
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    os.environ['MMBLOODCELL_ORT_THREADS'] = str(threads)
    os.makedirs(args.work_dir, exist_ok=True)
    smears = image_files(args.images, args.num_images)
    results = []
    for spec in args.detectors or []:
        results.extend(detector_rows(spec, smears, args))
    if args.classifiers:
        cells = image_files(args.cells, args.num_images)
        for spec in args.classifiers:
            results.extend(classifier_rows(spec, cells, args))
    if not args.no_yolo:
        try:
            results.extend(yolo_rows(smears, args, threads))
        except ImportError as e:
            results.append(dict(model=args.yolo, backend='', error=str(e)))
    versions = dict(torch=torch.__version__, onnxruntime=onnxruntime.__version__)
    try:
        import ultralytics
        versions['ultralytics'] = ultralytics.__version__
    except ImportError:
        pass
    doc = dict(env=dict(threads=threads, cpu_count=os.cpu_count(), machine=platform.machine(),
                        processor=platform.processor(), num_images=len(smears),
                        images=[osp.basename(p) for p in smears], iters=args.iters,
                        warmup=args.warmup, batch=BATCH, score_thr=args.score_thr,
                        exporter=args.exporter, **versions),
               results=results)
    text = markdown(doc)
    print(text)
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(doc, f, indent=2)
    if args.out_md:
        with open(args.out_md, 'w') as f:
            f.write(text + '\n')
    return doc


if __name__ == '__main__':
    main()
