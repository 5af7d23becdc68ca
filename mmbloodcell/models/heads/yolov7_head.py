"""YOLOv7's detection head (the reference ``IDetect`` layer), its losses and post-processing."""
import copy
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.utils import filter_scores_and_topk
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptInstanceList
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmbloodcell.registry import DET_MODELS, DET_TASK_UTILS
from mmbloodcell.structures import pad_gt_instances

# the reference's evaluation settings (test.py: conf 0.001, IoU 0.65, 300 boxes, multi-label)
DEFAULT_TEST_CFG = dict(multi_label=True, nms_pre=30000, score_thr=0.001,
                        nms=dict(type='nms', iou_threshold=0.65), max_per_img=300)


class ImplicitA(nn.Module):
    """Learned additive implicit knowledge: ``x + a``, ``a`` of shape (1, C, 1, 1), initialised
    from N(0, 0.02)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.implicit = nn.Parameter(torch.empty(1, channels, 1, 1).normal_(0., .02))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.implicit


class ImplicitM(nn.Module):
    """Learned multiplicative implicit knowledge: ``x * m``, ``m`` of shape (1, C, 1, 1),
    initialised from N(1, 0.02)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.implicit = nn.Parameter(torch.empty(1, channels, 1, 1).normal_(1., .02))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.implicit


def bbox_ciou(pred: Tensor, target: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU of aligned boxes (Zheng et al., 2020) as the YOLOv7 reference computes it:
    ``CIoU = IoU - rho^2 / c^2 - alpha * v`` with ``v = 4 / pi^2 * (atan(w_t / h_t) -
    atan(w_p / h_p))^2`` and ``alpha = v / (v - IoU + 1)`` (no gradient through ``alpha``).

    mmdet's ``ciou_loss`` keeps ``alpha`` only where IoU > 0.5 and returns the loss, not the
    CIoU the objectness target needs, hence this function.

    Args:
        pred, target (Tensor): Boxes (x1, y1, x2, y2), shape (N, 4).

    Returns:
        Tensor: (N,) values in [-1.5, 1].
    """
    w1, h1 = pred[:, 2] - pred[:, 0], pred[:, 3] - pred[:, 1] + eps
    w2, h2 = target[:, 2] - target[:, 0], target[:, 3] - target[:, 1] + eps
    inter = ((torch.min(pred[:, 2:], target[:, 2:]) - torch.max(pred[:, :2], target[:, :2]))
             .clamp(min=0).prod(1))
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    enclose = torch.max(pred[:, 2:], target[:, 2:]) - torch.min(pred[:, :2], target[:, :2])
    c2 = enclose.pow(2).sum(1) + eps
    rho2 = ((target[:, :2] + target[:, 2:]) - (pred[:, :2] + pred[:, 2:])).pow(2).sum(1) / 4
    v = (4 / math.pi ** 2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@DET_MODELS.register_module()
class YOLOv7Head(BaseDenseHead):
    """YOLOv7 detection head: per level ``ImplicitM(conv1x1(ImplicitA(x)))`` with
    ``A * (5 + num_classes)`` outputs, read per anchor as (x, y, w, h, objectness, classes).

    Decoding (YOLOv5): with the cell ``(g_x, g_y)``, stride ``s`` and anchor ``(w_a, h_a)``,
    ``xy = (2 * sigmoid(t_xy) - 0.5 + g) * s`` and ``wh = (2 * sigmoid(t_wh))^2 * (w_a, h_a)``;
    the score of class c is ``sigmoid(obj) * sigmoid(cls_c)``.

    Losses, with the positives of :class:`YOLOv7Assigner` (``train_cfg.assigner``) and ``nl``
    levels, each multiplied by the batch size B as the reference does:

    - ``loss_bbox = B * loss_bbox_weight * 3 / nl * sum_l mean(1 - CIoU)`` over the positives
      of level l;
    - ``loss_obj = B * w_obj * (img_scale / 640)^2 * 3 / nl * sum_l obj_level_weights[l] *
      loss_obj(obj_l, t_l)`` over all (A, H, W) of level l, where the target ``t`` is the
      positive's detached CIoU clamped at 0, and 0 elsewhere;
    - ``loss_cls = B * w_cls * num_classes / 80 * 3 / nl * sum_l loss_cls(cls, onehot)`` over
      the positives (zero for a single class, as the reference),

    ``w_obj`` and ``w_cls`` being the ``loss_weight`` of ``loss_obj`` / ``loss_cls`` (the
    reference's ``hyp['obj']`` and ``hyp['cls']``: data/hyp.scratch.p5.yaml for YOLOv7 has
    box 0.05, cls 0.3, obj 0.7; data/hyp.scratch.tiny.yaml box 0.05, cls 0.5, obj 1.0). Ignored
    boxes are not used.

    Args:
        num_classes (int): Number of classes.
        in_channels (Sequence[int]): Channels of the stride 8 / 16 / 32 inputs.
        prior_generator (dict): A ``YOLOAnchorGenerator`` config (anchor sizes per level).
        loss_cls (dict): Class BCE (mean). Defaults to ``CrossEntropyLoss(use_sigmoid=True,
            loss_weight=0.3)``.
        loss_obj (dict): Objectness BCE (mean). Defaults to ``CrossEntropyLoss(
            use_sigmoid=True, loss_weight=1.0)``.
        loss_bbox_weight (float): The reference's ``hyp['box']``. Defaults to 0.05.
        obj_level_weights (Sequence[float]): Objectness weight per level.
            Defaults to (4.0, 1.0, 0.4).
        img_scale (int): Training image side the objectness gain is scaled for.
            Defaults to 640.
        train_cfg (dict, optional): ``dict(assigner=dict(type='YOLOv7Assigner', ...))``;
            without it the assigner's defaults are used.
        test_cfg (dict, optional): ``multi_label`` (every class above ``score_thr``, not only
            the best), ``nms_pre``, ``score_thr``, ``nms``, ``max_per_img``, optional
            ``min_bbox_size``. Defaults to the reference's evaluation settings.
        init_cfg (dict, optional): Initialisation config. Defaults to None (PyTorch's default
            for the convolutions, then the reference's bias priors).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: Sequence[int] = (128, 256, 512),
                 prior_generator: ConfigType = dict(
                     type='YOLOAnchorGenerator',
                     base_sizes=[[(12, 16), (19, 36), (40, 28)],
                                 [(36, 75), (76, 55), (72, 146)],
                                 [(142, 110), (192, 243), (459, 401)]],
                     strides=[8, 16, 32]),
                 loss_cls: ConfigType = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                             loss_weight=0.3),
                 loss_obj: ConfigType = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                             loss_weight=1.0),
                 loss_bbox_weight: float = 0.05,
                 obj_level_weights: Sequence[float] = (4.0, 1.0, 0.4),
                 img_scale: int = 640,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.in_channels = tuple(in_channels)
        self.prior_generator = DET_TASK_UTILS.build(prior_generator)
        self.num_levels = self.prior_generator.num_levels
        self.num_anchors = self.prior_generator.num_base_priors[0]
        self.num_outputs = 5 + num_classes
        if len(self.in_channels) != self.num_levels or len(obj_level_weights) != \
                self.num_levels:
            raise ValueError(
                f'YOLOv7Head: in_channels {self.in_channels} and obj_level_weights '
                f'{tuple(obj_level_weights)} need one entry per prior_generator level '
                f'({self.num_levels}); give as many as prior_generator.strides')
        out = self.num_anchors * self.num_outputs
        self.convs = nn.ModuleList(nn.Conv2d(c, out, 1) for c in self.in_channels)
        self.implicit_a = nn.ModuleList(ImplicitA(c) for c in self.in_channels)
        self.implicit_m = nn.ModuleList(ImplicitM(out) for _ in self.in_channels)

        self.loss_cls = DET_MODELS.build(loss_cls)
        self.loss_obj = DET_MODELS.build(loss_obj)
        layers = 3 / self.num_levels
        self.box_gain = loss_bbox_weight * layers
        self.obj_gain = (img_scale / 640) ** 2 * layers
        self.cls_gain = num_classes / 80 * layers
        self.obj_level_weights = tuple(obj_level_weights)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        assigner = (train_cfg or {}).get('assigner', dict(type='YOLOv7Assigner'))
        self.assigner = DET_TASK_UTILS.build(assigner)

    def init_weights(self) -> None:
        """``init_cfg``, then the reference's bias priors: objectness ``log(8 / (640 / s)^2)``
        (8 objects per 640 image) and classes ``log(0.6 / (num_classes - 0.99))``, added to the
        convolution biases once."""
        first = not self.is_init
        super().init_weights()
        if not first:
            return
        with torch.no_grad():
            for conv, (stride, _) in zip(self.convs, self.prior_generator.strides):
                bias = conv.bias.view(self.num_anchors, self.num_outputs)
                bias[:, 4] += math.log(8 / (640 / stride) ** 2)
                bias[:, 5:] += math.log(0.6 / (self.num_classes - 0.99))

    def forward(self, x: Tuple[Tensor, ...]) -> Tuple[List[Tensor]]:
        """Raw maps per level, (B, A * (5 + num_classes), H, W) each."""
        return [m(conv(a(feat))) for feat, a, conv, m in
                zip(x, self.implicit_a, self.convs, self.implicit_m)],

    def switch_to_deploy(self) -> None:
        """Fold the implicit layers into the convolutions (the reference's ``IDetect.fuse``):
        ``m * (W (x + a) + b) = (m W) x + m (W a + b)``; outputs unchanged."""
        with torch.no_grad():
            for i, conv in enumerate(self.convs):
                a = self.implicit_a[i].implicit.flatten()
                m = self.implicit_m[i].implicit.flatten()
                weight = conv.weight.flatten(1)
                conv.bias.copy_((conv.bias + weight @ a) * m)
                conv.weight.mul_(m[:, None, None, None])
        self.implicit_a = nn.ModuleList(nn.Identity() for _ in self.convs)
        self.implicit_m = nn.ModuleList(nn.Identity() for _ in self.convs)

    def _decode(self, pred_maps: Sequence[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Raw maps -> per level the predictions (B, A, H, W, 5 + C) and their decoded boxes
        (x1, y1, x2, y2, pixels) (B, A, H, W, 4)."""
        sizes = [p.shape[-2:] for p in pred_maps]
        priors = self.prior_generator.grid_priors(sizes, dtype=pred_maps[0].dtype,
                                                  device=pred_maps[0].device)
        preds, boxes = [], []
        for p, prior, stride in zip(pred_maps, priors, self.prior_generator.strides):
            b, _, h, w = p.shape
            p = p.view(b, self.num_anchors, self.num_outputs, h, w).permute(0, 1, 3, 4, 2)
            prior = prior.view(h, w, self.num_anchors, 4).permute(2, 0, 1, 3)  # (A, H, W, 4)
            centre = (prior[..., :2] + prior[..., 2:]) / 2  # (g + 0.5) * s
            anchor_wh = prior[..., 2:] - prior[..., :2]
            t = p[..., :4].sigmoid()
            xy = centre + (2 * t[..., :2] - 1) * p.new_tensor(stride)
            wh = (2 * t[..., 2:]) ** 2 * anchor_wh
            preds.append(p)
            boxes.append(torch.cat([xy - wh / 2, xy + wh / 2], -1))
        return preds, boxes

    def loss_by_feat(self, pred_maps: Sequence[Tensor], batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """The losses (see the class docstring) of raw maps from :meth:`forward` against
        ``batch_gt_instances`` (``bboxes`` x1, y1, x2, y2 in the batch input, ``labels``)."""
        preds, boxes = self._decode(pred_maps)
        num_imgs = preds[0].size(0)
        anchors = [torch.tensor(s, dtype=torch.float32) for s in self.prior_generator.base_sizes]
        strides = [s[0] for s in self.prior_generator.strides]
        targets = self.assigner.assign(
            [b.detach() for b in boxes], [p[..., 4:].detach() for p in preds], anchors, strides,
            *pad_gt_instances(batch_gt_instances, preds[0].device, torch.float32))
        zero = sum(p.sum() for p in preds) * 0.  # keeps every output in the graph
        loss_bbox = loss_cls = loss_obj = zero
        for lvl, (pred, box, t) in enumerate(zip(preds, boxes, targets)):
            obj_target = torch.zeros_like(pred[..., 4])
            if len(t):
                index = (t.img_inds, t.anchor_inds, t.grid_y, t.grid_x)
                ciou = bbox_ciou(box[index].float(), t.gt_bboxes.float())
                loss_bbox = loss_bbox + (1 - ciou).mean()
                obj_target[index] = ciou.detach().clamp(min=0).to(obj_target.dtype)
                if self.num_classes > 1:
                    onehot = F.one_hot(t.gt_labels, self.num_classes).to(pred.dtype)
                    loss_cls = loss_cls + self.loss_cls(pred[index][:, 5:], onehot)
            loss_obj = loss_obj + self.obj_level_weights[lvl] * self.loss_obj(
                pred[..., 4], obj_target)
        return dict(loss_bbox=loss_bbox * self.box_gain * num_imgs,
                    loss_obj=loss_obj * self.obj_gain * num_imgs,
                    loss_cls=loss_cls * self.cls_gain * num_imgs)

    def predict_by_feat(self, pred_maps: Sequence[Tensor],
                        batch_img_metas: Optional[List[dict]] = None,
                        cfg: OptConfigType = None, rescale: bool = False,
                        with_nms: bool = True) -> InstanceList:
        """Detections per image: scores ``obj * cls`` above ``score_thr`` (every class when
        ``multi_label``, else the best), at most ``nms_pre`` before multi-class NMS
        (``mmcv.ops.batched_nms``), ``max_per_img`` after; boxes clipped to ``img_shape``,
        then with ``rescale`` divided by ``scale_factor`` into the original image.

        Returns:
            list[InstanceData]: ``bboxes`` (N, 4) x1, y1, x2, y2, ``scores`` (N,), ``labels``
            (N,) per image.
        """
        cfg = ConfigDict(copy.deepcopy(cfg or self.test_cfg or DEFAULT_TEST_CFG))
        preds, boxes = self._decode([p.detach() for p in pred_maps])
        num_imgs = preds[0].size(0)
        preds = torch.cat([p.reshape(num_imgs, -1, self.num_outputs) for p in preds], 1)
        boxes = torch.cat([b.reshape(num_imgs, -1, 4) for b in boxes], 1)
        scores = preds[..., 5:].sigmoid() * preds[..., 4:5].sigmoid()
        nms_pre = cfg.get('nms_pre', -1)
        results = []
        for i, img_meta in enumerate(batch_img_metas):
            score = scores[i]
            if cfg.get('multi_label', True):
                score, labels, keep, _ = filter_scores_and_topk(
                    score, cfg.score_thr, nms_pre if nms_pre > 0 else score.numel())
            else:
                score, labels = score.max(1)
                keep = (score > cfg.score_thr).nonzero()[:, 0]
                if 0 < nms_pre < len(keep):
                    keep = keep[score[keep].topk(nms_pre)[1]]
                score, labels = score[keep], labels[keep]
            bboxes = boxes[i, keep]
            h, w = img_meta['img_shape'][:2]
            bboxes = torch.stack([bboxes[:, 0].clamp(0, w), bboxes[:, 1].clamp(0, h),
                                  bboxes[:, 2].clamp(0, w), bboxes[:, 3].clamp(0, h)], 1)
            results.append(self._bbox_post_process(
                InstanceData(bboxes=bboxes, scores=score, labels=labels), cfg,
                rescale=rescale, with_nms=with_nms, img_meta=img_meta))
        return results
