"""tools/analysis/compare.py: the detector table and the loss x backbone table from real work
dirs (and a real YOLO baseline run); every cell equals the metrics JSON the run wrote, the
papers' numbers sit beside ours, each run is named from the config dumped in its work dir."""
import glob
import json
import os.path as osp

import pytest
from analysis_helpers import REPO, tool
from mmengine.config import Config

from mmbloodcell.analysis.compare import REFERENCE
from mmbloodcell.analysis.describe import describe_config


def parse_tables(text):
    """Markdown tables of ``text`` -> list of (header, rows as dicts)."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith('| ') and i + 1 < len(lines) and lines[i + 1].startswith('|---'):
            header = [c.strip() for c in lines[i].strip('|').split('|')]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith('|'):
                cells = [c.strip() for c in lines[i].strip('|').split('|')]
                assert len(cells) == len(header), lines[i]
                rows.append(dict(zip(header, cells)))
                i += 1
            tables.append((header, rows))
        else:
            i += 1
    return tables


def _test_json(run):
    with open(osp.join(run['test_log'], osp.basename(run['test_log']) + '.json')) as f:
        return json.load(f)


def _row(rows, **match):
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


def test_tables_equal_the_metrics_json(det_run, cls_run, tmp_path):
    out = tmp_path / 'tables.md'
    text = tool('analysis/compare.py').main(
        [det_run['work_dir'], cls_run['work_dir'], '--out', str(out)])
    assert out.read_text() == text
    (det_head, det_rows), (cls_head, cls_rows), (_, run_rows) = parse_tables(text)

    # detection: our FCOS row, named from its dumped config, with the test JSON's numbers
    m = _test_json(det_run)
    row = _row(det_rows, Run=det_run['name'])
    assert (row['Model'], row['Backbone'], row['Metrics from']) == ('FCOS', 'R-18', 'test')
    assert set(row['Losses'].split('+')) == {'Focal', 'GIoU', 'BCE'}  # BCE: the centre-ness
    assert row['mAP'] == f"{m['coco/bbox_mAP']:.3f}"
    assert row['mAP50'] == f"{m['coco/bbox_mAP_50']:.3f}"
    assert row['mAP75'] == f"{m['coco/bbox_mAP_75']:.3f}"
    assert row['ms / image'] == f"{m['speed/latency_ms']:.1f}"
    assert row['mAP (paper)'] == row['ms / image (paper)'] == '-'  # not in the papers
    # the cell-count MAE per class, at the calibrated / the fixed threshold
    for c in ('RBC', 'WBC', 'Platelets'):
        assert row[f'Count MAE {c} (cal. / 0.3)'] == \
            f"{m[f'count/{c}_mae_calibrated']:.2f} / {m[f'count/{c}_mae']:.2f}"
    # the papers' models, beside ours
    ref = REFERENCE['detection']
    for model, nums in ref.items():
        r = _row(det_rows, Model=model)
        assert r['mAP (paper)'] == f"{nums['mAP']:.3f}"
        assert r['mAP50 (paper)'] == f"{nums['mAP50']:.3f}"
        assert r['mAP75 (paper)'] == f"{nums['mAP75']:.3f}"
        assert r['ms / image (paper)'] == (f"{nums['ms']:.1f}" if 'ms' in nums else '-')
        assert r['mAP'] == '-' and r['Count MAE RBC (cal. / 0.3)'] == '-'
    assert _row(det_rows, Model='Sparse R-CNN')['ms / image (paper)'] == '343.0'

    # classification: loss x backbone, weighted F1 by default
    m = _test_json(cls_run)
    assert cls_head[:3] == ['Backbone', 'BCE', 'BCE (paper)']
    assert _row(cls_rows, Backbone='SimpleNet')['BCE'] == f"{m['binary/weighted_f1']:.2f}"
    assert _row(cls_rows, Backbone='SimpleNet')['FHL'] == '-'
    assert _row(cls_rows, Backbone='DenseNet-201')['FHL (paper)'] == '90.70'
    assert _row(cls_rows, Backbone='EfficientNet-B2')['WBCE (paper)'] == '85.29'
    assert _row(cls_rows, Backbone='Ensemble(DenseNet-201 + EfficientNet-B2)')[
        'FHL (paper)'] == '91.94'
    row = _row(run_rows, Run=cls_run['name'])
    assert (row['Backbone'], row['Loss'], row['Metrics from']) == ('SimpleNet', 'BCE', 'test')
    assert row['Test split'] == 'prelim_test', row  # the patient-wise base tests on prelim
    for col, key in (('F1 of ALL', 'f1'), ('weighted F1', 'weighted_f1'),
                     ('Precision', 'precision'), ('Recall', 'recall'),
                     ('Specificity', 'specificity'), ('AUC', 'auc')):
        assert row[col] == f"{m[f'binary/{key}']:.2f}", col
    assert row['ms / image'] == f"{m['speed/latency_ms']:.1f}"

    # --cls-metric f1, --no-reference
    text = tool('analysis/compare.py').main([cls_run['work_dir'], '--cls-metric', 'f1',
                                             '--no-reference'])
    (head, rows), _ = parse_tables(text)
    assert [r['Backbone'] for r in rows] == ['SimpleNet']
    assert rows[0]['BCE'] == f"{m['binary/f1']:.2f}" and rows[0]['BCE (paper)'] == '-'


def test_prefer_val_uses_the_last_validation(det_run):
    text = tool('analysis/compare.py').main([det_run['work_dir'], '--prefer', 'val',
                                             '--no-reference'])
    (_, rows), = parse_tables(text)
    with open(osp.join(det_run['train_log'], 'vis_data', 'scalars.json')) as f:
        last_val = [json.loads(line) for line in f if 'iter' not in json.loads(line)][-1]
    assert rows[0]['Metrics from'] == 'val (epoch 2)'
    assert rows[0]['mAP50'] == f"{last_val['coco/bbox_mAP_50']:.3f}"
    assert rows[0]['ms / image'] == f"{last_val['speed/latency_ms']:.1f}"


def test_yolo_baseline_run_is_a_detection_row(yolo_run, det_run):
    text = tool('analysis/compare.py').main([yolo_run['run_dir'], det_run['work_dir']])
    (_, rows), = parse_tables(text)
    m = yolo_run['metrics']
    row = _row(rows, Model='YOLOv8')
    assert row['Backbone'] == 'yolov8n' and row['Run'] == 'train'
    assert row['mAP'] == f"{m['coco/bbox_mAP']:.3f}"
    assert row['mAP50'] == f"{m['coco/bbox_mAP_50']:.3f}"
    assert row['ms / image'] == f"{m['speed/latency_ms']:.1f}"
    assert row['mAP (paper)'] == '0.629'
    assert [r['Model'] for r in rows].count('YOLOv8') == 1  # no extra paper-only row
    assert _row(rows, Model='FCOS')['Run'] == det_run['name']


def test_missing_metrics_name_the_work_dir(tmp_path):
    with pytest.raises(SystemExit, match='no metrics found'):
        tool('analysis/compare.py').main([str(tmp_path)])
    with pytest.raises(SystemExit, match='not a directory'):
        tool('analysis/compare.py').main([str(tmp_path / 'nope')])


DET_FAMILY = {'sparse-rcnn': 'Sparse R-CNN', 'ssd300': 'SSD', 'yolov3': 'YOLOv3',
              'yolof': 'YOLOF', 'fcos': 'FCOS', 'yolov7': 'YOLOv7'}
LOSS_OF = {'bce': 'BCE', 'wbce': 'WBCE', 'focal': 'Focal', 'hinge': 'Hinge', 'fhl': 'FHL'}


@pytest.mark.parametrize('path', sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p), ids=lambda p: osp.relpath(p, osp.join(REPO, 'configs')))
def test_every_config_is_named_as_in_the_papers(path):
    name = osp.splitext(osp.basename(path))[0]
    cfg = Config.fromfile(path)
    info = describe_config(cfg, base_dir=osp.dirname(path))
    if info['task'] == 'detection':
        # the study's families by name; other detectors keep their mmdet type
        family = [v for k, v in DET_FAMILY.items() if name.startswith(k)] or [cfg.model.type]
        assert [info['model']] == family
        if name.startswith('sparse-rcnn') or 'focal-giou-l1' in name:
            assert set(info['loss'].split('+')) >= {'Focal', 'L1', 'GIoU'}  # the study's
        if name.startswith('yolov7'):  # the head's own CIoU, BCE objectness and classes
            assert info['loss'] == 'CIoU+BCE'
            assert info['backbone'] == 'YOLOv7-' + name.split('_')[1]  # tiny, l
            assert info['model'] in REFERENCE['detection']  # beside the BCCD study's YOLOv7
        return
    assert info['task'] == 'classification'
    parts = name.split('_')
    if parts[0] == 'ensemble':
        assert (info['backbone'], info['loss']) == ('Ensemble(DenseNet-201 + EfficientNet-B2)',
                                                    'FHL')
        assert (info['backbone'], info['loss']) in REFERENCE['classification']
        return
    # <backbone>[-timm]_<loss or 'frozen'>_...: timm's EfficientNet-B2 is the same network
    backbone = {'densenet201': 'DenseNet-201', 'efficientnet-b2': 'EfficientNet-B2',
                'efficientnet-b5': 'EfficientNet-B5', 'efficientnetv2-m': 'EfficientNetV2-M',
                'resnet152': 'ResNet-152', 'vgg16': 'VGG-16', 'xception': 'Xception',
                'simplenet': 'SimpleNet'}.get(parts[0].replace('-timm', ''))
    if parts[1] == 'frozen':
        assert (info['backbone'], info['loss']) == (backbone + ' (frozen)', 'BCE')
        return
    assert info['loss'] == LOSS_OF[parts[1]]
    if backbone is not None:  # configs added later keep at least their loss name
        assert info['backbone'] == backbone
    if parts[0] in ('densenet201', 'efficientnet-b2'):  # the loss study's Table 2
        assert (backbone, info['loss']) in REFERENCE['classification']


def test_timm_names_and_several_runs_in_one_cell():
    from mmbloodcell.analysis.compare import classification_markdown, classification_matrix
    from mmbloodcell.analysis.describe import backbone_name
    for model_name, name in (('efficientnet_b2', 'EfficientNet-B2'),
                             ('tf_efficientnetv2_m.in21k', 'EfficientNetV2-M'),
                             ('legacy_xception', 'Xception'), ('densenet201', 'DenseNet-201'),
                             ('convnext_tiny', 'timm:convnext_tiny')):
        assert backbone_name(dict(type='TIMMBackbone', model_name=model_name)) == name
    runs = [dict(task='classification', backbone='EfficientNet-B2', loss='FHL', name=n,
                 metrics={'binary/weighted_f1': v}) for n, v in (('a', 80.0), ('b', 81.5))]
    backbones, losses, cells = classification_matrix(runs, reference=False)
    assert (backbones, losses) == (['EfficientNet-B2'], ['FHL'])
    text = classification_markdown(backbones, losses, cells)
    assert '| EfficientNet-B2 | 81.50 | - |' in text
    assert 'EfficientNet-B2 / FHL: 2 runs (a, b); the table shows the last, b' in text
