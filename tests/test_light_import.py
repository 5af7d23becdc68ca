"""``import mmbloodcell`` stays light: the package's own modules import no downloader, archive
or command-line parser (``urllib``, ``zipfile``, ``argparse``); converters and harnesses that
need them are scripts beside the package (``tools/``, ``benchmarks/``). Only the console script
``mmbloodcell/apis/cli.py`` parses arguments.

The modules are read with ``ast``, so an import inside a function counts as much as one at the
top. (``sys.modules`` after ``import mmbloodcell`` cannot tell: torch and mmengine import all
three themselves.)
"""
import ast
import json
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = osp.join(REPO, 'mmbloodcell')
HEAVY = frozenset({'urllib', 'zipfile', 'argparse'})
#: Modules allowed to import some of ``HEAVY``, relative to the repository.
ALLOWED = {'mmbloodcell/apis/cli.py': {'argparse'}}


def heavy_imports(path: str) -> set:
    """The top-level names of ``HEAVY`` that ``path`` imports anywhere: ``import x``,
    ``from x import y``, ``__import__('x')`` and ``importlib.import_module('x')``."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename=path)
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else None)
            if name in ('__import__', 'import_module'):
                names = [node.args[0].value]
        found.update(n.split('.')[0] for n in names if n.split('.')[0] in HEAVY)
    return found


def package_modules():
    for dirpath, dirnames, filenames in os.walk(PACKAGE):
        dirnames[:] = sorted(d for d in dirnames if d != '__pycache__')
        for name in sorted(filenames):
            if name.endswith('.py'):
                path = osp.join(dirpath, name)
                yield osp.relpath(path, REPO).replace(os.sep, '/'), path


def test_scanner_sees_every_form(tmp_path):
    src = tmp_path / 'm.py'
    src.write_text('import os, urllib.request\n'
                   'def f():\n'
                   '    from zipfile import ZipFile\n'
                   '    import importlib\n'
                   "    importlib.import_module('argparse')\n"
                   'from .argparse import x\n')  # a relative module of that name is not it
    assert heavy_imports(str(src)) == {'urllib', 'zipfile', 'argparse'}
    src.write_text("__import__('urllib.error')\nimport json\n")
    assert heavy_imports(str(src)) == {'urllib'}


def test_package_modules_import_no_downloader_archive_or_parser():
    found = {rel: heavy_imports(path) for rel, path in package_modules()}
    found = {rel: names for rel, names in found.items() if names}
    bad = {rel: sorted(names - ALLOWED.get(rel, set()))
           for rel, names in found.items()}
    bad = {rel: names for rel, names in bad.items() if names}
    assert not bad, (f'package modules import {bad}: move the converter / harness code to '
                     'tools/ or benchmarks/ (see tools/dataset_converters/bccd_to_coco.py)')


def test_import_mmbloodcell_loads_only_light_modules():
    """The package modules that ``import mmbloodcell`` loads (listed in a fresh interpreter)
    import none of ``HEAVY``, with no exception."""
    code = ('import json, sys, mmbloodcell; print(json.dumps(sorted('
            "(m, getattr(mod, '__file__', None)) for m, mod in sys.modules.items() "
            "if m == 'mmbloodcell' or m.startswith('mmbloodcell.'))))")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    files = [f for _, f in loaded if f]
    assert osp.join(PACKAGE, 'datasets', 'bccd.py') in files  # the list is the real one
    heavy = {osp.relpath(f, REPO): sorted(heavy_imports(f)) for f in files}
    assert not {f: n for f, n in heavy.items() if n}
