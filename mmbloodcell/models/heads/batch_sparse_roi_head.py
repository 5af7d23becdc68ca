"""Sparse R-CNN RoI head whose training targets are matched for the whole batch at once."""
import itertools
from typing import List, Tuple

import torch
from mmdet.models.losses import accuracy
from mmdet.models.roi_heads import SparseRoIHead
from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
from mmdet.models.task_modules.samplers import PseudoSampler
from mmdet.structures.bbox import bbox2roi, get_box_tensor
from mmdet.utils import InstanceList, reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor

from mmbloodcell.registry import DET_MODELS


@DET_MODELS.register_module()
class BatchSparseRoIHead(SparseRoIHead):
    """mmdet's :class:`SparseRoIHead` (Sparse R-CNN, Sun et al., CVPR 2021) with its training
    targets built for the whole batch at once: the same losses and gradients.

    The stock head decodes, assigns, samples and builds targets image by image at each stage.
    Here, per stage:

    - the deltas of all B*P proposals are decoded in one call (``DeltaXYWHBBoxCoder`` without
      ``clip_border``, class-agnostic regression, as Sparse R-CNN configures its ``DIIHead``);
    - :meth:`BatchHungarianAssigner.batch_assign` matches the batch with one host copy;
    - targets are gathered from the concatenated gt boxes and the losses are
      ``DIIHead.loss_and_target``'s formulas on (B*P,) tensors (:meth:`_dii_loss`), in float32
      also under AMP (mmcv's CUDA focal loss is infinite for saturated float16 logits).

    The stock code runs with a mask head (QueryInst needs the sampling results), class-wise
    regression, a box coder that clips to the image, or an assigner without ``batch_assign``.
    Prediction is the stock head's (decoded in one call: the same boxes). Arguments: as
    ``SparseRoIHead``, with ``dict(type='BatchHungarianAssigner', match_costs=[...])``.
    """

    def _batched(self, stage: int) -> bool:
        head = self.bbox_head[stage]
        coder = head.bbox_coder
        return (not self.with_mask and head.reg_class_agnostic
                and isinstance(coder, DeltaXYWHBBoxCoder) and not coder.clip_border)

    def _bbox_forward(self, stage: int, x: Tuple[Tensor], rois: Tensor, object_feats: Tensor,
                      batch_img_metas: List[dict]) -> dict:
        if not self._batched(stage):
            return super()._bbox_forward(stage, x, rois, object_feats, batch_img_metas)
        num_imgs = len(batch_img_metas)
        bbox_roi_extractor = self.bbox_roi_extractor[stage]
        bbox_head = self.bbox_head[stage]
        bbox_feats = bbox_roi_extractor(x[:bbox_roi_extractor.num_inputs], rois)
        cls_score, bbox_pred, object_feats, attn_feats = bbox_head(bbox_feats, object_feats)
        # rois hold the same number of proposals per image, image by image (bbox2roi)
        decoded = bbox_head.bbox_coder.decode(rois[:, 1:], bbox_pred.view(-1, 4))
        proposals = decoded.view(num_imgs, -1, 4).detach()
        return dict(
            cls_score=cls_score, decoded_bboxes=decoded, object_feats=object_feats,
            attn_feats=attn_feats,
            detached_cls_scores=[cls_score[i].detach() for i in range(num_imgs)],
            detached_proposals=list(proposals.unbind(0)))

    def bbox_loss(self, stage: int, x: Tuple[Tensor], results_list: InstanceList,
                  object_feats: Tensor, batch_img_metas: List[dict],
                  batch_gt_instances: InstanceList) -> dict:
        assigner = self.bbox_assigner[stage]
        if not (self._batched(stage) and hasattr(assigner, 'batch_assign')
                and isinstance(self.bbox_sampler[stage], PseudoSampler)):
            return super().bbox_loss(stage, x, results_list, object_feats, batch_img_metas,
                                     batch_gt_instances)
        rois = bbox2roi([res.bboxes for res in results_list])
        bbox_results = self._bbox_forward(stage, x, rois, object_feats, batch_img_metas)
        imgs_whwh = torch.cat([res.imgs_whwh[None, ...] for res in results_list])  # (B, P, 4)
        cls_score = bbox_results['cls_score']  # (B, P, C)
        # (B, P, 4): the detached proposals as one tensor (a view, not a copy)
        proposals = bbox_results['decoded_bboxes'].detach().view(len(results_list), -1, 4)
        gt_inds = assigner.batch_assign(proposals, cls_score.detach(), batch_gt_instances,
                                        batch_img_metas)  # (B, P): 0 background, j + 1
        targets = self._batch_targets(stage, gt_inds, proposals, batch_gt_instances)
        bbox_results['loss_bbox'] = self._dii_loss(
            stage, cls_score.view(-1, cls_score.size(-1)), bbox_results['decoded_bboxes'],
            imgs_whwh.view(-1, 4), *targets)
        bbox_results['bbox_targets'] = targets
        bbox_results['results_list'] = [
            InstanceData(imgs_whwh=res.imgs_whwh, bboxes=bboxes)
            for res, bboxes in zip(results_list, bbox_results['detached_proposals'])
        ]
        return bbox_results

    def _batch_targets(self, stage: int, gt_inds: Tensor, proposals: Tensor,
                       batch_gt_instances: InstanceList) -> Tuple[Tensor, ...]:
        """``DIIHead.get_targets`` (concatenated) from the (B, P) assignment.

        Returns:
            labels (B*P,) long (``num_classes`` = background), label_weights (B*P,),
            bbox_targets (B*P, 4) and bbox_weights (B*P, 4), as mmdet's.
        """
        head = self.bbox_head[stage]
        device = gt_inds.device
        counts = [len(gt) for gt in batch_gt_instances]
        num_gts = sum(counts)
        # first gt of each image in the concatenation
        offsets = torch.tensor([0, *itertools.accumulate(counts[:-1])], device=device)
        pos = gt_inds > 0
        # index into [all gt boxes of the batch..., background row]
        flat = torch.where(pos, offsets[:, None] + gt_inds - 1, num_gts).view(-1)
        gt_labels = torch.cat([gt.labels.to(device) for gt in batch_gt_instances] +
                              [gt_inds.new_full((1, ), head.num_classes)])
        gt_bboxes = torch.cat([get_box_tensor(gt.bboxes).to(proposals)
                               for gt in batch_gt_instances] + [proposals.new_zeros(1, 4)])
        pos = pos.view(-1)
        labels = gt_labels[flat]
        pos_weight = 1.0 if self.train_cfg[stage].pos_weight <= 0 else \
            self.train_cfg[stage].pos_weight
        label_weights = torch.where(pos, proposals.new_tensor(pos_weight),
                                    proposals.new_tensor(1.0))
        bbox_targets = gt_bboxes[flat]
        if not head.reg_decoded_bbox:
            encoded = head.bbox_coder.encode(proposals.view(-1, 4), bbox_targets)
            bbox_targets = torch.where(pos[:, None], encoded, bbox_targets.new_zeros(()))
        bbox_weights = pos[:, None].expand(-1, 4).to(proposals.dtype)
        return labels, label_weights, bbox_targets, bbox_weights

    def _dii_loss(self, stage: int, cls_score: Tensor, bbox_pred: Tensor, imgs_whwh: Tensor,
                  labels: Tensor, label_weights: Tensor, bbox_targets: Tensor,
                  bbox_weights: Tensor) -> dict:
        """``DIIHead.loss_and_target``'s losses, given the targets.

        Computed in float32. Shapes: cls_score (N, C) logits, bbox_pred (N, 4) decoded xyxy,
        imgs_whwh (N, 4), targets as :meth:`_batch_targets`, N = B*P. With n = all-reduced
        number of matches:
        ``loss_cls = FocalLoss(cls_score, labels, label_weights) / n``,
        ``loss_bbox = L1(pred / whwh, target / whwh)`` and ``loss_iou = GIoU(pred, target)``
        summed over the matched proposals / n.
        """
        head = self.bbox_head[stage]
        # float32 under AMP: mmcv's CUDA focal loss takes log(max(1 - p, FLT_MIN)) in the
        # input's dtype, and FLT_MIN is 0 in float16 (inf for a saturated logit)
        cls_score, bbox_pred = cls_score.float(), bbox_pred.float()
        losses = dict()
        pos = (labels >= 0) & (labels < head.num_classes)
        avg_factor = reduce_mean(pos.sum().float())
        if cls_score.numel() > 0:
            losses['loss_cls'] = head.loss_cls(cls_score, labels, label_weights,
                                               avg_factor=avg_factor)
            losses['pos_acc'] = accuracy(cls_score[pos], labels[pos])
        if pos.any():
            pos_pred, pos_whwh = bbox_pred[pos], imgs_whwh[pos]
            pos_target, pos_weights = bbox_targets[pos], bbox_weights[pos]
            losses['loss_bbox'] = head.loss_bbox(pos_pred / pos_whwh, pos_target / pos_whwh,
                                                 pos_weights, avg_factor=avg_factor)
            losses['loss_iou'] = head.loss_iou(pos_pred, pos_target, pos_weights,
                                               avg_factor=avg_factor)
        else:
            losses['loss_bbox'] = bbox_pred.sum() * 0
            losses['loss_iou'] = bbox_pred.sum() * 0
        return losses
