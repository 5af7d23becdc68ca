"""Building blocks of YOLOv7 (Wang et al., "YOLOv7: Trainable bag-of-freebies sets new
state-of-the-art for real-time object detectors", 2022): the ELAN block, the MP down-sampling
block, the SPP-CSP block and the re-parameterizable RepConv.

The blocks are plain ``nn.Module`` s built of mmcv ``ConvModule`` s (conv - BN - activation,
"same" padding, no conv bias): their weights are initialized by the ``init_cfg`` of the backbone
or neck that owns them. Concatenations keep the reference implementation's channel order.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from torch import Tensor

DEFAULT_NORM_CFG = dict(type='BN', momentum=0.03, eps=0.001)


def conv_bn_act(in_channels: int,
                out_channels: int,
                kernel_size: int = 1,
                stride: int = 1,
                norm_cfg: dict = DEFAULT_NORM_CFG,
                act_cfg: Optional[dict] = dict(type='SiLU')) -> ConvModule:
    """The reference's ``Conv``: ``kernel_size`` x ``kernel_size`` conv (padding
    ``kernel_size // 2``, no bias) - norm - activation."""
    return ConvModule(in_channels, out_channels, kernel_size, stride=stride,
                      padding=kernel_size // 2, norm_cfg=norm_cfg, act_cfg=act_cfg)


class YOLOv7ELAN(nn.Module):
    """Efficient layer aggregation block.

    Two 1x1 convs ``a`` and ``b`` (``branch_channels`` each) read the input; a chain of
    ``num_convs`` 3x3 convs (``mid_channels``) follows ``b``; ``a``, ``b`` and every
    ``concat_every``-th chain output are concatenated (last first, as the reference) and fused
    by a 1x1 conv to ``out_channels``. Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H,
    W)``. Variants of the reference: tiny ``num_convs=2, concat_every=1``; L backbone
    ``num_convs=4, concat_every=2``; L neck ``num_convs=4, concat_every=1, mid_channels =
    branch_channels / 2``.

    Args:
        in_channels, out_channels (int): Input / output channels.
        branch_channels (int): Channels of the two 1x1 branches.
        mid_channels (int, optional): Channels of the 3x3 chain. Defaults to ``branch_channels``.
        num_convs (int): Length of the 3x3 chain. Defaults to 2.
        concat_every (int): Concatenate the chain outputs ``concat_every - 1``,
            ``2 * concat_every - 1``, ... Defaults to 1 (all).
        norm_cfg, act_cfg (dict): Of the convs.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 branch_channels: int,
                 mid_channels: Optional[int] = None,
                 num_convs: int = 2,
                 concat_every: int = 1,
                 norm_cfg: dict = DEFAULT_NORM_CFG,
                 act_cfg: dict = dict(type='SiLU')):
        super().__init__()
        if num_convs < 1 or concat_every < 1 or num_convs % concat_every:
            raise ValueError(f'YOLOv7ELAN: num_convs ({num_convs}) must be a positive multiple '
                             f'of concat_every ({concat_every})')
        mid_channels = mid_channels or branch_channels
        kw = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.concat_every = concat_every
        self.branch_a = conv_bn_act(in_channels, branch_channels, 1, **kw)
        self.branch_b = conv_bn_act(in_channels, branch_channels, 1, **kw)
        self.chain = nn.ModuleList(
            conv_bn_act(branch_channels if i == 0 else mid_channels, mid_channels, 3, **kw)
            for i in range(num_convs))
        cat_channels = 2 * branch_channels + num_convs // concat_every * mid_channels
        self.fuse = conv_bn_act(cat_channels, out_channels, 1, **kw)

    def forward(self, x: Tensor) -> Tensor:
        outs = [self.branch_a(x), self.branch_b(x)]
        y = outs[-1]
        for i, conv in enumerate(self.chain, 1):
            y = conv(y)
            if i % self.concat_every == 0:
                outs.append(y)
        return self.fuse(torch.cat(outs[::-1], dim=1))


class YOLOv7MPDown(nn.Module):
    """The MP down-sampling block (stride 2) of YOLOv7-L.

    Pool branch: 2x2 max pooling (stride 2) - 1x1 conv; conv branch: 1x1 conv - 3x3 conv of
    stride 2; each ``out_channels / 2`` channels, concatenated (conv branch first). Shapes:
    ``(N, in_channels, H, W) -> (N, out_channels, H / 2, W / 2)`` (``H``, ``W`` even).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: dict = DEFAULT_NORM_CFG,
                 act_cfg: dict = dict(type='SiLU')):
        super().__init__()
        if out_channels % 2:
            raise ValueError(f'YOLOv7MPDown: out_channels must be even, got {out_channels}')
        half, kw = out_channels // 2, dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool_conv = conv_bn_act(in_channels, half, 1, **kw)
        self.reduce_conv = conv_bn_act(in_channels, half, 1, **kw)
        self.stride_conv = conv_bn_act(half, half, 3, stride=2, **kw)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.stride_conv(self.reduce_conv(x)), self.pool_conv(self.pool(x))],
                         dim=1)


class YOLOv7SPPCSPC(nn.Module):
    """Spatial pyramid pooling in a cross-stage-partial block.

    Main path: 1x1 conv (then 3x3 and 1x1 convs unless ``simple``) to ``out_channels``;
    concatenation of it and its stride-1 max poolings of ``kernel_sizes``; 1x1 conv (then a 3x3
    conv unless ``simple``). Shortcut: 1x1 conv. Output: 1x1 conv of [main, shortcut]. YOLOv7-L
    uses the full block (``SPPCSPC``), YOLOv7-tiny the ``simple`` one (its layers 29-37, whose
    pooled maps are concatenated largest kernel first). Shapes: ``(N, in_channels, H, W) ->
    (N, out_channels, H, W)``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_sizes: Sequence[int] = (5, 9, 13),
                 simple: bool = False,
                 norm_cfg: dict = DEFAULT_NORM_CFG,
                 act_cfg: dict = dict(type='SiLU')):
        super().__init__()
        c, kw = out_channels, dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.simple = simple
        pre = [conv_bn_act(in_channels, c, 1, **kw)]
        post = [conv_bn_act((len(kernel_sizes) + 1) * c, c, 1, **kw)]
        if not simple:
            pre += [conv_bn_act(c, c, 3, **kw), conv_bn_act(c, c, 1, **kw)]
            post.append(conv_bn_act(c, c, 3, **kw))
        self.pre = nn.Sequential(*pre)
        self.short_conv = conv_bn_act(in_channels, c, 1, **kw)
        self.pools = nn.ModuleList(
            nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.post = nn.Sequential(*post)
        self.out_conv = conv_bn_act(2 * c, c, 1, **kw)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pre(x)
        pyramid = [y] + [pool(y) for pool in self.pools]
        y = self.post(torch.cat(pyramid[::-1] if self.simple else pyramid, dim=1))
        return self.out_conv(torch.cat([y, self.short_conv(x)], dim=1))


class YOLOv7RepConv(nn.Module):
    """Re-parameterizable 3x3 conv (RepVGG style).

    Training form: ``act(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x))``, the identity branch only
    when ``in_channels == out_channels`` and ``stride == 1``. :meth:`switch_to_deploy` folds
    the three branches into one 3x3 conv with bias (exact in eval mode): with ``s = gamma /
    sqrt(var + eps)`` per branch, ``W = sum_b s_b * W_b`` (1x1 and identity kernels padded to
    3x3) and ``bias = sum_b beta_b - s_b * mean_b``. Shapes: ``(N, in_channels, H, W) -> (N,
    out_channels, H / stride, W / stride)``.

    Args:
        in_channels, out_channels (int): Input / output channels.
        stride (int): Defaults to 1.
        norm_cfg, act_cfg (dict): Of the branches / of the output.
        deploy (bool): Build the fused form directly (to load fused weights). Defaults to False.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 norm_cfg: dict = DEFAULT_NORM_CFG,
                 act_cfg: dict = dict(type='SiLU'),
                 deploy: bool = False):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.act = build_activation_layer(act_cfg) if act_cfg else nn.Identity()
        self.deploy = deploy
        if deploy:
            self.fused_conv = self._fused_conv()
            return
        self.identity = (build_norm_layer(norm_cfg, in_channels)[1]
                         if in_channels == out_channels and stride == 1 else None)
        self.dense = ConvModule(in_channels, out_channels, 3, stride=stride, padding=1,
                                norm_cfg=norm_cfg, act_cfg=None)
        self.one_by_one = ConvModule(in_channels, out_channels, 1, stride=stride,
                                     norm_cfg=norm_cfg, act_cfg=None)

    def _fused_conv(self) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, 3, stride=self.stride, padding=1,
                         bias=True)

    def forward(self, x: Tensor) -> Tensor:
        if self.deploy:
            return self.act(self.fused_conv(x))
        y = self.dense(x) + self.one_by_one(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.act(y)

    @staticmethod
    def _fold(kernel: Tensor, bn: nn.Module):
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Replace the branches by the equivalent single 3x3 conv (no-op when fused)."""
        if self.deploy:
            return
        kernel, bias = self._fold(self.dense.conv.weight, self.dense.norm)
        k1, b1 = self._fold(self.one_by_one.conv.weight, self.one_by_one.norm)
        kernel, bias = kernel + nn.functional.pad(k1, [1, 1, 1, 1]), bias + b1
        if self.identity is not None:
            eye = torch.zeros_like(kernel)
            eye[torch.arange(self.in_channels), torch.arange(self.in_channels), 1, 1] = 1
            k_id, b_id = self._fold(eye, self.identity)
            kernel, bias = kernel + k_id, bias + b_id
        fused = self._fused_conv().to(kernel)
        fused.weight.copy_(kernel)
        fused.bias.copy_(bias)
        del self.dense, self.one_by_one, self.identity
        self.fused_conv = fused
        self.deploy = True
