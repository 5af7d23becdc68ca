"""Grad-CAM saliency maps for the C-NMC classifiers (mmpretrain ``ImageClassifier`` and
:class:`~mmbloodcell.models.classifiers.EnsembleClassifier`).

Grad-CAM (Selvaraju et al., ICCV 2017) on the last conv stage, i.e. the last feature map
``A`` of shape ``(N, K, h, w)`` that the backbone returns (DenseNet-201: the final
norm + ReLU of the last dense block, ``K = 1920``; EfficientNet-B2: the last 1x1 conv stage,
``K = 1408``; SimpleNet: the last stage, ``K = widths[-1]``). With ``y`` the logit of the
target class (``all``)::

    alpha_k = mean_ij dy / dA_kij                    (N, K)
    cam     = ReLU(sum_k alpha_k A_k)                (N, h, w)

``cam`` is upsampled (bilinear) to the network input ``(H, W)`` and divided by its maximum,
so every map lies in ``[0, 1]`` (an all-zero map stays zero: no location raises ``y``).
For a ``GlobalAveragePooling`` neck and a single linear layer this is the class activation
map ``ReLU(sum_k w_k A_k)`` of Zhou et al. (CVPR 2016), up to the normalisation.

Only the head runs with gradients: the hook replaces the backbone's last output by a detached
copy that requires grad, so frozen backbones (``requires_grad=False`` parameters) work and no
backward pass goes through the backbone. ``BinaryClsHead(freeze_backbone=True)`` detaches its
input; that switch is turned off during the Grad-CAM forward pass (and restored).

Ensembles: each member's map is computed on its own pre-processed input (its own
``data_preprocessor`` and ``input_size``), upsampled to the ensemble's input size, and the
maps are averaged with the ensemble's member weights, then normalised again.
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
    """Grad-CAM of one mmpretrain ``ImageClassifier`` (see the module docstring).

    Args:
        model: An ``ImageClassifier`` (``backbone``, optional ``neck``, ``head``), in eval
            mode.
        inputs (Tensor): Its pre-processed (normalised) input ``(N, 3, H, W)``.
        target_index (int): Class whose logit is explained when the head gives one logit per
            class; a single-logit head (``BinaryClsHead``) is always explained through its
            logit. Defaults to 1 (``all``).

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
    """Grad-CAM of a classifier from the batch its data pre-processor takes.

    Args:
        model: An mmpretrain ``ImageClassifier`` or an ``EnsembleClassifier``.
        target_index (int): Explained class for heads with one logit per class.
            Defaults to 1 (``all``).

    Call it with the collated batch ``dict(inputs=..., data_samples=...)`` (what
    ``model.test_step`` takes); it returns ``(N, H, W)`` numpy maps in ``[0, 1]`` at the
    network input size.
    """

    def __init__(self, model, target_index: int = 1):
        self.model = model
        self.target_index = target_index

    def __call__(self, data: dict) -> np.ndarray:
        data = self.model.data_preprocessor(data, False)
        inputs = data['inputs']
        members = getattr(self.model, 'members', None)
        if members is None:
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
    """Map a map at the network input size back onto the original image.

    The C-NMC test pipelines crop the cell (``CropToCell``: box ``cell_bbox`` ``[x1, y1, x2,
    y2]`` in the original image, padded to a centred square when ``square``) and resize the
    crop to the input size. The map is resized to the padded crop, the padding removed and
    the result placed at ``cell_bbox`` in a zero ``ori_shape`` canvas. Without ``cell_bbox``
    the pipeline is taken to have resized the whole image, and the map is resized to it.

    Args:
        cam (np.ndarray): ``(H, W)`` map at the network input size.
        ori_shape (Sequence[int]): ``(height, width)`` of the original image.
        cell_bbox (Sequence[float], optional): The ``CropToCell`` box.
        square (bool): ``CropToCell(square=...)``. Defaults to True.

    Returns:
        np.ndarray: ``ori_shape`` float32 map.
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
