"""ForeachExpMomentumEMA averages exactly as mmdet's ExpMomentumEMA, with fewer kernels."""
import copy

import pytest
import torch
import torch.nn as nn
from mmdet.models.layers import ExpMomentumEMA
from mmdet.registry import MODELS
from mmengine.registry import DefaultScope

import mmbloodcell  # noqa: F401
from mmbloodcell.utils import count_aten_ops


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """mmdet's registries, whatever scope an earlier test left (the suite mixes libraries)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _model(shared=False):
    torch.manual_seed(0)
    if shared:  # one conv used twice (as RTMDet's head shares its convs across levels)
        conv = nn.Conv2d(8, 8, 1)
        return nn.Sequential(nn.Conv2d(3, 8, 3), conv, nn.BatchNorm2d(8), nn.SiLU(), conv)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.SiLU(), nn.Conv2d(8, 4, 1),
                         nn.BatchNorm2d(4))


@pytest.mark.parametrize('shared', [False, True])
@pytest.mark.parametrize('update_buffers', [True, False])
@pytest.mark.parametrize('interval', [1, 2])
def test_same_average_as_mmdet(update_buffers, interval, shared):
    model = _model(shared)
    kw = dict(momentum=0.01, gamma=5, interval=interval, update_buffers=update_buffers)
    stock = ExpMomentumEMA(copy.deepcopy(model), **kw)
    fast = MODELS.build(dict(type='ForeachExpMomentumEMA', model=copy.deepcopy(model), **kw))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(7):
        model.train()
        opt.zero_grad()
        model(torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(step))).sum() \
            .backward()
        opt.step()
        stock.update_parameters(model)
        fast.update_parameters(model)
    assert stock.steps == fast.steps == 7
    s, f = stock.module.state_dict(), fast.module.state_dict()
    assert s.keys() == f.keys()
    for k in s:
        assert torch.equal(s[k], f[k]), k
    # the average moved away from both the first copy and the current model
    first = dict(_model().state_dict())
    assert not torch.equal(f['0.weight'], first['0.weight'])
    assert not torch.equal(f['0.weight'], model.state_dict()['0.weight'])


def test_fewer_ops_per_update():
    model = _model()
    counts = []
    for ema in (ExpMomentumEMA(copy.deepcopy(model), update_buffers=True),
                MODELS.build(dict(type='ForeachExpMomentumEMA', model=copy.deepcopy(model),
                                  update_buffers=True))):
        ema.update_parameters(model)  # the first call copies
        counts.append(count_aten_ops(lambda: ema.update_parameters(model)))
    # mmdet: a mul_ and an add_ per floating tensor; here one of each for all of them
    n_float = sum(v.dtype.is_floating_point for v in model.state_dict().values())
    assert counts[0] - counts[1] >= 2 * n_float - 2, counts
