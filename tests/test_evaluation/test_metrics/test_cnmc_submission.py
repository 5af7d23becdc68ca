"""The C-NMC final test end to end: CNMCDataset(labels_optional) -> the configs' PackInputs ->
BinaryClassificationMetric(submission_file): scored when labelled, the submission either way,
packed by tools/analysis/cnmc_submission_zip.py."""
import os
import os.path as osp
import zipfile

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

import mmbloodcell  # noqa: F401
from cnmc_release import make_synthetic_cnmc
from mmbloodcell.datasets import CNMCDataset
from mmbloodcell.datasets.cnmc import FINAL_LABELS_CSV
from script_loader import load_script

ZIP_TOOL = load_script('tools/analysis/cnmc_submission_zip.py')

CONFIG = osp.join(osp.dirname(__file__), '..', '..', '..', 'configs', '_base_', 'datasets',
                  'cnmc.py')


@pytest.fixture
def root(tmp_path):
    root = str(tmp_path / 'C-NMC_Leukemia')
    # 2 all + 2 hem final patients x 3 cells: 12 numbered images, 10.bmp after 9.bmp
    make_synthetic_cnmc(root, img_size=16, num_folds=1, patients_per_fold=(1, 1),
                        cells_per_patient=3, prelim_patients=(1, 1), final_patients=(2, 2),
                        seed=4)
    return root


def _predict(root, tmp_path):
    """Evaluate a fake model that calls every odd-numbered image ``all``; returns the metrics,
    the submission lines, the zip's member lines and the numbers in dataset order."""
    meta_keys = Config.fromfile(CONFIG).meta_keys
    assert 'number' in meta_keys
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ds = CNMCDataset(data_root=root, split='final_test', test_mode=True,
                         subdirs=dict(final_csv=FINAL_LABELS_CSV), labels_optional=True,
                         pipeline=[dict(type='LoadImageFromFile'),
                                   dict(type='PackInputs', meta_keys=meta_keys)])
        out = str(tmp_path / 'work' / 'binary_metrics.json')
        evaluator = Evaluator(dict(type='BinaryClassificationMetric', out_file=out,
                                   submission_file='isbi_valid.predict'))
        samples = []
        for i in reversed(range(len(ds))):  # any order: the file follows the numbers
            sample = ds[i]['data_samples']
            p = 0.8 if sample.number % 2 else 0.3
            sample.set_pred_score(torch.tensor([1 - p, p])).set_pred_label(int(p > 0.5))
            samples.append(sample)
        evaluator.process(samples[:5])
        evaluator.process(samples[5:])
        metrics = evaluator.evaluate(len(ds))
    folder = osp.dirname(out)
    with open(osp.join(folder, 'isbi_valid.predict')) as f:
        lines = f.read().splitlines()
    assert not osp.exists(osp.join(folder, 'submission.zip'))
    zip_path = ZIP_TOOL.main([osp.join(folder, 'isbi_valid.predict')])
    assert zip_path == osp.join(folder, 'submission.zip')
    with zipfile.ZipFile(zip_path) as z:
        assert z.namelist() == ['isbi_valid.predict']
        zipped = z.read('isbi_valid.predict').decode().splitlines()
    return metrics, lines, zipped, [ds.get_data_info(i)['number'] for i in range(len(ds))]


def test_labelled_final_set_is_scored_and_submitted(root, tmp_path):
    metrics, lines, zipped, numbers = _predict(root, tmp_path)
    assert numbers == list(range(1, 13))
    assert lines == zipped == [str(n % 2) for n in range(1, 13)]
    assert 'binary/weighted_f1' in metrics and 'binary/num_patients' in metrics
    assert metrics['binary/num_patients'] == 4.0


def test_unlabelled_final_set_gives_counts_and_the_submission(root, tmp_path):
    os.remove(osp.join(root, FINAL_LABELS_CSV))
    metrics, lines, zipped, numbers = _predict(root, tmp_path)
    assert numbers == list(range(1, 13))
    assert lines == zipped == [str(n % 2) for n in range(1, 13)]
    assert metrics == {'binary/num_samples': 12.0, 'binary/num_predicted_all': 6.0,
                       'binary/num_predicted_hem': 6.0}


def test_zip_tool_checks_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='test_evaluator.submission_file'):
        ZIP_TOOL.main([str(tmp_path / 'none.predict')])
    bad = tmp_path / 'bad.predict'
    bad.write_text('1\n0\nall\n')
    with pytest.raises(ValueError, match="line 3: 'all' is not 0"):
        ZIP_TOOL.main([str(bad)])
    (tmp_path / 'empty.predict').write_text('')
    with pytest.raises(ValueError, match='empty'):
        ZIP_TOOL.main([str(tmp_path / 'empty.predict')])
    good = tmp_path / 'mine.predict'
    good.write_text('1\n0\n')
    out = ZIP_TOOL.main([str(good), '--out', str(tmp_path / 'z' / 'up.zip')])
    with zipfile.ZipFile(out) as z:
        assert z.namelist() == ['isbi_valid.predict']
        assert z.read('isbi_valid.predict') == b'1\n0\n'
