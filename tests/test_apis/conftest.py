"""Trained models and real inputs shared by the tests of ``mmbloodcell.apis`` (session-scoped:
each training runs once per test session, on the first test that asks for it).

- ``detector``: the FCOS CPU demo config trained 2 iterations on 2 real BCCD images at 320x240;
- ``classifiers``: two SimpleNet C-NMC models (seeds 0 and 1), one epoch at 64 px on synthetic
  cells; ``ensemble_config``: the ensemble config of the two (its CKPT is ``-``);
- ``bccd_images``: three real BCCD smears and three bad files in one folder;
- ``cells``: the six real C-NMC cells (in all/ and hem/) and three bad files.
"""
import copy
import glob
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from cnmc_release import make_synthetic_cnmc, write_stain_reference
import mmbloodcell  # noqa: F401
from mmbloodcell.apis.tool_config import build_runner, set_data_root, set_evaluator_ann_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FCOS_DEMO = osp.join(REPO, 'configs', 'fcos', 'fcos_r18_fpn_gn_320_12e_bccd_cpu-demo.py')
SIMPLENET = osp.join(REPO, 'configs', 'cnmc', 'simplenet_bce_stain-norm_cnmc.py')
ENSEMBLE = osp.join(REPO, 'configs', 'cnmc', 'ensemble_densenet201-efficientnet-b2_cnmc.py')
SIZE = 64
#: one-stage detector configs whose export / decoding is tested with random weights
DETECTORS = {
    'fcos': osp.join(REPO, 'configs', 'fcos', 'fcos_r18_fpn_gn_320_12e_bccd_cpu-demo.py'),
    'gfl': osp.join(REPO, 'configs', 'gfl', 'gfl_r18-w32_fpn_320_24e_bccd_cpu.py'),
    'rtmdet': osp.join(REPO, 'configs', 'rtmdet', 'rtmdet_tiny_640_240s-budget_bccd.py'),
    'ssd': osp.join(REPO, 'configs', 'ssd', 'ssd300_50e_bccd.py'),
    'ssd_focal': osp.join(REPO, 'configs', 'ssd', 'ssd300_focal-giou-l1_50e_bccd.py'),
}


def _bad_files(folder, real_image, truncated_name):
    """A zero-byte .jpg, a text file named .png and the first half of a real image."""
    open(osp.join(folder, 'empty.jpg'), 'wb').close()
    with open(osp.join(folder, 'notes.png'), 'w') as f:
        f.write('this is not an image\n')
    with open(real_image, 'rb') as f:
        data = f.read()
    with open(osp.join(folder, truncated_name), 'wb') as f:
        f.write(data[:len(data) // 2])


# ----------------------------------------------------------------------------------------------
# Fixtures: trainings (once per module)
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope='session')
def detector(bccd_mini, tmp_path_factory):
    """FCOS R-18 (the CPU demo config) trained 2 iterations on 2 real BCCD images."""
    base = tmp_path_factory.mktemp('det')
    cfg = Config.fromfile(FCOS_DEMO)
    scale = (320, 240)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=scale, keep_ratio=True),
        dict(type='PackDetInputs')
    ]
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='BCCDDataset', data_root=bccd_mini['data_root'],
                     ann_file=bccd_mini['train'], data_prefix=dict(img='JPEGImages/'),
                     pipeline=train_pipeline, indices=2,
                     filter_cfg=dict(filter_empty_gt=True)))
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'Resize':
            step['scale'] = scale
    cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.test_dataloader.dataset.update(data_root=bccd_mini['data_root'],
                                       ann_file=bccd_mini['test'])
    set_evaluator_ann_file(cfg, 'test_evaluator', bccd_mini['test'])
    cfg.val_dataloader = None
    cfg.val_cfg = None
    cfg.val_evaluator = None
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2, val_interval=100)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2,
                                        save_optimizer=False)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = []
    cfg.model.backbone.init_cfg = None
    # the config keeps the demo's test_cfg.score_thr=0.05: the CLI lowers it to --score-thr
    assert cfg.model.test_cfg.score_thr == 0.05
    cfg.work_dir = str(base / 'work')
    cfg.experiment_name = 'cli_fcos'
    build_runner(cfg).train()
    ckpt = osp.join(cfg.work_dir, 'epoch_2.pth')
    assert osp.isfile(ckpt), os.listdir(cfg.work_dir)
    cfg_path = str(base / 'fcos_small.py')
    cfg.dump(cfg_path)
    return dict(config=cfg_path, ckpt=ckpt, base=base)


@pytest.fixture(scope='session')
def bccd_images(bccd_root, tmp_path_factory):
    """A folder: three real BCCD smears (links) and three bad files."""
    folder = tmp_path_factory.mktemp('smears')
    names = ['BloodImage_00000.jpg', 'BloodImage_00001.jpg', 'BloodImage_00002.jpg']
    for name in names:
        os.symlink(osp.join(bccd_root, 'JPEGImages', name), folder / name)
    _bad_files(str(folder), osp.join(bccd_root, 'JPEGImages', names[0]), 'truncated.jpg')
    return dict(folder=str(folder), good=names, bad=['empty.jpg', 'notes.png', 'truncated.jpg'])


def _small_cnmc_cfg(data_root, seed):
    cfg = Config.fromfile(SIMPLENET)
    set_data_root(cfg, data_root)
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[split]
        loader.update(batch_size=4, num_workers=0, persistent_workers=False)
        for step in loader.dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (SIZE, SIZE)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1,
                                        save_optimizer=False)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = []
    cfg.randomness = dict(seed=seed, deterministic=False)
    return cfg


@pytest.fixture(scope='session')
def classifiers(tmp_path_factory):
    """Two SimpleNet models (seeds 0 and 1), one epoch at 64 px on synthetic C-NMC cells."""
    base = tmp_path_factory.mktemp('cls')
    root = str(base / 'C-NMC_Leukemia')
    make_synthetic_cnmc(root, img_size=SIZE, num_folds=3, patients_per_fold=(1, 1),
                        cells_per_patient=2, prelim_patients=(1, 1), final_patients=(1, 1),
                        seed=0)
    write_stain_reference(root)
    out = {}
    for name, seed in (('a', 0), ('b', 1)):
        cfg = _small_cnmc_cfg(root, seed)
        cfg.work_dir = str(base / f'work_{name}')
        cfg.experiment_name = f'cli_simplenet_{name}'
        build_runner(cfg).train()
        ckpt = osp.join(cfg.work_dir, 'epoch_1.pth')
        assert osp.isfile(ckpt), os.listdir(cfg.work_dir)
        cfg_path = str(base / f'simplenet_{name}.py')
        cfg.dump(cfg_path)
        out[name] = dict(config=cfg_path, ckpt=ckpt)
    out['base'] = base
    return out


@pytest.fixture(scope='session')
def cells(cnmc_samples_root, tmp_path_factory):
    """A folder: the six real C-NMC cells (links, in all/ and hem/) and three bad files, one
    of them a truncated cell of patient 1."""
    folder = tmp_path_factory.mktemp('cells')
    good = []
    for cls in ('all', 'hem'):
        os.makedirs(folder / cls)
        for path in sorted(glob.glob(osp.join(cnmc_samples_root, cls, '*.bmp'))):
            os.symlink(path, folder / cls / osp.basename(path))
            good.append(osp.basename(path))
    assert len(good) == 6
    _bad_files(str(folder), osp.join(cnmc_samples_root, 'all', good[0]),
               osp.join('all', 'UID_1_99_1_all.bmp'))
    return dict(folder=str(folder), good=good, root=cnmc_samples_root,
                bad=['empty.jpg', 'notes.png', 'UID_1_99_1_all.bmp'])


# ----------------------------------------------------------------------------------------------
# Comparing detections
# ----------------------------------------------------------------------------------------------

def assert_same_detections(ref, got, box_atol: float, score_atol: float) -> None:
    """The same boxes, labels and scores in both (``dict(bboxes, scores, labels)`` arrays or
    lists of detection records), each ``ref`` box matched to one ``got`` box of its label with
    coordinates within ``box_atol`` px and score within ``score_atol`` (boxes of near-equal
    scores may come in either order)."""
    def arrays(d):
        if isinstance(d, dict):
            return (np.asarray(d['bboxes'], float).reshape(-1, 4), np.asarray(d['scores'], float),
                    np.asarray(d['labels']))
        return (np.asarray([r['bbox'] for r in d], float).reshape(-1, 4),
                np.asarray([r['score'] for r in d], float), np.asarray([r['label'] for r in d]))
    (rb, rs, rl), (gb, gs, gl) = arrays(ref), arrays(got)
    assert len(rb) == len(gb), f'{len(rb)} boxes expected, {len(gb)} found'
    free = np.ones(len(gb), bool)
    for i in range(len(rb)):
        ok = free & (gl == rl[i]) & (np.abs(gs - rs[i]) <= score_atol) & (
            np.abs(gb - rb[i]).max(axis=1) <= box_atol)
        assert ok.any(), (f'box {i} {rb[i].tolist()} label {rl[i]} score {rs[i]} has no match '
                          f'(box_atol={box_atol}, score_atol={score_atol})')
        free[np.nonzero(ok)[0][0]] = False


@pytest.fixture(scope='session')
def same_detections():
    """:func:`assert_same_detections`."""
    return assert_same_detections


# ----------------------------------------------------------------------------------------------
# Detectors with random weights (decoding and export checks)
# ----------------------------------------------------------------------------------------------

def build_random_detector(config: str, seed: int = 0):
    """The config's detector with random He-normal conv weights (no download), no focal-loss
    prior and BatchNorm statistics of a random batch, so that its scores spread out; in eval
    mode."""
    from mmdet.registry import MODELS
    cfg = Config.fromfile(config)
    if cfg.model.get('backbone', {}).get('init_cfg') is not None:
        cfg.model.backbone.init_cfg = None
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:  # He-normal everywhere: features and outputs of order 1
                p.normal_(0, (2 / p[0].numel()) ** 0.5)
            elif name.startswith('bbox_head') and 'cls' in name and name.endswith('bias'):
                p.zero_()  # no focal-loss prior: scores around 0.5, not 0.01
        # BatchNorm statistics of one random batch: features of order 1 through deep stacks
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = 1.0
        model.train()
        dp = model.data_preprocessor  # a batch of random pixels, normalised as images are
        model._forward((torch.rand(2, 3, 320, 320) * 255 - dp.mean) / dp.std)
        # the output convs scaled down: unsaturated scores (no ties at 1.0), boxes < image
        head = type(model.bbox_head).__name__
        scale = ({'rtm_cls': 0.02, 'rtm_reg': 0.02} if 'RTMDet' in head else
                 {'cls_convs': 0.002, 'reg_convs': 0.01} if 'SSD' in head else {})
        for name, p in model.bbox_head.named_parameters():
            if name.split('.')[0] in scale:
                p.mul_(scale[name.split('.')[0]])
    return model.eval()


@pytest.fixture(scope='session')
def random_detector():
    """``kind`` (a key of :data:`DETECTORS`) -> its detector with random, perturbed weights
    (:func:`build_random_detector`)."""
    return lambda kind, seed=0: build_random_detector(DETECTORS[kind], seed)


@pytest.fixture(scope='session')
def random_checkpoint(tmp_path_factory):
    """``kind`` -> ``dict(config, ckpt)``: the random detector saved as a checkpoint (with
    BCCD's class names and, for ``meta``, extra checkpoint meta)."""
    from mmengine.runner.checkpoint import save_checkpoint
    base = tmp_path_factory.mktemp('random_det')

    def make(kind, meta=None):
        model = build_random_detector(DETECTORS[kind])
        ckpt = str(base / f'{kind}_{len(os.listdir(base))}.pth')
        save_checkpoint(dict(state_dict=model.state_dict(), meta=dict(
            dataset_meta=dict(classes=('RBC', 'WBC', 'Platelets')), **(meta or {}))), ckpt)
        return dict(config=DETECTORS[kind], ckpt=ckpt)
    return make


@pytest.fixture(scope='session')
def ensemble_config(classifiers) -> str:
    """The package's ensemble config with classifiers a and b as its members (named ``a``,
    ``b``) and their test pipeline; its checkpoint is ``-``."""
    cfg = Config.fromfile(ENSEMBLE)
    cfg.model.members = [
        dict(config=classifiers['a']['config'], checkpoint=classifiers['a']['ckpt'], name='a'),
        dict(config=classifiers['b']['config'], checkpoint=classifiers['b']['ckpt'], name='b'),
    ]
    cfg.test_dataloader = copy.deepcopy(Config.fromfile(classifiers['a']['config'])
                                        .test_dataloader)
    path = str(classifiers['base'] / 'ensemble_small.py')
    cfg.dump(path)
    return path
