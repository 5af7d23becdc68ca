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
