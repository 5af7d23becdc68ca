#!/usr/bin/env bash
# Set up mmbloodcell's environment from nothing, idempotently:
#   .venv/ (or $MMBC_VENV) with torch 2.11.0 / torchvision 0.26.0, mmengine 0.10.7,
#   mmcv 2.1.0 built from source WITH its compiled ops, mmdet 3.3.0, mmpretrain 1.2.0,
#   and mmbloodcell itself in editable mode (with the [tests,yolo,deploy] extras).
# A second run checks a stamp and the imports and returns in seconds; it rebuilds nothing.
# Usage: bash tools/setup_env.sh        (env: PYTHON=python3.x, MMBC_VENV=path, MMBC_EXTRAS=tests,yolo,deploy; the default)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMBC_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${MMBC_EXTRAS:-tests,yolo,deploy}"
PY="$VENV/bin/python"
STAMP="$VENV/.mmbloodcell-setup"

say() { printf '[setup_env] %s\n' "$*"; }

# Everything that decides what gets installed; a change re-runs the install steps.
want="$(cat "$ROOT/tools/setup_env.sh" "$ROOT/setup.py" "$ROOT/requirements/"*.txt 2>/dev/null | sha1sum | cut -d' ' -f1) extras=$EXTRAS"

check_stack() {
  "$PY" - <<'PY'
import importlib.metadata as md
import sys
want = {'torch': '2.11.0', 'torchvision': '0.26.0', 'mmengine': '0.10.7', 'mmcv': '2.1.0',
        'mmdet': '3.3.0', 'mmpretrain': '1.2.0'}
for name, ver in want.items():
    have = md.version(name).split('+')[0]
    if have != ver:
        sys.exit(f'{name} {have} installed, {ver} wanted')
import mmcv.ops  # noqa: F401  (fails when mmcv was built without its ops)
from mmcv.ops import nms  # noqa: F401
import mmdet.models, mmpretrain.models, mmbloodcell  # noqa: F401,E401
PY
}

# Headless Chromium for the HTML report test (tests/test_analysis); optional: the test skips
# without it, and a failed install never fails the set-up.
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "chromium not found and apt-get is not usable as root: the report test will be skipped (apt-get install -y chromium)"
    return 0
  fi
  say "installing Debian's chromium for the HTML report test: apt-get install -y chromium"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; then
    say "  not in the package lists: apt-get update, then apt-get install -y chromium"
    if ! { apt-get update -q >/dev/null 2>&1 && \
           DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; then
      say "  apt-get could not install chromium: the report test will be skipped (continuing)"
    fi
  fi
  return 0
}
ensure_chromium

if [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && check_stack 2>/dev/null; then
  say "environment $VENV is up to date (delete $STAMP to force a re-install)"
  exit 0
fi

if [ ! -x "$PY" ]; then
  say "creating virtual environment $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$PY" -m pip --disable-pip-version-check)

say "installing build tools (setuptools<70 keeps pkg_resources for mmcv's setup.py)"
"${PIP[@]}" install -q 'setuptools<70' wheel ninja

say "installing torch==2.11.0 torchvision==0.26.0 (the PyPI wheels; they also run on CPU-only machines)"
"${PIP[@]}" install -q -r "$ROOT/requirements/torch.txt"

say "installing mmcv's pure-Python requirements and the rest of the stack's dependencies"
"${PIP[@]}" install -q -r "$ROOT/requirements/build.txt"

if "$PY" -c 'import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != "2.1.0")' 2>/dev/null; then
  say "mmcv 2.1.0 with ops is already installed"
else
  say "building mmcv==2.1.0 from source with its compiled ops (MMCV_WITH_OPS=1)."
  say "  This is long on a cold machine (about 11 minutes on 2 cores); pip caches the built wheel,"
  say "  so later set-ups, also in fresh clones, take seconds."
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "${PIP[@]}" install --no-build-isolation mmcv==2.1.0
  if ! "$PY" -c 'import mmcv.ops' 2>/dev/null; then
    say "the cached mmcv wheel has no compiled ops: rebuilding it without pip's cache"
    "${PIP[@]}" uninstall -y -q mmcv
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "${PIP[@]}" install --no-build-isolation --no-cache-dir mmcv==2.1.0
  fi
fi

say "installing mmengine, mmdet, mmpretrain and mmbloodcell (editable, extras: $EXTRAS)"
"${PIP[@]}" install -q --no-build-isolation -e "$ROOT[$EXTRAS]"

say "checking the stack"
check_stack
echo "$want" > "$STAMP"
"$PY" -c 'import torch, mmcv, mmdet, mmpretrain, mmengine, mmbloodcell; print("[setup_env] ready: torch", torch.__version__, "| mmcv", mmcv.__version__, "(ops) | mmdet", mmdet.__version__, "| mmpretrain", mmpretrain.__version__, "| mmengine", mmengine.__version__, "| mmbloodcell", mmbloodcell.__version__)'
say "activate it with: source $VENV/bin/activate"
