"""README.md as written: the C-NMC walkthrough runs command by command on a generated release
(in a fresh folder, as a new user's checkout would be), and the "Adding a registered module"
snippet works in a package of the user's own."""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
README = osp.join(REPO, 'README.md')


def _block(marker: str) -> str:
    with open(README) as f:
        text = f.read()
    match = re.search(rf'<!-- {marker} -->\s*```\w*\n(.*?)```\s*<!-- /{marker} -->', text,
                      re.S)
    assert match, f'README.md has no block between <!-- {marker} --> markers'
    return match.group(1)


def _env():
    env = dict(os.environ)
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    env.update(OMP_NUM_THREADS='2', PYTHONUNBUFFERED='1')
    return env


#: What the walkthrough test adds to README's training line: one epoch instead of thirty (the
#: rest of the schedule, the model and the data pipeline are the config's).
SHORT_SCHEDULE = ' train_cfg.max_epochs=1 default_hooks.checkpoint.save_optimizer=False'


def test_cnmc_walkthrough_as_written(tmp_path):
    commands = [line for line in _block('cnmc-walkthrough').splitlines()
                if line.strip() and not line.lstrip().startswith('#')]
    assert any(c.startswith('python tools/train.py') for c in commands)
    # a fresh folder: the checkout's tools/ and configs/, nothing else
    for name in ('tools', 'configs'):
        os.symlink(osp.join(REPO, name), tmp_path / name)
    script = ['set -euo pipefail']
    for cmd in commands:
        cmd = re.sub(r'\s+#.*$', '', cmd)
        if cmd.startswith('python tools/train.py'):
            cmd += SHORT_SCHEDULE
        script.append(f'echo "+ {cmd}"')
        script.append(cmd)
    proc = subprocess.run(['bash', '-c', '\n'.join(script)], cwd=str(tmp_path), env=_env(),
                          capture_output=True, text=True, timeout=1500)
    log = proc.stdout[-6000:] + proc.stderr[-6000:]
    assert proc.returncode == 0, log

    root = tmp_path / 'data' / 'C-NMC_Leukemia'
    assert (root / 'stain_reference.json').is_file()
    assert 'data_preprocessor = dict(' in proc.stdout
    assert (tmp_path / 'work_dirs' / 'cnmc_duplicates' / 'duplicates.csv').is_file()
    work = tmp_path / 'work_dirs' / 'densenet201_fhl_cnmc'
    assert (work / 'epoch_1.pth').is_file()
    # tools/test.py wrote beside the checkpoint: its run folder and the relative --out
    assert (work / 'preds.pkl').is_file()
    runs = sorted(d for d in glob.glob(str(work / '2*')) if osp.isdir(d))
    assert len(runs) == 2 and osp.isfile(osp.join(runs[1], osp.basename(runs[1]) + '.json'))
    with open(osp.join(runs[0], 'binary_metrics.json')) as f:
        assert json.load(f)['epoch'] == 1
    classify = tmp_path / 'work_dirs' / 'classify'
    with open(classify / 'predictions.csv') as f:
        images = [line.split(',')[0] for line in f.read().splitlines()[1:]]
    numbers = [int(osp.basename(p)[:-4]) for p in images]
    assert numbers == sorted(numbers) and len(numbers) == 8
    report = work / 'report.html'
    assert report.is_file()
    text = report.read_text()
    assert 'preds.pkl' in text and 'test' in text


def _snippet_files() -> dict:
    files, name = {}, None
    for line in _block('own-module-snippet').splitlines():
        match = re.match(r'^# (my_project/\S+\.py)$', line)
        if match:
            name = match.group(1)
            files[name] = []
        elif name is not None:
            files[name].append(line)
    return {k: '\n'.join(v).strip() + '\n' for k, v in files.items()}


def _run_user_code(tmp_path, code: str):
    env = _env()
    env['PYTHONPATH'] = str(tmp_path)
    return subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=600)


CHECK = '''
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
cfg = Config.fromfile('my_project/densenet201_myloss_cnmc.py')
cfg.model.backbone.init_cfg = None
with DefaultScope.overwrite_default_scope('mmpretrain'):
    model = MODELS.build(cfg.model)
assert type(model.head.loss_module).__name__ == 'MyLoss', model.head.loss_module
samples = [DataSample().set_gt_label(torch.tensor([i % 2])) for i in range(2)]
losses = model(torch.rand(2, 3, 32, 32) * 255, samples, mode='loss')
assert torch.isfinite(losses['loss']), losses
print('loss', float(losses['loss']))
'''


def test_own_module_snippet_in_a_user_package(tmp_path):
    files = _snippet_files()
    assert set(files) == {'my_project/__init__.py', 'my_project/my_loss.py',
                          'my_project/densenet201_myloss_cnmc.py'}
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        # the README's placeholder for this repository's configs/ folder
        path.write_text(text.replace('mmbloodcell_configs', osp.join(REPO, 'configs')))
    proc = _run_user_code(tmp_path, CHECK)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'loss ' in proc.stdout
    # what README warns about: without _delete_=True the base's FocalHingeLoss arguments merge
    # into MyLoss's
    cfg = tmp_path / 'my_project' / 'densenet201_myloss_cnmc.py'
    cfg.write_text(cfg.read_text().replace('_delete_=True, ', ''))
    proc = _run_user_code(tmp_path, CHECK)
    assert proc.returncode != 0 and "unexpected keyword argument 'gamma'" in proc.stderr


@pytest.mark.parametrize('marker', ['cnmc-walkthrough', 'own-module-snippet'])
def test_readme_blocks_exist(marker):
    assert _block(marker).strip()


def test_reproduce_dry_run_block_is_the_commands_output(capsys):
    """README's `mmbloodcell reproduce fhl-table3 --dry-run` block is what the command prints
    in a fresh checkout (no rows run yet)."""
    if osp.isdir(osp.join(REPO, 'work_dirs', 'reproduce', 'fhl-table2')):
        pytest.skip('work_dirs/reproduce/fhl-table2 exists here: the dry run would name its '
                    'checkpoints')
    from mmbloodcell.apis.cli import main
    block = _block('reproduce-dry-run').splitlines()
    assert block[0] == '$ mmbloodcell reproduce fhl-table3 --dry-run'
    assert main(['reproduce', 'fhl-table3', '--dry-run', '--root', REPO]) == 0
    assert capsys.readouterr().out.splitlines() == block[1:]
