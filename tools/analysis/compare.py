"""The papers' comparison tables from several work dirs, as markdown.

    python tools/analysis/compare.py WORK_DIR [WORK_DIR ...] [--out table.md]
                                     [--prefer test|val] [--cls-metric weighted_f1|f1]
                                     [--no-reference]

Detection runs give the detector table (mAP, mAP50, mAP75, ms per image, each beside the BCCD
study's number); classification runs give the loss x backbone F1 table (beside the C-NMC
studies' numbers) and a per-run table. Each work dir is identified from the config mmengine
dumped into it and scored by its newest test run (``tools/test.py --work-dir WORK_DIR``), else
its last validation. A YOLO baseline run dir (``tools/yolo_baseline.py``: ``test_metrics.json``)
is accepted as a WORK_DIR too. The reference numbers are ``REFERENCE`` in
:mod:`mmbloodcell.analysis.compare`.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.analysis.compare import compare_markdown  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='work dirs (and YOLO baseline run dirs)')
    parser.add_argument('--out', help='also write the markdown to this file')
    parser.add_argument('--prefer', choices=['test', 'val'], default='test',
                        help='which metrics sum a run up when it has both (default: test)')
    parser.add_argument('--cls-metric', default='weighted_f1',
                        help='classification metric of the loss x backbone table: '
                        'weighted_f1 (the C-NMC challenge score, default) or f1 (class all)')
    parser.add_argument('--no-reference', action='store_true',
                        help='leave the papers\' numbers out')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for path in args.work_dirs:
        if not osp.isdir(path):
            raise SystemExit(f'{path}: not a directory (give work dirs of tools/train.py / '
                             f'tools/test.py, or YOLO baseline run dirs)')
    try:
        text = compare_markdown(args.work_dirs, prefer=args.prefer, metric=args.cls_metric,
                                reference=not args.no_reference)
    except FileNotFoundError as e:
        raise SystemExit(str(e))
    print(text)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(text)
    return text


if __name__ == '__main__':
    main()
