"""SSD head with configurable losses, usable for prediction under mmdet 3.3.0."""
from typing import Tuple

import torch
from mmdet.models.dense_heads import SSDHead
from mmdet.utils import OptConfigType
from torch import Tensor

from mmbloodcell.registry import DET_MODELS


@DET_MODELS.register_module()
class ConfigurableSSDHead(SSDHead):
    """mmdet's :class:`SSDHead`, with the study's losses as an option.

    1. It predicts: mmdet 3.3.0's ``SSDHead`` never calls ``AnchorHead.__init__``, so it has no
       ``loss_cls``, which ``BaseDenseHead._predict_by_feat_single`` reads. Here ``loss_cls``
       always exists: the classification loss the head really uses.
    2. With ``loss_cls=None`` (default) it trains exactly like stock SSD (softmax CE with hard
       negative mining, ``train_cfg.neg_pos_ratio``, and smooth-L1 on deltas). Given
       ``loss_cls`` (e.g. sigmoid ``FocalLoss``), ``loss_bbox`` (e.g. ``L1Loss`` on deltas) and
       ``loss_iou`` (e.g. ``GIoULoss`` on decoded boxes) it trains as the BCCD study's SSD
       variant ("Focal + GIoU + L1"): the focal loss on every anchor (no hard negative mining),
       L1 plus GIoU on the boxes, all normalised by the number of positive anchors.

    Args:
        loss_cls (dict, optional): Classification loss. A loss with ``use_sigmoid=True``
            switches the head to ``num_classes`` sigmoid outputs (no background channel).
        loss_bbox (dict, optional): Box-delta loss; required with ``loss_cls``.
        loss_iou (dict, optional): IoU-type loss on decoded boxes. Defaults to None.
        **kwargs: Arguments of :class:`mmdet.models.dense_heads.SSDHead`.
    """

    def __init__(self,
                 *args,
                 loss_cls: OptConfigType = None,
                 loss_bbox: OptConfigType = None,
                 loss_iou: OptConfigType = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from mmdet.registry import MODELS
        self.stock_losses = loss_cls is None
        if self.stock_losses:
            if loss_bbox is not None or loss_iou is not None:
                raise ValueError('ConfigurableSSDHead: loss_bbox / loss_iou need loss_cls too '
                                 '(without loss_cls the head trains with stock SSD losses)')
            # what stock SSD computes (per-anchor softmax CE); mmdet's predict reads it
            self.loss_cls = MODELS.build(
                dict(type='CrossEntropyLoss', use_sigmoid=False, reduction='none'))
            self.loss_bbox = None
            self.loss_iou = None
            return
        if loss_bbox is None:
            raise ValueError('ConfigurableSSDHead: loss_cls is set, so loss_bbox must be set '
                             "too, e.g. dict(type='L1Loss', loss_weight=1.0)")
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou) if loss_iou is not None else None
        self.use_sigmoid_cls = loss_cls.get('use_sigmoid', False)
        if self.use_sigmoid_cls:
            # sigmoid scores: one channel per class, background is "all channels low"
            self.cls_out_channels = self.num_classes
            self._init_layers()

    def loss_by_feat_single(self, cls_score: Tensor, bbox_pred: Tensor, anchor: Tensor,
                            labels: Tensor, label_weights: Tensor, bbox_targets: Tensor,
                            bbox_weights: Tensor, avg_factor: int) -> Tuple[Tensor, ...]:
        """Losses of one image: ``cls_score`` (A, cls_out_channels), ``bbox_pred`` /
        ``anchor`` / ``bbox_targets`` / ``bbox_weights`` (A, 4) deltas, ``labels`` /
        ``label_weights`` (A,) (background ``num_classes``); ``avg_factor``: positive anchors
        of the batch."""
        if self.stock_losses:  # mmdet's: CE with hard negative mining + smooth-L1
            return super().loss_by_feat_single(cls_score, bbox_pred, anchor, labels,
                                               label_weights, bbox_targets, bbox_weights,
                                               avg_factor)
        avg_factor = max(float(avg_factor), 1.0)
        # float32 under AMP: mmcv's CUDA focal loss takes log(max(1 - p, FLT_MIN)) in the
        # input's dtype, and FLT_MIN is 0 in float16 (inf for a saturated logit)
        cls_score, bbox_pred = cls_score.float(), bbox_pred.float()
        loss_cls = self.loss_cls(cls_score, labels, label_weights, avg_factor=avg_factor)
        loss_bbox = self.loss_bbox(bbox_pred, bbox_targets, bbox_weights, avg_factor=avg_factor)
        if self.loss_iou is None:
            return loss_cls, loss_bbox
        pos = bbox_weights[:, 0] > 0
        if pos.any():
            pred_boxes = self.bbox_coder.decode(anchor[pos], bbox_pred[pos])
            gt_boxes = self.bbox_coder.decode(anchor[pos], bbox_targets[pos])
            loss_iou = self.loss_iou(pred_boxes, gt_boxes, avg_factor=avg_factor)
        else:
            loss_iou = bbox_pred.sum() * 0
        return loss_cls, loss_bbox, loss_iou

    def loss_by_feat(self, cls_scores, bbox_preds, batch_gt_instances, batch_img_metas,
                     batch_gt_instances_ignore=None) -> dict:
        """Per-image losses over all anchors of all levels (as ``SSDHead``), with
        ``loss_iou`` when configured."""
        if self.stock_losses or self.loss_iou is None:
            return super().loss_by_feat(cls_scores, bbox_preds, batch_gt_instances,
                                        batch_img_metas, batch_gt_instances_ignore)
        num_images = len(batch_img_metas)
        anchor_list, valid_flag_list = self.get_anchors(
            [s.shape[-2:] for s in cls_scores], batch_img_metas, device=cls_scores[0].device)
        labels, label_weights, bbox_targets, bbox_weights, avg_factor = self.get_targets(
            anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas,
            batch_gt_instances_ignore=batch_gt_instances_ignore, unmap_outputs=True)

        def per_image(levels, channels):  # list over levels of (N, A_l * C, H, W) -> (N, A, C)
            return torch.cat([lv.permute(0, 2, 3, 1).reshape(num_images, -1, channels)
                              for lv in levels], 1)

        all_cls_scores = per_image(cls_scores, self.cls_out_channels)
        all_bbox_preds = per_image(bbox_preds, 4)
        all_labels = torch.cat(labels, -1).view(num_images, -1)
        all_label_weights = torch.cat(label_weights, -1).view(num_images, -1)
        all_bbox_targets = torch.cat(bbox_targets, -2).view(num_images, -1, 4)
        all_bbox_weights = torch.cat(bbox_weights, -2).view(num_images, -1, 4)
        losses_cls, losses_bbox, losses_iou = map(list, zip(*(self.loss_by_feat_single(
            all_cls_scores[i], all_bbox_preds[i], torch.cat(anchor_list[i]), all_labels[i],
            all_label_weights[i], all_bbox_targets[i], all_bbox_weights[i], avg_factor)
            for i in range(num_images))))
        return dict(loss_cls=losses_cls, loss_bbox=losses_bbox, loss_iou=losses_iou)
