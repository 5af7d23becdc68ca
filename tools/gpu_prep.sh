# Set up the OpenMMLab stack on the lent GPU machine (no network) from a folder GPU_DIR that
# holds a copy of ../shared/gpu (wheels/, setup-gpu.sh) and, optionally, ext/_ext*.so: mmcv's
# CUDA ops for sm_90 / CPython 3.12 / torch 2.11.0+cu130, saved from an earlier device build or
# made beforehand by tools/build_mmcv_cuda_ext.sh. With ext/ the 4-minute mmcv build is skipped;
# if those ops fail setup-gpu.sh's CUDA check there, they are removed and built after all.
# Usage: source tools/gpu_prep.sh [GPU_DIR=.gpu]
gpu_dir="$(cd "${1:-.gpu}" && pwd)"
_mmcv_src=/tmp/mmcvsrc/mmcv-2.1.0
if ls "$gpu_dir"/ext/_ext*.so >/dev/null 2>&1 && ! ls "$_mmcv_src"/mmcv/_ext*.so >/dev/null 2>&1
then
  mkdir -p /tmp/mmcvsrc && tar xzf "$gpu_dir/wheels/mmcv-2.1.0.tar.gz" -C /tmp/mmcvsrc
  cp "$gpu_dir"/ext/_ext*.so "$_mmcv_src"/mmcv/
  echo "gpu_prep: mmcv CUDA ops from $gpu_dir/ext (no build)"
  if ! source "$gpu_dir/setup-gpu.sh"; then
    echo "gpu_prep: the prebuilt mmcv ops failed the CUDA check; building them here" >&2
    rm -f "$_mmcv_src"/mmcv/_ext*.so
  fi
fi
source "$gpu_dir/setup-gpu.sh" && export PYTHONPATH="$(pwd):$PYTHONPATH"
