#!/usr/bin/env bash
# Build mmcv 2.1.0's compiled ops WITH CUDA for an offline GPU machine (H100/H200: sm_90,
# CPython 3.12, torch 2.11.0+cu130) here, on a machine without a GPU, so that the GPU machine
# loads them (tools/offline_gpu/gpu_prep.sh, from .gpu/ext/) instead of building them there
# (4 minutes). tools/offline_gpu/run_benchmarks.sh stage copies OUT_DIR to .gpu/ext/.
#   bash tools/offline_gpu/build_mmcv_cuda_ext.sh [OUT_DIR=.gpucache/ext]
# Needs: python3.12 (PYTHON312=...), pip access to PyPI, and the project's .venv
# (tools/setup_env.sh), whose torch 2.11.0 wheel brought the CUDA 13 runtime headers and
# libraries (nvidia/cu13). Fetches: torch 2.11.0 for CPython 3.12 (no deps) and CUDA 13.0's
# compiler as NVIDIA's PyPI wheels (nvcc, nvvm, crt, cccl). About an hour on 2 cores.
# The result is checked here as far as a CPU allows: it loads next to torch 2.11.0 under
# CPython 3.12 and its CPU nms runs; setup-gpu.sh checks its CUDA kernels on the GPU machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$(mkdir -p "${1:-$ROOT/.gpucache/ext}" && cd "${1:-$ROOT/.gpucache/ext}" && pwd)"
work="${WORK:-/tmp/mmcv_cuda_build}"
py312="${PYTHON312:-}"
if [ -z "$py312" ]; then  # a python3.12 that runs (a pyenv shim may not), else pyenv's 3.12.x
  for c in python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
    if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      py312="$c"; break
    fi
  done
fi
[ -n "$py312" ] || { echo "no python3.12 here: install one, or pass PYTHON312=..." >&2; exit 2; }
venv_cuda="$(ls -d "$ROOT"/.venv/lib/python3*/site-packages/nvidia/cu13 | head -1)"
nvidia_dir="$(dirname "$venv_cuda")"
sdist="${MMCV_SDIST:-$ROOT/../shared/gpu/wheels/mmcv-2.1.0.tar.gz}"
say() { printf '[build_mmcv_cuda_ext] %s\n' "$*"; }
mkdir -p "$work/wheels"
fetch() {  # wheels for the GPU machine's platform and Python
  "$ROOT/.venv/bin/python" -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$work/wheels" "$@"
}
say "fetching torch 2.11.0 (cp312) and the CUDA 13.0 compiler wheels"
fetch torch==2.11.0 nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
  nvidia-cuda-cccl==13.0.85
if [ ! -f "$sdist" ]; then
  "$ROOT/.venv/bin/python" -m pip download -q --no-deps --no-binary=:all: -d "$work" mmcv==2.1.0
  sdist="$work/mmcv-2.1.0.tar.gz"
fi

# CUDA_HOME: the compiler from its wheels, headers and libraries from the .venv's cu13
cuda="$work/cuda"
rm -rf "$cuda" "$work/x" && mkdir -p "$cuda/include" "$cuda/lib64" "$cuda/targets" "$work/x"
for w in "$work"/wheels/nvidia_*.whl; do unzip -q -o "$w" -d "$work/x"; done
cp -a "$work/x/nvidia/cu13/bin" "$work/x/nvidia/cu13/nvvm" "$cuda/"
cp -a "$venv_cuda/include/." "$work/x/nvidia/cu13/include/." "$cuda/include/"
cp -a "$venv_cuda/lib/." "$work/x/nvidia/cu13/lib/." "$cuda/lib64/"
ln -sfn libcudart.so.13 "$cuda/lib64/libcudart.so"
ln -sfn lib64 "$cuda/lib"
ln -sfn "$cuda" "$cuda/targets/x86_64-linux"  # nvcc.profile's include/cccl path
"$cuda/bin/nvcc" --version | tail -1

# CPython 3.12 with torch 2.11.0 (its CUDA libraries: the .venv's, linked in)
venv="$work/venv312"
if [ ! -x "$venv/bin/python" ]; then
  "$py312" -m venv "$venv"
  "$venv/bin/pip" install -q --no-deps "$work"/wheels/torch-2.11.0-cp312-*.whl
  "$venv/bin/pip" install -q "setuptools<70" wheel packaging numpy pyyaml addict yapf ninja \
    typing_extensions sympy networkx jinja2 fsspec filelock
fi
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ln -sfn "$nvidia_dir" "$site/nvidia"
"$venv/bin/python" -c "import torch; assert torch.__version__ == '2.11.0+cu130', torch.__version__"

src="$work/mmcv-2.1.0"
[ -d "$src" ] || tar xzf "$sdist" -C "$work"
say "building (log: $work/build.log)"
( cd "$src" && PATH="$venv/bin:$cuda/bin:$PATH" CUDA_HOME="$cuda" MMCV_WITH_OPS=1 FORCE_CUDA=1 \
    TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    "$venv/bin/python" setup.py build_ext --inplace > "$work/build.log" 2>&1 ) \
  || { tail -40 "$work/build.log"; exit 1; }
so="$(ls "$src"/mmcv/_ext*.so)"
strip --strip-debug "$so"  # the build's -g: hundreds of MB of debug info, not needed to run
"$venv/bin/python" - "$so" <<'PY'
import importlib.machinery, importlib.util, sys
import torch
loader = importlib.machinery.ExtensionFileLoader('mmcv._ext', sys.argv[1])
ext = importlib.util.module_from_spec(importlib.util.spec_from_loader('mmcv._ext', loader))
loader.exec_module(ext)
boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.]])
keep = ext.nms(boxes, torch.tensor([.9, .8, .7]), iou_threshold=0.5, offset=0)
assert keep.tolist() == [0, 2], keep
assert hasattr(ext, 'sigmoid_focal_loss_forward') and hasattr(ext, 'roi_align_forward')
print('loads with torch', torch.__version__, 'under CPython', sys.version.split()[0],
      '; CPU nms ok')
PY
cp "$so" "$out/"
say "$(du -h "$out"/_ext*.so | cut -f1) -> $out/$(basename "$so")"
