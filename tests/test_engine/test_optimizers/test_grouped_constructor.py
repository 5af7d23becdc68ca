"""GroupedOptimWrapperConstructor: mmengine's per-parameter settings, few parameter groups,
the same updates."""
import copy

import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

import mmbloodcell  # noqa: F401


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1),
                         nn.GroupNorm(2, 4), nn.Flatten(), nn.LazyLinear(2))


def _cfg(constructor=None):
    cfg = dict(type='OptimWrapper',
               optimizer=dict(type='AdamW', lr=0.01, weight_decay=0.05, foreach=False),
               paramwise_cfg=dict(norm_decay_mult=0, bias_decay_mult=0,
                                  custom_keys={'3.weight': dict(lr_mult=0.5)}))
    if constructor:
        cfg['constructor'] = constructor
    return cfg


def test_groups_merged_and_updates_equal():
    x = torch.randn(4, 3, 8, 8)
    stock_model = _model()
    stock_model(x)  # materialise the lazy layer
    fast_model = copy.deepcopy(stock_model)
    stock = build_optim_wrapper(stock_model, _cfg())
    fast = build_optim_wrapper(fast_model, _cfg('GroupedOptimWrapperConstructor'))
    n_params = len(list(stock_model.parameters()))
    assert len(stock.optimizer.param_groups) == n_params
    # decay weights, no-decay norms and biases, and the custom-lr conv weight
    assert len(fast.optimizer.param_groups) == 3
    assert sum(len(g['params']) for g in fast.optimizer.param_groups) == n_params
    settings = {(g['lr'], g['weight_decay']) for g in fast.optimizer.param_groups}
    assert settings == {(0.01, 0.05), (0.01, 0.0), (0.005, 0.05)}
    for step in range(5):
        for model, wrapper in ((stock_model, stock), (fast_model, fast)):
            loss = model(x * (step + 1)).square().mean()
            wrapper.update_params(loss)
    for (name, a), b in zip(stock_model.named_parameters(), fast_model.parameters()):
        assert torch.equal(a, b), name
    assert not torch.equal(next(_model().parameters()), next(fast_model.parameters()))


def test_nothing_to_merge_keeps_the_optimizer():
    model = nn.Linear(3, 2)
    wrapper = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(
        type='SGD', lr=0.1), constructor='GroupedOptimWrapperConstructor'))
    assert len(wrapper.optimizer.param_groups) == 1
    assert len(wrapper.optimizer.param_groups[0]['params']) == 2
