"""The YOLOv7 detectors of configs/yolov7/ as built from their configs: the reference's parameter
counts (training form, and fused for deploy with the same outputs), a training step on real
BCCD mosaics of the config's own train pipeline (finite losses, a gradient for every
parameter), predictions in the original image's pixels, the optimiser's parameter groups and
the learning-rate / momentum curve of the reference."""
import copy
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv.cnn import fuse_conv_bn
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, DefaultScope

import mmbloodcell  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {arch: osp.join(REPO, 'configs', 'yolov7', f'yolov7_{arch}_640_300e_bccd.py')
           for arch in ('tiny', 'l')}
# Parameters of the full detector at COCO's 80 classes. Training form: the reference's model
# summary for cfg/training/yolov7-tiny.yaml and yolov7.yaml (models/yolo.py). Deploy form:
# RepConvs fused, the implicit layers folded into the head's convs and removed, every BN folded
# into its conv (a bias of C instead of BN's 2C). The reference's Model.fuse() folds the same
# but keeps the implicit tensors (IDetect.fuse leaves them in place): its fused count, the
# README's 6.2 M / 36.9 M, is ours plus those (tiny 896 + 3 * 255, l 1792 + 3 * 255).
TRAIN_PARAMS = {'tiny': 6228762, 'l': 37622682}
DEPLOY_PARAMS = {'tiny': 6219709, 'l': 36905341}
REFERENCE_FUSED = {'tiny': 6221370, 'l': 36907898}
IMPLICIT = {'tiny': 128 + 256 + 512 + 3 * 255, 'l': 256 + 512 + 1024 + 3 * 255}


@pytest.fixture(autouse=True)
def _mmdet_scope():
    """mmdet's registries, whatever scope an earlier test left (the suite mixes libraries)."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _cfg(arch):
    return Config.fromfile(CONFIGS[arch])


def _model(cfg, num_classes=None, **test_cfg):
    model_cfg = copy.deepcopy(cfg.model)
    if num_classes is not None:
        model_cfg.bbox_head.num_classes = num_classes
    model_cfg.test_cfg.update(test_cfg)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def _dataset(cfg, split, mini, pipeline=None):
    loader = cfg[f'{split}_dataloader']
    ann = mini['train'] if split == 'train' else mini['val']
    return DATASETS.build(dict(loader.dataset, data_root=mini['data_root'], ann_file=ann,
                               pipeline=pipeline or loader.dataset.pipeline))


def deploy(model):
    """The deploy form: RepConvs and implicit layers folded (switch_to_deploy), then every BN
    into its conv (mmcv's fuse_conv_bn)."""
    for module in list(model.modules()):
        if hasattr(module, 'switch_to_deploy'):
            module.switch_to_deploy()
    return fuse_conv_bn(model)


@pytest.mark.parametrize('arch', ['tiny', 'l'])
def test_parameter_counts_and_deploy_form(arch, bccd_mini):
    model = _model(_cfg(arch), num_classes=80)
    assert n_params(model) == TRAIN_PARAMS[arch]
    # BN statistics and affine parameters away from their initial values, so that folding
    # them is tested
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    model.eval()
    # a real smear at 160x128 (the counts and the fusing do not depend on the size)
    data = _dataset(_cfg(arch), 'val', bccd_mini, [
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=(160, 128), keep_ratio=True),
        dict(type='PackDetInputs')])[0]
    inputs = model.data_preprocessor(pseudo_collate([data]), False)['inputs']
    assert inputs.shape[-2:] == (128, 160)
    with torch.no_grad():
        before = model._forward(inputs)[0]
        deploy(model)
        after = model._forward(inputs)[0]
    assert n_params(model) == DEPLOY_PARAMS[arch]
    assert DEPLOY_PARAMS[arch] + IMPLICIT[arch] == REFERENCE_FUSED[arch]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    for a, b in zip(before, after):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-3 * a.abs().max().item())


@pytest.fixture(scope='module')
def mosaic_batch(bccd_mini):
    """Two training samples of the tiny config's own train pipeline on the 4 real training
    smears of bccd_mini: CachedMosaic mosaics from its 5th image on, so samples 5 and 6."""
    cfg = _cfg('tiny')
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = _dataset(cfg, 'train', bccd_mini)
        np.random.seed(0)  # mmdet's transforms draw from numpy's generator
        samples = [dataset[i % len(dataset)] for i in range(6)][-2:]
    return pseudo_collate(samples)


def test_training_step_on_real_mosaics(mosaic_batch):
    model = _model(_cfg('tiny'))
    model.train()
    data = model.data_preprocessor(copy.deepcopy(mosaic_batch), True)
    inputs, samples = data['inputs'], data['data_samples']
    assert inputs.shape == (2, 3, 640, 640)  # the reference's 640x640 training mosaics
    assert 0.0 <= inputs.min() and inputs.max() <= 1.0  # mean 0, std 255
    assert all(len(s.gt_instances) > 10 for s in samples)  # four smears' cells each
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'loss_bbox', 'loss_obj', 'loss_cls'}
    for name, value in losses.items():
        assert math.isfinite(value.item()) and value.item() > 0, (name, value)
    sum(losses.values()).backward()
    for name, param in model.named_parameters():
        assert param.requires_grad, name
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name


def test_predictions_are_in_the_original_image(bccd_mini):
    """At 320x240 (scale factor 0.5) the boxes come back in the 640x480 smear's pixels: the
    head's boxes in the input, divided by the scale factor; at the config's own test size the
    smear is not padded (640x480, a multiple of 32)."""
    cfg = _cfg('tiny')
    model = _model(cfg, score_thr=0.0, max_per_img=50).eval()
    own = _dataset(cfg, 'val', bccd_mini)[0]
    data = model.data_preprocessor(pseudo_collate([own]), False)
    assert data['inputs'].shape[-2:] == (480, 640)
    assert data['data_samples'][0].metainfo['ori_shape'] == (480, 640)

    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    next(t for t in pipeline if t['type'] == 'Resize')['scale'] = (320, 320)
    dataset = _dataset(cfg, 'val', bccd_mini, pipeline)
    data = model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), False)
    with torch.no_grad():
        preds = model(data['inputs'], copy.deepcopy(data['data_samples']), mode='predict')
        feats = model.extract_feat(data['inputs'])
        in_input = model.bbox_head.predict(feats, data['data_samples'], rescale=False)
    for pred, raw, sample in zip(preds, in_input, data['data_samples']):
        scale = sample.metainfo['scale_factor']
        assert sample.metainfo['img_shape'] == (240, 320) and scale == (0.5, 0.5)
        boxes = pred.pred_instances.bboxes
        assert len(boxes) == 50
        assert torch.allclose(boxes, raw.bboxes / boxes.new_tensor(scale * 2), atol=1e-3)
        assert (boxes >= 0).all() and (boxes[:, 0::2] <= 640).all() and \
            (boxes[:, 1::2] <= 480).all()
        assert boxes[:, 2].max() > 320 or boxes[:, 3].max() > 240  # beyond the input's size
        assert torch.equal(pred.pred_instances.labels, raw.labels)


@pytest.mark.parametrize('arch', ['tiny', 'l'])
def test_weight_decay_on_conv_weights_only(arch):
    cfg = _cfg(arch)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = wrapper.optimizer.param_groups
    assert len(groups) == 3  # conv weights; BN weights and biases; implicit layers
    for g in groups:
        assert (g['lr'], g['momentum'], g['nesterov']) == (0.01, 0.937, True)
    decayed = {id(p) for g in groups if g['weight_decay'] > 0 for p in g['params']}
    conv_weights = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Conv2d)}
    assert decayed == conv_weights
    assert {g['weight_decay'] for g in groups} == {5e-4, 0.0}
    assert sum(len(g['params']) for g in groups) == len(list(model.parameters()))


@pytest.mark.parametrize('arch, lrf', [('tiny', 0.01), ('l', 0.1)])
def test_lr_and_momentum_follow_the_reference(arch, lrf):
    """With 4 iterations per epoch (BCCD's 256 images at batch 64): the reference's warm-up
    over 3 epochs (lr from ~0, momentum 0.8 -> 0.937), then lr0 * lf(epoch) with its one_cycle
    lf(x) = 1 + (lrf - 1) (1 - cos(pi x / 300)) / 2, as mmengine's ParamSchedulerHook steps."""
    cfg = _cfg(arch)
    param = torch.nn.Parameter(torch.zeros(1))
    wrapper = OptimWrapper(torch.optim.SGD([param], lr=0.01, momentum=0.937, nesterov=True))
    nb, epochs, warmup = 4, cfg.train_cfg.max_epochs, 3 * 4
    schedulers = [
        PARAM_SCHEDULERS.build(dict(s), default_args=dict(optimizer=wrapper, epoch_length=nb))
        for s in cfg.param_scheduler]
    group = wrapper.optimizer.param_groups[0]
    previous = 0.0
    for epoch in range(epochs):
        lf = 1 + (lrf - 1) * (1 - math.cos(math.pi * epoch / epochs)) / 2
        for i in range(nb):
            step = epoch * nb + i
            if step >= warmup:
                assert group['lr'] == pytest.approx(0.01 * lf, rel=1e-5), (epoch, i)
                assert group['momentum'] == pytest.approx(0.937)
            else:  # a linear ramp, one iteration ahead of the reference's interp(step, nw)
                assert previous < group['lr'] <= 0.01 * lf * (step + 1) / warmup + 1e-5
                assert group['lr'] >= 0.01 * lf * step / warmup
                assert group['momentum'] == pytest.approx(
                    0.8 + (0.937 - 0.8) * min(step / (warmup - 1), 1), abs=1e-6)
            previous = group['lr']
            for s in schedulers:
                if not s.by_epoch:
                    s.step()
        for s in schedulers:
            if s.by_epoch:
                s.step()
    assert group['lr'] == pytest.approx(0.01 * lrf, rel=5e-3)  # lf(299): lr0 * lrf at 300
