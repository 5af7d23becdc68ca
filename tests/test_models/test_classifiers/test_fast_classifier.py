"""FastImageClassifier: the same model, state_dict and loss as mmpretrain's ImageClassifier;
its eager steps on CPU match the stock steps; its option checks; the fast C-NMC config trains
through tools/train.py on CPU. The CUDA-graph step itself is checked against the stock step
by the ``gpu`` test (``pytest -m gpu``) and by ``benchmarks/cnmc_throughput.py --equivalence``."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample

from script_loader import load_script
from cnmc_release import make_synthetic_cnmc
import mmbloodcell  # noqa: F401
from mmbloodcell.models.classifiers import FastImageClassifier
from mmbloodcell.registry import CLS_MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CNMC = osp.join(REPO, 'configs', 'cnmc')

# a small real network (ResNet-18 at 32 px) with the C-NMC head and loss
MODEL = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='ResNet', depth=18),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='BinaryClsHead', in_channels=512, hidden_channels=32,
              loss=dict(type='FocalHingeLoss', gamma=2.0)))


def _build(**fast):
    cfg = copy.deepcopy(MODEL)
    if fast:
        cfg.update(type='FastImageClassifier', **fast)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        return CLS_MODELS.build(cfg)


def _batches(n, batch=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        imgs = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 2, (batch, ), generator=g)
        out.append(dict(inputs=imgs,
                        data_samples=[DataSample().set_gt_label(int(v)) for v in labels]))
    return out


def _optim(model, lr=1e-3, **kw):
    return OptimWrapper(torch.optim.Adam(model.parameters(), lr=lr, betas=(0.7, 0.999)), **kw)


def test_same_state_dict_keys_and_channels_last_weights():
    stock, fast = _build(), _build(channels_last=True)
    assert isinstance(fast, FastImageClassifier)
    assert list(stock.state_dict()) == list(fast.state_dict())
    for (name, a), b in zip(stock.state_dict().items(), fast.state_dict().values()):
        assert torch.equal(a, b), name  # same seed, same initial weights
    conv = fast.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    # a stock checkpoint loads into the fast model and back
    fast.load_state_dict(stock.state_dict())
    stock.load_state_dict(fast.state_dict())


def test_tensor_loss_is_the_stock_loss():
    """The loss the CUDA graph computes (bool labels, no device-side label check) is the one
    ImageClassifier.loss computes from the data samples."""
    stock, fast = _build(), _build(cuda_graph=True)
    data = _batches(1)[0]
    x = stock.data_preprocessor(dict(inputs=data['inputs']), True)['inputs']
    expected = stock.loss(x, data['data_samples'])['loss']
    labels = fast._labels(data)
    assert labels.dtype == torch.bool
    got = fast.tensor_loss(x, labels)
    assert got.dtype == torch.float32 and got.dim() == 0
    assert torch.equal(got, expected)


def test_eager_steps_match_stock_steps_on_cpu():
    """On a CPU cuda_graph is ignored: the steps are the stock steps, bit for bit; with
    channels-last (other convolution kernels) they agree up to float rounding (at the C-NMC
    learning rate: Adam turns rounding noise in near-zero gradients into lr-sized steps)."""
    stock, fast = _build(), _build(cuda_graph=True)
    ow_s, ow_f = _optim(stock), _optim(fast)
    for data in _batches(3):
        ls = stock.train_step(data, ow_s)['loss']
        lf = fast.train_step(data, ow_f)['loss']
        assert torch.equal(ls, lf)
    for (name, a), b in zip(stock.named_parameters(), fast.parameters()):
        assert torch.equal(a, b), name
    assert fast._graph_state is None  # never captured on a CPU

    stock, fast = _build(), _build(channels_last=True)
    theta0 = torch.cat([p.detach().reshape(-1).clone() for p in stock.parameters()])
    ow_s, ow_f = _optim(stock, lr=1e-5), _optim(fast, lr=1e-5)
    for data in _batches(3):
        ls = float(stock.train_step(data, ow_s)['loss'].detach())
        lf = float(fast.train_step(data, ow_f)['loss'].detach())
        assert lf == pytest.approx(ls, rel=1e-4, abs=1e-6)
    a = torch.cat([p.detach().reshape(-1) for p in stock.parameters()])
    b = torch.cat([p.detach().reshape(-1) for p in fast.parameters()])
    # the two runs differ by a few % of how far the weights moved (measured: ~0.5 %)
    assert float((a - b).norm()) < 0.05 * float((a - theta0).norm())


def test_bf16_autocast_trains_and_predicts_on_cpu():
    fast = _build(autocast_dtype='bfloat16')
    ow = _optim(fast)
    fast.train()
    before = fast.head.fc.weight.detach().clone()
    log = fast.train_step(_batches(1)[0], ow)
    assert log['loss'].dtype == torch.float32 and torch.isfinite(log['loss'])
    assert not torch.equal(before, fast.head.fc.weight)
    fast.eval()
    data = _batches(1)[0]
    out = fast.val_step(data)
    assert len(out) == 4
    for s in out:
        assert s.pred_score.shape == (2, ) and 0 <= float(s.pred_prob) <= 1
        assert int(s.pred_label) == int(float(s.pred_prob) > 0.5)


def test_option_and_step_checks():
    with pytest.raises(ValueError, match='autocast_dtype'):
        _build(autocast_dtype='int8')
    with pytest.raises(ValueError, match='graph_warmup_iters'):
        _build(graph_warmup_iters=0)
    with pytest.raises(ValueError, match='records CUDA graphs'):
        _build(cuda_graph=True, compile=dict(mode='reduce-overhead'))
    with pytest.raises(TypeError, match='compile'):
        _build(compile='yes')
    fp16 = _build(autocast_dtype='float16')
    with pytest.raises(ValueError, match='loss scaler'):
        fp16.train_step(_batches(1)[0], _optim(fp16))
    fast = _build(cuda_graph=True)
    with pytest.raises(ValueError, match='clip_grad'):
        fast._check_graph_optim_wrapper(_optim(fast, clip_grad=dict(max_norm=1.0)))
    with pytest.raises(ValueError, match='accumulative_counts'):
        fast._check_graph_optim_wrapper(_optim(fast, accumulative_counts=2))
    fast._check_graph_optim_wrapper(_optim(fast))  # the plain wrapper is fine
    bad = _batches(1)[0]
    bad['data_samples'][0].set_gt_label(2)
    with pytest.raises(ValueError, match='0 or 1'):
        fast._labels(bad)
    soft = _batches(1)[0]
    soft['data_samples'][0].set_gt_score(torch.tensor([0.3, 0.7]))
    with pytest.raises(ValueError, match='hard labels'):
        fast._labels(soft)


def _tool(name):
    return load_script(f'tools/{name}.py')


def test_fast_config_trains_through_tools_train_on_cpu(tmp_path):
    """configs/cnmc/densenet201_fhl_fast_cnmc.py as it is (channels-last, bf16, cuda_graph),
    shrunk to 32 px and one epoch of synthetic cells: trains, validates, checkpoints."""
    root = str(tmp_path / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=32, num_folds=3, patients_per_fold=(1, 1),
                        cells_per_patient=2, prelim_patients=(1, 1), final_patients=(1, 1))
    cfg = Config.fromfile(osp.join(CNMC, 'densenet201_fhl_fast_cnmc.py'))
    assert cfg.model.type == 'FastImageClassifier' and cfg.model.cuda_graph
    cfg.model.backbone.init_cfg = None
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[split]
        loader.update(batch_size=4, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = root
        for step in loader.dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (32, 32)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.default_hooks.checkpoint.save_optimizer = False
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(h, warmup=0) if h['type'] == 'LatencyHook' else h
                        for h in cfg.custom_hooks]
    cfg_path = str(tmp_path / 'fast_small.py')
    cfg.dump(cfg_path)
    work_dir = str(tmp_path / 'work')
    _tool('train').main([cfg_path, '--work-dir', work_dir])
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(ckpt), glob.glob(osp.join(work_dir, '*'))
    # the checkpoint loads into the stock DenseNet-201 FHL model
    state = torch.load(ckpt, map_location='cpu')['state_dict']
    stock_cfg = Config.fromfile(osp.join(CNMC, 'densenet201_fhl_cnmc.py')).model
    stock_cfg.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        stock = CLS_MODELS.build(stock_cfg)
    stock.load_state_dict(state, strict=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_graph_step_matches_stock_step_on_gpu():
    """float32 CUDA-graph steps (2 eager warm-up steps, capture, replays, one batch of another
    size run eagerly, an lr change picked up by the replay) against stock steps."""
    stock = _build().cuda()
    fast = _build(cuda_graph=True, graph_warmup_iters=2).cuda()
    ow_s, ow_f = _optim(stock, lr=1e-4), _optim(fast, lr=1e-4)
    stock.train()
    fast.train()
    batches = _batches(6, size=64) + _batches(1, batch=3, size=64, seed=1) + \
        _batches(2, size=64, seed=2)
    for i, data in enumerate(batches):
        data = dict(data, inputs=data['inputs'].cuda())
        if i == 7:  # an lr schedule step: the replay must use it
            for ow in (ow_s, ow_f):
                for g in ow.optimizer.param_groups:
                    g['lr'] = 5e-5
        ls = float(stock.train_step(data, ow_s)['loss'].detach())
        lf = float(fast.train_step(data, ow_f)['loss'].detach())
        assert lf == pytest.approx(ls, rel=1e-3, abs=1e-5), i
    assert fast._graph_state is not None
    # the graph's Adam reads its lr from this tensor, refreshed from the param group
    assert float(fast._graph_state['lr'][0][0]) == pytest.approx(5e-5)
    for (name, a), b in zip(stock.named_parameters(), fast.parameters()):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), name
