"""CNMCDataset: official layout, patient-wise splits and every bad-input case."""
import glob
import logging
import os
import os.path as osp
import shutil

import mmcv
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from cnmc_release import make_synthetic_cnmc
from mmbloodcell.datasets import CNMCDataError, CNMCDataset
from mmbloodcell.datasets.cnmc import parse_cnmc_name, patient_folds, split_patients
from mmbloodcell.datasets.image_checks import check_image_file
from mmbloodcell.registry import CLS_DATASETS

PRELIM = 'validation_data/C-NMC_test_prelim_phase_data'
PRELIM_CSV = 'validation_data/C-NMC_test_prelim_phase_data_labels.csv'
FINAL = 'testing_data/C-NMC_test_final_phase_data'


@pytest.fixture(scope='module')
def cnmc_root(tmp_path_factory):
    """Read-only synthetic root: 3 folds x (2 all + 2 hem) patients x 3 cells, 32x32."""
    root = str(tmp_path_factory.mktemp('cnmc') / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=32, patients_per_fold=(2, 2), cells_per_patient=3,
                        prelim_patients=(2, 1), final_patients=(1, 1), seed=3)
    return root


@pytest.fixture
def cnmc_copy(cnmc_root, tmp_path):
    """A writable copy, for the tests that damage the data."""
    dst = str(tmp_path / 'root')
    shutil.copytree(cnmc_root, dst)
    return dst


def _ds(**kwargs):
    # mmengine's serialisation runs gc.collect() (~0.2 s); the pipeline tests keep it on
    kwargs.setdefault('serialize_data', False)
    return CNMCDataset(**kwargs)


def _infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


# ---------------------------------------------------------------- layout parsing
def test_parse_cnmc_name():
    assert parse_cnmc_name('UID_1_3_1_all.bmp') == dict(patient_id='1', image_id='3',
                                                        cell_id='1', class_name='all')
    assert parse_cnmc_name('/x/UID_H6_14_1_hem.bmp')['patient_id'] == 'H6'
    for bad in ('UID_1_3_all.bmp', 'img_1_3_1_all.bmp', 'UID_1_3_1_ALLX.bmp', 'UID_H1_3_1_all.bmp',
                'UID_1_3_1_hem.bmp', 'UID_1_3_1_all.png'):
        with pytest.raises(CNMCDataError, match='UID_<patient>_<image>_<cell>_all.bmp'):
            parse_cnmc_name(bad)


def test_train_all_folds(cnmc_root):
    ds = _ds(data_root=cnmc_root)
    infos = _infos(ds)
    assert len(ds) == 3 * 4 * 3
    assert ds.metainfo['classes'] == ('hem', 'all')
    assert {d['fold'] for d in infos} == {0, 1, 2}
    for d in infos:
        folder = osp.basename(osp.dirname(d['img_path']))
        assert d['gt_label'] == ('hem', 'all').index(folder)
        assert d['patient_id'].startswith('H') == (d['gt_label'] == 0)
        assert d['file_name'] == f"UID_{d['patient_id']}_{d['image_id']}_{d['cell_id']}_" \
                                 f'{folder}.bmp'
        assert f"fold_{d['fold']}" in d['img_path']
    assert ds.metainfo['patients'] == ('1', '2', '3', '4', '5', '6', 'H1', 'H2', 'H3', 'H4',
                                       'H5', 'H6')
    assert np.bincount(ds.get_gt_labels()).tolist() == [18, 18]
    assert ds.get_patient_ids()[0] == infos[0]['patient_id']


@pytest.mark.parametrize('folds', [(0, ), (1, 2), 2])
def test_train_fold_subset(cnmc_root, folds):
    ds = _ds(data_root=cnmc_root, folds=folds)
    expected = {folds} if isinstance(folds, int) else set(folds)
    assert {d['fold'] for d in _infos(ds)} == expected
    assert len(ds) == 12 * len(expected)
    # synthetic folds hold disjoint patients, as the official ones do
    assert len(ds.metainfo['patients']) == 4 * len(expected)


def test_built_from_registry_with_custom_subdirs(cnmc_root, tmp_path):
    root = tmp_path / 'renamed'
    shutil.copytree(osp.join(cnmc_root, 'training_data', 'fold_1'), root / 'train' / 'f1')
    ds = CLS_DATASETS.build(
        dict(type='CNMCDataset', data_root=str(root), folds=[1],
             subdirs=dict(train='train', fold='f{fold}')))
    assert len(ds) == 12
    with pytest.raises(ValueError, match='unknown subdirs keys'):
        _ds(data_root=str(root), subdirs=dict(folds='x'))


def test_prelim_test_reads_csv(cnmc_root):
    ds = _ds(data_root=cnmc_root, split='prelim_test')
    infos = _infos(ds)
    assert len(ds) == 9
    assert [d['number'] for d in infos] == list(range(1, 10))
    for d in infos:
        assert osp.isfile(d['img_path']) and d['fold'] == -1
        # the label comes from the CSV and agrees with the original name
        assert d['original_name'].endswith(('_hem.bmp', '_all.bmp')[d['gt_label']])
        assert d['original_name'].startswith(f"UID_{d['patient_id']}_{d['image_id']}_")
    assert np.bincount(ds.get_gt_labels()).tolist() == [3, 6]
    assert set(ds.metainfo['patients']).isdisjoint(
        _ds(data_root=cnmc_root).metainfo['patients'])


def test_final_test_is_unlabelled(cnmc_root):
    ds = _ds(data_root=cnmc_root, split='final_test', test_mode=True)
    infos = _infos(ds)
    assert len(ds) == 6
    assert [d['number'] for d in infos] == list(range(1, 7))
    assert all('gt_label' not in d and d['patient_id'] is None for d in infos)
    with pytest.raises(CNMCDataError, match='unlabelled'):
        ds.get_gt_labels()
    labelled = _ds(data_root=cnmc_root, split='final_test',
                           subdirs=dict(final_csv=FINAL + '_labels.csv'))
    assert len(labelled) == 6 and set(labelled.get_gt_labels().tolist()) == {0, 1}


def test_final_labels_optional(cnmc_copy):
    from mmbloodcell.datasets.cnmc import FINAL_LABELS_CSV
    assert FINAL_LABELS_CSV == FINAL + '_labels.csv'
    kwargs = dict(data_root=cnmc_copy, split='final_test',
                  subdirs=dict(final_csv=FINAL_LABELS_CSV), labels_optional=True)
    labelled = _ds(**kwargs)
    infos = _infos(labelled)
    assert len(labelled) == 6 and set(labelled.get_gt_labels().tolist()) == {0, 1}
    assert [d['number'] for d in infos] == list(range(1, 7))
    assert all(d['patient_id'] is not None for d in infos)
    os.remove(osp.join(cnmc_copy, FINAL_LABELS_CSV))
    # without labels_optional a missing CSV is an error that names the option
    with pytest.raises(CNMCDataError, match='set labels_optional=True'):
        _ds(**{**kwargs, 'labels_optional': False})
    logger = MMLogger.get_current_instance()
    messages = []

    class Keep(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    keep = Keep(level=logging.INFO)
    logger.addHandler(keep)
    try:
        unlabelled = _ds(**kwargs)
    finally:
        logger.removeHandler(keep)
    infos = _infos(unlabelled)
    assert len(unlabelled) == 6 and all('gt_label' not in d for d in infos)
    assert [d['number'] for d in infos] == list(range(1, 7))
    found = [m for m in messages if FINAL_LABELS_CSV in m]
    assert len(found) == 1 and 'unlabelled' in found[0]
    # the prelim CSV stays required
    os.remove(osp.join(cnmc_copy, PRELIM_CSV))
    with pytest.raises(CNMCDataError, match='not found'):
        _ds(data_root=cnmc_copy, split='prelim_test', labels_optional=True)


# ---------------------------------------------------------------- patient-wise split
def test_patient_split_disjoint_stratified_deterministic(cnmc_root):
    def side(subset, seed):
        return _ds(data_root=cnmc_root,
                           patient_split=dict(ratio=0.7, subset=subset, seed=seed))

    full = _ds(data_root=cnmc_root)
    for seed in range(5):
        train, val = side('train', seed), side('val', seed)
        tp, vp = set(train.get_patient_ids()), set(val.get_patient_ids())
        assert tp.isdisjoint(vp)
        assert len(train) + len(val) == len(full)
        assert tp | vp == set(full.get_patient_ids())
        # stratified: 6 patients per class -> round(0.7 * 6) = 4 train, 2 val per class
        assert sorted(p.startswith('H') for p in tp) == [False] * 4 + [True] * 4
        assert set(train.get_gt_labels()) == set(val.get_gt_labels()) == {0, 1}
        assert train.get_patient_ids() == side('train', seed).get_patient_ids()
    splits = {tuple(sorted(set(side('val', s).get_patient_ids()))) for s in range(5)}
    assert len(splits) > 1, 'different seeds should give different splits'


def test_split_patients_edge_cases():
    # two patients per class: one on each side whatever the ratio
    for ratio in (0.05, 0.5, 0.95):
        train = split_patients(['1', '2', 'H1', 'H2'], [1, 1, 0, 0], ratio=ratio, seed=0)
        assert len(train & {'1', '2'}) == 1 and len(train & {'H1', 'H2'}) == 1
    # a lone patient stays on the training side; sample order does not matter
    assert split_patients(['1', '1', 'H1'], [1, 1, 0], 0.5, 0) == {'1', 'H1'}
    a = split_patients(['1', '2', '3', '4', 'H1', 'H2'], [1, 1, 1, 1, 0, 0], 0.5, 7)
    b = split_patients(['H2', 'H1', '4', '3', '2', '1'], [0, 0, 1, 1, 1, 1], 0.5, 7)
    assert a == b
    with pytest.raises(ValueError, match='ratio'):
        _ds(data_root='.', patient_split=dict(ratio=1.0))
    with pytest.raises(ValueError, match="subset='test'"):
        _ds(data_root='.', patient_split=dict(subset='test'))


def test_patient_kfold_disjoint_covering_stratified(cnmc_root):
    full = _ds(data_root=cnmc_root)
    all_patients = set(full.get_patient_ids())

    def side(subset, fold, seed=0, k=3):
        return _ds(data_root=cnmc_root,
                   patient_split=dict(num_folds=k, fold=fold, subset=subset, seed=seed))

    val_sets = []
    for fold in range(3):
        train, val = side('train', fold), side('val', fold)
        tp, vp = set(train.get_patient_ids()), set(val.get_patient_ids())
        # train / val complementary for one fold
        assert tp.isdisjoint(vp) and tp | vp == all_patients
        assert len(train) + len(val) == len(full)
        # 6 patients per class in 3 folds: 2 of each class per fold
        assert sorted(p.startswith('H') for p in vp) == [False, False, True, True]
        assert set(val.get_gt_labels()) == {0, 1}
        val_sets.append(vp)
    # the validation folds are disjoint and cover every patient
    assert sum(len(v) for v in val_sets) == len(all_patients)
    assert set().union(*val_sets) == all_patients
    # same seed same folds, another seed other folds
    assert set(side('val', 1).get_patient_ids()) == val_sets[1]
    others = [set(side('val', 1, seed=s).get_patient_ids()) for s in range(1, 6)]
    assert any(o != val_sets[1] for o in others)


def test_patient_folds_function():
    patients = [str(i) for i in range(1, 8)] + [f'H{i}' for i in range(1, 5)]
    labels = [1] * 7 + [0] * 4
    # several cells per patient, in any order: the assignment is per patient
    cells_p, cells_l = patients * 3, labels * 3
    folds = patient_folds(cells_p, cells_l, num_folds=4, seed=2)
    assert set(folds) == set(patients) and set(folds.values()) == {0, 1, 2, 3}
    assert folds == patient_folds(cells_p[::-1], cells_l[::-1], num_folds=4, seed=2)
    for f in range(4):
        # 4 hem patients in 4 folds: one each; 7 all patients: 1 or 2 each
        assert sum(folds[p] == f for p in patients[7:]) == 1
        assert sum(folds[p] == f for p in patients[:7]) in (1, 2)
    # the round-robin continues across classes: fold sizes differ by one at most
    sizes = np.bincount(list(folds.values()))
    assert sizes.max() - sizes.min() <= 1
    # a class with fewer patients than folds leaves folds without it
    few = patient_folds(['1', '2', '3', 'H1'], [1, 1, 1, 0], num_folds=3, seed=0)
    assert sorted(few.values()) == [0, 0, 1, 2]
    # grouped patients (duplicates) share a fold
    grouped = patient_folds(patients, labels, 4, seed=0, groups={'1': 'g', '2': 'g', '3': 'g'})
    assert grouped['1'] == grouped['2'] == grouped['3']
    with pytest.raises(ValueError, match='num_folds=1'):
        patient_folds(patients, labels, num_folds=1)
    with pytest.raises(ValueError, match='cannot fill 12 folds'):
        patient_folds(patients, labels, num_folds=12)


@pytest.mark.parametrize('cfg,message', [
    (dict(num_folds=5, fold=0, ratio=0.8), 'not both'),
    (dict(num_folds=5, fold=5), r'fold=5, expected an integer in \[0, 5\)'),
    (dict(num_folds=5, fold=-1), 'fold=-1'),
    (dict(num_folds=1), 'num_folds=1'),
    (dict(num_folds=2.5), 'num_folds=2.5'),
    (dict(fold=1), 'fold=1 needs num_folds'),
])
def test_patient_kfold_bad_args(cfg, message):
    with pytest.raises(ValueError, match=message):
        _ds(data_root='.', patient_split=cfg)


def test_patient_kfold_more_folds_than_patients(cnmc_root):
    with pytest.raises(ValueError, match='set patient_split.num_folds to 12 or less'):
        _ds(data_root=cnmc_root, patient_split=dict(num_folds=13, fold=0))


def test_patient_split_on_unlabelled_final_test_fails(cnmc_root):
    with pytest.raises(CNMCDataError, match='patient_split needs patient ids'):
        _ds(data_root=cnmc_root, split='final_test', patient_split=dict(ratio=0.5))


# ---------------------------------------------------------------- structural errors
def test_wrong_root_missing(tmp_path):
    with pytest.raises(CNMCDataError, match='does not exist.*C-NMC_Leukemia'):
        _ds(data_root=str(tmp_path / 'nope'))


def test_wrong_root_without_training_data(cnmc_root):
    # a common mistake: pointing at training_data itself
    wrong = osp.join(cnmc_root, 'training_data')
    with pytest.raises(CNMCDataError, match=r"is not a C-NMC root: expected .*training_data"
                       r".*fold_0/\{all,hem\}"):
        _ds(data_root=wrong)


def test_missing_fold(cnmc_root):
    with pytest.raises(CNMCDataError, match='fold 3 not found.*fold_3'):
        _ds(data_root=cnmc_root, folds=(0, 3))


def test_empty_class_folder(cnmc_copy):
    hem = osp.join(cnmc_copy, 'training_data', 'fold_1', 'hem')
    for f in glob.glob(osp.join(hem, '*.bmp')):
        os.remove(f)
    open(osp.join(hem, 'Thumbs.db'), 'w').close()
    for on_error in ('raise', 'skip'):  # a structural error: never skipped
        with pytest.raises(CNMCDataError, match=r'fold_1/hem.* has no \*\.bmp image'):
            _ds(data_root=cnmc_copy, on_error=on_error)
    assert len(_ds(data_root=cnmc_copy, folds=(0, 2))) == 24


def test_missing_class_folder(cnmc_copy):
    shutil.rmtree(osp.join(cnmc_copy, 'training_data', 'fold_2', 'all'))
    with pytest.raises(CNMCDataError, match='fold_2/all.* is missing'):
        _ds(data_root=cnmc_copy)


def test_prelim_missing_csv(cnmc_copy):
    os.remove(osp.join(cnmc_copy, PRELIM_CSV))
    with pytest.raises(CNMCDataError, match='labels .*C-NMC_test_prelim_phase_data_labels.csv'
                       '.* not found'):
        _ds(data_root=cnmc_copy, split='prelim_test')


def test_bad_csv_header(cnmc_copy):
    path = osp.join(cnmc_copy, PRELIM_CSV)
    lines = open(path).read().splitlines()
    lines[0] = 'Patient_ID,new_name,label'
    open(path, 'w').write('\n'.join(lines) + '\n')
    for on_error in ('raise', 'skip'):
        with pytest.raises(CNMCDataError, match=r"header is 'Patient_ID,new_name,label', "
                           r"expected 'Patient_ID,new_names,labels'"):
            _ds(data_root=cnmc_copy, split='prelim_test', on_error=on_error)


# ---------------------------------------------------------------- per-file errors: raise / skip
def test_unparseable_name(cnmc_copy):
    folder = osp.join(cnmc_copy, 'training_data', 'fold_0', 'all')
    src = sorted(glob.glob(osp.join(folder, '*.bmp')))[0]
    shutil.copy(src, osp.join(folder, 'cell 12.bmp'))
    with pytest.raises(CNMCDataError, match=r"cell 12\.bmp: cannot parse the C-NMC file name; "
                       r"expected 'UID_<patient>_<image>_<cell>_all\.bmp'"):
        _ds(data_root=cnmc_copy)
    ds = _ds(data_root=cnmc_copy, on_error='skip')
    assert len(ds) == 36
    assert ds.skip_counts == {'unparseable_name': 1} and ds.num_skipped == 1
    assert 'cell 12.bmp' in ds.skipped['unparseable_name'][0]


def test_cell_in_wrong_class_folder(cnmc_copy):
    fold = osp.join(cnmc_copy, 'training_data', 'fold_0')
    src = sorted(glob.glob(osp.join(fold, 'hem', '*.bmp')))[0]
    shutil.move(src, osp.join(fold, 'all'))
    with pytest.raises(CNMCDataError, match=r"a 'hem' cell in the 'all' folder; move it to hem/"):
        _ds(data_root=cnmc_copy)
    ds = _ds(data_root=cnmc_copy, on_error='skip')
    assert ds.skip_counts == {'label_mismatch': 1} and len(ds) == 35


def _edit_csv_row(root, line_no, new_row):
    path = osp.join(root, PRELIM_CSV)
    lines = open(path).read().splitlines()
    old = lines[line_no - 1]
    lines[line_no - 1] = new_row(old)
    open(path, 'w').write('\n'.join(lines) + '\n')
    return old


def test_csv_row_without_image(cnmc_copy):
    old = _edit_csv_row(cnmc_copy, 3, lambda row: row)
    new_name = old.split(',')[1]
    os.remove(osp.join(cnmc_copy, PRELIM, new_name))
    with pytest.raises(CNMCDataError, match=rf"line 3: image .*{new_name}.* named in the labels "
                       'CSV does not exist'):
        _ds(data_root=cnmc_copy, split='prelim_test')
    ds = _ds(data_root=cnmc_copy, split='prelim_test', on_error='skip')
    assert len(ds) == 8 and ds.skip_counts == {'missing_image': 1}


def test_csv_bad_label_and_contradiction(cnmc_copy):
    _edit_csv_row(cnmc_copy, 2, lambda row: row.rsplit(',', 1)[0] + ',2')
    _edit_csv_row(cnmc_copy, 4, lambda row: row.rsplit(',', 1)[0] + ',' +
                  str(1 - int(row.rsplit(',', 1)[1])))
    with pytest.raises(CNMCDataError, match="line 2: label '2' .* is not 0 .hem. or 1 .all."):
        _ds(data_root=cnmc_copy, split='prelim_test')
    ds = _ds(data_root=cnmc_copy, split='prelim_test', on_error='skip')
    assert ds.skip_counts == {'bad_csv_row': 1, 'label_mismatch': 1} and len(ds) == 7
    assert 'line 4' in ds.skipped['label_mismatch'][0]
    assert 'contradicts Patient_ID' in ds.skipped['label_mismatch'][0]


def test_final_test_unnumbered_file(cnmc_copy):
    folder = osp.join(cnmc_copy, FINAL)
    shutil.copy(osp.join(folder, '1.bmp'), osp.join(folder, 'extra.bmp'))
    with pytest.raises(CNMCDataError, match=r'extra\.bmp: expected a numbered test image '
                       r'<N>\.bmp'):
        _ds(data_root=cnmc_copy, split='final_test')
    assert _ds(data_root=cnmc_copy, split='final_test',
                       on_error='skip').skip_counts == {'unparseable_name': 1}


# ---------------------------------------------------------------- bad image files
def _damage(root):
    """Break three training images: zero-byte, truncated, text with a .bmp extension."""
    folder = osp.join(root, 'training_data', 'fold_0', 'all')
    files = sorted(glob.glob(osp.join(folder, '*.bmp')))
    open(files[0], 'wb').close()
    data = open(files[1], 'rb').read()
    open(files[1], 'wb').write(data[:len(data) // 2])
    open(files[2], 'w').write('not an image\n')
    return [osp.basename(f) for f in files[:3]]


@pytest.mark.parametrize('which,message', [
    (0, r'is empty \(0 bytes\)'),
    (1, r'is truncated: \d+ bytes, but its 32x32 24-bit BMP header needs 3126'),
    (2, r'is not a BMP image .* is not a readable image'),
])
def test_check_images_raise(cnmc_copy, which, message):
    names = _damage(cnmc_copy)
    # only the damaged file under test stays broken
    folder = osp.join(cnmc_copy, 'training_data', 'fold_0', 'all')
    for i, name in enumerate(names):
        if i != which:
            os.remove(osp.join(folder, name))
    assert len(_ds(data_root=cnmc_copy)) == 34  # unchecked: listed as is
    with pytest.raises(CNMCDataError, match=rf'{names[which]}: {message}'):
        _ds(data_root=cnmc_copy, check_images=True)


def test_check_images_skip(cnmc_copy):
    names = _damage(cnmc_copy)
    ds = _ds(data_root=cnmc_copy, check_images=True, on_error='skip')
    assert len(ds) == 33 and ds.skip_counts == {'bad_image': 3}
    assert sorted(osp.basename(m.split(':')[0]) for m in ds.skipped['bad_image']) == names
    assert not set(names) & {d['file_name'] for d in _infos(ds)}


def test_check_images_too_large(cnmc_root):
    with pytest.raises(CNMCDataError, match=r'UID_.*\.bmp: is 32x32, larger than '
                       r'max_image_size=20'):
        _ds(data_root=cnmc_root, folds=(0, ), check_images=True, max_image_size=20)
    # skipping every image leaves nothing: that is an error too, with the counts
    with pytest.raises(CNMCDataError, match=r"has no usable image \(skipped: "
                       r"\{'bad_image': 12\}\)"):
        _ds(data_root=cnmc_root, folds=(0, ), check_images=True, max_image_size=20,
            on_error='skip')
    assert len(_ds(data_root=cnmc_root, folds=(0, ), check_images=True,
                   max_image_size=32)) == 12


def test_check_image_file_other_cases(cnmc_root, tmp_path):
    import cv2
    good = sorted(glob.glob(osp.join(cnmc_root, 'training_data/fold_0/all/*.bmp')))[0]
    assert check_image_file(good) is None
    assert 'larger than max_image_size=16' in check_image_file(good, max_size=16)
    # a PNG saved with a .bmp extension decodes fine: accepted
    png = str(tmp_path / 'png_inside.bmp')
    cv2.imencode('.png', cv2.imread(good))[1].tofile(png)
    assert check_image_file(png) is None
    # a truncated PNG is caught by decoding
    trunc = str(tmp_path / 'trunc.png')
    data = open(png, 'rb').read()
    open(trunc, 'wb').write(data[:len(data) // 2])
    assert check_image_file(trunc).startswith('cannot be decoded')
    # a corrupt BMP header
    bad = str(tmp_path / 'bad.bmp')
    raw = bytearray(open(good, 'rb').read())
    raw[18:22] = (0).to_bytes(4, 'little')  # width 0
    open(bad, 'wb').write(bytes(raw))
    assert check_image_file(bad).startswith('has a corrupt BMP header (width 0')


# ---------------------------------------------------------------- in an mmpretrain pipeline
def _pipeline(size):
    return [
        dict(type='LoadImageFromFile'),
        dict(type='CropToCell'),
        dict(type='Resize', scale=size),
        dict(type='PackInputs', meta_keys=('img_path', 'patient_id', 'fold', 'cell_bbox')),
    ]


def test_dataset_in_pipeline(cnmc_root):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ds = CNMCDataset(data_root=cnmc_root, folds=(1, ), pipeline=_pipeline(24))
        out = ds[0]
        final = _ds(data_root=cnmc_root, split='final_test', pipeline=_pipeline(24))[0]
    info = ds.get_data_info(0)
    x = out['inputs']
    assert x.dtype == torch.uint8 and x.shape == (3, 24, 24)
    sample = out['data_samples']
    assert sample.gt_label.tolist() == [info['gt_label']]
    assert sample.patient_id == info['patient_id'] and sample.fold == 1
    # the same computed by hand: tight box of the non-black pixels, centred square pad, resize
    img = mmcv.imread(info['img_path'])
    ys, xs = np.nonzero(img.max(axis=2))
    x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    assert sample.cell_bbox.tolist() == [x1, y1, x2, y2]
    crop = img[y1:y2, x1:x2]
    side = max(crop.shape[:2])
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square = np.zeros((side, side, 3), np.uint8)
    square[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    expected = mmcv.imresize(square, (24, 24))
    assert torch.equal(x.permute(1, 2, 0), torch.from_numpy(expected))
    assert 'gt_label' not in final['data_samples'] and final['inputs'].shape == (3, 24, 24)


def test_real_cells_through_pipeline(cnmc_samples_root, tmp_path):
    """The six real C-NMC cells, laid out as a fold, go through the dataset and pipeline."""
    for cls in ('all', 'hem'):
        dst = tmp_path / 'training_data' / 'fold_0' / cls
        dst.mkdir(parents=True)
        for f in glob.glob(osp.join(cnmc_samples_root, cls, '*.bmp')):
            os.symlink(f, dst / osp.basename(f))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ds = _ds(data_root=str(tmp_path), folds=(0, ), check_images=True,
                         pipeline=_pipeline(64))
        items = [ds[i] for i in range(len(ds))]
    assert len(ds) == 6 and ds.metainfo['patients'] == ('1', 'H6')
    for i, item in enumerate(items):
        info = ds.get_data_info(i)
        assert item['inputs'].shape == (3, 64, 64)
        assert item['data_samples'].gt_label.item() == info['gt_label']
        assert item['data_samples'].patient_id == ('H6' if info['gt_label'] == 0 else '1')
        # crops of 450x450 cells are 190..260 px wide: the box is far smaller than the image
        x1, y1, x2, y2 = item['data_samples'].cell_bbox
        assert 150 < x2 - x1 < 300 and 150 < y2 - y1 < 300


def test_class_subsample_balanced_disjoint(tmp_path):
    root = str(tmp_path / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=32, num_folds=3, patients_per_fold=(2, 2),
                        cells_per_patient=3, prelim_patients=(1, 1), final_patients=(1, 1))

    def subset(**kw):
        ds = CNMCDataset(data_root=root, class_subsample=dict(dict(seed=0), **kw),
                         lazy_init=False)
        return [d['img_path'] for d in ds.load_data_list()], ds.get_gt_labels()

    train, train_labels = subset(num_per_class=5)
    val, val_labels = subset(num_per_class=3, offset=5)
    assert sorted(train_labels.tolist()) == [0] * 5 + [1] * 5
    assert sorted(val_labels.tolist()) == [0] * 3 + [1] * 3
    assert not set(train) & set(val)
    assert subset(num_per_class=5)[0] == train  # seeded
    assert subset(num_per_class=5, seed=1)[0] != train
    with pytest.raises(CNMCDataError, match='fewer than offset'):
        subset(num_per_class=19)
    with pytest.raises(ValueError, match='num_per_class'):
        CNMCDataset(data_root=root, class_subsample=dict(offset=1))
