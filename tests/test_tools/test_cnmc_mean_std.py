"""tools/analysis/cnmc_mean_std.py: mean/std after CropToCell + resize, printed as config."""
import glob
import os.path as osp
import re

import mmcv
import numpy as np
import pytest

from cnmc_release import make_synthetic_cnmc
from script_loader import load_script

TOOL = load_script('tools/analysis/cnmc_mean_std.py')
cnmc_mean_std = TOOL.cnmc_mean_std


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cnmc_stats') / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=40, num_folds=2, patients_per_fold=(1, 1),
                        cells_per_patient=3, seed=2)
    return root


def _by_hand(paths, size):
    pixels = []
    for p in paths:
        img = mmcv.imread(p)
        ys, xs = np.nonzero(img.max(axis=2))
        crop = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        side = max(crop.shape[:2])
        sq = np.zeros((side, side, 3), np.uint8)
        t, l = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
        sq[t:t + crop.shape[0], l:l + crop.shape[1]] = crop
        pixels.append(mmcv.imresize(sq, (size, size)).reshape(-1, 3).astype(np.float64))
    pixels = np.concatenate(pixels)[:, ::-1]  # RGB
    return pixels.mean(axis=0), pixels.std(axis=0)


def test_mean_std_matches_direct_computation(root):
    stats = cnmc_mean_std(root, folds=(1, ), size=16)
    paths = glob.glob(osp.join(root, 'training_data', 'fold_1', '*', '*.bmp'))
    mean, std = _by_hand(paths, 16)
    assert stats['num_images'] == 6 and stats['num_pixels'] == 6 * 16 * 16
    np.testing.assert_allclose(stats['mean'], mean, rtol=1e-9)
    np.testing.assert_allclose(stats['std'], std, rtol=1e-9)
    # RGB order: synthetic cells are violet-blue, blue above green
    assert stats['mean'][2] > stats['mean'][1]


def test_cli_prints_config_lines(root, capsys):
    stats = TOOL.main([root, '--size', '16', '--folds', '0', '1'])
    out = capsys.readouterr().out
    assert stats['num_images'] == 12
    mean = re.search(r'mean=\[([^\]]*)\]', out).group(1)
    std = re.search(r'std=\[([^\]]*)\]', out).group(1)
    np.testing.assert_allclose([float(v) for v in mean.split(',')], stats['mean'], atol=0.006)
    np.testing.assert_allclose([float(v) for v in std.split(',')], stats['std'], atol=0.006)
    assert 'to_rgb=True' in out and 'data_preprocessor = dict(' in out
    # the printed lines are valid Python config
    ns = {}
    exec('\n'.join(line for line in out.splitlines() if not line.startswith('#')), ns)
    assert ns['data_preprocessor']['to_rgb'] is True and len(ns['data_preprocessor']['std']) == 3
    # patient split: fewer images (the training side only)
    held = TOOL.main([root, '--size', '16', '--folds', '0', '1', '--patient-split-ratio', '0.5'])
    assert held['num_images'] == 6


def test_cli_writes_the_json_file(root, tmp_path):
    import json
    stats = TOOL.main([root, '--size', '16', '--folds', '1'])
    path = osp.join(root, 'mean_std.json')
    with open(path) as f:
        doc = json.load(f)
    assert doc['mean'] == stats['mean'] and doc['std'] == stats['std']
    assert doc['size'] == 16 and doc['num_images'] == 6 and doc['folds'] == [1]
    assert doc['command'] == f'python tools/analysis/cnmc_mean_std.py {root} --size 16 --folds 1'
    assert doc['patient_split'] is None
    # --out elsewhere; no temporary file left beside it
    out = tmp_path / 'sub' / 'stats.json'
    held = TOOL.main([root, '--size', '16', '--folds', '0', '1', '--patient-split-ratio', '0.5',
                      '--out', str(out)])
    doc = json.loads(out.read_text())
    assert doc['num_images'] == held['num_images']
    assert doc['patient_split'] == dict(ratio=0.5, subset='train', seed=0)
    assert [p.name for p in out.parent.iterdir()] == ['stats.json']
