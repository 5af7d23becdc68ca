"""ClassBalancedOverSampler: ratio, determinism, rank splitting, use in a dataloader."""
from collections import Counter

import numpy as np
import pytest
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from cnmc_release import make_synthetic_cnmc
import mmbloodcell.datasets.samplers as samplers_mod
from mmbloodcell.datasets import ClassBalancedOverSampler, CNMCDataset
from mmbloodcell.registry import CLS_DATA_SAMPLERS


class LabelList:
    """The labels of a large dataset, without images (what the sampler reads)."""

    def __init__(self, labels):
        self.labels = np.asarray(labels)

    def __len__(self):
        return len(self.labels)

    def get_gt_labels(self):
        return self.labels


class NamedLabelList(LabelList):
    """A label list with the C-NMC classes in its metainfo."""
    metainfo = {'classes': ('hem', 'all')}


def _cnmc_counts(cls=LabelList):
    # C-NMC training folds: 3,389 hem (0) and 7,272 all (1), interleaved
    labels = np.r_[np.zeros(3389, int), np.ones(7272, int)]
    return cls(np.random.default_rng(0).permutation(labels))


FHL_FACTORS = dict(hem=10778 / 3389, all=9272 / 7272)


@pytest.fixture(scope='module')
def imbalanced_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cnmc_imb') / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=16, num_folds=1, patients_per_fold=(3, 1),
                        cells_per_patient=3, prelim_patients=(1, 1), final_patients=(1, 1))
    return root


@pytest.mark.parametrize('ratio,expected_hem', [(1.0, 7272), (0.5, 3636), (0.86, 6254),
                                                (0.3, 3389)])
def test_ratio_on_cnmc_counts(ratio, expected_hem):
    ds = _cnmc_counts()
    sampler = ClassBalancedOverSampler(ds, target_ratio=ratio, seed=0)
    idx = list(sampler)
    counts = Counter(ds.labels[idx].tolist())
    assert counts == {1: 7272, 0: expected_hem}
    assert len(idx) == len(sampler) == 7272 + expected_hem
    # every sample is drawn, the minority's copies differ by at most one
    per_index = Counter(idx)
    assert len(per_index) == len(ds)
    hem_copies = {per_index[i] for i in np.flatnonzero(ds.labels == 0)}
    assert max(hem_copies) - min(hem_copies) <= 1
    assert {per_index[i] for i in np.flatnonzero(ds.labels == 1)} == {1}


def test_deterministic_per_seed_and_epoch():
    ds = _cnmc_counts()
    a = ClassBalancedOverSampler(ds, target_ratio=0.8, seed=3)
    b = ClassBalancedOverSampler(ds, target_ratio=0.8, seed=3)
    assert list(a) == list(b)
    epoch0 = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) != epoch0
    # the extra minority draws change with the epoch too, not only the order
    assert Counter(list(a)) != Counter(epoch0)
    assert list(ClassBalancedOverSampler(ds, target_ratio=0.8, seed=4)) != epoch0


def test_no_shuffle_keeps_class_blocks():
    ds = LabelList([1, 1, 1, 1, 0, 1, 1, 0])
    idx = list(ClassBalancedOverSampler(ds, target_ratio=1.0, shuffle=False, seed=0))
    # class 0 first: its 2 samples, two whole copies, one more; then class 1 once
    assert idx[:6] == [4, 7, 4, 7, 4, 7] and idx[6:] == [0, 1, 2, 3, 5, 6]


@pytest.mark.parametrize('round_up', [True, False])
def test_rank_split(monkeypatch, round_up):
    ds = LabelList([0] * 5 + [1] * 12)  # epoch: 12 + 12 = 24 -> not divisible by 5
    world = 5
    full = ClassBalancedOverSampler(ds, seed=7, round_up=round_up)
    epoch = full.epoch_indices()
    parts = []
    for rank in range(world):
        monkeypatch.setattr(samplers_mod, 'get_dist_info', lambda r=rank: (r, world))
        s = ClassBalancedOverSampler(ds, seed=7, round_up=round_up)
        s.set_epoch(2)
        parts.append(list(s))
        assert len(parts[-1]) == len(s)
    full.set_epoch(2)
    epoch = full.epoch_indices()
    if round_up:
        assert all(len(p) == 5 for p in parts)  # ceil(24 / 5)
        padded = (epoch * 2)[:25]
    else:
        assert sorted(len(p) for p in parts) == [4, 5, 5, 5, 5]
        padded = epoch
    # interleaving the ranks' lists gives back the epoch's list, as in DefaultSampler
    merged = [parts[i % world][i // world] for i in range(len(padded))]
    assert merged == padded


@pytest.mark.parametrize('factors', [FHL_FACTORS, {0: 10778 / 3389, 1: 9272 / 7272},
                                     {'hem': 10778 / 3389, 1: 9272 / 7272}])
def test_repeat_factors_give_the_offline_augmented_counts(factors):
    ds = _cnmc_counts(NamedLabelList)
    sampler = ClassBalancedOverSampler(ds, repeat_factors=factors, seed=0)
    idx = list(sampler)
    assert len(idx) == len(sampler) == 20050
    assert Counter(ds.labels[idx].tolist()) == {0: 10778, 1: 9272}
    per_index = Counter(idx)
    # hem: factor 3.18 -> every cell 3 or 4 times; all: 1.275 -> once or twice
    assert {per_index[i] for i in np.flatnonzero(ds.labels == 0)} == {3, 4}
    assert {per_index[i] for i in np.flatnonzero(ds.labels == 1)} == {1, 2}
    assert sum(per_index[i] == 2 for i in np.flatnonzero(ds.labels == 1)) == 2000
    # the extra draws change with the epoch, the counts do not
    sampler.set_epoch(1)
    again = list(sampler)
    assert Counter(ds.labels[again].tolist()) == {0: 10778, 1: 9272}
    assert Counter(again) != per_index


def test_repeat_factor_below_one_is_a_subset():
    ds = NamedLabelList([0] * 10 + [1] * 40)
    idx = list(ClassBalancedOverSampler(ds, repeat_factors=dict(all=0.25), seed=1,
                                        shuffle=False))
    # hem keeps factor 1; all: 10 distinct samples of its 40
    assert idx[:10] == list(range(10))
    assert len(idx) == 20 and len(set(idx[10:])) == 10 and min(idx[10:]) >= 10


@pytest.mark.parametrize('round_up', [True, False])
def test_repeat_factors_rank_split(monkeypatch, round_up):
    ds = NamedLabelList([0] * 5 + [1] * 12)
    factors = dict(hem=2.5, all=0.5)  # round(12.5) = 12 hem (round half to even), 6 all
    world = 4
    parts = []
    for rank in range(world):
        monkeypatch.setattr(samplers_mod, 'get_dist_info', lambda r=rank: (r, world))
        s = ClassBalancedOverSampler(ds, seed=5, round_up=round_up, repeat_factors=factors)
        s.set_epoch(3)
        parts.append(list(s))
        assert len(parts[-1]) == len(s)
    monkeypatch.setattr(samplers_mod, 'get_dist_info', lambda: (0, 1))
    full = ClassBalancedOverSampler(ds, seed=5, round_up=round_up, repeat_factors=factors)
    full.set_epoch(3)
    epoch = full.epoch_indices()
    assert len(epoch) == 18 and Counter(ds.labels[epoch].tolist()) == {0: 12, 1: 6}
    padded = (epoch * 2)[:20] if round_up else epoch
    merged = [parts[i % world][i // world] for i in range(len(padded))]
    assert merged == padded


@pytest.mark.parametrize('kwargs,message', [
    (dict(repeat_factors=FHL_FACTORS, target_ratio=0.86), 'give one of them'),
    (dict(repeat_factors=dict(blast=2.0)), "class 'blast'.*hem, all"),
    (dict(repeat_factors=dict(hem=0)), r"repeat_factors\['hem'\]=0"),
    (dict(repeat_factors=dict(hem=-1.0)), 'finite number > 0'),
    (dict(repeat_factors=dict(hem=float('nan'))), 'finite number > 0'),
    (dict(repeat_factors={0: 2.0, 'hem': 3.0}), 'twice'),
    (dict(repeat_factors={}), 'expected a dict'),
    (dict(repeat_factors={1.5: 2.0}), 'neither a class name'),
])
def test_repeat_factors_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassBalancedOverSampler(NamedLabelList([0, 1, 1]), seed=0, **kwargs)


def test_repeat_factors_names_need_classes():
    with pytest.raises(ValueError, match='no classes: use class indices'):
        ClassBalancedOverSampler(LabelList([0, 1]), repeat_factors=dict(hem=2.0), seed=0)
    idx = list(ClassBalancedOverSampler(LabelList([0, 1]), repeat_factors={0: 2.0}, seed=0))
    assert sorted(idx) == [0, 0, 1]


def test_invalid_ratio():
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match='target_ratio'):
            ClassBalancedOverSampler(LabelList([0, 1]), target_ratio=bad, seed=0)


def test_on_cnmc_dataset_through_runner_dataloader(imbalanced_root):
    assert 'ClassBalancedOverSampler' in CLS_DATA_SAMPLERS.module_dict
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = Runner.build_dataloader(
            dict(batch_size=4, num_workers=0,
                 sampler=dict(type='ClassBalancedOverSampler', target_ratio=1.0, seed=0),
                 collate_fn=dict(type='default_collate'),
                 dataset=dict(type='CNMCDataset', data_root=imbalanced_root, folds=[0],
                              pipeline=[dict(type='LoadImageFromFile'),
                                        dict(type='PackInputs')])),
            seed=0)
    ds = loader.dataset
    assert isinstance(ds, CNMCDataset) and np.bincount(ds.get_gt_labels()).tolist() == [3, 9]
    labels = []
    for batch in loader:
        labels += [int(s.gt_label) for s in batch['data_samples']]
    assert len(labels) == 18 and Counter(labels) == {0: 9, 1: 9}
