"""SimpleNet: output shapes, parameter count, freezing, and that it learns in a classifier."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

import mmbloodcell  # noqa: F401
from mmbloodcell.models.backbones import SimpleNet
from mmbloodcell.registry import CLS_MODELS


def test_shapes_and_parameters():
    net = CLS_MODELS.build(dict(type='SimpleNet'))
    assert isinstance(net, SimpleNet)
    out = net(torch.rand(2, 3, 224, 224))
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (2, 256, 14, 14)
    # 3x3 convs without bias (BN follows): sum 9 * c_in * c_out, plus 2 * c per BN
    widths, c_in, expected = (32, 64, 128, 256), 3, 0
    for w in widths:
        expected += 9 * c_in * w + 2 * w + 9 * w * w + 2 * w
        c_in = w
    assert sum(p.numel() for p in net.parameters()) == expected == 1173216

    net = SimpleNet(widths=(8, 16, 24), convs_per_stage=1, out_indices=(0, -1))
    outs = net(torch.rand(1, 3, 37, 50))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 18, 25), (1, 24, 4, 6)]
    assert len(net.stages[0]) == 2  # one ConvModule + the pooling


def test_frozen_stages_and_norm_eval():
    net = SimpleNet(widths=(4, 8), frozen_stages=1, norm_eval=True)
    net.train()
    assert all(not p.requires_grad for p in net.stages[0].parameters())
    assert all(p.requires_grad for p in net.stages[1].parameters())
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not bn.training for bn in bns)
    net = SimpleNet(widths=(4, 8))
    net.train()
    assert all(bn.training for bn in net.modules() if isinstance(bn, torch.nn.BatchNorm2d))


def test_errors():
    with pytest.raises(ValueError, match='widths'):
        SimpleNet(widths=())
    with pytest.raises(ValueError, match='out_indices'):
        SimpleNet(widths=(4, 8), out_indices=(2, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        SimpleNet(widths=(4, 8), frozen_stages=3)
    with pytest.raises(ValueError, match='convs_per_stage'):
        SimpleNet(convs_per_stage=0)


def test_learns_in_a_binary_classifier():
    torch.manual_seed(0)
    model = CLS_MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='SimpleNet', widths=(8, 16)),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='BinaryClsHead', in_channels=16, hidden_channels=16,
                       loss=dict(type='WeightedBCELoss'))))
    model.init_weights()
    # label 1: a bright square in the image, label 0: dark image
    x = torch.rand(16, 3, 16, 16) * 0.2
    labels = torch.arange(16) % 2
    x[labels == 1, :, 4:12, 4:12] += 0.8
    samples = [DataSample().set_gt_label(int(v)) for v in labels]
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-2))
    model.train()
    first = model.loss(x, samples)['loss'].item()
    for _ in range(20):
        optim.update_params(model.loss(x, samples)['loss'])
    last = model.loss(x, samples)['loss'].item()
    assert last < 0.5 * first
    model.eval()
    preds = model.predict(x)
    assert torch.equal(torch.cat([p.pred_label for p in preds]), labels)
