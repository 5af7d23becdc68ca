"""Dynamic soft-label assignment (RTMDet) for a whole batch at once, with no per-box loop."""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmdet.models.task_modules.assigners import DynamicSoftLabelAssigner
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor

from mmbloodcell.registry import DET_TASK_UTILS

EPS = 1.0e-7  # the same constant as mmdet's DynamicSoftLabelAssigner


@DET_TASK_UTILS.register_module()
class BatchDynamicSoftLabelAssigner(DynamicSoftLabelAssigner):
    """RTMDet's dynamic soft-label assigner (Lyu et al., *RTMDet: An Empirical Study of
    Designing Real-Time Object Detectors*, 2022) computed for a padded batch in one pass.

    mmdet's :class:`DynamicSoftLabelAssigner` assigns one image at a time and runs one ``topk``
    per ground-truth box, whose ``k`` is read back to the host. Here the same assignment is
    computed with batched tensors:

    - cost ``C[b, p, g] = soft_cls_cost + iou_weight * -log(IoU + eps)
      + 10 ** (dist(p, g) / stride_p - soft_center_radius)``, with
      ``soft_cls_cost = sum_c BCE(s[b, p, c], y[b, g, c] * IoU) * |y * IoU - sigmoid(s)|^2``
      exactly as mmdet's assigner (``y`` the one-hot label);
    - priors whose centre lies inside no box of their image (mmdet's ``valid_mask``) and padded
      boxes get the largest finite cost of the dtype, so they sort after every real candidate;
    - ``k_g = max(1, int(sum of the top-``topk`` IoUs of box g))`` and each box takes its
      ``k_g`` cheapest priors from one ``topk(topk)`` over the prior axis, masked by rank;
    - a prior taken by several boxes keeps the one of least cost.

    The result equals mmdet's assigner run image by image (up to the order of tied costs).
    Arguments and the per-image :meth:`assign`: mmdet's; the batched path computes IoUs with
    :func:`mmdet.structures.bbox.bbox_overlaps` (what the default ``BboxOverlaps2D`` calls).
    """

    def batch_assign(self, pred_scores: Tensor, pred_bboxes: Tensor, priors: Tensor,
                     gt_bboxes: Tensor, gt_labels: Tensor, gt_valid: Tensor,
                     inclusive: bool = True) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Assign the boxes of every image of a batch to its priors.

        Args:
            pred_scores (Tensor): Classification logits, shape (B, P, C).
            pred_bboxes (Tensor): Decoded predicted boxes (x1, y1, x2, y2), shape (B, P, 4).
            priors (Tensor): Point priors (x, y, stride_w, stride_h) of the batch, (P, 4).
            gt_bboxes (Tensor): Ground-truth boxes padded to G per image, shape (B, G, 4).
            gt_labels (Tensor): Their labels, shape (B, G) (any value where padded).
            gt_valid (Tensor): bool (B, G): True for real boxes, False for padding.
            inclusive (bool): A prior centre on a box border counts as inside, as mmdet
                decides for ``HorizontalBoxes``; False: strictly inside, as for plain tensors.
                Defaults to True.

        Returns:
            tuple: per prior, (B, P) each: ``fg`` (bool, a positive), ``matched_gt`` (long,
            its box in the padded G axis), ``labels`` (long, -1 where not fg) and ``ious``
            (float, of its predicted box with the box); 0 where not fg unless said.
        """
        num_imgs, num_priors, num_classes = pred_scores.shape
        num_gt = gt_bboxes.size(1)
        if num_gt == 0 or num_priors == 0:
            fg = pred_scores.new_zeros((num_imgs, num_priors), dtype=torch.bool)
            zeros = fg.long()
            return fg, zeros, zeros - 1, pred_scores.new_zeros((num_imgs, num_priors))

        centers = priors[:, :2]  # (P, 2)
        # prior centre inside the box (B, P, G); `a - b > 0` (mmdet's test) is `a > b`
        cx, cy = centers[None, :, None, 0], centers[None, :, None, 1]
        x1, y1, x2, y2 = (gt_bboxes[:, None, :, i] for i in range(4))
        gt_ = torch.ge if inclusive else torch.gt
        inside = gt_(cx, x1) & gt_(x2, cx) & gt_(cy, y1) & gt_(y2, cy) & gt_valid[:, None, :]
        valid = inside.any(dim=2)  # (B, P): mmdet's valid_mask
        pair_mask = valid[:, :, None] & gt_valid[:, None, :]  # (B, P, G)

        gt_centers = (gt_bboxes[..., :2] + gt_bboxes[..., 2:]) / 2.0  # (B, G, 2)
        distance = (centers[None, :, None, :] - gt_centers[:, None, :, :]).pow(2).sum(-1).sqrt() \
            / priors[None, :, None, 2]
        soft_center_prior = torch.pow(10, distance - self.soft_center_radius)

        ious = bbox_overlaps(pred_bboxes, gt_bboxes)  # (B, P, G)
        iou_cost = -torch.log(ious + EPS) * self.iou_weight

        # soft_cls_cost, element by element as mmdet's (B, P, G, C) tensor, computed cheaply:
        # for a class other than the box's the soft label is 0 and the term depends on (b, p, c)
        # only; for the box's class it is BCE(s, IoU) * |IoU - sigmoid(s)|^2 on (B, P, G)
        # (dtypes follow mmdet's: the soft label is float32 like the IoUs, also under autocast)
        labels = gt_labels.long().clamp(min=0)
        zero = ious.new_zeros(())
        neg_term = F.binary_cross_entropy_with_logits(
            pred_scores, zero.expand(pred_scores.shape), reduction='none') \
            * (zero - pred_scores.sigmoid()).abs().pow(2.0)  # (B, P, C)
        label_scores = torch.gather(pred_scores, 2, labels[:, None, :].expand(-1, num_priors, -1))
        soft_label = ious  # (B, P, G)
        pos_term = F.binary_cross_entropy_with_logits(label_scores, soft_label, reduction='none') \
            * (soft_label - label_scores.sigmoid()).abs().pow(2.0)  # (B, P, G)
        is_label = (labels[:, :, None] == torch.arange(num_classes, device=labels.device))
        soft_cls_cost = torch.where(is_label[:, None], pos_term[..., None],
                                    neg_term[:, :, None, :]).sum(dim=-1)  # (B, P, G)
        cost = soft_cls_cost + iou_cost + soft_center_prior
        big = torch.finfo(cost.dtype).max
        cost = cost.clamp(max=big / 2).masked_fill(~pair_mask, big)
        ious = ious.masked_fill(~pair_mask, 0.)

        # dynamic k per box, from its candidate_topk best IoUs among the valid priors
        candidate_topk = min(self.topk, num_priors)
        topk_ious = ious.topk(candidate_topk, dim=1).values  # (B, k, G)
        dynamic_ks = topk_ious.sum(dim=1).int().clamp(min=1)  # (B, G)
        # the k_g cheapest priors of each box (k_g <= candidate_topk since IoU <= 1)
        pos_idx = cost.topk(candidate_topk, dim=1, largest=False).indices  # (B, k, G)
        rank = torch.arange(candidate_topk, device=cost.device)[None, :, None]
        take = (rank < dynamic_ks[:, None, :]) & gt_valid[:, None, :]
        matching = torch.zeros_like(cost, dtype=torch.bool)
        matching.scatter_(1, pos_idx, take)
        matching &= pair_mask

        # a prior claimed by several boxes keeps the cheapest one
        multi = matching.sum(dim=2) > 1  # (B, P)
        cheapest = F.one_hot(cost.argmin(dim=2), num_gt).bool()
        matching = torch.where(multi[..., None], cheapest, matching)

        fg = matching.any(dim=2)
        matched_gt = matching.to(torch.uint8).argmax(dim=2) * fg
        labels = torch.gather(gt_labels.long(), 1, matched_gt).masked_fill(~fg, -1)
        matched_ious = (matching * ious).sum(dim=2)
        return fg, matched_gt, labels, matched_ious
