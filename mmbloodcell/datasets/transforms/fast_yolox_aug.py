"""mmdet's RTMDet / YOLOX mix-up and HSV augmentations on uint8 images, without mmdet's float64
copies (timings: benchmarks/README.md).

Same random draws in the same order, same boxes and labels; images are equal (HSV) or within
one grey level where mmdet resizes in float64 and truncates (mix-up with a scale jitter).
Other inputs (float or non-3-channel images, masks) go to mmdet's code.
"""
import copy

import cv2
import mmcv
import numpy as np
from mmdet.datasets.transforms import CachedMixUp, YOLOXHSVRandomAug
from mmdet.structures.bbox import autocast_box_type
from numpy import random  # as mmdet's transforms: numpy's generator (seeded by mmengine)

from mmbloodcell.registry import DET_TRANSFORMS


@DET_TRANSFORMS.register_module()
class FastYOLOXHSVRandomAug(YOLOXHSVRandomAug):
    """mmdet's :class:`YOLOXHSVRandomAug` with the per-channel shifts done by one lookup table.

    For a uint8 BGR image and gains ``(dh, ds, dv)`` (drawn as mmdet draws them), the image is
    converted to 8-bit HSV and mapped ``h -> (h + dh) mod 180``, ``s -> clip(s + ds, 0, 255)``,
    ``v -> clip(v + dv, 0, 255)`` by ``cv2.LUT``, then back to BGR in place: mmdet's result,
    without its int16 copy and strided channel arithmetic.
    """

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            return super().transform(results)
        dh, ds, dv = (int(g) for g in self._get_hsv_gains())
        x = np.arange(256, dtype=np.int16)
        lut = np.stack([(x + dh) % 180, np.clip(x + ds, 0, 255), np.clip(x + dv, 0, 255)], -1)
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        cv2.LUT(hsv, lut.astype(np.uint8).reshape(256, 1, 3), dst=hsv)
        cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=img)
        results['img'] = img
        return results


@DET_TRANSFORMS.register_module()
class FastCachedMixUp(CachedMixUp):
    """mmdet's :class:`CachedMixUp` (RTMDet's mix-up with a cache of earlier samples) on uint8
    images, without float64 intermediates.

    Same steps, same random draws: cache the sample; with probability ``prob`` take a cached
    sample with boxes, fit it into ``img_scale``, scale it by a jitter from ``ratio_range``,
    flip it with probability ``1 - flip_ratio``, pad and crop it at a random offset to this
    image's size, and blend: ``floor((img + other) / 2)`` per pixel (mmdet's
    ``uint8(0.5 * img + 0.5 * other)``). Boxes of both are kept where inside the image.
    """

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        img = results['img']
        if 'gt_masks' in results or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            return super().transform.__wrapped__(self, results)
        self.results_cache.append(copy.deepcopy(results))
        if len(self.results_cache) > self.max_cached_images:
            index = random.randint(0, len(self.results_cache) - 1) if self.random_pop else 0
            self.results_cache.pop(index)
        if len(self.results_cache) <= 1 or random.uniform(0, 1) > self.prob:
            return results
        other = self.results_cache[self.get_indexes(self.results_cache)]
        if other['gt_bboxes'].shape[0] == 0:
            return results
        jit_factor = random.uniform(*self.ratio_range)
        is_flip = random.uniform(0, 1) > self.flip_ratio

        # the other image fitted into img_scale (top-left), then scaled by the jitter
        other_img = other['img']
        width, height = self.dynamic_scale
        scale_ratio = min(height / other_img.shape[0], width / other_img.shape[1])
        fitted = mmcv.imresize(other_img, (int(other_img.shape[1] * scale_ratio),
                                           int(other_img.shape[0] * scale_ratio)))
        canvas = np.full((height, width, 3), self.pad_val, dtype=np.uint8)
        canvas[:fitted.shape[0], :fitted.shape[1]] = fitted
        scale_ratio *= jit_factor
        if jit_factor != 1:
            canvas = mmcv.imresize(canvas, (int(width * jit_factor), int(height * jit_factor)))
        if is_flip:
            canvas = canvas[:, ::-1]

        # padded to cover this image, cropped at a random offset to its size
        origin_h, origin_w = canvas.shape[:2]
        target_h, target_w = img.shape[:2]
        padded = np.full((max(origin_h, target_h), max(origin_w, target_w), 3), self.pad_val,
                         dtype=np.uint8)
        padded[:origin_h, :origin_w] = canvas
        y_offset = random.randint(0, padded.shape[0] - target_h) \
            if padded.shape[0] > target_h else 0
        x_offset = random.randint(0, padded.shape[1] - target_w) \
            if padded.shape[1] > target_w else 0
        cropped = padded[y_offset:y_offset + target_h, x_offset:x_offset + target_w]

        boxes = other['gt_bboxes'].clone()
        boxes.rescale_([scale_ratio, scale_ratio])
        if self.bbox_clip_border:
            boxes.clip_([origin_h, origin_w])
        if is_flip:
            boxes.flip_([origin_h, origin_w], direction='horizontal')
        boxes.translate_([-x_offset, -y_offset])
        if self.bbox_clip_border:
            boxes.clip_([target_h, target_w])

        mixed = ((img.astype(np.uint16) + cropped) >> 1).astype(np.uint8)
        all_boxes = boxes.cat((results['gt_bboxes'], boxes), dim=0)
        inside = all_boxes.is_inside([target_h, target_w]).numpy()
        results['img'] = mixed
        results['img_shape'] = mixed.shape[:2]
        results['gt_bboxes'] = all_boxes[inside]
        for key in ('gt_bboxes_labels', 'gt_ignore_flags'):
            results[key] = np.concatenate((results[key], other[key]), axis=0)[inside]
        return results
