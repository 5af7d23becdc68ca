"""YOLOv7 blocks: shapes and parameter counts of the reference's layers, the concatenation order,
and that RepConv's fused 3x3 conv gives the training form's output in eval mode."""
import pytest
import torch
import torch.nn as nn

from mmbloodcell.models.layers import (YOLOv7ELAN, YOLOv7MPDown, YOLOv7RepConv, YOLOv7SPPCSPC,
                                       conv_bn_act)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def conv_params(c_in, c_out, k):
    """Conv without bias + BN (weight, bias)."""
    return k * k * c_in * c_out + 2 * c_out


def test_conv_bn_act():
    conv = conv_bn_act(8, 16, 3, 2, act_cfg=dict(type='LeakyReLU', negative_slope=0.1))
    assert conv.conv.bias is None and conv.conv.padding == (1, 1)
    assert conv.norm.momentum == 0.03 and conv.norm.eps == 0.001
    assert isinstance(conv.activate, nn.LeakyReLU) and conv.activate.negative_slope == 0.1
    assert conv(torch.rand(1, 8, 10, 12)).shape == (1, 16, 5, 6)
    assert n_params(conv) == conv_params(8, 16, 3)


@pytest.mark.parametrize(
    'kwargs, cat_channels',
    [  # tiny (its layers 2-7): 2 convs, all concatenated
        (dict(in_channels=64, out_channels=64, branch_channels=32, num_convs=2), 4 * 32),
        # L backbone (layers 4-11): 4 convs, every second concatenated
        (dict(in_channels=128, out_channels=256, branch_channels=64, num_convs=4,
              concat_every=2), 4 * 64),
        # L neck (layers 56-63): 4 convs of half width, all concatenated
        (dict(in_channels=512, out_channels=256, branch_channels=256, mid_channels=128,
              num_convs=4), 2 * 256 + 4 * 128)])
def test_elan_variants(kwargs, cat_channels):
    block = YOLOv7ELAN(**kwargs)
    c_in, c_out, b = kwargs['in_channels'], kwargs['out_channels'], kwargs['branch_channels']
    mid = kwargs.get('mid_channels', b)
    assert block.fuse.conv.in_channels == cat_channels
    expected = (2 * conv_params(c_in, b, 1) + conv_params(b, mid, 3)
                + (kwargs['num_convs'] - 1) * conv_params(mid, mid, 3)
                + conv_params(cat_channels, c_out, 1))
    assert n_params(block) == expected
    assert block(torch.rand(2, c_in, 8, 12)).shape == (2, c_out, 8, 12)


def test_elan_concat_order():
    """The fusion conv reads [last kept chain output, ..., branch b, branch a]."""
    block = YOLOv7ELAN(4, 6, 2, num_convs=4, concat_every=2).eval()
    x = torch.rand(1, 4, 5, 5)
    a, b = block.branch_a(x), block.branch_b(x)
    y1 = block.chain[1](block.chain[0](b))
    y2 = block.chain[3](block.chain[2](y1))
    torch.testing.assert_close(block(x), block.fuse(torch.cat([y2, y1, b, a], 1)))


def test_mp_down():
    block = YOLOv7MPDown(256, 256)  # L backbone layers 12-16
    assert n_params(block) == 2 * conv_params(256, 128, 1) + conv_params(128, 128, 3)
    x = torch.rand(1, 256, 16, 20)
    out = block(x)
    assert out.shape == (1, 256, 8, 10)
    # first half: the strided conv branch; second half: max pooling then 1x1 conv
    block.eval()
    torch.testing.assert_close(block(x)[:, 128:], block.pool_conv(nn.functional.max_pool2d(x, 2)))
    assert YOLOv7MPDown(128, 256)(torch.rand(1, 128, 8, 8)).shape == (1, 256, 4, 4)  # L neck
    with pytest.raises(ValueError, match='even'):
        YOLOv7MPDown(4, 5)


def test_sppcspc():
    # the reference's per-layer table: SPPCSPC(1024, 512) 7609344 (layer 51 of yolov7.yaml);
    # tiny's layers 29-37 (1x1 convs 512->256 twice, 1024->256, 512->256) 131584 * 3 + 262656
    full = YOLOv7SPPCSPC(1024, 512)
    simple = YOLOv7SPPCSPC(512, 256, simple=True)
    assert n_params(full) == 7609344
    assert n_params(simple) == 3 * 131584 + 262656
    assert full(torch.rand(1, 1024, 8, 10)).shape == (1, 512, 8, 10)
    assert simple(torch.rand(1, 512, 8, 10)).shape == (1, 256, 8, 10)
    # tiny concatenates the pooled maps largest kernel first, L smallest first
    simple.eval()
    x = torch.rand(1, 512, 8, 10)
    y = simple.pre(x)
    pools = [nn.functional.max_pool2d(y, k, 1, k // 2) for k in (5, 9, 13)]
    main = simple.post(torch.cat(pools[::-1] + [y], 1))
    short = simple.short_conv(x)
    torch.testing.assert_close(simple(x), simple.out_conv(torch.cat([main, short], 1)))


def _randomize_bn(module):
    """Non-trivial BN statistics and affine parameters, so that the fusion has work to do."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)


@pytest.mark.parametrize('in_channels, out_channels, stride, identity',
                         [(8, 8, 1, True), (8, 16, 1, False), (8, 8, 2, False)])
def test_repconv_fusion_is_exact(in_channels, out_channels, stride, identity):
    torch.manual_seed(0)
    rep = YOLOv7RepConv(in_channels, out_channels, stride=stride)
    assert (rep.identity is not None) == identity
    _randomize_bn(rep)
    rep.eval()
    x = torch.randn(2, in_channels, 12, 10)
    expected = rep(x)
    # the training form: act(BN(conv3x3) + BN(conv1x1) (+ BN(x)))
    branches = rep.dense(x) + rep.one_by_one(x) + (rep.identity(x) if identity else 0)
    torch.testing.assert_close(expected, nn.functional.silu(branches))
    # RepConv(128, 256) of yolov7.yaml's layer 102: 328704 parameters, 295168 fused
    assert n_params(YOLOv7RepConv(128, 256)) == 328704

    rep.switch_to_deploy()
    assert rep.deploy and not hasattr(rep, 'dense') and isinstance(rep.fused_conv, nn.Conv2d)
    assert n_params(rep) == 9 * in_channels * out_channels + out_channels
    torch.testing.assert_close(rep(x), expected, atol=1e-5, rtol=1e-5)
    rep.switch_to_deploy()  # no-op once fused
    torch.testing.assert_close(rep(x), expected, atol=1e-5, rtol=1e-5)

    fused = YOLOv7RepConv(in_channels, out_channels, stride=stride, deploy=True)
    fused.load_state_dict(rep.state_dict())  # a fused checkpoint loads into deploy=True
    torch.testing.assert_close(fused.eval()(x), expected, atol=1e-5, rtol=1e-5)


def test_elan_errors():
    with pytest.raises(ValueError, match='concat_every'):
        YOLOv7ELAN(4, 4, 2, num_convs=3, concat_every=2)
