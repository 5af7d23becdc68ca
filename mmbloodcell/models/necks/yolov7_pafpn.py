"""The YOLOv7 necks (tiny and L): the reference heads of cfg/training/yolov7-tiny.yaml and
cfg/training/yolov7.yaml up to, not including, the detection layer."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmbloodcell.models.backbones.yolov7_backbone import TORCH_DEFAULT_CONV_INIT
from mmbloodcell.models.layers.yolov7_blocks import (DEFAULT_NORM_CFG, YOLOv7ELAN,
                                                     YOLOv7MPDown, YOLOv7RepConv,
                                                     YOLOv7SPPCSPC, conv_bn_act)
from mmbloodcell.registry import DET_MODELS


@DET_MODELS.register_module()
class YOLOv7PAFPN(BaseModule):
    """YOLOv7 path-aggregation neck on the backbone's stride 8 / 16 / 32 maps ``(C3, C4, C5)``.

    ``P5 = SPPCSPC(C5)``; top-down, for the levels 4 then 3: ``T = ELAN(cat[lateral 1x1(C),
    up2(reduce 1x1(T above))])`` (``T5 = P5``); bottom-up, for the levels 4 then 5: ``B =
    ELAN(cat[down(B below), T])`` (``B3 = T3``, ``T5 = P5``); outputs: a 3x3 conv (tiny) or a
    :class:`YOLOv7RepConv` (l) on ``B3, B4, B5``. ``arch_settings``: ``in_channels`` of C3-C5,
    ``spp`` (SPPCSPC out channels, ``simple`` form for tiny), ``top_down`` (channels of T4, T3,
    and of their reduce / lateral convs), ``bottom_up`` (channels of B4, B5, and of the
    down-sampling that makes them: a 3x3 stride-2 conv for tiny, :class:`YOLOv7MPDown` for l),
    ``out_channels``, and the ELAN branch / chain widths as ratios of its out channels.

    Shapes: inputs ``(N, in_channels[i], H / s, W / s)`` for ``s`` = 8, 16, 32; outputs ``(N,
    out_channels[i], H / s, W / s)``, out channels tiny (128, 256, 512), l (256, 512, 1024).

    Args:
        arch (str): ``'tiny'`` or ``'l'``.
        norm_cfg (dict): Defaults to BN with the reference's momentum 0.03, eps 0.001.
        act_cfg (dict, optional): Defaults to the arch's: LeakyReLU(0.1) for tiny, SiLU for l.
        init_cfg (dict | list[dict], optional): Defaults to PyTorch's default conv init.
    """

    arch_settings = {
        'tiny': dict(in_channels=(128, 256, 512), spp=256, spp_simple=True, top_down=(128, 64),
                     bottom_up=(128, 256), out_channels=(128, 256, 512), down='conv',
                     out_conv='conv', elan=dict(branch=0.5, mid=0.5, num_convs=2),
                     act_cfg=dict(type='LeakyReLU', negative_slope=0.1)),
        'l': dict(in_channels=(512, 1024, 1024), spp=512, spp_simple=False, top_down=(256, 128),
                  bottom_up=(256, 512), out_channels=(256, 512, 1024), down='mp',
                  out_conv='repconv', elan=dict(branch=1.0, mid=0.5, num_convs=4),
                  act_cfg=dict(type='SiLU')),
    }

    def __init__(self,
                 arch: str = 'l',
                 norm_cfg: dict = DEFAULT_NORM_CFG,
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = TORCH_DEFAULT_CONV_INIT):
        super().__init__(init_cfg=init_cfg)
        if arch not in self.arch_settings:
            raise ValueError(f'YOLOv7PAFPN: arch must be one of {sorted(self.arch_settings)}, '
                             f'got {arch!r}')
        s = self.arch_settings[arch]
        self.arch = arch
        self.in_channels, self.out_channels = s['in_channels'], s['out_channels']
        kw = dict(norm_cfg=norm_cfg, act_cfg=act_cfg or s['act_cfg'])
        ratio = s['elan']

        def elan(in_channels: int, out_channels: int) -> YOLOv7ELAN:
            return YOLOv7ELAN(in_channels, out_channels, int(out_channels * ratio['branch']),
                              int(out_channels * ratio['mid']), ratio['num_convs'], **kw)

        c3, c4, c5 = self.in_channels
        self.spp = YOLOv7SPPCSPC(c5, s['spp'], simple=s['spp_simple'], **kw)

        # top-down: level 4 from P5, then level 3 from T4
        self.reduce_convs, self.lateral_convs = nn.ModuleList(), nn.ModuleList()
        self.top_down_blocks = nn.ModuleList()
        above = s['spp']
        for lateral_in, c in zip((c4, c3), s['top_down']):
            self.reduce_convs.append(conv_bn_act(above, c, 1, **kw))
            self.lateral_convs.append(conv_bn_act(lateral_in, c, 1, **kw))
            self.top_down_blocks.append(elan(2 * c, c))
            above = c
        self.upsample = nn.Upsample(scale_factor=2, mode='nearest')

        # bottom-up: level 4 from T3 and T4, then level 5 from B4 and P5
        self.downsamples, self.bottom_up_blocks = nn.ModuleList(), nn.ModuleList()
        below = s['top_down'][-1]
        for top_down, c in zip((s['top_down'][0], s['spp']), s['bottom_up']):
            self.downsamples.append(
                conv_bn_act(below, c, 3, 2, **kw) if s['down'] == 'conv'
                else YOLOv7MPDown(below, c, **kw))
            self.bottom_up_blocks.append(elan(c + top_down, c))
            below = c

        ins = (s['top_down'][-1], ) + tuple(s['bottom_up'])
        self.out_convs = nn.ModuleList(
            conv_bn_act(i, o, 3, **kw) if s['out_conv'] == 'conv' else YOLOv7RepConv(i, o, **kw)
            for i, o in zip(ins, self.out_channels))

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """``(C3, C4, C5)`` -> the three output maps (strides 8, 16, 32)."""
        if len(inputs) != 3:
            raise ValueError(f'YOLOv7PAFPN: expects the 3 backbone maps of strides 8, 16, 32 '
                             f'(YOLOv7Backbone(out_indices=(2, 3, 4))), got {len(inputs)}')
        p5 = self.spp(inputs[2])
        top_down = [p5]
        for i, lateral in enumerate((inputs[1], inputs[0])):
            up = self.upsample(self.reduce_convs[i](top_down[-1]))
            top_down.append(self.top_down_blocks[i](
                torch.cat([self.lateral_convs[i](lateral), up], dim=1)))
        t5, t4, t3 = top_down
        bottom_up = [t3]
        for i, t in enumerate((t4, t5)):
            bottom_up.append(self.bottom_up_blocks[i](
                torch.cat([self.downsamples[i](bottom_up[-1]), t], dim=1)))
        return tuple(conv(x) for conv, x in zip(self.out_convs, bottom_up))
