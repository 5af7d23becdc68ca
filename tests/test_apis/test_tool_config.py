"""Command-line flags of tools/train.py and tools/test.py: --data-root, the test work dir and
--out, --amp without a GPU, and the error for pretrained weights that cannot be downloaded."""
import argparse
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from script_loader import load_script
from mmbloodcell.apis.tool_config import (UsageError, merge_test_args, merge_train_args,
                                          offline_message, remote_weights, set_data_root,
                                          weights_url)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = osp.join(REPO, 'configs')
DENSENET = osp.join(CFG, 'cnmc', 'densenet201_fhl_cnmc.py')
STAIN = osp.join(CFG, 'cnmc', 'simplenet_bce_stain-norm_cnmc.py')
FCOS = osp.join(CFG, 'fcos', 'fcos_r18_fpn_gn_320_12e_bccd_cpu-demo.py')


def _tool(name):
    return load_script(f'tools/{name}.py')


def _train_args(config, *argv):
    return _tool('train').parse_args([config, *argv])


def _test_args(config, ckpt, *argv):
    return _tool('test').parse_args([config, ckpt, *argv])


def _datasets(cfg):
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        yield split, cfg[split].dataset


def test_data_root_moves_every_split_of_a_cnmc_config(tmp_path):
    new = str(tmp_path / 'cnmc')
    cfg = merge_train_args(Config.fromfile(STAIN), _train_args(STAIN, '--data-root', new))
    for split, dataset in _datasets(cfg):
        assert dataset.data_root == new + '/', split
        norm = [s for s in dataset.pipeline if s['type'] == 'StainNormalize']
        assert norm and norm[0]['reference'] == new + '/stain_reference.json', split
    assert cfg.data_root == new + '/' and cfg.stain_reference == new + '/stain_reference.json'


def test_data_root_moves_the_evaluators_of_a_detection_config(tmp_path):
    new = str(tmp_path / 'bccd')
    cfg = merge_test_args(Config.fromfile(FCOS),
                          _test_args(FCOS, 'x.pth', '--data-root', new, '--work-dir', 'w'))
    for split, dataset in _datasets(cfg):
        assert dataset.data_root == new + '/', split
    assert cfg.val_evaluator[0].ann_file == new + '/annotations/val.json'
    assert cfg.test_evaluator[0].ann_file == new + '/annotations/test.json'
    assert [m.type for m in cfg.test_evaluator] == ['CocoMetric', 'CellCountMetric']
    # --cfg-options data_root=... is the same, instead of changing nothing
    same = merge_test_args(Config.fromfile(FCOS), _test_args(
        FCOS, 'x.pth', '--cfg-options', f'data_root={new}', '--work-dir', 'w'))
    assert same.to_dict() == cfg.to_dict()


def test_data_root_needs_one_root():
    cfg = Config(dict(train_dataloader=dict(dataset=dict(data_root='a/')),
                      val_dataloader=dict(dataset=dict(data_root='b/'))))
    with pytest.raises(UsageError, match='several: a/, b/.*train_dataloader.dataset.data_root'):
        set_data_root(cfg, 'c')
    one = set_data_root(Config(dict(train_dataloader=dict(dataset=dict(
        data_root='a/', ann_file='a/x.json')))), 'c')
    assert one.train_dataloader.dataset.to_dict() == dict(data_root='c/', ann_file='c/x.json')


def test_test_results_land_beside_the_checkpoint(tmp_path, monkeypatch):
    work = tmp_path / 'work_dirs' / 'densenet201_fhl_cnmc'
    work.mkdir(parents=True)
    (work / 'densenet201_fhl_cnmc.py').write_text('# dumped config')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_3.pth'))
    ckpt = work / 'epoch_3.pth'
    ckpt.write_bytes(b'0')
    cfg = merge_test_args(Config.fromfile(DENSENET),
                          _test_args(DENSENET, str(ckpt), '--out', 'preds.pkl'))
    assert cfg.work_dir == str(work) and cfg.out_file == str(work / 'preds.pkl')
    # an absolute --out stays; --work-dir still wins
    cfg = merge_test_args(Config.fromfile(DENSENET), _test_args(
        DENSENET, str(ckpt), '--out', str(tmp_path / 'p.pkl'), '--work-dir', str(tmp_path)))
    assert cfg.work_dir == str(tmp_path) and cfg.out_file == str(tmp_path / 'p.pkl')
    # a checkpoint outside a work dir: mmdet's default
    loose = tmp_path / 'downloads' / 'model.pth'
    loose.parent.mkdir()
    loose.write_bytes(b'0')
    monkeypatch.chdir(tmp_path)
    cfg = merge_test_args(Config.fromfile(DENSENET), _test_args(DENSENET, str(loose)))
    assert cfg.work_dir == osp.join('./work_dirs', 'densenet201_fhl_cnmc')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only message')
def test_amp_on_a_cpu_says_so():
    with pytest.raises(RuntimeError, match='--amp needs a CUDA GPU.*drop --amp'):
        merge_train_args(Config.fromfile(DENSENET), _train_args(DENSENET, '--amp'))


def test_remote_weights_and_offline_message():
    cfg = Config.fromfile(DENSENET)
    weights = remote_weights(cfg)
    assert weights == [('model.backbone.init_cfg.checkpoint',
                        cfg.model.backbone.init_cfg.checkpoint)]
    msg = offline_message(cfg, OSError('no network'))
    name = osp.basename(cfg.model.backbone.init_cfg.checkpoint)
    assert f'checkpoints/{name}' in msg
    assert '--cfg-options model.backbone.init_cfg=None' in msg
    assert f'--cfg-options model.backbone.init_cfg.checkpoint=/path/to/{name}' in msg
    timm = Config.fromfile(osp.join(CFG, 'cnmc', 'efficientnet-b2-timm_fhl_cnmc.py'))
    assert any(k == 'model.backbone.pretrained' for k, _ in remote_weights(timm))
    # a model-zoo name (YOLOv3's open-mmlab://darknet53): the file mmengine's table resolves
    yolo = Config.fromfile(osp.join(CFG, 'yolo', 'yolov3_d53_416_50e_bccd.py'))
    assert remote_weights(yolo) == [('model.backbone.init_cfg.checkpoint',
                                     'open-mmlab://darknet53')]
    from mmengine.runner.checkpoint import get_external_models
    name = osp.basename(get_external_models()['darknet53'])
    assert name.endswith('.pth') and name != 'darknet53'
    assert name == osp.basename(weights_url('open-mmlab://darknet53'))
    assert f'checkpoints/{name}' in offline_message(yolo, OSError('no network'))
    assert weights_url('/local/file.pth') == '/local/file.pth'


def test_train_offline_names_the_weights_and_the_fix(tmp_path, monkeypatch):
    """A config whose pretrained weights cannot be reached (a torchvision:// name, as the
    configs give them) stops with the config value, where to put the file and the
    --cfg-options that avoid it, not a bare URLError. Nothing is contacted: torch.hub's
    urlopen (the downloader mmengine's http loader ends in) refuses, as offline."""
    import urllib.error

    import torch.hub
    from mmengine.runner.checkpoint import get_torchvision_models

    asked = []

    def offline(request, *args, **kwargs):
        asked.append(getattr(request, 'full_url', request))
        raise urllib.error.URLError(f'network disabled in the tests: {asked[-1]}')

    monkeypatch.setattr(torch.hub, 'urlopen', offline)
    from cnmc_release import make_synthetic_cnmc
    root = str(tmp_path / 'cnmc')
    make_synthetic_cnmc(root, img_size=32, num_folds=1, patients_per_fold=(1, 1),
                        cells_per_patient=2, prelim_patients=(1, 1))
    cfg = Config.fromfile(osp.join(REPO, 'tests', 'test_reliability', 'configs', 'cnmc_tiny.py'))
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint='torchvision://resnet18')
    cfg.experiment_name = 'offline_weights'
    path = str(tmp_path / 'offline.py')
    cfg.dump(path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    with pytest.raises(RuntimeError) as err:
        _tool('train').main([path, '--work-dir', str(tmp_path / 'work'), '--data-root', root])
    msg = str(err.value)
    assert 'could not be downloaded' in msg and 'URLError' in msg
    assert 'model.backbone.init_cfg.checkpoint = torchvision://resnet18' in msg
    assert '--cfg-options model.backbone.init_cfg=None' in msg
    # the file mmengine's torchvision table names (what it would have fetched), not 'resnet18'
    name = osp.basename(get_torchvision_models()['resnet18'])
    assert name.startswith('resnet18-') and name.endswith('.pth')
    assert f'checkpoints/{name}' in msg
    assert len(asked) == 1 and asked[0].endswith('/' + name)  # refused, never sent


def test_parsers_take_data_root_and_mpi():
    for args in (_train_args(DENSENET, '--data-root', 'd', '--launcher', 'mpi'),
                 _test_args(DENSENET, 'c.pth', '--data-root', 'd', '--launcher', 'mpi')):
        assert isinstance(args, argparse.Namespace) and args.data_root == 'd'


def test_two_trainings_in_one_process_write_their_own_scalars(tmp_path):
    """mmdet's runtime names its visualizer 'visualizer': mmengine would give the second run
    the first run's visualizer (and its folder); build_runner lets each run name its own."""
    import glob

    from mmbloodcell.apis.tool_config import build_runner
    from cnmc_release import make_synthetic_cnmc
    root = str(tmp_path / 'cnmc')
    make_synthetic_cnmc(root, img_size=32, num_folds=1, patients_per_fold=(1, 1),
                        cells_per_patient=2, prelim_patients=(1, 1))
    for run in ('first', 'second'):
        cfg = Config.fromfile(osp.join(REPO, 'tests', 'test_reliability', 'configs',
                                       'cnmc_tiny.py'))
        set_data_root(cfg, root)
        cfg.merge_from_dict({'train_cfg.max_epochs': 1, 'default_hooks.checkpoint.interval': 100})
        cfg.visualizer = dict(type='UniversalVisualizer', name='visualizer',
                              vis_backends=[dict(type='LocalVisBackend')])
        cfg.work_dir = str(tmp_path / run)
        cfg.experiment_name = f'two_trainings_{run}'
        build_runner(cfg).train()
        scalars = glob.glob(str(tmp_path / run / '*' / 'vis_data' / 'scalars.json'))
        assert len(scalars) == 1, (run, scalars)


def test_data_root_moves_the_mean_std_file():
    cfg = Config(dict(
        data_root='data/C-NMC_Leukemia/',
        model=dict(data_preprocessor=dict(type='StatsFileClsDataPreprocessor',
                                          stats_file='data/C-NMC_Leukemia/mean_std.json')),
        train_dataloader=dict(dataset=dict(data_root='data/C-NMC_Leukemia/')),
        other=dict(stats_file='elsewhere/mean_std.json')))
    set_data_root(cfg, '/mnt/cnmc')
    assert cfg.model.data_preprocessor.stats_file == '/mnt/cnmc/mean_std.json'
    assert cfg.train_dataloader.dataset.data_root == '/mnt/cnmc/'
    # a file outside the old root stays where it is
    assert cfg.other.stats_file == 'elsewhere/mean_std.json'
