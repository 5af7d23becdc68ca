"""BCCD blood-cell detection dataset (RBC, WBC, platelets) in COCO format."""
import json
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional

from mmdet.datasets import CocoDataset
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger

from mmbloodcell.registry import DET_DATASETS, register_module
from .image_checks import box_problem, inspect_image_file
from .skipping import ON_ERROR_CHOICES, SkipOrRaiseMixin

REGENERATE = ('regenerate the json with tools/dataset_converters/bccd_to_coco.py (it checks '
              'every box and image)')


class BCCDDataError(ValueError):
    """A BCCD COCO file, box or image that cannot be used as it is."""


@register_module(DET_DATASETS)
class BCCDDataset(SkipOrRaiseMixin, CocoDataset):
    """BCCD (364 smear images, 640x480) as written by ``tools/dataset_converters/bccd_to_coco.py``.

    A :class:`mmdet.datasets.CocoDataset` with BCCD's classes and palette::

        dataset = dict(type='BCCDDataset', data_root='data/bccd/',
                       ann_file='annotations/train.json', data_prefix=dict(img='JPEGImages/'))

    mmdet (and ``CocoMetric``) maps categories to labels in their json order, not in the order
    of ``classes``: loading raises unless the json lists ``RBC, WBC, Platelets`` in this order.

    Boxes (always checked): mmdet silently drops a box with an unknown ``category_id``, below
    1 px wide or high, or outside the image, and keeps one that sticks out or starts below 0.
    Here each is a problem naming the json, the annotation id, the image and the fix:
    ``unknown_category``, ``bad_box`` and those of
    :func:`~mmbloodcell.datasets.image_checks.box_problem`, as in the converter.

    Images (``check_images=True``; headers and end markers read once at start-up): a missing
    file (``missing_image``), an empty, truncated or non-image file (``image_empty_file``,
    ``image_truncated``, ``image_not_image``, ``image_unreadable``), a size other than the
    json's (``size_mismatch``) and, with ``max_image_size``, a larger one
    (``image_too_large``); otherwise these fail inside ``LoadImageFromFile`` (or a truncated
    JPEG decodes with a grey bottom).

    With ``on_error='raise'`` (default) the first problem raises :class:`BCCDDataError`; with
    ``'skip'`` the box (or image) is dropped, logged and kept in :attr:`skipped` (kind ->
    messages). Grayscale, RGBA, palette and 16-bit images need nothing: ``LoadImageFromFile``
    reads them as 8-bit BGR.

    Args:
        on_error (str): 'raise' or 'skip'. Defaults to 'raise'.
        check_images (bool): Check every image file at start-up. Defaults to False.
        max_image_size (int, optional): With ``check_images``, the largest width or height.
        **kwargs: Arguments of :class:`mmdet.datasets.CocoDataset`.
    """

    error_cls = BCCDDataError

    METAINFO = {
        # the order of the converter's categories (ids 1, 2, 3): label i is category id i + 1
        'classes': ('RBC', 'WBC', 'Platelets'),
        # RGB: RBC crimson, WBC blue, platelets green (visible on pink/purple smears).
        'palette': [(220, 20, 60), (30, 90, 255), (0, 190, 80)],
    }

    def __init__(self,
                 *args,
                 on_error: str = 'raise',
                 check_images: bool = False,
                 max_image_size: Optional[int] = None,
                 **kwargs) -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"BCCDDataset: on_error={on_error!r}, expected 'raise' or 'skip'")
        self.on_error = on_error
        self.check_images = check_images
        self.max_image_size = max_image_size
        self.skipped: Dict[str, List[str]] = defaultdict(list)
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        self.skipped = defaultdict(list)
        self._check_categories()
        data_list = super().load_data_list()
        if self.check_images:
            data_list = [info for info in data_list if self._image_ok(info)]
        if not data_list:
            raise BCCDDataError(f'{self.ann_file}: no usable image'
                                + (f' (skipped: {self.skip_counts})' if self.skipped else ''))
        if self.skipped:
            MMLogger.get_current_instance().warning(
                f'BCCDDataset({osp.basename(self.ann_file)}): skipped {self.num_skipped} '
                f'item(s) {self.skip_counts}; see dataset.skipped for the messages')
        self.skipped = dict(self.skipped)
        return data_list

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

    def _box_problem(self, ann: dict, width: float, height: float):
        """``(kind, reason)`` for a bad COCO annotation, else None."""
        if ann.get('category_id') not in self.cat_ids:
            known = {c: self.metainfo['classes'][label] for c, label in self.cat2label.items()}
            return 'unknown_category', (f"category_id {ann.get('category_id')!r} is not one of "
                                        f'the classes\' categories {known}')
        bbox = ann.get('bbox')
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            return 'bad_box', f'bbox {bbox!r} is not four finite numbers [x, y, w, h]'
        text = f'bbox [x, y, w, h] = {bbox}'
        # within float rounding of the edge is inside: the box is kept as it is
        found = box_problem(x, y, x + w, y + h, width, height, clip_tolerance=1e-3)
        if found is not None and found[0] != 'clipped_box':
            return found[0], f'{text} {found[1]}'
        if w < 1 or h < 1:  # mmdet's CocoDataset drops such boxes
            return 'bad_box', f'{text} is below 1 px wide or high'
        if ann.get('area', w * h) <= 0:
            return 'bad_box', f"area {ann.get('area')!r} is not positive"
        return None

    def parse_data_info(self, raw_data_info: dict):
        """Check each box of the image (see the class docstring), then parse as mmdet does."""
        img_info = raw_data_info['raw_img_info']
        kept = []
        for ann in raw_data_info['raw_ann_info']:
            found = self._box_problem(ann, img_info['width'], img_info['height'])
            if found is None:
                kept.append(ann)
                continue
            kind, reason = found
            self._fail(kind, f"{self.ann_file}: annotation id {ann.get('id')} of image "
                       f"{img_info['file_name']}: {reason}; fix: correct the box or "
                       f'{REGENERATE}')
        return super().parse_data_info(dict(raw_data_info, raw_ann_info=kept))

    def _image_ok(self, info: dict) -> bool:
        path = info['img_path']
        if not osp.isfile(path):
            self._fail('missing_image', f'{path}: image named in {self.ann_file} (img_id '
                       f"{info['img_id']}) does not exist; fix: restore it, check data_root and "
                       f'data_prefix, or {REGENERATE}')
            return False
        check = inspect_image_file(path, self.max_image_size, decode=False)
        if check.problem is not None and check.kind != 'image_too_large':
            self._fail(check.kind, f'{path}: {check.with_fix()}')
            return False
        width, height = check.width, check.height
        if (width, height) != (info['width'], info['height']):
            self._fail('size_mismatch', f"{path}: is {width}x{height} but {self.ann_file} says "
                       f"{info['width']}x{info['height']}, so its boxes belong to another "
                       f'image; fix: restore the original image or {REGENERATE}')
            return False
        if check.problem is not None:
            self._fail(check.kind, f'{path}: {check.with_fix()}')
            return False
        return True
