"""The YOLOv7 backbones (tiny and L) of the reference implementation's
cfg/training/yolov7-tiny.yaml and cfg/training/yolov7.yaml."""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmbloodcell.models.layers.yolov7_blocks import (DEFAULT_NORM_CFG, YOLOv7ELAN,
                                                     YOLOv7MPDown, conv_bn_act)
from mmbloodcell.registry import DET_MODELS

# PyTorch's default conv initialization, which the reference trains with.
TORCH_DEFAULT_CONV_INIT = dict(type='Kaiming', layer='Conv2d', a=math.sqrt(5),
                               distribution='uniform', mode='fan_in', nonlinearity='leaky_relu')


@DET_MODELS.register_module()
class YOLOv7Backbone(BaseModule):
    """YOLOv7 backbone: a stem of 3x3 convs and 4 stages (down-sampling, ELAN block).

    ``arch_settings`` per arch: ``stem`` lists the stem's 3x3 convs as (out_channels, stride);
    each stage is (down-sampling, its out channels, ELAN out channels, ELAN branch channels),
    down-sampling one of ``None``, ``'maxpool'`` (2x2, stride 2), ``'conv'`` (3x3, stride 2)
    or ``'mp'`` (:class:`YOLOv7MPDown`). Layers: ``stem`` (stride 2 for L, 4 for tiny), then
    ``stage1`` .. ``stage4`` of strides 4, 8, 16, 32. Output channels of stages 1-4: tiny (64,
    128, 256, 512), l (256, 512, 1024, 1024). Input ``(N, 3, H, W)`` with ``H``, ``W``
    multiples of 32.

    Args:
        arch (str): ``'tiny'`` or ``'l'``.
        out_indices (Sequence[int]): Layers (0 = stem, 1-4 = stages) whose outputs are
            returned, in this order. Defaults to (2, 3, 4): strides 8, 16, 32.
        frozen_stages (int): Freeze the parameters (and BN statistics) of layers 0 ..
            ``frozen_stages``; -1 freezes none. Defaults to -1.
        norm_eval (bool): Keep every BN layer in eval mode while training. Defaults to False.
        norm_cfg (dict): Defaults to BN with the reference's momentum 0.03, eps 0.001.
        act_cfg (dict, optional): Defaults to the arch's: LeakyReLU(0.1) for tiny, SiLU for l.
        init_cfg (dict | list[dict], optional): Defaults to PyTorch's default conv init (BN:
            weight 1, bias 0, from the norm layers' own init).
    """

    arch_settings = {
        'tiny': dict(stem=[(32, 2), (64, 2)],
                     stages=[(None, 64, 64, 32), ('maxpool', 64, 128, 64),
                             ('maxpool', 128, 256, 128), ('maxpool', 256, 512, 256)],
                     elan=dict(num_convs=2, concat_every=1),
                     act_cfg=dict(type='LeakyReLU', negative_slope=0.1)),
        'l': dict(stem=[(32, 1), (64, 2), (64, 1)],
                  stages=[('conv', 128, 256, 64), ('mp', 256, 512, 128),
                          ('mp', 512, 1024, 256), ('mp', 1024, 1024, 256)],
                  elan=dict(num_convs=4, concat_every=2),
                  act_cfg=dict(type='SiLU')),
    }

    def __init__(self,
                 arch: str = 'l',
                 out_indices: Sequence[int] = (2, 3, 4),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = DEFAULT_NORM_CFG,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = TORCH_DEFAULT_CONV_INIT):
        super().__init__(init_cfg=init_cfg)
        if arch not in self.arch_settings:
            raise ValueError(f'YOLOv7Backbone: arch must be one of '
                             f'{sorted(self.arch_settings)}, got {arch!r}')
        setting = self.arch_settings[arch]
        num_layers = len(setting['stages']) + 1
        if not out_indices or any(not 0 <= i < num_layers for i in out_indices):
            raise ValueError(f'YOLOv7Backbone: out_indices must be in [0, {num_layers - 1}] '
                             f'(0 = stem), got {tuple(out_indices)}')
        if not -1 <= frozen_stages < num_layers:
            raise ValueError(f'YOLOv7Backbone: frozen_stages must be in [-1, {num_layers - 1}]'
                             f', got {frozen_stages}')
        self.arch = arch
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        kw = dict(norm_cfg=norm_cfg, act_cfg=act_cfg or setting['act_cfg'])

        stem, channels = [], 3
        for out_channels, stride in setting['stem']:
            stem.append(conv_bn_act(channels, out_channels, 3, stride, **kw))
            channels = out_channels
        self.layers = ['stem']
        self.stem = nn.Sequential(*stem)
        for i, (down, down_channels, out_channels, branch) in enumerate(setting['stages'], 1):
            stage = []
            if down == 'maxpool':
                stage.append(nn.MaxPool2d(kernel_size=2, stride=2))
            elif down == 'conv':
                stage.append(conv_bn_act(channels, down_channels, 3, 2, **kw))
            elif down == 'mp':
                stage.append(YOLOv7MPDown(channels, down_channels, **kw))
            stage.append(YOLOv7ELAN(down_channels, out_channels, branch, **setting['elan'], **kw))
            self.add_module(f'stage{i}', nn.Sequential(*stage))
            self.layers.append(f'stage{i}')
            channels = out_channels
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        for name in self.layers[:self.frozen_stages + 1]:
            layer = getattr(self, name)
            layer.eval()
            for param in layer.parameters():
                param.requires_grad = False

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Outputs of the layers in ``out_indices``, as a tuple."""
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(
                f'YOLOv7Backbone: input size {tuple(x.shape[-2:])} is not a multiple of 32; pad '
                f"the batch: data_preprocessor=dict(type='DetDataPreprocessor', "
                f'pad_size_divisor=32)')
        outs = []
        for name in self.layers:
            x = getattr(self, name)(x)
            outs.append(x)
        return tuple(outs[i] for i in self.out_indices)

    def train(self, mode: bool = True) -> 'YOLOv7Backbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
