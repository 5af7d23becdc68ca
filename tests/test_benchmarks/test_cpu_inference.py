"""benchmarks/cpu_inference.py on 2 real BCCD smears and 2 real C-NMC cells, 1 iteration: the
rows it promises (PyTorch and ONNX Runtime for a detector and a classifier, ultralytics YOLOv8n
in PyTorch and in its own ONNX export, offline), the JSON and the table. No timed
assertions."""
import json
import os.path as osp

from script_loader import REPO, load_script

FCOS_DEMO = osp.join(REPO, 'configs', 'fcos', 'fcos_r18_fpn_gn_320_12e_bccd_cpu-demo.py')
EFFNET = osp.join(REPO, 'configs', 'cnmc', 'efficientnet-b2_fhl_cnmc.py')


def test_cpu_inference_benchmark(bccd_root, cnmc_samples_root, tmp_path, capsys):
    out, md = str(tmp_path / 'r.json'), str(tmp_path / 'r.md')
    doc = load_script('benchmarks/cpu_inference.py').main([
        '--detectors', FCOS_DEMO, '--classifiers', EFFNET,
        '--images', osp.join(bccd_root, 'JPEGImages'), '--cells', cnmc_samples_root,
        '--num-images', '2', '--iters', '1', '--warmup', '0', '--threads', '1',
        '--exporter', 'torchscript', '--work-dir', str(tmp_path / 'work'),
        '--out-json', out, '--out-md', md])
    assert json.load(open(out)) == json.loads(json.dumps(doc))
    assert doc['env']['threads'] == 1 and doc['env']['num_images'] == 2
    rows = {(r['model'], r['backend']): r for r in doc['results']}
    assert set(rows) == {(m, b) for m in ('fcos_r18_fpn_gn_320_12e_bccd_cpu-demo',
                                          'efficientnet-b2_fhl_cnmc', 'yolov8n (ultralytics)')
                         for b in ('pytorch', 'onnxruntime')}, doc['results']
    for row in rows.values():
        assert row['weights'] == 'initialised'
        assert row['ms_per_image_b1'] > 0 and row['images_per_s_b8'] > 0
    # the classifier gave a probability for each cell (no per-image error)
    assert rows[('efficientnet-b2_fhl_cnmc', 'onnxruntime')]['outputs_per_image'] == 1
    assert rows[('yolov8n (ultralytics)', 'onnxruntime')]['file'].endswith('.onnx')
    text = open(md).read()
    assert text in capsys.readouterr().out
    assert '1 thread(s)' in text and 'whole path from image file to boxes' in text
    assert '| batch 1 ms / image | batch 8 images / s |' in text and 'initialised:' in text
