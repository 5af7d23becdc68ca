# Copyright (c) mmbloodcell contributors. All rights reserved.
"""SimpleNet: the small CNN baseline of the C-NMC backbone comparison."""
from typing import List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmbloodcell.registry import CLS_MODELS


@CLS_MODELS.register_module()
class SimpleNet(BaseBackbone):
    """A plain CNN of ``len(widths)`` stages, each ``convs_per_stage`` x (3x3 conv - BN - ReLU)
    followed by 2x2 max pooling.

    The "small CNN" the C-NMC comparison study trains from scratch next to the ImageNet
    backbones (Xception, VGG-16, ResNet-152-V2, EfficientNet-B5 / V2-M); about 1.2 M
    parameters with the default widths. Pair it with ``GlobalAveragePooling`` and
    ``BinaryClsHead(in_channels=widths[-1])``. Shapes: input ``(N, in_channels, H, W)``; stage
    ``i`` outputs ``(N, widths[i], H / 2**(i+1), W / 2**(i+1))`` (floor division per pooling).

    Args:
        in_channels (int): Input channels. Defaults to 3.
        widths (Sequence[int]): Output channels of the stages. Defaults to (32, 64, 128, 256).
        convs_per_stage (int): Conv-BN-ReLU layers per stage. Defaults to 2.
        out_indices (Sequence[int]): Stages whose output is returned (negative indices count
            from the end). Defaults to (-1, ), the last stage.
        frozen_stages (int): Stages (from the first) whose parameters are frozen and whose BN
            stays in eval mode; 0 freezes none. Defaults to 0.
        norm_eval (bool): Keep every BN layer in eval mode while training. Defaults to False.
        conv_cfg, norm_cfg, act_cfg (dict): Of the ``ConvModule`` layers. Default to
            ``nn.Conv2d``, ``dict(type='BN')`` and ``dict(type='ReLU')``.
        init_cfg (dict | list[dict], optional): Defaults to Kaiming-normal convolutions and
            constant-1 norms.
    """

    def __init__(self,
                 in_channels: int = 3,
                 widths: Sequence[int] = (32, 64, 128, 256),
                 convs_per_stage: int = 2,
                 out_indices: Sequence[int] = (-1, ),
                 frozen_stages: int = 0,
                 norm_eval: bool = False,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg: Optional[Union[dict, List[dict]]] = (
                     dict(type='Kaiming', layer='Conv2d'),
                     dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']))):
        super().__init__(init_cfg=list(init_cfg) if isinstance(init_cfg, tuple) else init_cfg)
        widths = tuple(widths)
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1
                             for w in widths):
            raise ValueError(f'SimpleNet: widths must be a non-empty sequence of positive '
                             f'ints, got {widths!r}')
        if convs_per_stage < 1:
            raise ValueError(f'SimpleNet: convs_per_stage must be >= 1, got {convs_per_stage}')
        num_stages = len(widths)
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        indices = []
        for i in out_indices:
            j = i + num_stages if i < 0 else i
            if not 0 <= j < num_stages:
                raise ValueError(f'SimpleNet: out_indices {tuple(out_indices)} out of range for '
                                 f'{num_stages} stages (widths={widths})')
            indices.append(j)
        if not 0 <= frozen_stages <= num_stages:
            raise ValueError(f'SimpleNet: frozen_stages must be in [0, {num_stages}], got '
                             f'{frozen_stages}')
        self.widths = widths
        self.out_indices = tuple(indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.stages = nn.ModuleList()
        channels = in_channels
        for width in widths:
            layers = []
            for _ in range(convs_per_stage):
                layers.append(
                    ConvModule(channels, width, 3, padding=1, conv_cfg=conv_cfg,
                               norm_cfg=norm_cfg, act_cfg=act_cfg))
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            self.stages.append(nn.Sequential(*layers))
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        for stage in self.stages[:self.frozen_stages]:
            stage.eval()
            for param in stage.parameters():
                param.requires_grad = False

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Features of the stages in ``out_indices``, as a tuple."""
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'SimpleNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
