"""Helpers of the analysis tests (imported by conftest.py and the test modules)."""
import importlib.util
import io
import os.path as osp

import numpy as np

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO = osp.dirname(TESTS)


def load_module(path: str, name: str):
    """Import a file (a tool or another test module) under a private module name."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tool(rel: str):
    return load_module(osp.join(REPO, 'tools', rel),
                       'analysis_tool_' + rel.replace('/', '_').replace('.py', ''))


def assert_png(path_or_bytes, min_side: int = 100) -> np.ndarray:
    """A real PNG: opens, verifies, is at least ``min_side`` px, and is not blank (many
    colours, non-trivial contrast). Returns the RGB pixels."""
    from PIL import Image
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
        where = f'{len(data)} bytes'
    else:
        assert osp.isfile(path_or_bytes), path_or_bytes
        assert osp.getsize(path_or_bytes) > 0, path_or_bytes
        with open(path_or_bytes, 'rb') as f:
            data = f.read()
        where = path_or_bytes
    assert data[:8] == b'\x89PNG\r\n\x1a\n', f'{where}: not a PNG'
    with Image.open(io.BytesIO(data)) as im:
        im.verify()
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == 'PNG'
        assert min(im.size) >= min_side, (where, im.size)
        rgb = np.asarray(im.convert('RGB'))
    colours = np.unique(rgb.reshape(-1, 3), axis=0).shape[0]
    assert colours > 20 and rgb.std() > 5, f'{where}: blank image ({colours} colours)'
    return rgb
