"""tools/dataset_converters/make_synthetic_cnmc.py: official layout, determinism, learnable."""
import csv
import glob
import hashlib
import os
import os.path as osp

import mmcv
import numpy as np
import pytest

from mmbloodcell.datasets import CNMCDataset
from script_loader import load_script


def _load_tool():
    return load_script('tools/dataset_converters/make_synthetic_cnmc.py')


_TOOL = _load_tool()
make_synthetic_cnmc, draw_synthetic_cell = _TOOL.make_synthetic_cnmc, _TOOL.draw_synthetic_cell


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(glob.glob(osp.join(root, '**', '*'), recursive=True)):
        if osp.isfile(path):
            h.update(osp.relpath(path, root).encode())
            h.update(open(path, 'rb').read())
    return h.hexdigest()


def test_cli_writes_official_layout(tmp_path, capsys):
    out = str(tmp_path / 'C-NMC_Leukemia')
    counts = _load_tool().main([out, '--img-size', '24', '--folds', '2', '--patients-per-fold',
                                '2', '1', '--cells-per-patient', '3', '--prelim-patients', '1',
                                '2', '--final-patients', '2', '2', '--seed', '5'])
    assert counts == dict(train_all=12, train_hem=6, prelim=9, final=12)
    assert 'train_all 12' in capsys.readouterr().out
    assert sorted(os.listdir(osp.join(out, 'training_data'))) == ['fold_0', 'fold_1']
    for fold in ('fold_0', 'fold_1'):
        names = os.listdir(osp.join(out, 'training_data', fold, 'all'))
        assert len(names) == 6 and all(n.startswith('UID_') and n.endswith('_all.bmp')
                                       for n in names)
        hem = os.listdir(osp.join(out, 'training_data', fold, 'hem'))
        assert len(hem) == 3 and all(n.startswith('UID_H') for n in hem)
    prelim = osp.join(out, 'validation_data', 'C-NMC_test_prelim_phase_data')
    assert sorted(os.listdir(prelim), key=lambda n: int(n[:-4])) == [f'{i}.bmp'
                                                                     for i in range(1, 10)]
    with open(prelim + '_labels.csv') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['Patient_ID', 'new_names', 'labels'] and len(rows) == 10
    assert sorted(r[2] for r in rows[1:]) == ['0'] * 6 + ['1'] * 3
    final = osp.join(out, 'testing_data', 'C-NMC_test_final_phase_data')
    assert len(os.listdir(final)) == 12
    img = mmcv.imread(osp.join(final, '1.bmp'), flag='unchanged')
    assert img.shape == (24, 24, 3) and img.dtype == np.uint8
    # the dataset reads every split
    assert len(CNMCDataset(data_root=out, folds=(0, 1), serialize_data=False)) == 18
    assert len(CNMCDataset(data_root=out, split='prelim_test', serialize_data=False)) == 9
    assert len(CNMCDataset(data_root=out, split='final_test', serialize_data=False)) == 12
    # patients are disjoint between folds and splits
    sets = [set(CNMCDataset(data_root=out, folds=(k, ), serialize_data=False).get_patient_ids())
            for k in (0, 1)]
    sets.append(set(CNMCDataset(data_root=out, split='prelim_test',
                                serialize_data=False).get_patient_ids()))
    assert sum(len(s) for s in sets) == len(set.union(*sets)) == 3 + 3 + 3


def test_deterministic_bytes(tmp_path):
    kwargs = dict(img_size=20, num_folds=1, cells_per_patient=2)
    make_synthetic_cnmc(str(tmp_path / 'a'), seed=1, **kwargs)
    make_synthetic_cnmc(str(tmp_path / 'b'), seed=1, **kwargs)
    make_synthetic_cnmc(str(tmp_path / 'c'), seed=2, **kwargs)
    assert _digest(str(tmp_path / 'a')) == _digest(str(tmp_path / 'b'))
    assert _digest(str(tmp_path / 'a')) != _digest(str(tmp_path / 'c'))


def test_cells_on_black_vary_and_differ_by_class():
    rng = np.random.default_rng(0)
    stats = {'all': [], 'hem': []}
    areas = []
    for cls in ('all', 'hem'):
        for _ in range(30):
            img = draw_synthetic_cell(rng, cls, 64)
            fg = img.max(axis=2) > 0
            # one cell, away from the border, on an exactly black background
            assert 0.05 < fg.mean() < 0.5
            assert not fg[0].any() and not fg[-1].any() and not fg[:, 0].any()
            assert img[fg].min() >= 8
            areas.append(fg.sum())
            b, g, r = img[fg].astype(float).mean(axis=0)
            stats[cls].append(r / b)  # red share: pink (hem) vs blue-violet (all)
    assert max(areas) > 1.5 * min(areas)
    # a single threshold on the red/blue ratio separates the classes: learnable
    assert max(stats['all']) < min(stats['hem'])
    with pytest.raises(ValueError, match='cls'):
        draw_synthetic_cell(rng, 'blast', 64)
    with pytest.raises(ValueError, match='img_size'):
        make_synthetic_cnmc('unused', img_size=8)
