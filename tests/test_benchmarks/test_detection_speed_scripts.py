"""benchmarks/rtmdet_step_speed.py and benchmarks/bccd_loader_speed.py run on CPU with tiny
settings and report what they promise. No timed assertions."""
import importlib.util
import json
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _script(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'benchmarks', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rtmdet_step_speed_cpu(tmp_path):
    out = str(tmp_path / 'step.json')
    rows = _script('rtmdet_step_speed').main(
        ['--device', 'cpu', '--batch', '2', '--size', '128', '--boxes', '6', '--repeats', '1',
         '--out', out])
    doc = json.load(open(out))
    assert doc['env']['same_first_losses'] is True
    stock, ours = doc['results']
    assert rows[0]['setup'] == stock['setup'] == 'stock mmdet/mmengine'
    assert (stock['head'], stock['ema']) == ('RTMDetSepBNHead', 'ExpMomentumEMA')
    assert (ours['head'], ours['ema']) == ('BatchRTMDetSepBNHead', 'ForeachExpMomentumEMA')
    assert ours['param_groups'] == 2 < stock['param_groups']
    assert 0 < ours['aten_ops'] < stock['aten_ops']
    assert stock['ms'] > 0 and ours['ms'] > 0


def test_bccd_loader_speed_in_process(bccd_coco, tmp_path):
    out = str(tmp_path / 'loader.json')
    rows = _script('bccd_loader_speed').main(
        [osp.join(REPO, 'configs', 'rtmdet', 'rtmdet_tiny_640_240s-budget_bccd.py'),
         '--data-root', bccd_coco, '--split-prefix', '', '--samples', '4', '--out', out])
    row = json.load(open(out))['results'][0]
    assert row == rows[0] and row['samples_per_s'] > 0
    steps = row['ms_per_transform']
    assert {'LoadImageFromFile', 'CachedMosaic', 'FastCachedMixUp', 'PackDetInputs'} <= set(steps)
    assert sum(steps.values()) <= row['ms_per_sample'] * 1.05


def test_bccd_loader_speed_with_workers(bccd_coco):
    rows = _script('bccd_loader_speed').main(
        [osp.join(REPO, 'configs', 'fcos', 'fcos_r18_fpn_gn_320_12e_bccd_cpu-demo.py'),
         '--data-root', bccd_coco, '--split-prefix', '', '--samples', '4', '--workers', '1',
         '--batch', '2'])
    assert rows[0]['workers'] == 1 and rows[0]['samples_per_s'] > 0
