"""Hungarian matching of a whole batch with one cost computation and one device-to-host copy."""
from typing import List, Sequence

import numpy as np
import torch
from mmdet.structures.bbox import get_box_tensor
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mmbloodcell.registry import DET_TASK_UTILS
from .fp32_hungarian_assigner import Fp32HungarianAssigner


@DET_TASK_UTILS.register_module()
class BatchHungarianAssigner(Fp32HungarianAssigner):
    """:class:`Fp32HungarianAssigner` that can also match all images of a batch at once.

    mmdet's ``HungarianAssigner`` (DETR, Sparse R-CNN) runs per image, with one host
    synchronisation each. :meth:`batch_assign` gives the same assignment with

    1. each match cost called ONCE, on all B*P predictions against all G gt boxes of the batch
       (the stock cost classes in float32: an image's costs are a block of that matrix);
    2. the B diagonal blocks gathered into a padded (B, P, G_max) tensor, copied to the host once;
    3. ``linear_sum_assignment`` per image on the CPU, one host-to-device copy of the result.

    Costs normalised by the image size (``BBoxL1Cost``) see one ``img_shape``, so the batch path
    needs all images to share it (true after a fixed-size ``Pad``); otherwise it matches image
    by image like mmdet. ``match_costs`` as ``HungarianAssigner``.
    """

    def batch_assign(self, pred_bboxes: Tensor, pred_scores: Tensor,
                     batch_gt_instances: Sequence[InstanceData],
                     batch_img_metas: Sequence[dict]) -> Tensor:
        """Match each image's predictions to its gt boxes.

        Args:
            pred_bboxes (Tensor): (B, P, 4) predicted boxes, xyxy pixels.
            pred_scores (Tensor): (B, P, C) classification logits.
            batch_gt_instances (list[InstanceData]): B items with ``bboxes`` (G_i, 4) and
                ``labels`` (G_i,).
            batch_img_metas (list[dict]): B items with ``img_shape``.

        Returns:
            Tensor: (B, P) long on the predictions' device: ``j + 1`` for the prediction
            matched to gt box ``j`` of its image, 0 for background (mmdet's ``gt_inds``).
        """
        num_imgs, num_preds = pred_bboxes.shape[:2]
        device = pred_bboxes.device
        counts = [len(gt) for gt in batch_gt_instances]
        if sum(counts) == 0 or num_preds == 0:
            return torch.zeros((num_imgs, num_preds), dtype=torch.long, device=device)
        shapes = {tuple(meta['img_shape'][:2]) for meta in batch_img_metas}
        if len(shapes) > 1:  # image-size-normalised costs differ per image: mmdet's loop
            return torch.stack([
                self.assign(InstanceData(bboxes=pred_bboxes[i], scores=pred_scores[i],
                                         priors=pred_bboxes[i]), batch_gt_instances[i],
                            img_meta=batch_img_metas[i]).gt_inds
                for i in range(num_imgs)
            ])
        cost = self._batch_cost(pred_bboxes, pred_scores, batch_gt_instances,
                                batch_img_metas[0], counts)
        cost = cost.detach().cpu().numpy()  # (B, P, G_max): the one host synchronisation
        gt_inds = np.zeros((num_imgs, num_preds), dtype=np.int64)
        for i, n in enumerate(counts):
            if n == 0:
                continue
            with self._explain_non_finite_cost():
                rows, cols = linear_sum_assignment(cost[i, :, :n])
            gt_inds[i, rows] = cols + 1
        return torch.from_numpy(gt_inds).to(device)

    def _batch_cost(self, pred_bboxes: Tensor, pred_scores: Tensor,
                    batch_gt_instances: Sequence[InstanceData], img_meta: dict,
                    counts: List[int]) -> Tensor:
        """(B, P, G_max) float32 costs; columns past an image's G_i are padding (0)."""
        num_imgs, num_preds = pred_bboxes.shape[:2]
        device = pred_bboxes.device
        preds = InstanceData(bboxes=pred_bboxes.reshape(-1, 4).float(),
                             scores=pred_scores.reshape(num_imgs * num_preds, -1).float())
        gts = InstanceData(
            bboxes=torch.cat([get_box_tensor(gt.bboxes) for gt in batch_gt_instances]).float(),
            labels=torch.cat([gt.labels for gt in batch_gt_instances]))
        with torch.autocast(device_type=device.type, enabled=False):
            full = torch.stack([  # (B*P, G), summed as mmdet sums them
                cost(pred_instances=preds, gt_instances=gts, img_meta=img_meta)
                for cost in self.match_costs]).sum(dim=0)
        max_gts = max(counts)
        offsets = np.cumsum([0] + counts[:-1])
        cols = offsets[:, None] + np.arange(max_gts)[None]  # (B, G_max)
        valid = np.arange(max_gts)[None] < np.asarray(counts)[:, None]
        cols = torch.from_numpy(np.where(valid, cols, 0)).to(device)
        full = full.view(num_imgs, num_preds, -1)
        block = full.gather(2, cols[:, None, :].expand(num_imgs, num_preds, max_gts))
        return block.masked_fill(~torch.from_numpy(valid).to(device)[:, None, :], 0)
