"""Ground truth of a batch of images as padded tensors, for batched assigners."""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor


def pad_gt_instances(batch_gt_instances: Sequence, device,
                     dtype: Optional[torch.dtype] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """The ``gt_instances`` of ``B`` images padded to the batch's largest number of boxes
    ``G``: boxes ``(B, G, 4)`` x1y1x2y2 (``dtype``; None: the boxes' own, float32 for an empty
    batch), labels ``(B, G)`` long and the mask of the real boxes ``(B, G)`` bool, on
    ``device``; padded entries are zeros."""
    from mmdet.structures.bbox import get_box_tensor
    boxes = [get_box_tensor(gt.bboxes) for gt in batch_gt_instances]
    num_gt = max([len(b) for b in boxes] + [0])
    if dtype is None:
        dtype = boxes[0].dtype if boxes else torch.float32
    bboxes = torch.zeros((len(boxes), num_gt, 4), dtype=dtype, device=device)
    labels = torch.zeros((len(boxes), num_gt), dtype=torch.long, device=device)
    valid = torch.zeros((len(boxes), num_gt), dtype=torch.bool, device=device)
    for i, (box, gt) in enumerate(zip(boxes, batch_gt_instances)):
        bboxes[i, :len(box)] = box.to(device, dtype)
        labels[i, :len(box)] = gt.labels.to(device)
        valid[i, :len(box)] = True
    return bboxes, labels, valid
