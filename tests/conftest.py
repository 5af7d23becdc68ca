"""Shared fixtures. Real data lives in ``../shared/data`` beside the checkout (never in the repo)."""
import os
import os.path as osp

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_DATA = os.environ.get('MMBC_SHARED_DATA',
                             osp.join(osp.dirname(REPO_ROOT), 'shared', 'data'))


def _shared(sub: str) -> str:
    path = osp.join(SHARED_DATA, sub)
    if not osp.isdir(path):
        pytest.skip(f'{path} not found: real data is read from ../shared/data beside the '
                    f'checkout (set MMBC_SHARED_DATA to point elsewhere)')
    return path


@pytest.fixture(scope='session')
def bccd_root() -> str:
    """The real BCCD dataset in VOC layout (Annotations/, JPEGImages/, ImageSets/)."""
    return _shared('BCCD')


@pytest.fixture(scope='session')
def cnmc_samples_root() -> str:
    """Six real C-NMC cells: ``all/UID_1_*_all.bmp`` and ``hem/UID_H6_*_hem.bmp``."""
    return _shared('cnmc_samples')


@pytest.fixture(scope='session')
def bccd_coco(bccd_root, tmp_path_factory) -> str:
    """The real BCCD converted to COCO (the study's 256/74/34 split) in a temporary folder laid
    out as the configs expect: ``annotations/{train,val,test}.json`` and ``JPEGImages/``."""
    from script_loader import load_script
    out = str(tmp_path_factory.mktemp('bccd_coco'))
    load_script('tools/dataset_converters/bccd_to_coco.py').convert(bccd_root, out)
    return out


def write_coco_subset(src: str, dst: str, num_images: int) -> str:
    """Copy the first ``num_images`` images of COCO file ``src`` (and their boxes) to ``dst``."""
    import json
    with open(src) as f:
        coco = json.load(f)
    coco['images'] = coco['images'][:num_images]
    keep = {im['id'] for im in coco['images']}
    coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] in keep]
    with open(dst, 'w') as f:
        json.dump(coco, f)
    return dst


@pytest.fixture(scope='session')
def bccd_mini(bccd_coco, tmp_path_factory) -> dict:
    """Small real subsets for CPU trainings: 4 train, 2 val and 2 test images (paths to json)."""
    out = tmp_path_factory.mktemp('bccd_mini')
    ann = osp.join(bccd_coco, 'annotations')
    return dict(
        data_root=bccd_coco + '/',
        train=write_coco_subset(osp.join(ann, 'train.json'), str(out / 'train.json'), 4),
        val=write_coco_subset(osp.join(ann, 'val.json'), str(out / 'val.json'), 2),
        test=write_coco_subset(osp.join(ann, 'test.json'), str(out / 'test.json'), 2))


@pytest.fixture(autouse=True)
def _isolate_default_scope():
    """Undo any ``DefaultScope`` a test created (building a Runner or calling
    ``init_default_scope('mmdet')`` sets a process-wide scope that would otherwise redirect later
    registry builds, e.g. ``CLS_TRANSFORMS.build``, to mmdet's registries)."""
    from mmengine.registry import DefaultScope
    before = set(DefaultScope._instance_dict)
    yield
    for name in set(DefaultScope._instance_dict) - before:
        DefaultScope._instance_dict.pop(name, None)


def pytest_addoption(parser):
    parser.addoption(
        '--folder-order', choices=('default', 'reverse'), default='default',
        help='run the test folders in reverse order (make test, CI): state that one folder '
        'leaves behind for the next (a global instance, a scope, a patched function) shows up '
        'as a failure in one of the two orders')


def pytest_collection_modifyitems(config, items):
    if config.getoption('--folder-order') != 'reverse':
        return
    folders = []
    for item in items:
        folder = osp.relpath(osp.dirname(str(item.fspath)), REPO_ROOT)
        if folder not in folders:
            folders.append(folder)
    rank = {f: i for i, f in enumerate(reversed(folders))}
    items.sort(key=lambda it: rank[osp.relpath(osp.dirname(str(it.fspath)), REPO_ROOT)])


def pytest_report_header(config):
    return f"test folder order: {config.getoption('--folder-order')}"
