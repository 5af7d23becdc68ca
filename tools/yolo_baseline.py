"""YOLOv8 baseline on BCCD via ultralytics (``pip install -e .[yolo]``), scored with mmdet's
CocoMetric like the OpenMMLab models. Offline: nothing is downloaded.

    python tools/yolo_baseline.py export [--data-root data/bccd] [--split-prefix imagesets_]
                                         [--out work_dirs/yolo_bccd/dataset] [--copy]
    python tools/yolo_baseline.py train  [--data work_dirs/yolo_bccd/dataset/data.yaml]
                                         [--model yolov8n.yaml] [--epochs 100] [--imgsz 640]
                                         [--batch 16] [--device cpu|0] [--time-budget SECONDS]
    python tools/yolo_baseline.py test   --weights work_dirs/yolo_bccd/train/weights/best.pt
    python tools/yolo_baseline.py run    [export + train + test options]

``test`` (and ``run``) print the metrics table and write ``<run dir>/test_metrics.json``.
The logic lives in :mod:`mmbloodcell.apis.yolo_baseline`.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmbloodcell.apis import yolo_baseline as yb  # noqa: E402


def _data_args(p, with_copy=False):
    p.add_argument('--data-root', default=yb.DEFAULT_DATA_ROOT,
                   help='the converter\'s output: annotations/*.json, JPEGImages/ '
                   '(default: %(default)s)')
    p.add_argument('--split-prefix', default='',
                   help="'' for the 256/74/34 split, 'imagesets_' for BCCD's ImageSets split")
    p.add_argument('--img-dir', help='image folder (default: <data-root>/JPEGImages)')
    if with_copy:
        p.add_argument('--copy', action='store_true', help='copy images instead of symlinks')


def _train_args(p):
    p.add_argument('--model', default=yb.DEFAULT_MODEL,
                   help='ultralytics model yaml (random init) or a local .pt '
                   '(default: %(default)s)')
    p.add_argument('--epochs', type=int, default=100)
    p.add_argument('--imgsz', type=int, default=640)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--device', help="'cpu', '0', ... (default: GPU 0 if any, else CPU)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--workers', type=int, default=8)
    p.add_argument('--time-budget', type=float, metavar='SECONDS',
                   help='train for this wall time instead of --epochs (ultralytics `time`)')
    p.add_argument('--amp', choices=['off', 'fp16', 'bf16'], default='off')
    p.add_argument('--name', default='train', help='run name under the work dir')
    p.add_argument('--exist-ok', action='store_true', help='reuse <work-dir>/<name>')
    p.add_argument('--quiet', action='store_true', help='less ultralytics output')


def _test_args(p, with_imgsz=True):
    if with_imgsz:
        p.add_argument('--imgsz', type=int, default=640, help='use the training size')
        p.add_argument('--device', help="'cpu', '0', ... (default: GPU 0 if any, else CPU)")
    p.add_argument('--conf', type=float, default=0.001,
                   help='score threshold (default: %(default)s)')
    p.add_argument('--iou', type=float, default=0.7, help='NMS IoU (default: %(default)s)')
    p.add_argument('--max-det', type=int, default=100,
                   help='boxes per image (default: %(default)s)')
    p.add_argument('--warmup', type=int, default=5, help='untimed predictions before timing')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)

    p = sub.add_parser('export', help='COCO json -> YOLO dataset')
    _data_args(p, with_copy=True)
    p.add_argument('--out', default=osp.join(yb.DEFAULT_WORK_DIR, 'dataset'),
                   help='output folder (default: %(default)s)')

    p = sub.add_parser('train', help='train from a model yaml')
    p.add_argument('--data', default=osp.join(yb.DEFAULT_WORK_DIR, 'dataset', 'data.yaml'),
                   help='data.yaml written by export (default: %(default)s)')
    p.add_argument('--work-dir', default=yb.DEFAULT_WORK_DIR, help='runs go to <work-dir>/<name>')
    _train_args(p)

    p = sub.add_parser('test', help='predict the test split, score with mmdet CocoMetric')
    p.add_argument('--weights', required=True,
                   help='trained checkpoint, e.g. <run>/weights/best.pt')
    _data_args(p)
    p.add_argument('--split', default='test', choices=list(yb.SPLITS))
    p.add_argument('--out-dir', help='where test_metrics.json goes (default: the run dir)')
    _test_args(p)

    p = sub.add_parser('run', help='export + train + test')
    _data_args(p, with_copy=True)
    p.add_argument('--work-dir', default=yb.DEFAULT_WORK_DIR,
                   help='dataset/, <name>/ and .ultralytics/ go here (default: %(default)s)')
    _train_args(p)
    _test_args(p, with_imgsz=False)
    return parser.parse_args(argv)


def _print_metrics(metrics, path):
    print(yb.format_metrics_table(metrics, title='YOLO baseline (mmdet CocoMetric)'))
    print(f'metrics written to {path}')


def main(argv=None):
    args = parse_args(argv)
    if args.cmd == 'export':
        data_yaml = yb.export_yolo_dataset(args.data_root, args.out, args.split_prefix,
                                           img_dir=args.img_dir, copy=args.copy)
        print(f'YOLO dataset written: {data_yaml}')
        return data_yaml
    train_kw = {}
    if args.cmd in ('train', 'run'):
        train_kw = dict(model=args.model, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                        device=args.device, seed=args.seed, workers=args.workers,
                        time_budget=args.time_budget, amp=args.amp, name=args.name,
                        exist_ok=args.exist_ok, verbose=not args.quiet)
    if args.cmd == 'train':
        run_dir = yb.train_yolo(args.data, project=args.work_dir,
                                config_dir=osp.join(args.work_dir, '.ultralytics'), **train_kw)
        print(f'trained: {yb.best_weights(run_dir)}')
        return run_dir
    test_kw = dict(conf=args.conf, iou=args.iou, max_det=args.max_det, warmup=args.warmup)
    if args.cmd == 'test':
        metrics = yb.run_yolo_test(args.weights, data_root=args.data_root, split=args.split,
                                   split_prefix=args.split_prefix, img_dir=args.img_dir,
                                   out_dir=args.out_dir, imgsz=args.imgsz, device=args.device,
                                   **test_kw)
        out_dir = args.out_dir or yb.run_dir_of(args.weights)
        _print_metrics(metrics, osp.join(out_dir, yb.METRICS_FILE))
        return metrics
    run_dir, metrics = yb.run_baseline(args.data_root, args.work_dir, args.split_prefix,
                                       img_dir=args.img_dir, copy=args.copy, **train_kw,
                                       **test_kw)
    _print_metrics(metrics, osp.join(run_dir, yb.METRICS_FILE))
    return metrics


if __name__ == '__main__':
    main()
