"""StatsFileClsDataPreprocessor: mean/std from tools/analysis/cnmc_mean_std.py's JSON."""
import json

import pytest
import torch
from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor

import mmbloodcell  # noqa: F401
from cnmc_release import make_synthetic_cnmc
from mmbloodcell.models.data_preprocessors import StatsFileClsDataPreprocessor
from mmbloodcell.registry import CLS_MODELS
from script_loader import load_script

MEAN, STD = [120.5, 60.25, 200.0], [30.0, 15.5, 45.0]


def _write(path, **doc):
    path.write_text(json.dumps(doc))
    return str(path)


def test_normalises_with_the_file_values_in_rgb(tmp_path):
    stats = _write(tmp_path / 'mean_std.json', mean=MEAN, std=STD, size=224)
    pre = CLS_MODELS.build(dict(type='StatsFileClsDataPreprocessor', stats_file=stats))
    assert isinstance(pre, ClsDataPreprocessor) and pre.to_rgb
    assert pre.mean.flatten().tolist() == MEAN and pre.std.flatten().tolist() == STD
    bgr = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    out = pre(dict(inputs=list(bgr)))['inputs']
    rgb = bgr.flip(1).float()
    expected = (rgb - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, expected)


def test_on_the_tool_output(tmp_path):
    root = str(tmp_path / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=24, num_folds=1, patients_per_fold=(1, 1),
                        cells_per_patient=2, seed=1)
    stats = load_script('tools/analysis/cnmc_mean_std.py').main(
        [root, '--size', '8', '--folds', '0'])
    pre = StatsFileClsDataPreprocessor(stats_file=f'{root}/mean_std.json')
    torch.testing.assert_close(pre.mean.flatten(), torch.tensor(stats['mean']))
    torch.testing.assert_close(pre.std.flatten(), torch.tensor(stats['std']))


def test_missing_file_names_the_command(tmp_path):
    path = str(tmp_path / 'root' / 'mean_std.json')
    with pytest.raises(FileNotFoundError, match=r'python tools/analysis/cnmc_mean_std\.py '
                       + str(tmp_path / 'root') + ' --out ' + path):
        StatsFileClsDataPreprocessor(stats_file=path)


@pytest.mark.parametrize('doc,message', [
    (dict(mean=MEAN[:2], std=STD), 'mean='),
    (dict(mean=MEAN, std=[1.0, 0.0, 1.0]), 'each > 0'),
    (dict(mean=MEAN), 'std=None'),
    (dict(mean=['a', 'b', 'c'], std=STD), 'mean='),
])
def test_bad_file(tmp_path, doc, message):
    with pytest.raises(ValueError, match=message):
        StatsFileClsDataPreprocessor(stats_file=_write(tmp_path / 's.json', **doc))


def test_bad_json_and_fixed_values(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{mean')
    with pytest.raises(ValueError, match='not valid JSON.*cnmc_mean_std.py'):
        StatsFileClsDataPreprocessor(stats_file=str(bad))
    good = _write(tmp_path / 'good.json', mean=MEAN, std=STD)
    with pytest.raises(ValueError, match='mean given beside stats_file'):
        StatsFileClsDataPreprocessor(stats_file=good, mean=[0, 0, 0])
