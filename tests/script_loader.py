"""Load the repository's scripts (``tools/``, ``benchmarks/``) as modules, to call ``main``."""
import importlib.util
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_script(rel: str):
    """The script ``REPO/<rel>`` (e.g. ``'tools/train.py'``) as a fresh module."""
    path = osp.join(REPO, rel)
    name = 'script_' + rel.replace('/', '_').replace('.', '_').replace('-', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
