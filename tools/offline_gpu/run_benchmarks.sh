#!/usr/bin/env bash
# The GPU benchmarks of benchmarks/README.md on a CUDA machine without internet access, in
# stages of a few minutes each.
#
# On a machine with the checkout (and internet access for YOLO=1), once (writes the
# git-ignored .gpu/, .gpudata/ and, with YOLO=1, .gpuyolo/):
#   [YOLO=1] [MMCV_EXT=DIR] [SHARED=../shared] bash tools/offline_gpu/run_benchmarks.sh stage
# SHARED/gpu holds the OpenMMLab wheels and setup-gpu.sh, SHARED/data/BCCD the dataset.
# MMCV_EXT (default .gpucache/ext): mmcv's CUDA ops built beforehand for the GPU machine
# (sm_90, CPython 3.12, torch 2.11.0+cu130; tools/offline_gpu/build_mmcv_cuda_ext.sh makes
# them on a machine without a GPU): copied to .gpu/ext/, so that
# tools/offline_gpu/gpu_prep.sh skips the 4-minute build there.
# On the GPU machine, with the checkout and .gpu/, .gpudata/ (and .gpuyolo/ for yolo) copied
# into it, each stage as one command (micro ~2 min, det ~5 min, cls ~3.5 min, each 4 min more
# without ext/; yolo ~5 min):
#   source tools/offline_gpu/gpu_prep.sh .gpu && bash tools/offline_gpu/run_benchmarks.sh micro
#   source tools/offline_gpu/gpu_prep.sh .gpu && bash tools/offline_gpu/run_benchmarks.sh det
#   source tools/offline_gpu/gpu_prep.sh .gpu && bash tools/offline_gpu/run_benchmarks.sh cls
#   source tools/offline_gpu/gpu_prep.sh .gpu && bash tools/offline_gpu/run_benchmarks.sh yolo
# Stages:
#   micro  one training iteration (bs32, 640 px, AMP) of the RTMDet and the Sparse R-CNN budget
#          configs, stock mmdet/mmengine pieces vs the configs' (benchmarks/rtmdet_step_speed.py),
#          and the training loader's samples/s with 12 workers (benchmarks/bccd_loader_speed.py):
#          is the GPU step or the loader the bound?
#   det    the 240 s budget run of the RTMDet config (CONFIG=... for another, e.g. the Sparse
#          R-CNN budget config), scored on the ImageSets test split (benchmarks/bccd_budget.py)
#   yolo   the YOLOv8n peer under the same budget and scoring (bccd_budget.py --yolo), from the
#          ultralytics wheels that `YOLO=1 ... stage` put in .gpuyolo/ (the GPU machine has none)
#   cls    C-NMC training / inference throughput and the fast-vs-stock equivalence run
#          (benchmarks/cnmc_throughput.py --equivalence)
# Results go to $OUT if it is set, else to benchmarks/results/gpu/; record them in
# benchmarks/README.md with this command, the date and the GPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
stage="${1:?usage: tools/offline_gpu/run_benchmarks.sh stage|micro|det|cls|yolo}"
out="${OUT:-benchmarks/results/gpu}"
mkdir -p "$out"
data=.gpudata/bccd
det_cfg="${CONFIG:-configs/rtmdet/rtmdet_tiny_640_240s-budget_bccd.py}"
sparse_cfg=configs/sparse_rcnn/sparse-rcnn_cspnext-t_fpn_100p_640_240s-budget_bccd.py
export PYTHONUNBUFFERED=1
py=python3  # the GPU machine's interpreter (it holds torch); for stage the project's .venv
if [ "$stage" = stage ] && [ -x .venv/bin/python ]; then py=.venv/bin/python; fi
py="${PYTHON:-$py}"

case "$stage" in
  stage)
    shared="${SHARED:-../shared}"
    rm -rf .gpu && cp -r "$shared/gpu" .gpu && chmod -R u+w .gpu
    ext="${MMCV_EXT:-.gpucache/ext}"
    if ls "$ext"/_ext*.so >/dev/null 2>&1; then  # xz: 26 MB -> 2.5 MB to copy
      mkdir -p .gpu/ext
      for so in "$ext"/_ext*.so; do xz -T0 -c "$so" > ".gpu/ext/$(basename "$so").xz"; done
      echo "prebuilt mmcv ops: $ext"
    fi
    "$py" tools/dataset_converters/bccd_to_coco.py "$shared/data/BCCD" --out-dir "$data" --copy
    copy=".gpu .gpudata"
    if [ "${YOLO:-0}" = 1 ]; then
      # the versions of this machine's ultralytics; polars 1.31 because later versions split
      # into polars + a 54 MB polars-runtime wheel, 54 MB more to copy to the GPU machine
      # (ultralytics asks for polars>=0.20; its tests pass with 1.31 here)
      ver() { "$py" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null \
                || echo "$2"; }
      rm -rf .gpuyolo && mkdir -p .gpuyolo
      "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .gpuyolo "ultralytics==$(ver ultralytics 8.4.190)" \
        "ultralytics-thop==$(ver ultralytics-thop 2.2.3)" \
        "ultralytics-platform==$(ver ultralytics-platform 0.1.99)" polars==1.31.0
      copy="$copy .gpuyolo"
    fi
    du -shc .gpu "$data" $([ -d .gpuyolo ] && echo .gpuyolo)
    echo "copy into the checkout on the GPU machine: $copy"
    ;;
  micro)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
      | tee "$out/gpu.txt"
    "$py" benchmarks/rtmdet_step_speed.py --device cuda --amp --batch 32 --size 640 --boxes 60 \
      --repeats 10 --out "$out/rtmdet_step_speed.json" | tee "$out/micro.md"
    "$py" benchmarks/rtmdet_step_speed.py --config "$sparse_cfg" --device cuda --amp --batch 32 \
      --size 640 --boxes 60 --repeats 10 --out "$out/sparse_step_speed.json" | tee -a "$out/micro.md"
    "$py" benchmarks/bccd_loader_speed.py "$det_cfg" --data-root "$data" --workers 12 \
      --samples 1024 --out "$out/loader_speed.json" | tee -a "$out/micro.md"
    ;;
  det)
    name="$(basename "$det_cfg" .py)"
    "$py" benchmarks/bccd_budget.py "$det_cfg" --budget "${BUDGET:-240}" --amp \
      --data-root "$data" --split-prefix imagesets_ --work-dir "/tmp/bccd_budget_$name" \
      --out-json "$out/bccd_budget_$name.json" --out-md "$out/bccd_budget_$name.md"
    tail -c 4000 "/tmp/bccd_budget_$name"/*/train_stdout.log > "$out/train_tail_$name.log" || true
    ;;
  yolo)
    ls .gpuyolo/*.whl >/dev/null 2>&1 \
      || { echo "no .gpuyolo/*.whl: run YOLO=1 bash tools/offline_gpu/run_benchmarks.sh" \
                "stage on a machine with internet access and copy .gpuyolo/ here" >&2; exit 2; }
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .gpuyolo/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    "$py" benchmarks/bccd_budget.py --yolo yolov8n.yaml --device 0 --budget "${BUDGET:-240}" \
      --amp --data-root "$data" --split-prefix imagesets_ --work-dir /tmp/bccd_budget_yolo \
      --out-json "$out/bccd_budget_yolo.json" --out-md "$out/bccd_budget_yolo.md"
    tail -c 4000 /tmp/bccd_budget_yolo/yolo/stdout.log > "$out/yolo_tail.log" || true
    ;;
  cls)
    "$py" benchmarks/cnmc_throughput.py --device cuda --equivalence --time-budget-s 190 \
      --out "$out/cnmc_throughput.json" --md "$out/cnmc_throughput.md"
    ;;
  *)
    echo "unknown stage $stage: stage|micro|det|cls|yolo" >&2; exit 2 ;;
esac
