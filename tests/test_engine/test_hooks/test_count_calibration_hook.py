"""CountCalibrationHook in a real training: a tiny FCOS trained 2 epochs on real BCCD images
(tests/conftest.py::bccd_mini), validated after each epoch, then tested from its checkpoint."""
import glob
import json
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config

import mmbloodcell  # noqa: F401
from mmbloodcell.apis.inference import CellDetector
from mmbloodcell.apis.tool_config import build_runner, set_evaluator_ann_file
from mmbloodcell.engine.hooks.count_calibration_hook import read_count_thresholds

TESTS = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(TESTS, 'test_reliability', 'configs', 'bccd_tiny.py')
CLASSES = ['RBC', 'WBC', 'Platelets']
GRID = [round(0.002 * i, 3) for i in range(51)]  # 0 ... 0.1


def _config(mini, work_dir, name):
    cfg = Config.fromfile(TINY)
    for key, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'),
                       ('test_dataloader', 'test')):
        cfg[key].dataset.data_root = mini['data_root']
        cfg[key].dataset.ann_file = mini[split]
    set_evaluator_ann_file(cfg, 'val_evaluator', mini['val'])
    set_evaluator_ann_file(cfg, 'test_evaluator', mini['test'])
    # a model trained 4 iterations scores ~0.01 (its test_cfg.score_thr is 0): search there
    for key in ('val_evaluator', 'test_evaluator'):
        for metric in cfg[key]:
            if metric['type'] == 'CellCountMetric':
                metric['thr_grid'] = GRID
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2, val_interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, save_optimizer=False,
                                        save_best='coco/bbox_mAP', rule='greater')
    cfg.custom_hooks = [dict(type='CountCalibrationHook')]
    cfg.work_dir = work_dir
    cfg.experiment_name = name
    return cfg


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


@pytest.fixture(scope='module')
def trained(bccd_mini, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('count_calib') / 'work')
    cfg = _config(bccd_mini, work_dir, 'count_calib_train')
    build_runner(cfg).train()
    (log_dir, ) = glob.glob(osp.join(work_dir, '2*_*'))
    with open(osp.join(log_dir, 'vis_data', 'scalars.json')) as f:
        val = [r for r in map(json.loads, f) if 'count/RBC_best_thr' in r]
    return dict(cfg=cfg, work_dir=work_dir, log_dir=log_dir, val=val, mini=bccd_mini)


def test_validation_writes_the_thresholds(trained):
    work_dir, val = trained['work_dir'], trained['val']
    assert [r['step'] for r in val] == [1, 2]
    best = {r['step']: {c: r[f'count/{c}_best_thr'] for c in CLASSES} for r in val}
    for r in val:  # the val split reports the fixed threshold and the search, no calibration
        assert 'count/RBC_mae' in r and 'count/mean_mae' in r and 'coco/bbox_mAP' in r
        assert not any(k.endswith('_calibrated') for k in r)
    # the work dir's file: the last validation's thresholds
    doc = json.load(open(osp.join(work_dir, 'count_thresholds.json')))
    assert doc['thresholds'] == best[2] and doc['split'] == 'val' and doc['epoch'] == 2
    assert read_count_thresholds(osp.join(work_dir, 'count_thresholds.json')) == best[2]
    # every checkpoint holds the thresholds of its own weights: epoch_N.pth is saved before
    # validation N and rewritten after it
    for epoch in (1, 2):
        meta = _load(osp.join(work_dir, f'epoch_{epoch}.pth'))['meta']
        assert meta['count_thresholds'] == best[epoch], epoch
        assert meta['count_thresholds_from']['epoch'] == epoch
    (best_ckpt, ) = glob.glob(osp.join(work_dir, 'best_coco_bbox_mAP_epoch_*.pth'))
    meta = _load(best_ckpt)['meta']
    assert meta['count_thresholds'] == best[meta['epoch']]
    # per-image counts of the last validation beside the log
    per_image = json.load(open(osp.join(trained['log_dir'], 'count_errors_val.json')))
    assert per_image['stage'] == 'val' and per_image['epoch'] == 2
    assert len(per_image['images']) == 2 and per_image['best_thrs'] == best[2]


def _annotated_counts(ann_file):
    coco = json.load(open(ann_file))
    names = {c['id']: c['name'] for c in coco['categories']}
    counts = {im['file_name']: {c: 0 for c in CLASSES} for im in coco['images']}
    files = {im['id']: im['file_name'] for im in coco['images']}
    for a in coco['annotations']:
        counts[files[a['image_id']]][names[a['category_id']]] += 1
    return counts


def _test(trained, ckpt, work_dir, name):
    cfg = _config(trained['mini'], work_dir, name)
    cfg.load_from = ckpt
    runner = build_runner(cfg)
    metrics = runner.test()
    doc = json.load(open(osp.join(runner.log_dir, 'count_errors_test.json')))
    return metrics, doc


def test_test_run_reports_fixed_and_calibrated_side_by_side(trained, tmp_path):
    ckpt = osp.join(trained['work_dir'], 'epoch_2.pth')
    thrs = _load(ckpt)['meta']['count_thresholds']
    metrics, doc = _test(trained, ckpt, str(tmp_path / 'test'), 'count_calib_test')
    assert doc['calibration_source'] == f'checkpoint meta ({ckpt})'
    assert doc['calibrated_thrs'] == thrs and doc['score_thr'] == 0.3
    annotated = _annotated_counts(trained['mini']['test'])
    assert sorted(osp.basename(r['img_path']) for r in doc['images']) == sorted(annotated)
    for c in CLASSES:
        assert metrics[f'count/{c}_thr_calibrated'] == thrs[c]
        for suffix, key in (('', 'predicted'), ('_calibrated', 'predicted_calibrated')):
            errors = [abs(r[key][c] - r['annotated'][c]) for r in doc['images']]
            assert metrics[f'count/{c}_mae{suffix}'] == pytest.approx(sum(errors) / 2)
        assert metrics[f'count/{c}_best_thr'] in GRID
    for r in doc['images']:  # the annotated counts are the test split's annotations
        assert r['annotated'] == annotated[osp.basename(r['img_path'])]
    assert 'coco/bbox_mAP' in metrics and 'count/mean_mae_calibrated' in metrics


def test_a_checkpoint_without_meta_takes_the_file_beside_it(trained, tmp_path):
    ckpt = _load(osp.join(trained['work_dir'], 'epoch_1.pth'))
    for key in ('count_thresholds', 'count_thresholds_from'):
        ckpt['meta'].pop(key)
    folder = tmp_path / 'copied'
    folder.mkdir()
    torch.save(ckpt, str(folder / 'epoch_1.pth'))
    thrs = dict(RBC=0.5, WBC=0.25, Platelets=0.75)
    (folder / 'count_thresholds.json').write_text(json.dumps(dict(thresholds=thrs)))
    metrics, doc = _test(trained, str(folder / 'epoch_1.pth'), str(tmp_path / 'test'),
                         'count_calib_file')
    assert doc['calibration_source'] == str(folder / 'count_thresholds.json')
    assert {c: metrics[f'count/{c}_thr_calibrated'] for c in CLASSES} == thrs
    # neither: the fixed threshold only
    shutil.move(str(folder / 'count_thresholds.json'), str(tmp_path / 'moved.json'))
    metrics, doc = _test(trained, str(folder / 'epoch_1.pth'), str(tmp_path / 'test2'),
                         'count_calib_none')
    assert doc['calibrated_thrs'] is None and 'count/RBC_mae' in metrics
    assert not any(k.endswith('_calibrated') for k in metrics)


def test_detector_uses_the_calibrated_thresholds(trained, bccd_root):
    (best_ckpt, ) = glob.glob(osp.join(trained['work_dir'], 'best_coco_bbox_mAP_epoch_*.pth'))
    thrs = _load(best_ckpt)['meta']['count_thresholds']
    config = osp.join(trained['work_dir'], 'bccd_tiny.py')
    trained['cfg'].dump(config)
    detector = CellDetector(config, best_ckpt, device='cpu')
    assert detector.score_thr == thrs and detector.score_thr_source == 'checkpoint'
    # the model's own threshold is at most the lowest calibrated one
    assert detector.model.bbox_head.test_cfg.score_thr <= min(thrs.values())
    img, _ = detector.read(osp.join(bccd_root, 'JPEGImages', 'BloodImage_00000.jpg'))

    def boxes(det):  # (class, score) of every box kept, unrounded
        inst = det(img, return_datasamples=True)['predictions'][0].pred_instances
        return sorted((CLASSES[int(k)], float(v)) for k, v in zip(inst.labels, inst.scores))

    kept = boxes(detector)
    every = CellDetector(config, best_ckpt, device='cpu', score_thr=0.0)
    assert every.score_thr == {c: 0.0 for c in CLASSES} and every.score_thr_source == 'given'
    all_boxes = boxes(every)
    assert kept == [(c, v) for c, v in all_boxes if v >= thrs[c]]
    assert 0 < len(kept) < len(all_boxes)
    assert all(d['score'] >= round(thrs[d['class']], 4) for d in detector.detect(img))
