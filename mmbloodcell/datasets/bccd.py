"""BCCD blood-cell detection dataset (RBC, WBC, platelets) in COCO format."""
import json
from typing import List

from mmdet.datasets import CocoDataset
from mmengine.fileio import get_local_path

from mmbloodcell.registry import DET_DATASETS, register_module
from .bccd_convert import CLASSES


@register_module(DET_DATASETS)
class BCCDDataset(CocoDataset):
    """BCCD (364 smear images, 640x480) as written by ``tools/dataset_converters/bccd_to_coco.py``.

    A :class:`mmdet.datasets.CocoDataset` with BCCD's classes and palette, so a config only names
    paths::

        dataset = dict(type='BCCDDataset', data_root='data/bccd/',
                       ann_file='annotations/train.json', data_prefix=dict(img='JPEGImages/'))

    mmdet maps a json's categories to labels in the order they appear in the json, not in the
    order of ``classes``; the same holds for ``CocoMetric``. A json whose categories are not in
    the order ``RBC, WBC, Platelets`` (or lacks one) would therefore give silently wrong labels,
    so loading checks the order and raises with the fix instead.
    """

    METAINFO = {
        'classes': CLASSES,
        # RGB: RBC crimson, WBC blue, platelets green (visible on pink/purple smears).
        'palette': [(220, 20, 60), (30, 90, 255), (0, 190, 80)],
    }

    def load_data_list(self) -> List[dict]:
        self._check_categories()
        return super().load_data_list()

    def _check_categories(self) -> None:
        """Raise if the json's categories are not the dataset's classes in the same order."""
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            with open(local_path) as f:
                cats = json.load(f).get('categories', [])
        classes = list(self.metainfo['classes'])
        names = [c.get('name') for c in cats]
        in_order = [n for n in names if n in classes]
        if in_order != classes:
            raise ValueError(
                f'{self.ann_file}: categories {names} do not list the classes {classes} in this '
                'order; mmdet maps labels by the order of the json categories, so labels would '
                'be wrong. Fix: regenerate the file with '
                'tools/dataset_converters/bccd_to_coco.py (or reorder its categories).')
