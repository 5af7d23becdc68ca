"""Duplicate cells across patients and splits: the search, the tool, and the patient split
that keeps a duplicate's patients on one side."""
import csv
import glob
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest

from cnmc_release import make_release
from script_loader import load_script
from mmbloodcell.datasets import CNMCDataset
from mmbloodcell.datasets.cnmc import split_patients
from mmbloodcell.datasets.duplicates import (PAIR_FIELDS, duplicate_groups, find_duplicates,
                                             read_duplicate_pairs)


@pytest.fixture(scope='module')
def release(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('dup') / 'C-NMC_Leukemia')
    return dict(root=root, **make_release(root))


def _rel(root, path):
    return osp.relpath(path, root)


def test_find_duplicates_finds_the_planted_pairs_only(release):
    root = release['root']
    paths = sorted(glob.glob(osp.join(root, '**', '*.bmp'), recursive=True))
    pairs = find_duplicates(paths)
    found = {(frozenset((_rel(root, paths[p['i']]), _rel(root, paths[p['j']]))), p['kind'])
             for p in pairs}
    want = {(frozenset(_rel(root, x) for x in release[key]), kind)
            for key, kind in (('near', 'near'), ('exact', 'exact'), ('cross_split', 'exact'))}
    assert found == want
    near = next(p for p in pairs if p['kind'] == 'near')
    assert 0 < near['distance'] < 0.01 and near['mean_abs_diff'] < 0.01


def test_real_cells_are_no_duplicates_their_copies_are(cnmc_samples_root, tmp_path):
    real = sorted(glob.glob(osp.join(cnmc_samples_root, '*', '*.bmp')))
    copy = str(tmp_path / 'copy.bmp')
    shutil.copyfile(real[0], copy)
    noisy = cv2.imread(real[1]).astype(int)
    noisy = np.where(noisy > 0, np.clip(noisy + 2, 1, 255), 0).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'noisy.bmp'), noisy)
    pairs = find_duplicates(real + [copy, str(tmp_path / 'noisy.bmp')])
    assert [(p['i'], p['j'], p['kind']) for p in pairs] == [(0, 6, 'exact'), (1, 7, 'near')]


def test_duplicate_groups_are_connected_components():
    groups = duplicate_groups([('5', 'H2'), ('H2', '9'), ('3', '4')])
    assert groups == {'5': '5', 'H2': '5', '9': '5', '3': '3', '4': '3'}


def test_tool_writes_pairs_per_split_and_a_contact_sheet(release, tmp_path):
    tool = load_script('tools/analysis/cnmc_duplicates.py')
    out = str(tmp_path / 'out')
    rows, summary = tool.main([release['root'], '--out-dir', out])
    assert summary['pairs'] == 3 and summary['cross_patient'] == 3
    assert summary['num_images'] == 50 + 16 + 16
    with open(osp.join(out, 'duplicates.csv')) as f:
        written = list(csv.DictReader(f))
    assert tuple(written[0]) == PAIR_FIELDS and len(written) == 3
    cross = [r for r in written if 'prelim' in (r['split_a'], r['split_b'])]
    assert len(cross) == 1 and cross[0]['patient_a'] == '2'
    assert written.index(cross[0]) == 0  # pairs across splits come first
    sides = {r['split_a'] for r in written} | {r['split_b'] for r in written}
    assert sides <= {'train', 'val', 'prelim', 'final'}
    sheet = cv2.imread(osp.join(out, 'duplicates.png'))
    assert sheet is not None and sheet.shape[0] >= 3 * 96
    assert read_duplicate_pairs(osp.join(out, 'duplicates.csv'))[0]['path_a'] == \
        written[0]['path_a']


def test_split_patients_without_groups_is_unchanged():
    patients = ['1', '1', '2', '3', 'H1', 'H2', 'H3', 'H4']
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    for seed in range(5):
        assert split_patients(patients, labels, 0.5, seed) == \
            split_patients(patients, labels, 0.5, seed, groups={})


def _sides(root, seed, group):
    split = dict(ratio=0.5, seed=seed, group_duplicates=group)
    out = {}
    for subset in ('train', 'val'):
        ds = CNMCDataset(data_root=root, patient_split=dict(split, subset=subset),
                         serialize_data=False)
        out[subset] = set(ds.get_patient_ids())
    return out


def test_group_duplicates_keeps_a_duplicate_on_one_side(release, tmp_path):
    root = release['root']
    # a seed whose plain patient split puts the near copy's patients (1 and 3) apart
    seed = next(s for s in range(50) if len({'1', '3'} & _sides(root, s, False)['train']) == 1)
    grouped = _sides(root, seed, True)
    assert not grouped['train'] & grouped['val']
    assert {'1', '3'} <= grouped['train'] or {'1', '3'} <= grouped['val']
    assert {'H1', 'H5'} <= grouped['train'] or {'H1', 'H5'} <= grouped['val']
    # both sides still hold both classes
    for side in grouped.values():
        assert any(p.startswith('H') for p in side) and any(not p.startswith('H') for p in side)
    # the tool's CSV gives the same split without decoding at start-up
    tool = load_script('tools/analysis/cnmc_duplicates.py')
    tool.main([root, '--out-dir', str(tmp_path)])
    assert _sides(root, seed, str(tmp_path / 'duplicates.csv')) == grouped


def test_group_duplicates_bad_values(release):
    with pytest.raises(ValueError, match='group_duplicates'):
        CNMCDataset(data_root=release['root'], patient_split=dict(group_duplicates=3))
    with pytest.raises(FileNotFoundError, match='cnmc_duplicates.py'):
        CNMCDataset(data_root=release['root'], serialize_data=False,
                    patient_split=dict(group_duplicates='missing/pairs.csv'))
