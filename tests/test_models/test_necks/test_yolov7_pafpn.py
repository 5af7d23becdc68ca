"""YOLOv7PAFPN: the reference's channels, strides and parameter counts (training and deploy
form), and that the deploy form gives the training form's outputs."""
import pytest
import torch
from mmengine.registry import DefaultScope

import mmbloodcell  # noqa: F401
from mmbloodcell.models.layers import YOLOv7RepConv
from mmbloodcell.models.necks import YOLOv7PAFPN
from mmbloodcell.registry import DET_MODELS

# Parameters of the reference's neck layers (everything after the backbone up to, not including,
# IDetect): the sum of the "params" column of the layer table that WongKinYiu/yolov7's
# models/yolo.py (parse_model) logs for cfg/training/yolov7-tiny.yaml (layers 29-76) and
# cfg/training/yolov7.yaml (layers 51-104). The L backbone + neck total, 37162400, is also the
# published log of WongKinYiu/yolov7 issue 504 (37620125 parameters less its 457725 of Detect).
# Deploy form: RepConv fused (its layers 102-104: 328704 + 1312768 + 5246976 parameters in
# training form, 295168 + 1180160 + 4719616 fused).
NECK_PARAMS = {'tiny': (3533440, 3533440), 'l': (23790592, 23097088)}  # (training, deploy)
BACKBONE_PARAMS = {'tiny': 2464416, 'l': 13371808}  # see test_yolov7_backbone.py
# The reference's Model.fuse() also folds every BN into its conv (a bias of C instead of BN's 2C
# parameters): backbone + neck then count 5990464 (tiny) and 36447616 (l), its fused model's
# 6221370 and 36907898 parameters (README: 6.2 M, 36.9 M) less IDetect's 230906 / 460282.
FOLDED_PARAMS = {'tiny': 5990464, 'l': 36447616}
IN_CHANNELS = {'tiny': (128, 256, 512), 'l': (512, 1024, 1024)}
OUT_CHANNELS = {'tiny': (128, 256, 512), 'l': (256, 512, 1024)}
STRIDES = (8, 16, 32)


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """mmdet's registries, whatever scope an earlier test left (the suite mixes libraries)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture(scope='module')
def models():
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return {arch: (DET_MODELS.build(dict(type='YOLOv7Backbone', arch=arch)).eval(),
                       DET_MODELS.build(dict(type='YOLOv7PAFPN', arch=arch)).eval())
                for arch in ('tiny', 'l')}


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def _feats(arch, height, width, batch=1):
    return [torch.rand(batch, c, height // s, width // s)
            for c, s in zip(IN_CHANNELS[arch], STRIDES)]


@pytest.mark.parametrize('arch', ['tiny', 'l'])
@pytest.mark.parametrize('height, width', [(480, 640), (256, 320)])
def test_output_shapes_on_the_backbone(models, arch, height, width):
    backbone, neck = models[arch]
    with torch.no_grad():
        outs = neck(backbone(torch.rand(1, 3, height, width)))
    assert [tuple(o.shape) for o in outs] == [
        (1, c, height // s, width // s) for c, s in zip(OUT_CHANNELS[arch], STRIDES)]


@pytest.mark.parametrize('arch', ['tiny', 'l'])
def test_parameters_and_deploy_form(models, arch):
    """Training-form counts equal the reference's; fusing the RepConvs (l) keeps the outputs
    and gives the deploy counts."""
    backbone, neck = models[arch]
    # a float64 copy (exact comparison over long sums); the fixture's stays in training form
    neck = YOLOv7PAFPN(arch).double()
    neck.load_state_dict(models[arch][1].state_dict())
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial BN statistics, so that the fusion has work to do
        for m in neck.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
    neck.eval()
    training, deploy = NECK_PARAMS[arch]
    assert n_params(neck) == training
    assert n_params(backbone) + n_params(neck) == BACKBONE_PARAMS[arch] + training

    feats = [f.double() for f in _feats(arch, 64, 96)]
    with torch.no_grad():
        expected = neck(feats)
        reps = [m for m in neck.modules() if isinstance(m, YOLOv7RepConv)]
        assert len(reps) == (3 if arch == 'l' else 0)
        for m in reps:
            m.switch_to_deploy()
        outs = neck(feats)
    for out, exp in zip(outs, expected):
        torch.testing.assert_close(out, exp, atol=1e-9, rtol=1e-9)
    assert n_params(neck) == deploy
    num_bn = sum(m.num_features for m in (*backbone.modules(), *neck.modules())
                 if isinstance(m, torch.nn.BatchNorm2d))
    assert BACKBONE_PARAMS[arch] + deploy - num_bn == FOLDED_PARAMS[arch]


def test_arch_layout(models):
    tiny, large = models['tiny'][1], models['l'][1]
    assert tiny.spp.simple and not large.spp.simple
    assert all(isinstance(m, YOLOv7RepConv) for m in large.out_convs)
    assert [m.conv.kernel_size for m in tiny.out_convs] == [(3, 3)] * 3
    assert isinstance(tiny.out_convs[0].activate, torch.nn.LeakyReLU)
    assert isinstance(large.out_convs[0].act, torch.nn.SiLU)
    # tiny down-samples with a 3x3 stride-2 conv, L with the MP block
    assert tiny.downsamples[0].conv.stride == (2, 2)
    assert type(large.downsamples[0]).__name__ == 'YOLOv7MPDown'


def test_errors():
    with pytest.raises(ValueError, match='arch'):
        YOLOv7PAFPN('x')
    with pytest.raises(ValueError, match='3 backbone maps'):
        YOLOv7PAFPN('tiny')(_feats('tiny', 64, 64)[1:])
