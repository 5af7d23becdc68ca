"""EnsembleClassifier: weighted probability average over members with their own
pre-processors, checkpoints through mmengine, what a runner may load into it, errors."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint
from mmpretrain.structures import DataSample

import mmbloodcell  # noqa: F401
from mmbloodcell.models.classifiers import EnsembleClassifier
from mmbloodcell.registry import CLS_MODELS

IMAGENET = dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375], to_rgb=True)
HALF = dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)


def _model_cfg(preprocessor, widths=(4, 8), head=None):
    return dict(
        type='ImageClassifier',
        data_preprocessor=preprocessor,
        backbone=dict(type='SimpleNet', widths=widths),
        neck=dict(type='GlobalAveragePooling'),
        head=head or dict(type='BinaryClsHead', in_channels=widths[-1], hidden_channels=8))


def _write_member(tmp_path, name, model_cfg, seed):
    """A member config file (as a training config: model + top-level data_preprocessor) and a
    checkpoint of a randomly initialised model, saved by mmengine."""
    cfg_path = str(tmp_path / f'{name}.py')
    model_cfg = dict(model_cfg)
    preprocessor = model_cfg.pop('data_preprocessor')
    Config(dict(model=model_cfg, data_preprocessor=preprocessor,
                default_scope='mmpretrain')).dump(cfg_path)
    torch.manual_seed(seed)
    model = CLS_MODELS.build(dict(model_cfg, data_preprocessor=preprocessor))
    model.init_weights()
    with torch.no_grad():  # make BN statistics non-trivial
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    ckpt = str(tmp_path / f'{name}.pth')
    save_checkpoint(model.state_dict(), ckpt)
    model.eval()
    return cfg_path, ckpt, model


def _batch(n=5, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def _member_prob(model, inputs):
    data = model.data_preprocessor(dict(inputs=inputs), False)
    return torch.stack([p.pred_prob for p in model.predict(data['inputs'])])


@pytest.fixture
def members(tmp_path):
    a = _write_member(tmp_path, 'member_a', _model_cfg(IMAGENET), seed=1)
    b = _write_member(tmp_path, 'member_b', _model_cfg(HALF, widths=(6, 12)), seed=2)
    return a, b


def test_weighted_average_with_own_preprocessors(members):
    (cfg_a, ckpt_a, model_a), (cfg_b, ckpt_b, model_b) = members
    ens = CLS_MODELS.build(
        dict(type='EnsembleClassifier', threshold=0.3,
             members=[dict(config=cfg_a, checkpoint=ckpt_a, weight=3),
                      dict(config=cfg_b, checkpoint=ckpt_b)]))
    assert isinstance(ens, EnsembleClassifier)
    assert ens.member_names == ['member_a', 'member_b']
    ens.eval()
    inputs = _batch()
    p_a, p_b = _member_prob(model_a, inputs), _member_prob(model_b, inputs)
    assert not torch.allclose(p_a, p_b)  # different models, different normalisations
    samples = [DataSample().set_gt_label(i % 2) for i in range(5)]
    with torch.no_grad():
        out = ens.test_step(dict(inputs=list(inputs), data_samples=samples))
    assert [o.gt_label.item() for o in out] == [0, 1, 0, 1, 0]  # the batch's samples, in order
    prob = torch.stack([o.pred_prob for o in out])
    torch.testing.assert_close(prob, (3 * p_a + p_b) / 4)
    torch.testing.assert_close(torch.stack([o.member_probs for o in out]),
                               torch.stack([p_a, p_b], dim=1))
    for o, p in zip(out, prob):
        assert o.pred_label.item() == int(p > 0.3)
        s = o.pred_score[1]
        assert o.pred_score.shape == (2, ) and torch.isclose(o.pred_score.sum(), torch.tensor(1.))
        assert (s > 0.5) == (p > 0.3)  # score re-mapped to cross 0.5 at the threshold
        expected = p / 0.6 if p <= 0.3 else 0.5 + (p - 0.3) / 1.4
        assert s.item() == pytest.approx(expected.item(), abs=1e-6)
    # 'tensor' mode: the (N, M) member probabilities
    with torch.no_grad():
        torch.testing.assert_close(ens(inputs, mode='tensor'), torch.stack([p_a, p_b], 1))


def test_input_size_resizes_the_normalised_batch(members):
    (cfg_a, ckpt_a, model_a), _ = members
    ens = EnsembleClassifier(members=[dict(config=cfg_a, checkpoint=ckpt_a, input_size=16)])
    ens.eval()
    inputs = _batch(size=24)
    data = model_a.data_preprocessor(dict(inputs=inputs), False)
    x = F.interpolate(data['inputs'], size=(16, 16), mode='bilinear', align_corners=False)
    expected = torch.stack([p.pred_prob for p in model_a.predict(x)])
    with torch.no_grad():
        out = ens.predict(inputs)
    torch.testing.assert_close(torch.stack([o.pred_prob for o in out]), expected)


def test_softmax_member_uses_class_1_score(tmp_path, members):
    (cfg_a, ckpt_a, model_a), _ = members
    cfg_s, ckpt_s, model_s = _write_member(
        tmp_path, 'softmax', _model_cfg(IMAGENET, head=dict(type='LinearClsHead', num_classes=2,
                                                             in_channels=8)), seed=3)
    ens = EnsembleClassifier(members=[dict(config=cfg_a, checkpoint=ckpt_a),
                                      dict(config=cfg_s, checkpoint=ckpt_s)])
    ens.eval()
    inputs = _batch()
    data = model_s.data_preprocessor(dict(inputs=inputs), False)
    p_s = torch.stack([p.pred_score[1] for p in model_s.predict(data['inputs'])])
    with torch.no_grad():
        out = ens.predict(inputs)
    torch.testing.assert_close(torch.stack([o.pred_prob for o in out]),
                               (_member_prob(model_a, inputs) + p_s) / 2)


def test_runner_checkpoint_member_ensemble_or_error(tmp_path, members):
    (cfg_a, ckpt_a, _), (cfg_b, ckpt_b, model_b) = members
    entries = [dict(config=cfg_a, checkpoint=ckpt_a), dict(config=cfg_b, checkpoint=ckpt_b)]
    ens = EnsembleClassifier(members=entries)
    before = {k: v.clone() for k, v in ens.state_dict().items()}
    # a member's own checkpoint (what tools/test.py gets as CHECKPOINT): accepted, no change
    load_checkpoint(ens, ckpt_b, strict=True)
    after = ens.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # a single model that is none of the members: refused
    _, other, _ = _write_member(tmp_path, 'other', _model_cfg(HALF, widths=(6, 12)), seed=9)
    with pytest.raises(RuntimeError, match='matches none of the loaded members'):
        load_checkpoint(ens, other)

    # an ensemble checkpoint fills members that have no checkpoint of their own
    ens_ckpt = str(tmp_path / 'ensemble.pth')
    save_checkpoint(ens.state_dict(), ens_ckpt)
    empty = EnsembleClassifier(members=[dict(config=cfg_a), dict(config=cfg_b)])
    empty.eval()
    with pytest.raises(RuntimeError, match='no weights'):
        empty.predict(_batch())
    with pytest.raises(RuntimeError, match='members 0 .*have no checkpoint'):
        load_checkpoint(empty, ckpt_a)  # a single model cannot fill an empty ensemble
    load_checkpoint(empty, ens_ckpt, strict=True)
    ens.eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.stack([o.pred_prob for o in empty.predict(_batch())]),
                                   torch.stack([o.pred_prob for o in ens.predict(_batch())]))


def test_model_config_dict_member_and_init_weights_noop(members):
    (_, ckpt_a, model_a), _ = members
    ens = EnsembleClassifier(members=[dict(config=_model_cfg(IMAGENET), checkpoint=ckpt_a,
                                           name='a')])
    ens.init_weights()  # must not re-initialise the loaded member
    ens.eval()
    inputs = _batch()
    with torch.no_grad():
        out = ens.predict(inputs)
    torch.testing.assert_close(torch.stack([o.pred_prob for o in out]),
                               _member_prob(model_a, inputs))
    assert ens.member_names == ['a']


def test_errors(tmp_path, members):
    (cfg_a, ckpt_a, _), (cfg_b, ckpt_b, _) = members
    with pytest.raises(ValueError, match='non-empty list'):
        EnsembleClassifier(members=[])
    with pytest.raises(FileNotFoundError, match='fileDirname'):
        EnsembleClassifier(members=[dict(config=str(tmp_path / 'missing.py'))])
    with pytest.raises(FileNotFoundError, match=r'model.members.0.checkpoint'):
        EnsembleClassifier(members=[dict(config=cfg_a, checkpoint=str(tmp_path / 'no.pth'))])
    with pytest.raises(ValueError, match='weight'):
        EnsembleClassifier(members=[dict(config=cfg_a, checkpoint=ckpt_a, weight=0)])
    with pytest.raises(ValueError, match='unknown keys'):
        EnsembleClassifier(members=[dict(config=cfg_a, ckpt=ckpt_a)])
    with pytest.raises(ValueError, match='threshold'):
        EnsembleClassifier(members=[dict(config=cfg_a, checkpoint=ckpt_a)], threshold=1.0)
    # a checkpoint of another architecture does not load (strict)
    with pytest.raises(RuntimeError):
        EnsembleClassifier(members=[dict(config=cfg_a, checkpoint=ckpt_b)])
    ens = EnsembleClassifier(members=[dict(config=cfg_a, checkpoint=ckpt_a)])
    with pytest.raises(NotImplementedError, match='testing only'):
        ens(_batch().float(), [DataSample().set_gt_label(0)] * 5, mode='loss')
    assert osp.isfile(cfg_b)
