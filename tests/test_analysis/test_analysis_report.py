"""tools/analysis/report.py: one self-contained HTML page per real run, opened in headless
Chromium: every image on it loads (``naturalWidth > 0``).

Chromium is Debian's ``chromium`` (``apt-get install -y chromium``; tools/setup_env.sh installs it
when it runs as root), or the browser named by ``MMBC_CHROMIUM``. The page is loaded with
``--dump-dom`` after a small script, added to a copy of the page, has written every image's
``complete`` / ``naturalWidth`` / ``naturalHeight`` into the DOM at the ``load`` event."""
import base64
import html
import json
import os
import re
import shutil
import subprocess

import pytest
from analysis_helpers import assert_png, tool

CHROMIUM = (os.environ.get('MMBC_CHROMIUM') or shutil.which('chromium')
            or shutil.which('chromium-browser') or shutil.which('google-chrome'))
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason='headless Chromium not found: install Debian\'s chromium '
    '(apt-get install -y chromium; tools/setup_env.sh does it when run as root) or set '
    'MMBC_CHROMIUM to a Chromium / Chrome binary')

PROBE = """<script>
window.addEventListener('load', function () {
  var out = [];
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    out.push({alt: im.alt, complete: im.complete, naturalWidth: im.naturalWidth,
              naturalHeight: im.naturalHeight});
  }
  var pre = document.createElement('pre');
  pre.id = 'mmbc-image-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""

FIGURES = {
    'det_run': ['count_scatter', 'count_worst', 'loss', 'lr', 'val_metrics', 'pr_curves',
                'confusion_matrix', 'samples'],
    'cls_run': ['loss', 'lr', 'val_metrics', 'roc', 'confusion_matrix', 'samples'],
}


def images_in_chromium(page: str, tmp_path) -> list:
    """Load ``page`` (an HTML file) in headless Chromium; the state of every <img>."""
    with open(page, encoding='utf-8') as f:
        text = f.read()
    assert text.count('</body>') == 1
    probe = tmp_path / 'probe.html'
    probe.write_text(text.replace('</body>', PROBE + '</body>'), encoding='utf-8')
    cmd = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
           '--no-first-run', f'--user-data-dir={tmp_path / "chromium-profile"}',
           '--virtual-time-budget=20000', '--dump-dom', probe.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="mmbc-image-probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, (f'Chromium did not run the probe (rc {proc.returncode}):\n'
               f'{proc.stderr[-2000:]}')
    return json.loads(html.unescape(m.group(1)))


@pytest.fixture(scope='module')
def reports(det_run, cls_run, tmp_path_factory):
    out = tmp_path_factory.mktemp('reports')
    pages = {}
    for name, run in (('det_run', det_run), ('cls_run', cls_run)):
        pages[name] = tool('analysis/report.py').main(
            [run['work_dir'], '--out', str(out / f'{name}.html'), '--score-thr', '0.05'])
    return pages


@pytest.mark.parametrize('run_name', list(FIGURES))
def test_report_is_self_contained(run_name, reports, request):
    run = request.getfixturevalue(run_name)
    with open(reports[run_name], encoding='utf-8') as f:
        page = f.read()
    # no file, script or style sheet from elsewhere: every image is a PNG data URI
    assert not re.search(r'<(link|script)\b', page, re.I)
    srcs = re.findall(r'<img\b[^>]*\bsrc="([^"]*)"', page)
    ids = re.findall(r'<figure id="fig-([a-z_]+)"', page)
    assert ids == FIGURES[run_name]
    assert len(srcs) == len(ids)
    for src in srcs:
        assert src.startswith('data:image/png;base64,'), src[:60]
        assert_png(base64.b64decode(src.split(',', 1)[1]))
    # the config summary and the test metrics are on the page
    with open(os.path.join(run['test_log'], os.path.basename(run['test_log']) + '.json')) as f:
        metrics = json.load(f)
    if run_name == 'det_run':
        for text in ('FCOS', 'R-18', 'BCCDDataset'):
            assert f'<td>{text}</td>' in page
        key = 'coco/bbox_mAP_50'
    else:
        for text in ('SimpleNet', 'BCE', 'CNMCDataset'):
            assert f'<td>{text}</td>' in page
        (tn, fp), (fn, tp) = metrics['binary/confusion_matrix']
        assert re.search(rf'<td>gt hem</td><td class="num">{tn}</td><td class="num">{fp}</td>',
                         page)
        key = 'binary/weighted_f1'
    value = f'{metrics[key]:.4f}'.rstrip('0').rstrip('.')
    assert f'<tr><td>{key}</td><td class="num">{value}</td></tr>' in page
    assert 'class="note"' not in page, re.findall(r'<p class="note">(.*?)</p>', page)


@needs_chromium
@pytest.mark.parametrize('run_name', list(FIGURES))
def test_report_renders_in_headless_chromium(run_name, reports, tmp_path):
    images = images_in_chromium(reports[run_name], tmp_path)
    assert len(images) == len(FIGURES[run_name])
    for im in images:
        assert im['complete'] and im['naturalWidth'] > 0 and im['naturalHeight'] > 0, im


@needs_chromium
def test_the_chromium_probe_sees_a_broken_image(reports, tmp_path):
    """The check can fail: a page with one image that does not exist."""
    page = tmp_path / 'broken.html'
    with open(reports['cls_run'], encoding='utf-8') as f:
        good = re.search(r'<img\b[^>]*>', f.read()).group(0)
    page.write_text(f'<html><body>{good}<img alt="missing" src="missing.png"></body></html>')
    images = images_in_chromium(str(page), tmp_path)
    assert [im['naturalWidth'] > 0 for im in images] == [True, False]


def test_report_without_predictions_says_how_to_get_them(cls_run, tmp_path):
    """A work dir without a pickle: curves and the metric's confusion matrix, and a note."""
    work = tmp_path / 'work'
    shutil.copytree(cls_run['work_dir'], work, ignore=shutil.ignore_patterns('*.pkl', '*.pth'))
    page = tool('analysis/report.py').main([str(work)])
    assert page == str(work / 'report.html')
    text = (work / 'report.html').read_text()
    assert re.findall(r'<figure id="fig-([a-z_]+)"', text) == [
        'loss', 'lr', 'val_metrics', 'confusion_matrix']
    assert 'No predictions pickle' in text and '--out' in text


def _cell(value):
    return f'{value:.4f}'.rstrip('0').rstrip('.') if isinstance(value, float) else str(value)


def test_report_counts_section(det_run, reports):
    """The Counts section: the test metrics' count error per class at the calibrated and the
    fixed threshold, and the images with the largest count error from count_errors_test.json
    (written by CellCountMetric beside the test log)."""
    with open(reports['det_run'], encoding='utf-8') as f:
        page = f.read()
    log = det_run['test_log']
    with open(os.path.join(log, os.path.basename(log) + '.json')) as f:
        metrics = json.load(f)
    with open(os.path.join(log, 'count_errors_test.json')) as f:
        doc = json.load(f)
    section = page[page.index('<h2>Counts</h2>'):page.index('<h2>Training curves</h2>')]
    assert doc['calibration_source'].startswith('checkpoint meta')
    for c in ('RBC', 'WBC', 'Platelets'):
        thr = _cell(metrics[f'count/{c}_thr_calibrated'])
        cal = ''.join(f'<td class="num">{_cell(metrics[f"count/{c}_{s}_calibrated"])}</td>'
                      for s in ('mae', 'rmse'))
        assert f'<tr><td>{c}</td><td>calibrated ({thr})</td>{cal}' in section, c
        fixed = ''.join(f'<td class="num">{_cell(metrics[f"count/{c}_{s}"])}</td>'
                        for s in ('mae', 'rmse'))
        assert f'<tr><td>{c}</td><td>fixed (0.3)</td>{fixed}' in section, c
    # the worst images: both test images, the larger calibrated error first
    ranked = sorted(doc['images'], key=lambda r: -r['abs_error_calibrated'])
    rows = re.findall(r'<tr><td>(BloodImage_\d+\.jpg)</td>(.*?)</tr>', section)
    assert [name for name, _ in rows] == [os.path.basename(r['img_path']) for r in ranked]
    first = ranked[0]
    assert (f"<td>{first['annotated']['RBC']} / {first['predicted_calibrated']['RBC']} / "
            f"{first['predicted']['RBC']}</td>") in rows[0][1]
    assert 'id="fig-count_scatter"' in section
    # ... drawn from the predictions pickle, in the ranking's order, at the calibrated thresholds
    assert 'id="fig-count_worst"' in section
