"""Grad-CAM (Selvaraju et al., ICCV 2017) of the C-NMC classifiers (mmpretrain
``ImageClassifier``, :class:`~mmbloodcell.models.classifiers.EnsembleClassifier`).

On the backbone's last feature map ``A`` ``(N, K, h, w)`` (DenseNet-201: ``K = 1920``,
EfficientNet-B2: 1408, SimpleNet: ``widths[-1]``), with ``y`` the logit of ``all``::

    alpha_k = mean_ij dy / dA_kij                    (N, K)
    cam     = ReLU(sum_k alpha_k A_k)                (N, h, w)

upsampled (bilinear) to the input ``(H, W)`` and divided by its maximum (an all-zero map stays
zero). With global average pooling and one linear layer this is the class activation map
``ReLU(sum_k w_k A_k)`` of Zhou et al. (CVPR 2016), up to the normalisation.

Only the head runs with gradients (the backbone's output is replaced by a detached leaf), so
frozen backbones work; ``BinaryClsHead(freeze_backbone=True)`` is unfrozen meanwhile. An
ensemble's map is the member-weighted mean of its members' maps, each on the member's own
pre-processed input, normalised again.
"""
import contextlib
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['GradCAM', 'grad_cam', 'cam_to_image', 'overlay_cam']


@contextlib.contextmanager
def _unfrozen_head(model):
    head = getattr(model, 'head', None)
    frozen = bool(getattr(head, 'freeze_backbone', False))
    if frozen:
        head.freeze_backbone = False
    try:
        yield
    finally:
        if frozen:
            head.freeze_backbone = True


def _target_logit(logits, target_index: int) -> Tensor:
    if isinstance(logits, (tuple, list)):
        logits = logits[-1]
    if not isinstance(logits, Tensor):
        raise TypeError(f'Grad-CAM: the classifier returned {type(logits).__name__} in tensor '
                        f'mode, expected the logits')
    if logits.dim() == 1:
        return logits
    if logits.size(1) == 1:  # BinaryClsHead: one logit, the class-1 (``all``) score
        return logits[:, 0]
    return logits[:, target_index]


def grad_cam(model, inputs: Tensor, target_index: int = 1) -> Tensor:
    """Grad-CAM of one mmpretrain ``ImageClassifier`` in eval mode (see the module docstring).

    Args:
        inputs (Tensor): Its pre-processed input ``(N, 3, H, W)``.
        target_index (int): Class explained when the head gives one logit per class (a
            single-logit ``BinaryClsHead`` is explained through its logit). Defaults to 1.

    Returns:
        Tensor: ``(N, H, W)`` maps in ``[0, 1]``, float32 on the input's device.
    """
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        raise TypeError(f'Grad-CAM needs a classifier with a backbone, got '
                        f'{type(model).__name__}')
    captured = {}

    def hook(module, args, output):
        last = output[-1] if isinstance(output, (tuple, list)) else output
        if not isinstance(last, Tensor) or last.dim() != 4:
            shape = tuple(last.shape) if isinstance(last, Tensor) else type(last).__name__
            raise ValueError(f'Grad-CAM needs a (N, C, h, w) feature map from the backbone '
                             f'{type(module).__name__}; its last output is {shape}')
        leaf = last.detach().requires_grad_(True)
        captured['feat'] = leaf
        if isinstance(output, tuple):
            return output[:-1] + (leaf, )
        if isinstance(output, list):
            return output[:-1] + [leaf]
        return leaf

    handle = backbone.register_forward_hook(hook)
    try:
        with torch.enable_grad(), _unfrozen_head(model):
            logits = model(inputs, mode='tensor')
            target = _target_logit(logits, target_index)
            feat = captured['feat']
            grads, = torch.autograd.grad(target.sum(), feat)
    finally:
        handle.remove()
    with torch.no_grad():
        alpha = grads.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
        cam = F.relu((alpha * feat).sum(dim=1, keepdim=True))  # (N, 1, h, w)
        cam = F.interpolate(cam, size=tuple(inputs.shape[-2:]), mode='bilinear',
                            align_corners=False)[:, 0]
        return _normalise(cam.float())


def _normalise(cam: Tensor) -> Tensor:
    cam = cam.clamp_min(0)
    peak = cam.flatten(1).amax(dim=1).view(-1, 1, 1)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-30), torch.zeros_like(cam))


class GradCAM:
    """Grad-CAM of an ``ImageClassifier`` or ``EnsembleClassifier`` (``target_index`` as in
    :func:`grad_cam`), called with the collated batch ``model.test_step`` takes; returns
    ``(N, H, W)`` numpy maps in ``[0, 1]`` at the network input size."""

    def __init__(self, model, target_index: int = 1):
        self.model = model
        self.target_index = target_index

    def __call__(self, data: dict) -> np.ndarray:
        data = self.model.data_preprocessor(data, False)
        inputs = data['inputs']
        if getattr(self.model, 'members', None) is None:
            cams = grad_cam(self.model, inputs, self.target_index)
        else:
            cams = self._ensemble(inputs)
        return cams.detach().cpu().numpy()

    def _ensemble(self, inputs) -> Tensor:
        model = self.model
        total: Optional[Tensor] = None
        size: Optional[Tuple[int, int]] = None
        weights = model.member_weights.detach().cpu().tolist()
        for i, member in enumerate(model.members):
            x = member.data_preprocessor(dict(inputs=inputs), False)['inputs']
            if size is None:
                size = tuple(x.shape[-2:])
            sizes = model.input_sizes[i]
            if sizes is not None and tuple(x.shape[-2:]) != tuple(sizes):
                x = F.interpolate(x, size=sizes, mode='bilinear', align_corners=False)
            cam = grad_cam(member, x, self.target_index)
            if tuple(cam.shape[-2:]) != size:
                cam = F.interpolate(cam[:, None], size=size, mode='bilinear',
                                    align_corners=False)[:, 0]
            cam = cam * weights[i]
            total = cam if total is None else total + cam
        return _normalise(total)


def cam_to_image(cam: np.ndarray, ori_shape: Sequence[int],
                 cell_bbox: Optional[Sequence[float]] = None,
                 square: bool = True) -> np.ndarray:
    """Map an ``(H, W)`` map at the network input size back onto the original image
    (``ori_shape`` ``(height, width)``); returns an ``ori_shape`` float32 map.

    ``CropToCell`` cut the box ``cell_bbox`` ``[x1, y1, x2, y2]`` (padded to a centred square
    when ``square``) and the crop was resized to the input: the map is resized to the padded
    crop, the padding removed, and the rest placed at ``cell_bbox`` in a zero canvas. Without
    ``cell_bbox`` the map is resized to the whole image.
    """
    h, w = int(ori_shape[0]), int(ori_shape[1])
    cam = np.asarray(cam, dtype=np.float32)
    if cell_bbox is None:
        return cv2.resize(cam, (w, h), interpolation=cv2.INTER_LINEAR)
    x1, y1, x2, y2 = (int(round(float(v))) for v in cell_bbox)
    ch, cw = y2 - y1, x2 - x1
    if ch <= 0 or cw <= 0:
        return np.zeros((h, w), np.float32)
    if square:
        side = max(ch, cw)
        top, left = (side - ch) // 2, (side - cw) // 2
        padded = cv2.resize(cam, (side, side), interpolation=cv2.INTER_LINEAR)
        crop = padded[top:top + ch, left:left + cw]
    else:
        crop = cv2.resize(cam, (cw, ch), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((h, w), np.float32)
    out[y1:y2, x1:x2] = crop
    return out


def overlay_cam(img: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a ``[0, 1]`` map (jet colour map, red = high) over a BGR uint8 image of the same
    height and width: ``(1 - alpha) * img + alpha * colour(cam)``."""
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    heat = cv2.applyColorMap(np.uint8(np.clip(cam, 0, 1) * 255), cv2.COLORMAP_JET)
    return cv2.addWeighted(img[..., :3], 1.0 - alpha, heat, alpha, 0)
