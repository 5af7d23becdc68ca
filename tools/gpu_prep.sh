# Set up the OpenMMLab stack on the lent GPU machine (no network) from a folder GPU_DIR that
# holds a copy of ../shared/gpu (wheels/, setup-gpu.sh) and, optionally, ext/_ext*.so: mmcv's
# CUDA ops (sm_90) saved from an earlier `source GPU_DIR/setup-gpu.sh` build. With ext/ the
# 4-minute mmcv build is skipped.   Usage: source tools/gpu_prep.sh [GPU_DIR=.gpu]
gpu_dir="$(cd "${1:-.gpu}" && pwd)"
if ls "$gpu_dir"/ext/_ext*.so >/dev/null 2>&1; then
  mkdir -p /tmp/mmcvsrc && tar xzf "$gpu_dir/wheels/mmcv-2.1.0.tar.gz" -C /tmp/mmcvsrc
  cp "$gpu_dir"/ext/_ext*.so /tmp/mmcvsrc/mmcv-2.1.0/mmcv/
fi
source "$gpu_dir/setup-gpu.sh" && export PYTHONPATH="$(pwd):$PYTHONPATH"
