"""benchmarks/cnmc_throughput.py on CPU with tiny settings: the JSON / markdown it writes,
the equivalence mode, the time budget (items not started, a running item stopped), a failing
item. No timed assertions."""
import json
import os
import subprocess
import sys

import pytest

from script_loader import REPO, load_script

SCRIPT = load_script('benchmarks/cnmc_throughput.py')
main, parse_args, parse_variant, plan = (SCRIPT.main, SCRIPT.parse_args, SCRIPT.parse_variant,
                                         SCRIPT.plan)
# the budget stops a running item on every device: one that a slow or shared CPU cannot reach
# (the budget tests pass their own, later on the command line)
TINY = ['--device', 'cpu', '--size', '32', '--batch', '2', '--iters', '2', '--warmup', '1',
        '--windows', '2', '--window-s', '0.01', '--time-budget-s', '3600']


def _run(tmp_path, *extra):
    out, md = str(tmp_path / 'r.json'), str(tmp_path / 'r.md')
    res = main(TINY + list(extra) + ['--out', out, '--md', md])
    with open(out) as f:
        written = json.load(f)
    assert written == json.loads(json.dumps(res))
    return written, open(md).read()


def _by_variant(res):
    return {(r['model'], r['variant']): r for r in res['throughput']}


def test_script_runs_as_a_file():
    """Run as a file from anywhere, the script imports the package of its checkout and parses
    the flags of the recorded commands (benchmarks/cnmc_classification.md)."""
    code = ('import runpy, sys; sys.argv = ["cnmc_throughput.py"] + sys.argv[1:]; '
            'ns = runpy.run_path(sys.argv.pop(1)); '
            'a = ns["parse_args"](sys.argv[1:]); '
            'print(ns["mmbloodcell"].__file__, a.time_budget_s, a.infer_batches)')
    out = subprocess.run(
        [sys.executable, '-c', code, f'{REPO}/benchmarks/cnmc_throughput.py', '--device', 'cpu',
         '--models', 'densenet201', '--variants', 'fp32', '--batch', '32', '--size', '224',
         '--iters', '4', '--warmup', '1', '--infer-batches', '32', '--time-budget-s', '400',
         '--item-timeout-s', '300'], cwd='/', capture_output=True, text=True, check=True,
        env={k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}).stdout.split()
    assert out == [f'{REPO}/mmbloodcell/__init__.py', '400.0', '[32]']


def test_cpu_smoke_schema(tmp_path):
    res, md = _run(tmp_path, '--models', 'efficientnet-b2', '--variants',
                   'fp32,cl,graph,amp-bf16', '--infer-batches', '2,4')
    meta = res['meta']
    for key in ('date', 'command', 'batch', 'size', 'time_budget_s', 'wall_s', 'env'):
        assert key in meta, key
    assert meta['env']['device'] == 'cpu' and meta['env']['torch']
    assert meta['batch'] == 2
    recs = _by_variant(res)
    assert set(recs) == {('efficientnet-b2', v) for v in ('fp32', 'cl', 'graph', 'amp-bf16')}
    for variant in ('fp32', 'cl'):
        parts = recs[('efficientnet-b2', variant)]['parts']
        assert set(parts) == {'train', 'infer2', 'infer4'}
        for name, part in parts.items():
            assert part['img_s'] > 0 and part['ms_per_iter'] > 0, (variant, name)
            assert len(part['windows']) == 2 and part['iters_per_window'] >= 1
            assert part['batch'] == (4 if name == 'infer4' else 2)
        assert parts['train']['last_loss'] > 0
    for variant in ('graph', 'amp-bf16'):
        for part in recs[('efficientnet-b2', variant)]['parts'].values():
            assert 'needs CUDA' in part['skipped']
    rows = {r['variant']: r for r in res['summary']}
    assert rows['fp32']['train_speedup'] == pytest.approx(1.0)
    assert rows['cl']['train'] > 0 and rows['cl']['infer4_speedup'] > 0
    assert len(res['skipped']) == 2
    assert '| efficientnet-b2 | fp32 |' in md and 'train img/s (bs2)' in md
    assert 'infer img/s bs4' in md and res['meta']['command'] in md


def test_equivalence_on_cpu(tmp_path):
    # 64 px, batch 4 (at 32 px / batch 2 DenseNet's last batch norms see 2 values each and
    # turn rounding differences into different trainings)
    res, md = _run(tmp_path, '--models', 'densenet201', '--variants', 'none', '--equivalence',
                   '--equiv-variants', 'fp32,cl', '--equiv-steps', '3', '--equiv-distinct',
                   '2', '--equiv-eval-batch', '4', '--size', '64', '--batch', '4')
    assert res['throughput'] == []
    (rec, ) = res['equivalence']
    assert rec['model'] == 'densenet201' and rec['steps'] == 3
    ref = rec['reference']
    assert len(ref['losses']) == 3 and ref['param_change_norm'] > 0
    same = rec['variants']['fp32']  # the reference against itself: bit-identical on CPU
    assert same['losses'] == ref['losses'] == same['reference_losses']
    assert same['max_loss_abs_diff'] == 0 and same['param_rel_diff'] == 0
    assert same['pred_agreement'] == 1.0 and same['max_prob_abs_diff'] == 0
    cl = rec['variants']['cl']  # channels-last: other kernels, the same training
    assert len(cl['losses']) == 3 and cl['max_loss_abs_diff'] < 1e-3
    assert cl['max_prob_abs_diff'] < 1e-2 and cl['param_rel_diff'] < 0.5
    assert '## Equivalence of the training paths' in md and '| densenet201 | cl | 3 |' in md


def test_time_budget_skips_and_still_writes(tmp_path):
    res, md = _run(tmp_path, '--models', 'densenet201,efficientnet-b2', '--variants',
                   'fp32,cl', '--time-budget-s', '0', '--equivalence')
    assert len(res['skipped']) == 6
    assert all('time budget' in s['reason'] for s in res['skipped'])
    for rec in res['throughput']:
        assert all('time budget' in p['skipped'] for p in rec['parts'].values())
    assert '## Skipped' in md


def test_variant_parsing_and_plan_order():
    assert parse_variant('fp32')['stock'] and parse_variant('amp-fp16')['amp'] == 'float16'
    v = parse_variant('cl+bf16+graph')
    assert (v['channels_last'], v['dtype'], v['graph'], v['compile']) == \
        (True, 'bfloat16', True, None)
    assert parse_variant('cl+compile-mat')['compile'] == 'max-autotune-no-cudagraphs'
    for bad in ('fp64', 'cl+cl', 'bf16+fp16', 'graph+compile-ro', 'compile+compile-ro'):
        with pytest.raises(ValueError):
            parse_variant(bad)
    items = plan(parse_args(['--device', 'cuda', '--equivalence']))
    kinds = [(i['kind'], i['model'], i.get('variant')) for i in items]
    first_equiv = [k[0] for k in kinds].index('equivalence')
    first_compile = next(n for n, k in enumerate(kinds) if k[2] and 'compile' in k[2])
    # the core set of every model comes first, then equivalence, then the rest, compile last
    assert {k[2] for k in kinds[:first_equiv]} == {'fp32', 'cl+bf16+graph', 'cl+fp16+graph'}
    assert first_equiv == 9 and kinds[first_equiv + 1][0] == 'equivalence'
    assert all('compile' in (k[2] or '') for k in kinds[first_compile:])
    assert not any(k[1].endswith('-timm') and 'compile' in (k[2] or '') for k in kinds)
    assert all(i['parts'] == ['train', 'infer32', 'infer256'] for i in items
               if i['kind'] == 'throughput')


def test_time_budget_stops_the_running_item(tmp_path):
    """A window of 30 s cannot end within an 8 s budget: the running part is stopped and
    recorded, the parts and items after it are skipped, and the files are still written."""
    res, md = _run(tmp_path, '--models', 'efficientnet-b2', '--variants', 'fp32,cl',
                   '--infer-batches', '2', '--time-budget-s', '8', '--window-s', '30',
                   '--iters', '100000')
    first, second = res['throughput']
    assert 'killed' in first['parts']['train']['timeout'], first
    assert 'time budget' in first['parts']['train']['timeout']
    assert first['parts']['infer2'] == dict(skipped='not run: time budget during train')
    assert all('time budget' in p['skipped'] for p in second['parts'].values()), second
    assert res['meta']['wall_s'] < 30
    assert 'timeout: killed' in md


def test_failing_item_is_recorded(tmp_path):
    """A config folder without the model's config: the build fails, every part of the item
    records the error (naming the fix), and the next item is still run."""
    res, md = _run(tmp_path, '--models', 'efficientnet-b2', '--variants', 'fp32,cl', '--parts',
                   'train', '--config-root', str(tmp_path))
    for rec in res['throughput']:
        err = rec['parts']['train']['error']
        assert 'FileNotFoundError' in err and '--config-root' in err
    assert len(res['throughput']) == 2
