"""YOLOv7Backbone: the reference's channels, strides and parameter counts; freezing; init."""
import math

import pytest
import torch
from mmengine.registry import DefaultScope

import mmbloodcell  # noqa: F401
from mmbloodcell.models.backbones import YOLOv7Backbone
from mmbloodcell.registry import DET_MODELS

# Parameters of the reference's backbone layers: the sum of the "params" column of the layer
# table that WongKinYiu/yolov7's models/yolo.py (parse_model) logs when it builds
# cfg/training/yolov7-tiny.yaml (layers 0-28) and cfg/training/yolov7.yaml (layers 0-50), e.g.
# layer 0 of yolov7.yaml: Conv(3, 32, 3) = 3*3*3*32 + 2*32 = 928. No RepConv in the backbones:
# training and deploy forms are the same.
REFERENCE_PARAMS = {'tiny': 2464416, 'l': 13371808}
CHANNELS = {'tiny': (128, 256, 512), 'l': (512, 1024, 1024)}


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """mmdet's registries, whatever scope an earlier test left (the suite mixes libraries)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture(scope='module')
def backbones():
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return {arch: DET_MODELS.build(dict(type='YOLOv7Backbone', arch=arch)).eval()
                for arch in ('tiny', 'l')}


@pytest.mark.parametrize('arch', ['tiny', 'l'])
def test_parameters_match_the_reference(backbones, arch):
    assert sum(p.numel() for p in backbones[arch].parameters()) == REFERENCE_PARAMS[arch]


@pytest.mark.parametrize('arch', ['tiny', 'l'])
@pytest.mark.parametrize('height, width', [(480, 640), (256, 320)])
def test_output_shapes(backbones, arch, height, width):
    with torch.no_grad():
        outs = backbones[arch](torch.rand(1, 3, height, width))
    assert [tuple(o.shape) for o in outs] == [
        (1, c, height // s, width // s) for c, s in zip(CHANNELS[arch], (8, 16, 32))]


def test_activations_and_out_indices(backbones):
    assert isinstance(backbones['tiny'].stem[0].activate, torch.nn.LeakyReLU)
    assert isinstance(backbones['l'].stem[0].activate, torch.nn.SiLU)
    net = YOLOv7Backbone('tiny', out_indices=(0, 1, 4))
    outs = net(torch.rand(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 16, 24), (1, 64, 16, 24), (1, 512, 2, 3)]
    assert len(YOLOv7Backbone('l').stem) == 3  # the L stem is 3 convs, of strides 1, 2, 1
    relu = YOLOv7Backbone('tiny', act_cfg=dict(type='ReLU'))
    assert isinstance(relu.stage4[1].fuse.activate, torch.nn.ReLU)


def test_frozen_stages_and_norm_eval():
    net = YOLOv7Backbone('tiny', frozen_stages=1, norm_eval=True)
    net.train()
    for name in ('stem', 'stage1'):
        assert all(not p.requires_grad for p in getattr(net, name).parameters())
    assert all(p.requires_grad for p in net.stage2.parameters())
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not bn.training for bn in bns)

    net = YOLOv7Backbone('tiny', frozen_stages=0)
    net.train()
    assert all(not m.training for m in net.stem.modules())
    assert all(m.training for m in net.stage1.modules())
    assert all(p.requires_grad for p in net.stage1.parameters())


def test_init_is_torch_default():
    """Every conv, also those inside the blocks, gets PyTorch's default kaiming-uniform init
    (bound 1 / sqrt(fan_in)), as the reference, not ConvModule's kaiming-normal."""
    torch.manual_seed(0)
    net = YOLOv7Backbone('tiny')
    net.init_weights()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 22
    for conv in convs:
        bound = 1 / math.sqrt(conv.weight[0].numel())
        assert conv.weight.abs().max() <= bound
        assert conv.weight.abs().max() > 0.9 * bound


def test_errors():
    with pytest.raises(ValueError, match='arch'):
        YOLOv7Backbone('x')
    with pytest.raises(ValueError, match='out_indices'):
        YOLOv7Backbone('tiny', out_indices=(5, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        YOLOv7Backbone('tiny', frozen_stages=5)
    with pytest.raises(ValueError, match='pad_size_divisor=32'):
        YOLOv7Backbone('tiny')(torch.rand(1, 3, 100, 128))
