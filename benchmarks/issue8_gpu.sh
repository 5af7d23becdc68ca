#!/usr/bin/env bash
# Issue 8's GPU measurements as one prepared script, sized for the lent GPU's budget (15 min of
# device time per task, 10 min per call, the machine kept warm for 30 s after a call).
#
# Here, on the developer machine, once (writes the git-ignored .gpu/ and .gpudata/):
#   bash benchmarks/issue8_gpu.sh stage
# On the device (the `run` tool, carry [".gpu", ".gpudata"]), each stage one call:
#   source tools/gpu_prep.sh .gpu && bash benchmarks/issue8_gpu.sh micro  # ~6 min, 4 of them mmcv's build
#   source tools/gpu_prep.sh .gpu && bash benchmarks/issue8_gpu.sh det    # ~5 min; within 30 s (warm)
#   source tools/gpu_prep.sh .gpu && bash benchmarks/issue8_gpu.sh cls     # ~3.5 min (+4 when cold)
# Stages:
#   micro  one RTMDet training iteration (bs32, 640 px, AMP), stock mmdet/mmengine pieces vs the
#          config's (benchmarks/rtmdet_step_speed.py), and the training loader's samples/s with
#          12 workers (benchmarks/bccd_loader_speed.py): is the GPU step or the loader the bound?
#   det    the 240 s budget run of the RTMDet config, scored on the ImageSets test split
#          (benchmarks/bccd_budget.py); YOLO=1 adds the YOLOv8n peer (needs ultralytics carried)
#   cls    C-NMC training / inference throughput and the fast-vs-stock equivalence run
#          (benchmarks/cnmc_throughput.py --equivalence)
# Results go to $OUT (the device tool brings them back) or benchmarks/results/gpu/ elsewhere;
# record them in benchmarks/README.md with this command, the date and the GPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stage="${1:?usage: benchmarks/issue8_gpu.sh stage|micro|det|cls}"
out="${OUT:-benchmarks/results/gpu}"
mkdir -p "$out"
data=.gpudata/bccd
det_cfg=configs/rtmdet/rtmdet_tiny_640_240s-budget_bccd.py
export PYTHONUNBUFFERED=1
py=python3  # the device's interpreter (it holds torch); here the project's .venv
if [ "$stage" = stage ] && [ -x .venv/bin/python ]; then py=.venv/bin/python; fi
py="${PYTHON:-$py}"

case "$stage" in
  stage)
    shared="${SHARED:-../shared}"
    rm -rf .gpu && cp -r "$shared/gpu" .gpu && chmod -R u+w .gpu
    "$py" tools/dataset_converters/bccd_to_coco.py "$shared/data/BCCD" --out-dir "$data" --copy
    du -sh .gpu "$data"
    echo "carry: [\".gpu\", \".gpudata\"]"
    ;;
  micro)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
      | tee "$out/gpu.txt"
    "$py" benchmarks/rtmdet_step_speed.py --device cuda --amp --batch 32 --size 640 --boxes 60 \
      --repeats 10 --out "$out/rtmdet_step_speed.json" | tee "$out/micro.md"
    "$py" benchmarks/bccd_loader_speed.py "$det_cfg" --data-root "$data" --workers 12 \
      --samples 1024 --out "$out/loader_speed.json" | tee -a "$out/micro.md"
    # mmcv's built CUDA ops come back too when small enough (16 MB a file): if the next call
    # finds the machine cold, put them in .gpu/ext/ and tools/gpu_prep.sh skips the build
    for so in /tmp/mmcvsrc/mmcv-2.1.0/mmcv/_ext*.so; do
      if [ -f "$so" ] && [ "$(stat -c %s "$so")" -lt 16000000 ]; then cp "$so" "$out/"; fi
    done
    ;;
  det)
    extra=()
    if [ "${YOLO:-0}" = 1 ]; then extra=(--yolo yolov8n.yaml --device 0); fi
    "$py" benchmarks/bccd_budget.py "$det_cfg" --budget "${BUDGET:-240}" --amp \
      --data-root "$data" --split-prefix imagesets_ --work-dir /tmp/bccd_budget \
      --out-json "$out/bccd_budget.json" --out-md "$out/bccd_budget.md" "${extra[@]}"
    tail -c 4000 /tmp/bccd_budget/*/train_stdout.log > "$out/train_tail.log" || true
    ;;
  cls)
    "$py" benchmarks/cnmc_throughput.py --device cuda --equivalence --time-budget-s 190 \
      --out "$out/cnmc_throughput.json" --md "$out/cnmc_throughput.md"
    ;;
  *)
    echo "unknown stage $stage: stage|micro|det|cls" >&2; exit 2 ;;
esac
