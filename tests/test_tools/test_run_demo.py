"""tools/run_demo.py's count table: the test metrics of CellCountMetric, per class, at the
calibrated and at the fixed threshold."""
from script_loader import load_script


def _metrics(calibrated=True):
    m = {'coco/bbox_mAP': 0.4, 'count/RBC_best_mae': 0.5, 'count/mean_best_mae': 0.5}
    for c, cal, fixed in (('RBC', 3.25, 9.5), ('WBC', 0.125, 0.25), ('Platelets', 0.75, 1.0),
                          ('mean', 1.375, 3.583)):
        m.update({f'count/{c}_mae': fixed, f'count/{c}_within10pct': 0.1})
        if calibrated:
            m.update({f'count/{c}_mae_calibrated': cal,
                      f'count/{c}_within10pct_calibrated': 0.5})
            if c != 'mean':
                m[f'count/{c}_thr_calibrated'] = 0.12
    return m


def test_count_table_side_by_side():
    demo = load_script('tools/run_demo.py')
    lines = demo.count_table(_metrics()).splitlines()
    assert lines[0].split() == ['class', 'thr', '(cal.)', 'MAE', '(cal.)', '+-10%', '(cal.)',
                                'MAE', '(thr', '0.3)', '+-10%', '(thr', '0.3)']
    assert [ln.split()[0] for ln in lines[2:]] == ['RBC', 'WBC', 'Platelets', 'mean']
    assert lines[2].split() == ['RBC', '0.12', '3.25', '0.50', '9.50', '0.10']
    assert lines[5].split() == ['mean', '1.38', '0.50', '3.58', '0.10']


def test_count_table_without_calibration_or_counts():
    demo = load_script('tools/run_demo.py')
    lines = demo.count_table(_metrics(calibrated=False)).splitlines()
    assert lines[2].split() == ['RBC', '9.50', '0.10']
    assert 'fixed threshold only' in lines[-1]
    assert 'no count metrics' in demo.count_table({'coco/bbox_mAP': 0.4})
