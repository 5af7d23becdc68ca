"""``mmbloodcell reproduce``: every table's whole path on a CPU (``--smoke``), the dry run,
resuming, and the table it writes (ours beside the papers' numbers)."""
import json
import os
import os.path as osp

import pytest

from mmbloodcell.apis.cli import main as cli
from mmbloodcell.apis.reproduce import relative_to_mean, reproduce
from mmbloodcell.studies import find_table

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def cnmc_root(tmp_path_factory):
    from cnmc_release import make_synthetic_cnmc
    root = str(tmp_path_factory.mktemp('cnmc') / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=64, num_folds=3, patients_per_fold=(2, 2),
                        cells_per_patient=3, prelim_patients=(2, 2), final_patients=(2, 2),
                        seed=0)
    return root


@pytest.fixture(scope='module')
def work_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('reproduce'))


def _check_table(doc, table_id, work_dir):
    _, table = find_table(table_id)
    out = osp.join(work_dir, table_id)
    with open(osp.join(out, 'table.json')) as f:
        assert json.load(f) == json.loads(json.dumps(doc))
    with open(osp.join(out, 'table.md')) as f:
        md = f.read()
    assert 'SMOKE RUN' in md and 'from scratch' in md
    for spec, row in zip(table['rows'], doc['rows']):
        assert row['id'] == spec['id']
        # the papers' numbers from the study data, beside ours
        for key, value in (spec.get('paper') or {}).items():
            assert row['values'][key]['paper'] == value
            assert f'{value:.{_digits(doc, key)}f}' in md
        if spec.get('kind', 'config') == 'config':
            assert row['status'] == 'done', row
            assert row['commands'] and osp.isfile(osp.join(out, spec['id'], 'result.json'))
    for col in doc['columns']:
        assert col['name'] in md
    return md


def _digits(doc, key):
    return next(c['digits'] for c in doc['columns'] if c['key'] == key)


@pytest.mark.parametrize('table_id', ['fhl-table2', 'fhl-table3', 'backbones-table1',
                                      'frozen-efficientnet'])
def test_smoke_cnmc_tables(table_id, cnmc_root, work_dir):
    doc = reproduce(table_id, work_dir=work_dir, data_root=cnmc_root, smoke=True, root=REPO,
                    log=lambda s: None)
    md = _check_table(doc, table_id, work_dir)
    for row in doc['rows']:
        for col in doc['columns']:
            ours = row['values'][col['key']]['ours']
            # the final set of the generated release is unlabelled; dF1 is undefined when
            # every smoke F1 is 0 (a mean of 0)
            if table_id != 'fhl-table2' and col['key'] != 'dF1':
                assert ours is not None, (row['id'], col['key'])
    if table_id == 'fhl-table2':
        # no labels for the final set: the challenge's submission file instead of scores
        sub = [osp.join(d, f) for d, _, fs in os.walk(osp.join(work_dir, table_id))
               for f in fs if f == 'isbi_valid.predict']
        assert sub, 'no isbi_valid.predict written'
        with open(sub[0]) as f:
            assert set(f.read().split()) <= {'0', '1'}
        assert osp.isfile(osp.join(cnmc_root, 'mean_std.json'))
    if table_id == 'backbones-table1':
        assert 'dF1' in md
        f1 = [r['values']['binary/f1']['ours'] for r in doc['rows']]
        assert [r['values']['dF1']['ours'] for r in doc['rows']] == relative_to_mean(f1)
        assert osp.isfile(osp.join(cnmc_root, 'stain_reference.json'))
    if table_id == 'frozen-efficientnet':
        a3 = next(r for r in doc['rows'] if r['id'] == 'attempt3')
        assert any('--resume' in c for c in a3['commands'])
        a4 = next(r for r in doc['rows'] if r['id'] == 'attempt4')
        assert any('load_from=' in c for c in a4['commands'])


def test_done_rows_are_not_run_again(cnmc_root, work_dir):
    lines = []
    reproduce('fhl-table3', work_dir=work_dir, data_root=cnmc_root, smoke=True, root=REPO,
              log=lines.append)
    assert any('done before' in s for s in lines), lines
    assert not any(s.startswith('$ ') for s in lines), lines


def test_dry_run_prints_every_command(capsys, tmp_path):
    assert cli(['reproduce', 'fhl-table2', '--dry-run', '--root', REPO,
                '--work-dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    _, table = find_table('fhl-table2')
    for spec in table['rows']:
        assert spec['config'] in out
    assert out.count('tools/train.py') == 10 and out.count('tools/test.py') == 11
    assert 'model.members.0.checkpoint=' in out
    assert 'cnmc_mean_std.py' in out
    assert not os.listdir(tmp_path)  # nothing is run or written


def test_dry_run_launcher_and_scratch(capsys, tmp_path):
    assert cli(['reproduce', 'fhl-table2', '--rows', 'densenet201-fhl', '--dry-run',
                '--from-scratch', '--launcher', 'pytorch', '--gpus', '4', '--root', REPO,
                '--work-dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'bash tools/dist_train.sh configs/fhl_study/densenet201_fhl_table2_cnmc.py 4' in out
    assert 'model.backbone.init_cfg=None' in out
    assert 'efficientnet-b2' not in out


def test_usage_errors(capsys, tmp_path):
    assert cli(['reproduce', 'no-such-table', '--root', REPO]) == 2
    assert 'fhl-table2' in capsys.readouterr().err
    assert cli(['reproduce', 'fhl-table2', '--rows', 'nope', '--dry-run', '--root', REPO]) == 2
    assert 'densenet201-fhl' in capsys.readouterr().err
    assert cli(['reproduce', 'fhl-table2', '--dry-run', '--root', str(tmp_path)]) == 2
    assert 'not an mmbloodcell checkout' in capsys.readouterr().err
    assert cli(['reproduce', '--list']) == 0
    assert 'backbones-table1' in capsys.readouterr().out


def test_relative_to_mean_is_the_papers_dF1():
    # 100 (F1 - mean) / mean; None rows are left out of the mean
    values = relative_to_mean([0.8, 1.0, None])
    assert values[0] == pytest.approx(-100 / 9) and values[1] == pytest.approx(100 / 9)
    assert values[2] is None
    # the six-backbone table's F1: EfficientNetV2M is ~9 % above the mean (the paper's 9)
    paper = relative_to_mean([0.79, 0.80, 0.81, 0.83, 0.85, 0.62])
    assert round(paper[4]) == 9 and round(paper[5]) == -21


def test_crossval_smoke(cnmc_root, tmp_path, capsys):
    from cnmc_release import write_stain_reference
    write_stain_reference(cnmc_root)
    out = str(tmp_path / 'cv')
    assert cli(['crossval', 'configs/cnmc/simplenet_bce_stain-norm_cnmc.py', '--folds', '2',
                '--smoke', '--work-dir', out, '--data-root', cnmc_root, '--root', REPO]) == 0
    with open(osp.join(out, 'crossval.json')) as f:
        doc = json.load(f)
    assert [f['fold'] for f in doc['folds']] == [0, 1]
    for fold in doc['folds']:
        assert 'binary/weighted_f1' in fold['metrics']
        assert f"patient_split.fold={fold['fold']}" in fold['commands'][0]
    f1 = [f['metrics']['binary/f1'] for f in doc['folds']]
    assert doc['summary']['binary/f1']['mean'] == pytest.approx(sum(f1) / 2)
    with open(osp.join(out, 'crossval.md')) as f:
        assert 'mean +- std' in f.read()
    assert cli(['crossval', 'configs/fcos/fcos_r18_fpn_gn_320_12e_bccd_cpu-demo.py',
                '--root', REPO]) == 2
    assert 'not a CNMCDataset' in capsys.readouterr().err


def test_smoke_bccd_table(bccd_coco, tmp_path):
    """The BCCD study's Table 1 on the real smears: every config row trains and tests, the
    YOLOv8 row runs through ultralytics (when installed)."""
    import importlib.util
    work = str(tmp_path / 'reproduce')
    lines = []
    doc = reproduce('bccd-table1', work_dir=work, data_root=bccd_coco, smoke=True, root=REPO,
                    log=lines.append)
    md = _check_table(doc, 'bccd-table1', work)
    rows = {r['id']: r for r in doc['rows']}
    has_yolo = importlib.util.find_spec('ultralytics') is not None
    assert rows['yolov8']['status'] == ('done' if has_yolo else 'skipped')
    assert not [r['id'] for r in doc['rows'] if r['status'] == 'missing']
    for rid in ('ssd', 'sparse-rcnn', 'yolov7', 'yolof', 'yolov3', 'fcos-cpu-demo'):
        assert rows[rid]['values']['speed/latency_ms']['ours'] is not None, rid
    assert '0.591' in md and '0.715' in md  # Sparse R-CNN's Table 1 numbers
    assert any('yolo_baseline.py run' in s for s in lines)
