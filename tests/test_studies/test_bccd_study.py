"""The BCCD study as data (mmbloodcell/studies/bccd_sparse_rcnn.yaml): every config row of
Table 1 matches the paper's settings, the check notices a changed value, and the paper's
numbers are those of mmbloodcell.analysis.compare.REFERENCE."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmbloodcell.analysis.compare import REFERENCE
from mmbloodcell.studies import check_config, load_study, row_checks

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STUDY = load_study('bccd')
TABLE = STUDY['tables']['bccd-table1']
CONFIG_ROWS = [r for r in TABLE['rows'] if r.get('kind', 'config') == 'config']
# the row ids of Table 1 -> the model names of REFERENCE['detection']
REFERENCE_NAME = {'ssd': 'SSD', 'sparse-rcnn': 'Sparse R-CNN', 'yolov8': 'YOLOv8',
                  'yolov7': 'YOLOv7', 'yolof': 'YOLOF', 'yolov3': 'YOLOv3'}


def _config(row):
    return Config.fromfile(osp.join(REPO, row['config']))


def test_table_rows():
    assert STUDY['task'] == 'detection' and STUDY['data'] == 'bccd'
    paper_rows = [r for r in TABLE['rows'] if not r.get('beyond_paper')]
    assert [r['id'] for r in paper_rows] == list(REFERENCE_NAME)
    assert [r['label'] for r in paper_rows] == [
        'SSD', 'SPARSE RCNN', 'YOLOv8', 'YOLOv7', 'YOLOF', 'YOLOv3']
    assert [r['id'] for r in TABLE['rows'] if r.get('beyond_paper')] == ['fcos-cpu-demo']
    kinds = {r['id']: r.get('kind', 'config') for r in TABLE['rows']}
    assert kinds == dict(ssd='config', **{'sparse-rcnn': 'config'}, yolov8='yolo',
                         yolov7='config', yolof='config', yolov3='config',
                         **{'fcos-cpu-demo': 'config'})
    yolo = next(r for r in TABLE['rows'] if r['id'] == 'yolov8')
    assert yolo['yolo_args']['model'].startswith('yolov8')
    yolov7 = next(r for r in TABLE['rows'] if r['id'] == 'yolov7')
    assert 'reason' not in yolov7 and osp.basename(yolov7['config']).startswith('yolov7_l_')
    # the columns are keys our runs write (CocoMetric, LatencyHook)
    assert [c['key'] for c in TABLE['columns']] == [
        'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/bbox_mAP', 'speed/latency_ms']
    for row in CONFIG_ROWS:
        assert osp.isfile(osp.join(REPO, row['config'])), row['config']


@pytest.mark.parametrize('row', CONFIG_ROWS, ids=lambda r: r['id'])
def test_config_row_matches_paper(row):
    checks = row_checks(STUDY, row)
    if not row.get('beyond_paper'):
        assert {'optimizer', 'lr', 'weight_decay', 'losses',
                'train_transform_types'} <= set(checks)
    assert check_config(_config(row), checks, row['id']) == []


def test_check_notices_a_changed_value():
    row = next(r for r in TABLE['rows'] if r['id'] == 'ssd')
    cfg = _config(row)
    cfg.optim_wrapper.optimizer.lr = 2e-3
    problems = check_config(cfg, row_checks(STUDY, row), 'ssd')
    assert len(problems) == 1 and 'lr' in problems[0] and '0.02' in problems[0], problems

    row = next(r for r in TABLE['rows'] if r['id'] == 'sparse-rcnn')
    cfg = _config(row)
    cfg.optim_wrapper.optimizer.type = 'AdamW'
    problems = check_config(cfg, row_checks(STUDY, row), 'sparse-rcnn')
    assert len(problems) == 1 and 'AdamW' in problems[0], problems


def test_check_notices_an_unnamed_augmentation():
    """The project's augmentation (contrast, blur) is not the paper's."""
    row = next(r for r in TABLE['rows'] if r['id'] == 'ssd')
    stock = Config.fromfile(osp.join(REPO, 'configs/ssd/ssd300_focal-giou-l1_50e_bccd.py'))
    problems = check_config(stock, row_checks(STUDY, row), 'ssd')
    assert any('train_transform_types' in p for p in problems), problems
    assert any('lr' in p for p in problems), problems


def test_paper_numbers_are_table_1():
    """The study data holds Table 1 as printed (mAP50, mAP75, mAP, time), and compare.py's
    REFERENCE reads them from there."""
    table1 = {'SSD': (0.638, 0.278, 0.326, 137.0), 'Sparse R-CNN': (0.831, 0.715, 0.591, 343.0),
              'YOLOv8': (0.917, 0.700, 0.629, None), 'YOLOv7': (0.880, 0.677, 0.583, None),
              'YOLOF': (0.890, 0.657, 0.575, None), 'YOLOv3': (0.867, 0.453, 0.459, None)}
    keys = ('coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/bbox_mAP', 'speed/latency_ms')
    paper_rows = [r for r in TABLE['rows'] if not r.get('beyond_paper')]
    assert [r['model'] for r in paper_rows] == list(table1)
    for row in paper_rows:
        assert tuple(row['paper'].get(k) for k in keys) == table1[row['model']], row['id']
    ref = REFERENCE['detection']
    assert ref['Sparse R-CNN'] == dict(mAP50=0.831, mAP75=0.715, mAP=0.591, ms=343.0)
    assert list(ref) == list(table1)
