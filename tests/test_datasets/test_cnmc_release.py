"""CNMCDataset on a generated release named and laid out like the real C-NMC 2019 one
(tests/cnmc_release.py): lower-case patient prefixes, PNG copies read with the official CSV,
numbered files past 10, stray files, planted duplicates; the errors say the fix once, with
its command-line form."""
import os
import os.path as osp

import pytest
from mmengine.logging import MMLogger

from cnmc_release import PRELIM, make_release, to_png
from script_loader import load_script
from mmbloodcell.datasets import CNMCDataError, CNMCDataset
from mmbloodcell.datasets.cnmc import canonical_patient_id, parse_cnmc_name


@pytest.fixture(scope='module')
def release(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('release') / 'C-NMC_Leukemia')
    planted = make_release(root)
    return dict(root=root, **planted)


@pytest.fixture(scope='module')
def png_release(release, tmp_path_factory):
    return to_png(release['root'], str(tmp_path_factory.mktemp('png') / 'C-NMC_Leukemia'))


class _Warnings:
    """MMLogger.warning calls of the code under test."""

    def __init__(self, monkeypatch):
        self.lines = []
        logger = MMLogger.get_current_instance()
        monkeypatch.setattr(logger, 'warning', lambda msg, *a, **k: self.lines.append(msg))

    def text(self) -> str:
        return '\n'.join(self.lines)


def _ds(**kwargs):
    kwargs.setdefault('serialize_data', False)
    return CNMCDataset(**kwargs)


def test_lower_case_patient_prefix_is_one_patient():
    assert parse_cnmc_name('UID_h3_1_1_hem.bmp') == dict(patient_id='H3', image_id='1',
                                                         cell_id='1', class_name='hem')
    assert parse_cnmc_name('UID_H3_2_1_hem.bmp')['patient_id'] == 'H3'
    assert parse_cnmc_name('uid_7_2_1_ALL.BMP')['class_name'] == 'all'
    assert canonical_patient_id('h12') == 'H12' == canonical_patient_id('H12')
    assert canonical_patient_id('12') == '12'


def test_release_loads_in_raise_mode(release):
    ds = _ds(data_root=release['root'], check_images=True)  # on_error='raise' (the default)
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    # 3 folds x 4 patients x 4 cells + the near and the exact copy; Thumbs.db is not a cell
    assert len(ds) == 50
    h3 = [d for d in infos if d['patient_id'] == 'H3']
    assert len(h3) == 4 and {d['file_name'][:7] for d in h3} == {'UID_h3_', 'UID_H3_'}
    assert 'h3' not in ds.metainfo['patients'] and ds.metainfo['patients'].count('H3') == 1
    assert all(d['patient_id'] == d['patient_id'].upper() for d in infos)


def test_prelim_csv_with_lower_case_patient(release):
    ds = _ds(data_root=release['root'], split='prelim_test')
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(ds) == 16
    lower = [d for d in infos if d['original_name'].startswith('UID_h')]
    assert len(lower) == 1 and lower[0]['patient_id'].startswith('H')
    assert {d['file_name'] for d in infos} == {f'{n}.bmp' for n in range(1, 17)}


def test_patient_split_keeps_h3_on_one_side(release):
    sides = {}
    for subset in ('train', 'val'):
        ds = _ds(data_root=release['root'], patient_split=dict(ratio=0.5, subset=subset))
        sides[subset] = set(ds.get_patient_ids())
    assert not sides['train'] & sides['val']
    assert 'H3' in sides['train'] | sides['val']


def test_stray_file_is_named(release, monkeypatch):
    log = _Warnings(monkeypatch)
    _ds(data_root=release['root'])
    assert 'Thumbs.db' in log.text() and 'not *.bmp' in log.text()


def test_png_copies_read_with_the_official_csv(release, png_release):
    csv_path = osp.join(png_release, 'validation_data',
                        'C-NMC_test_prelim_phase_data_labels.csv')
    with open(csv_path) as f:
        assert '.bmp' in f.read()  # the official CSV, unchanged
    prelim = _ds(data_root=png_release, split='prelim_test', img_suffix='.png')
    bmp = _ds(data_root=release['root'], split='prelim_test')
    assert len(prelim) == len(bmp) == 16
    for i in range(16):
        a, b = prelim.get_data_info(i), bmp.get_data_info(i)
        assert a['file_name'] == b['file_name'][:-4] + '.png' and osp.isfile(a['img_path'])
        assert (a['gt_label'], a['patient_id']) == (b['gt_label'], b['patient_id'])
    train = _ds(data_root=png_release, img_suffix='.png')
    assert len(train) == 50


def test_all_png_fold_error_names_img_suffix(png_release):
    with pytest.raises(CNMCDataError) as err:
        _ds(data_root=png_release)
    msg = str(err.value)
    assert "img_suffix='.png'" in msg and '*.png' in msg
    assert '--cfg-options train_dataloader.dataset.img_suffix=.png' in msg
    with pytest.raises(CNMCDataError, match=r"img_suffix='\.png'"):
        _ds(data_root=png_release, split='final_test')
    # the prelim images are missing as .bmp: the error points at the PNG copies
    with pytest.raises(CNMCDataError, match=r"holds 1\.png.*img_suffix='\.png'"):
        _ds(data_root=png_release, split='prelim_test')


@pytest.fixture
def bad_name_root(release, tmp_path):
    import shutil
    root = str(tmp_path / 'C-NMC_Leukemia')
    shutil.copytree(release['root'], root)
    hem = osp.join(root, 'training_data', 'fold_0', 'hem')
    name = sorted(os.listdir(hem))[0]
    os.rename(osp.join(hem, name), osp.join(hem, 'UID_x3_1_1_hem.bmp'))
    return root


def test_really_wrong_name_raises_with_one_hint(bad_name_root):
    with pytest.raises(CNMCDataError) as err:
        _ds(data_root=bad_name_root)
    msg = str(err.value)
    assert 'UID_x3_1_1_hem.bmp: cannot parse the C-NMC file name' in msg
    assert msg.count('rename the file') == 1
    assert msg.count('to drop such items instead') == 1
    assert ('--cfg-options train_dataloader.dataset.on_error=skip '
            'val_dataloader.dataset.on_error=skip test_dataloader.dataset.on_error=skip') in msg


def test_skip_mode_warning_gives_no_skip_advice(bad_name_root, monkeypatch):
    log = _Warnings(monkeypatch)
    ds = _ds(data_root=bad_name_root, on_error='skip')
    assert ds.skip_counts == {'unparseable_name': 1} and len(ds) == 49
    skipped = [line for line in log.lines if 'skipping' in line]
    assert len(skipped) == 1 and 'UID_x3_1_1_hem.bmp' in skipped[0]
    assert 'on_error' not in skipped[0]


def test_numbered_final_files_in_number_order(release):
    ds = _ds(data_root=release['root'], split='final_test')
    assert [ds.get_data_info(i)['number'] for i in range(len(ds))] == list(range(1, 17))


def test_prelim_holds_numbers_past_ten(release):
    names = os.listdir(osp.join(release['root'], PRELIM))
    assert {'10.bmp', '16.bmp', '2.bmp'} <= set(names)


def test_statistics_tools_read_the_release(release):
    """cnmc_mean_std.py stopped at start-up on the release's lower-case names."""
    from cnmc_release import cnmc_stain_reference
    stats = load_script('tools/analysis/cnmc_mean_std.py').cnmc_mean_std(release['root'], size=32)
    assert stats['num_images'] == 50 and len(stats['mean']) == 3
    ref = cnmc_stain_reference(release['root'], max_images=10)
    assert ref['num_images'] == 10 and len(ref['reinhard']['std']) == 3
