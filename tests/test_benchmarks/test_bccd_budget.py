"""benchmarks/bccd_budget.py's table: COCO metrics and the count error per class, at the
calibrated thresholds when the model has them (the package's configs), else at the fixed 0.3
(a model without calibration), with the threshold beside it; errors as rows."""
from script_loader import load_script

budget = load_script('benchmarks/bccd_budget.py')


def test_table_with_count_errors():
    calibrated = {'coco/bbox_mAP': 0.537, 'coco/Platelets_precision': 0.404,
                  'count/RBC_mae': 6.2, 'count/RBC_mae_calibrated': 3.0,
                  'count/RBC_thr_calibrated': 0.45, 'count/WBC_mae': 0.06,
                  'count/WBC_mae_calibrated': 0.05, 'count/WBC_thr_calibrated': 0.31,
                  'count/Platelets_mae': 0.65}  # no calibrated platelet threshold: 0.3
    assert budget.count_mae(calibrated, 'RBC') == (3.0, 0.45)
    assert budget.count_mae(calibrated, 'Platelets') == (0.65, 0.3)
    assert budget.count_mae({}, 'RBC') == (None, None)
    rows = [dict(model='gfl', epochs=24, metrics=calibrated),
            dict(model='yolov8n (ultralytics)', metrics={'coco/bbox_mAP': 0.301}),
            dict(model='broken', error='training exited with 1')]
    lines = budget.table(rows).splitlines()
    head = [c.strip() for c in lines[0].strip('|').split('|')]
    assert head[:3] == ['model', 'epochs', 'mAP'] and head[-3:] == [
        'count MAE RBC (thr)', 'count MAE WBC (thr)', 'count MAE Platelets (thr)']
    gfl = [c.strip() for c in lines[2].strip('|').split('|')]
    assert gfl[:3] == ['gfl', '24', '0.537'] and gfl[head.index('Platelets')] == '0.404'
    assert gfl[-3:] == ['3.00 (0.45)', '0.05 (0.31)', '0.65 (0.30)']
    yolo = [c.strip() for c in lines[3].strip('|').split('|')]
    assert yolo[1] == '-' and yolo[2] == '0.301' and yolo[-3:] == ['-', '-', '-']
    assert lines[4] == '| broken | - | training exited with 1 |'
