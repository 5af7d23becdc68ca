"""Install mmbloodcell: ``pip install --no-build-isolation -e .``.

The OpenMMLab stack is pinned to the versions that work together: mmcv 2.1.0 must be built
from source with its compiled ops (``MMCV_WITH_OPS=1``); ``tools/setup_env.sh`` does that.
"""
import os.path as osp

from setuptools import find_packages, setup


def get_version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'mmbloodcell', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


install_requires = [
    'mmengine==0.10.7',
    'mmcv==2.1.0',
    'mmdet==3.3.0',
    'mmpretrain==1.2.0',
    'torch',
    'torchvision',
    'numpy',
    'opencv-python-headless',
    'timm',  # mmpretrain's TIMMBackbone (Xception, faster EfficientNet)
    'matplotlib',  # plots in tools/analysis
    'pycocotools',  # precision-recall curves in mmbloodcell.analysis (an mmdet dependency too)
]

extras_require = {
    # onnxslim: ultralytics simplifies its ONNX export with it (benchmarks/cpu_inference.py)
    'yolo': ['ultralytics>=8.3,<9', 'onnxslim'],
    'tests': ['pytest', 'pytest-timeout'],
    # mmbloodcell export / --backend onnxruntime (torch.onnx's exporter needs onnxscript)
    'deploy': ['onnx', 'onnxscript', 'onnxruntime'],
}

setup(
    name='mmbloodcell',
    version=get_version(),
    description='OpenMMLab plugin for blood-cell detection (BCCD) and leukemia '
    'classification (C-NMC 2019)',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read()
    if osp.exists(osp.join(osp.dirname(__file__), 'README.md')) else '',
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'benchmarks')),
    python_requires='>=3.9',
    install_requires=install_requires,
    extras_require=extras_require,
    entry_points={'console_scripts': ['mmbloodcell=mmbloodcell.apis.cli:main']},
    zip_safe=False,
)
