"""Inference on image files, the script form of the ``mmbloodcell`` console command.

    python tools/infer.py detect CONFIG CKPT IMAGES... --out DIR [--score-thr 0.3] [--device cpu]
    python tools/infer.py classify CONFIG CKPT IMAGES... --out DIR [--threshold T] [--saliency]

See :mod:`mmbloodcell.apis.cli` (``python tools/infer.py --help``).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmbloodcell.apis.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
