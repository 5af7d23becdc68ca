"""Convert BCCD (Pascal VOC layout) to COCO json for mmdet.

    python tools/dataset_converters/bccd_to_coco.py [SRC] [-o data/bccd] [--split 256 74 34]
        [--seed 0] [--on-error error|skip] [--copy] [--clip-tolerance 16] [--verify-decode]
        [--download [--cache-dir data/downloads]]

SRC defaults to ``../shared/data/BCCD``; with ``--download`` a missing SRC is fetched from
https://github.com/Shenggan/BCCD_Dataset. Writes ``annotations/{train,val,test}.json`` (a seeded,
stratified 256/74/34 split), ``annotations/imagesets_{train,val,test,trainval}.json`` (the
dataset's own split) and ``JPEGImages`` (a symlink, or a copy with ``--copy``) into the output
folder, checks every annotation and prints a summary. The split algorithm and the checks are
documented in :mod:`mmbloodcell.datasets.bccd_convert`. Exit status 1 lists every problem.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmbloodcell.datasets.bccd_convert import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
