"""The README's main job: BCCD -> COCO, a short CPU training, test-split metrics, one picture.

    python tools/run_demo.py [--bccd ../shared/data/BCCD | --download] [--config CONFIG]
                             [--work-dir work_dirs/demo] [--max-epochs N]

1. converts BCCD (VOC) into data/bccd (COCO json, the study's 256 / 74 / 34 split), unless
   that is already there;
2. trains the config with tools/train.py (default: the package's CPU detector, a small GFL
   that learns BCCD from scratch in a fixed 24 epochs, ~8 minutes on 2 cores);
3. evaluates the last checkpoint on the test split with tools/test.py (COCO mAP, mAP50, mAP75,
   per-class AP, ms per image, per-class cell-count error) and prints the tables: the count
   error at the per-class thresholds calibrated on the validation split (CountCalibrationHook,
   stored in the checkpoint) beside the one at the fixed threshold 0.3;
4. writes one test image with its predicted boxes and per-class counts, at the calibrated
   thresholds (or --score-thr), plus the counts as JSON, into the work dir.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = 'configs/gfl/gfl_r18-w32_fpn_320_24e_bccd_cpu.py'


def run(cmd):
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def metrics_table(metrics: dict) -> str:
    rows = [('mAP', 'coco/bbox_mAP'), ('mAP50', 'coco/bbox_mAP_50'),
            ('mAP75', 'coco/bbox_mAP_75'), ('mAP_m', 'coco/bbox_mAP_m'),
            ('mAP_l', 'coco/bbox_mAP_l')]
    rows += [(f'AP {k[5:-10]}', k) for k in sorted(metrics) if k.endswith('_precision')]
    rows += [('ms / image', 'speed/latency_ms')]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -------"]
    for name, key in rows:
        if key in metrics:
            lines.append(f'{name:<{width}}  {metrics[key]:.3f}')
    return '\n'.join(lines)


def count_table(metrics: dict, fixed: float = 0.3) -> str:
    """Per-class count error of the test split (``count/*`` of CellCountMetric): mean absolute
    error, share of images within +-10 %, at the calibrated thresholds and at ``fixed``."""
    from mmbloodcell.analysis.compare import count_classes
    classes = count_classes([dict(metrics=metrics)])
    if not classes:
        return '(no count metrics: the test evaluator has no CellCountMetric)'
    calibrated = f'count/{classes[0]}_mae_calibrated' in metrics

    def num(key, fmt='.2f'):
        value = metrics.get(key)
        return '-' if value is None else format(value, fmt)

    head = ['class', 'thr (cal.)', 'MAE (cal.)',
            '+-10% (cal.)', f'MAE (thr {fixed:g})', f'+-10% (thr {fixed:g})']
    rows = []
    for c in classes + ['mean']:
        rows.append([c, num(f'count/{c}_thr_calibrated', '.2f') if c != 'mean' else '',
                     num(f'count/{c}_mae_calibrated'), num(f'count/{c}_within10pct_calibrated'),
                     num(f'count/{c}_mae'), num(f'count/{c}_within10pct')])
    if not calibrated:
        head, rows = [head[0]] + head[4:], [[r[0]] + r[4:] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ['  '.join(f'{h:<{w}}' for h, w in zip(head, widths)),
             '  '.join('-' * w for w in widths)]
    lines += ['  '.join(f'{x:<{w}}' for x, w in zip(r, widths)).rstrip() for r in rows]
    if not calibrated:
        lines.append('(no calibrated thresholds in the checkpoint: the fixed threshold only)')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bccd', default=osp.join(osp.dirname(ROOT), 'shared', 'data', 'BCCD'),
                        help='BCCD in VOC layout (default: ../shared/data/BCCD)')
    parser.add_argument('--download', action='store_true',
                        help='download BCCD when --bccd does not exist')
    parser.add_argument('--data-dir', default='data/bccd', help='COCO output of the converter')
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--max-epochs', type=int, default=None,
                        help="override the config's number of epochs")
    parser.add_argument('--score-thr', type=float, default=None,
                        help='score threshold of the drawn boxes and the counts, for every '
                        'class (default: the per-class thresholds calibrated on the '
                        'validation split, from the checkpoint)')
    args = parser.parse_args(argv)
    py = sys.executable
    os.chdir(ROOT)

    # 1. data
    if not osp.exists(osp.join(args.data_dir, 'annotations', 'test.json')):
        convert = [py, 'tools/dataset_converters/bccd_to_coco.py', '--out-dir', args.data_dir]
        if osp.isdir(args.bccd):
            convert.insert(2, args.bccd)
        elif args.download:
            convert.append('--download')
        else:
            sys.exit(f'BCCD not found at {args.bccd}: pass --bccd PATH or --download')
        run(convert)
    else:
        print(f'using the converted BCCD in {args.data_dir}')

    # 2. train, 3. test
    train_opts = []
    if args.max_epochs:
        train_opts += ['--cfg-options', f'train_cfg.max_epochs={args.max_epochs}',
                       f'train_cfg.val_interval={args.max_epochs}']
    run([py, 'tools/train.py', args.config, '--work-dir', args.work_dir,
         '--data-root', args.data_dir, *train_opts])
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    run([py, 'tools/test.py', args.config, ckpt, '--work-dir', args.work_dir,
         '--data-root', args.data_dir])
    from mmbloodcell.analysis.logs import final_metrics
    metrics = final_metrics(args.work_dir, prefer='test')[0]
    print('\nBCCD test split (34 images):')
    print(metrics_table(metrics))
    print('\nCell counts per test image: count error (MAE, cells per image; share of images '
          'within +-10 %)')
    print(count_table(metrics))

    # 4. one annotated test image with per-class counts
    import mmcv

    from mmbloodcell.apis.inference import CellDetector
    from mmbloodcell.structures import count_cells, instances_to_detections
    with open(osp.join(args.data_dir, 'annotations', 'test.json')) as f:
        test_ann = json.load(f)
    image = osp.join(args.data_dir, 'JPEGImages', test_ann['images'][0]['file_name'])
    detector = CellDetector(args.config, ckpt, device='cpu', score_thr=args.score_thr)
    classes = list(detector.classes)
    thrs = ', '.join(f'{c} {t:g}' for c, t in detector.score_thr.items())
    result = detector(image, return_datasamples=True, return_vis=True)
    dets = instances_to_detections(result['predictions'][0].pred_instances, classes)
    counts = count_cells(dets, classes)
    gt_counts = {name: 0 for name in classes}
    img_id = test_ann['images'][0]['id']
    cat_names = {c['id']: c['name'] for c in test_ann['categories']}
    for ann in test_ann['annotations']:
        if ann['image_id'] == img_id:
            gt_counts[cat_names[ann['category_id']]] += 1
    out_img = osp.join(args.work_dir, 'demo_' + osp.basename(image))
    mmcv.imwrite(result['visualization'][0][..., ::-1], out_img)  # RGB -> BGR
    with open(osp.join(args.work_dir, 'demo_counts.json'), 'w') as f:
        json.dump(dict(image=image, score_thr=detector.score_thr,
                       score_thr_source=detector.score_thr_source, predicted=counts,
                       annotated=gt_counts, detections=dets), f, indent=2)
    print(f'\n{osp.basename(image)} (score >= {thrs}, {detector.score_thr_source}): predicted '
          + ', '.join(f'{k} {v}' for k, v in counts.items())
          + ' | annotated ' + ', '.join(f'{k} {v}' for k, v in gt_counts.items()))
    print(f'wrote {out_img} and {osp.join(args.work_dir, "demo_counts.json")}')


if __name__ == '__main__':
    main()
