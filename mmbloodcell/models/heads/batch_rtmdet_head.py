"""RTMDet head whose training targets are assigned for the whole batch at once."""
from typing import List

import torch
from mmdet.models.dense_heads import RTMDetSepBNHead
from mmdet.structures.bbox import BaseBoxes
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

from mmbloodcell.registry import DET_MODELS
from mmbloodcell.structures import pad_gt_instances


@DET_MODELS.register_module()
class BatchRTMDetSepBNHead(RTMDetSepBNHead):
    """mmdet's :class:`RTMDetSepBNHead` with batched target assignment (same losses).

    The stock head builds its targets image by image and its assigner loops over each image's
    boxes. This head pads the batch's boxes to ``(B, G, 4)``, calls
    :meth:`BatchDynamicSoftLabelAssigner.batch_assign` once and fills the targets with tensor
    operations: the stock head's targets (up to the order of tied costs), so the same losses.

    ``train_cfg.assigner`` must be a ``BatchDynamicSoftLabelAssigner``. Ignored boxes
    (``batch_gt_instances_ignore``), ``allowed_border >= 0`` or priors flagged invalid by
    padding fall back to the stock per-image code. Arguments: as ``RTMDetSepBNHead``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if self.train_cfg and not hasattr(self.assigner, 'batch_assign'):
            raise TypeError(
                f'BatchRTMDetSepBNHead: train_cfg.assigner is {type(self.assigner).__name__}; '
                f"use dict(type='BatchDynamicSoftLabelAssigner', topk=13) (same arguments as "
                f'DynamicSoftLabelAssigner), or the stock RTMDetSepBNHead')

    def get_targets(self,
                    cls_scores: Tensor,
                    bbox_preds: Tensor,
                    anchor_list: List[List[Tensor]],
                    valid_flag_list: List[List[Tensor]],
                    batch_gt_instances: InstanceList,
                    batch_img_metas: List[dict],
                    batch_gt_instances_ignore: OptInstanceList = None,
                    unmap_outputs=True):
        """Targets of every prior of the batch, split by level, from logits ``cls_scores``
        (B, P, C) and decoded ``bbox_preds`` (B, P, 4); the other arguments as
        :meth:`mmdet.models.dense_heads.RTMDetHead.get_targets`.

        Returns, per level as the stock head: priors (B, P_l, 4), labels (B, P_l) (background
        ``num_classes``), label weights (B, P_l), box targets (B, P_l, 4), assignment metrics
        (B, P_l) (IoU of the positive's box with its gt), and None for the sampling results.
        """
        ignore = batch_gt_instances_ignore is not None and any(
            g is not None and len(g) > 0 for g in batch_gt_instances_ignore)
        all_valid = bool(torch.cat([torch.cat(flags) for flags in valid_flag_list]).all())
        if ignore or self.train_cfg['allowed_border'] >= 0 or not all_valid:
            return super().get_targets(cls_scores, bbox_preds, anchor_list, valid_flag_list,
                                       batch_gt_instances, batch_img_metas,
                                       batch_gt_instances_ignore, unmap_outputs)
        num_imgs = len(batch_img_metas)
        num_level_priors = [p.size(0) for p in anchor_list[0]]
        priors = torch.cat(anchor_list[0])  # (P, 4), the same for every image
        gt_bboxes, gt_labels, gt_valid = pad_gt_instances(batch_gt_instances, priors.device)
        inclusive = all(isinstance(g.bboxes, BaseBoxes) for g in batch_gt_instances)
        fg, matched_gt, labels, ious = self.assigner.batch_assign(
            cls_scores.detach(), bbox_preds.detach(), priors, gt_bboxes, gt_labels, gt_valid,
            inclusive=inclusive)

        # dtypes as the stock head's: float32 weights, targets and metrics (like the priors)
        labels = labels.masked_fill(~fg, self.num_classes)
        label_weights = priors.new_ones(fg.shape)
        if self.train_cfg['pos_weight'] > 0:
            label_weights = label_weights.masked_fill(fg, self.train_cfg['pos_weight'])
        index = matched_gt[..., None].expand(-1, -1, 4)
        bbox_targets = torch.gather(gt_bboxes, 1, index).to(priors.dtype).masked_fill(
            ~fg[..., None], 0.)
        assign_metrics = ious.to(priors.dtype).masked_fill(~fg, 0.)

        def split(t: Tensor) -> List[Tensor]:
            return list(t.split(num_level_priors, dim=1))

        anchors = priors[None].expand(num_imgs, -1, -1)
        return (split(anchors), split(labels), split(label_weights), split(bbox_targets),
                split(assign_metrics), None)
