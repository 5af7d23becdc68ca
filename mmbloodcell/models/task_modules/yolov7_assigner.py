"""YOLOv7's label assignment (Wang et al., *YOLOv7: Trainable bag-of-freebies sets new
state-of-the-art for real-time object detectors*, 2022) for a padded batch in one pass."""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData
from torch import Tensor

from mmbloodcell.registry import DET_TASK_UTILS


@DET_TASK_UTILS.register_module()
class YOLOv7Assigner:
    """The reference YOLOv7 assignment (``find_3_positive`` then SimOTA), batched over images.

    1. Candidates, per level with stride ``s`` and anchors ``(w_a, h_a)``: every (box, anchor)
       with ``max(r, 1/r) < anchor_t`` for both ``r = w / w_a`` and ``r = h / h_a``, in the cell
       of the box centre ``(cx, cy) / s`` and in its neighbour cells along x and y, on the side
       whose fractional part is below ``neighbour_offset``: the left cell when
       ``frac(cx / s) < 0.5 and cx / s > 1``, the right one when ``frac(W - cx / s) < 0.5 and
       W - cx / s > 1`` (likewise up / down), cells clamped into the map.
    2. SimOTA over all candidates of an image (each is a prediction at (anchor, cell)) against
       all its boxes: ``cost = cls_weight * sum_c BCE(logit(sqrt(sigmoid(cls_c) *
       sigmoid(obj))), onehot_c) + iou_weight * -log(IoU + 1e-8)``; box ``g`` takes its
       ``k_g = max(1, int(sum of its top-``candidate_topk`` IoUs))`` cheapest candidates; a
       candidate taken by several boxes keeps the box of least cost.

    All images are processed at once on padded tensors: candidates of an image are packed into
    a (B, C_max) axis (in the reference's order: level, cell, anchor, box) and the cost is a
    (B, G, C_max) tensor, without a loop over images or boxes. A prediction reached twice (two
    boxes, or a centre on a cell border) is two candidates, as in the reference; of tied costs
    the earlier candidate is taken. The result is the reference's up to the order of ties.

    Args:
        anchor_t (float): Largest allowed ratio between box and anchor sides. Defaults to 4.0.
        neighbour_offset (float): Fractional distance to a cell border below which the
            neighbour cell on that side is a candidate (0.5: the two nearest). Defaults to 0.5.
        candidate_topk (int): IoUs summed for the dynamic k. Defaults to 10.
        iou_weight (float): Weight of the IoU cost. Defaults to 3.0.
        cls_weight (float): Weight of the class cost. Defaults to 1.0.
    """

    # the centre cell, then the neighbours left, up, right, down (in cell units of the offset)
    _OFFSETS = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))

    def __init__(self, anchor_t: float = 4.0, neighbour_offset: float = 0.5,
                 candidate_topk: int = 10, iou_weight: float = 3.0,
                 cls_weight: float = 1.0) -> None:
        self.anchor_t = anchor_t
        self.neighbour_offset = neighbour_offset
        self.candidate_topk = candidate_topk
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight

    @torch.no_grad()
    def assign(self, pred_bboxes: Sequence[Tensor], pred_logits: Sequence[Tensor],
               anchors: Sequence[Tensor], strides: Sequence[float], gt_bboxes: Tensor,
               gt_labels: Tensor, gt_valid: Tensor) -> List[InstanceData]:
        """Assign the boxes of every image of a batch to predictions.

        Args:
            pred_bboxes (list[Tensor]): Per level, decoded predicted boxes (x1, y1, x2, y2,
                pixels), shape (B, A, H, W, 4).
            pred_logits (list[Tensor]): Per level, objectness then class logits, shape
                (B, A, H, W, 1 + num_classes).
            anchors (list[Tensor]): Per level, anchor sizes (w, h) in pixels, shape (A, 2).
            strides (list[float]): Per level, the stride in pixels.
            gt_bboxes (Tensor): Boxes (x1, y1, x2, y2, pixels of the batch input) padded to G per
                image, shape (B, G, 4).
            gt_labels (Tensor): Their labels, long (B, G) (any value where padded).
            gt_valid (Tensor): bool (B, G): True for real boxes, False for padding.

        Returns:
            list[InstanceData]: per level its N positives, image-major: ``img_inds``,
            ``anchor_inds``, ``grid_y``, ``grid_x`` (long, N each) index the level's map of
            shape (B, A, H, W, ...); ``gt_inds`` (long, N) is the matched box in the padded G
            axis of its image, ``gt_bboxes`` (N, 4) that box and ``gt_labels`` (N,) its label.
        """
        gt_bboxes = gt_bboxes.float()
        cand = self._candidates(pred_bboxes, anchors, strides, gt_bboxes, gt_valid)
        level, anchor, gy, gx, flat, valid = cand  # (B, C) each
        num_imgs = gt_bboxes.size(0)
        # the candidates' predictions, gathered from each level's flattened (A * H * W) axis
        boxes = gt_bboxes.new_zeros(valid.shape + (4,))
        logits = gt_bboxes.new_zeros(valid.shape + (pred_logits[0].size(-1),))
        for lvl, (bbox_map, logit_map) in enumerate(zip(pred_bboxes, pred_logits)):
            on = level == lvl
            idx = flat.masked_fill(~on, 0)[..., None]
            box = bbox_map.reshape(num_imgs, -1, 4).float().gather(1, idx.expand(-1, -1, 4))
            logit = logit_map.reshape(num_imgs, -1, logits.size(-1)).float()
            logit = logit.gather(1, idx.expand(-1, -1, logits.size(-1)))
            boxes = torch.where(on[..., None], box, boxes)
            logits = torch.where(on[..., None], logit, logits)

        fg, gt_inds = self._simota(boxes, logits, valid, gt_bboxes, gt_labels, gt_valid)
        img = torch.arange(num_imgs, device=fg.device)[:, None].expand_as(fg)
        targets = []
        for lvl in range(len(pred_bboxes)):
            sel = fg & (level == lvl)
            b, g = img[sel], gt_inds[sel]
            targets.append(InstanceData(img_inds=b, anchor_inds=anchor[sel], grid_y=gy[sel],
                                        grid_x=gx[sel], gt_inds=g, gt_bboxes=gt_bboxes[b, g],
                                        gt_labels=gt_labels[b, g]))
        return targets

    def _candidates(self, pred_bboxes, anchors, strides, gt_bboxes, gt_valid):
        """``find_3_positive`` for all levels, packed per image into a (B, C_max) axis.

        Returns (B, C_max) tensors: level, anchor, grid y, grid x, the index into the level's
        flattened (A, H, W) map, and the bool mask of real candidates.
        """
        num_imgs = gt_bboxes.size(0)
        device = gt_bboxes.device
        g = self.neighbour_offset
        offsets = torch.tensor(self._OFFSETS, dtype=torch.float32, device=device) * g
        wh = gt_bboxes[..., 2:] - gt_bboxes[..., :2]  # (B, G, 2)
        fields = []  # per level: (level, anchor, gy, gx, flat, valid), each (B, G, A, 5)
        for lvl, (bbox_map, anchor_wh, stride) in enumerate(zip(pred_bboxes, anchors, strides)):
            num_anchors, h, w = bbox_map.shape[1:4]
            ratio = wh[:, :, None] / anchor_wh.to(wh)[None, None]  # (B, G, A, 2)
            shape_ok = torch.max(ratio, 1 / ratio).amax(-1) < self.anchor_t
            shape_ok &= gt_valid[..., None]
            gxy = (gt_bboxes[..., :2] + gt_bboxes[..., 2:]) / 2 / stride  # (B, G, 2)
            gxi = gxy.new_tensor([w, h]) - gxy  # distance to the far border
            near = (gxy % 1 < g) & (gxy > 1)  # left, up
            far = (gxi % 1 < g) & (gxi > 1)  # right, down
            side_ok = torch.cat([torch.ones_like(near[..., :1]), near, far], -1)  # (B, G, 5)
            cell = (gxy[:, :, None] - offsets).long()  # (B, G, 5, 2), truncated like .long()
            cx = cell[..., 0].clamp(0, w - 1)[:, :, None].expand(-1, -1, num_anchors, -1)
            cy = cell[..., 1].clamp(0, h - 1)[:, :, None].expand(-1, -1, num_anchors, -1)
            a = torch.arange(num_anchors, device=device)[None, None, :, None].expand_as(cx)
            valid = shape_ok[..., None] & side_ok[:, :, None]  # (B, G, A, 5)
            fields.append((torch.full_like(cx, lvl), a, cy, cx, (a * h + cy) * w + cx, valid))
        # the reference's candidate order: level, cell, anchor, box
        fields = [torch.cat([f[i].permute(0, 3, 2, 1).reshape(num_imgs, -1) for f in fields], 1)
                  for i in range(6)]
        valid = fields[-1]
        num_max = int(valid.sum(1).max()) if valid.numel() else 0
        # real candidates first (a stable sort keeps their order), then cut at C_max
        order = torch.sort((~valid).to(torch.uint8), dim=1, stable=True)[1][:, :num_max]
        return [f.gather(1, order) for f in fields]

    def _simota(self, boxes, logits, valid, gt_bboxes, gt_labels, gt_valid):
        """SimOTA between the candidates (B, C) and the boxes (B, G): ``fg`` (B, C) bool and
        ``gt_inds`` (B, C) long (the matched box where fg)."""
        num_cands = valid.size(1)
        if num_cands == 0 or gt_bboxes.size(1) == 0:
            return valid, torch.zeros_like(valid, dtype=torch.long)
        pair_valid = gt_valid[:, :, None] & valid[:, None, :]  # (B, G, C)
        ious = bbox_overlaps(gt_bboxes, boxes).masked_fill(~pair_valid, 0)
        # class cost: BCE with logits summed over classes, sum_c softplus(x_c) - x_label
        x = torch.logit(torch.sqrt(logits[..., 1:].sigmoid() * logits[..., :1].sigmoid()),
                        eps=1e-7)  # (B, C, nc)
        labels = gt_labels.clamp(0, x.size(-1) - 1)[:, :, None].expand(-1, -1, num_cands)
        cls_cost = F.softplus(x).sum(-1)[:, None] - x.transpose(1, 2).gather(1, labels)
        cost = self.cls_weight * cls_cost + self.iou_weight * -torch.log(ious + 1e-8)
        cost = cost.masked_fill(~pair_valid, float('inf'))

        topk = min(self.candidate_topk, num_cands)
        dynamic_k = ious.topk(topk, dim=2)[0].sum(2).int().clamp(min=1)  # (B, G)
        # k <= topk always; a stable sort: of tied candidates (the same prediction reached
        # twice) every box takes the earlier one, so they compete for it
        cheapest, idx = cost.sort(dim=2, stable=True)
        cheapest, idx = cheapest[..., :topk], idx[..., :topk]
        rank = torch.arange(topk, device=cost.device)
        take = (rank < dynamic_k[..., None]) & torch.isfinite(cheapest)
        matching = torch.zeros_like(pair_valid).scatter_(2, idx, take)  # (B, G, C)
        claimed = matching.sum(1)  # (B, C)
        least_cost = cost.argmin(1)  # (B, C)
        gt_inds = torch.where(claimed > 1, least_cost, matching.to(torch.uint8).argmax(1))
        return claimed > 0, gt_inds
