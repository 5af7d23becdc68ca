# Set up the OpenMMLab stack on a CUDA machine without internet access from a folder GPU_DIR
# that holds the wheels and setup-gpu.sh (wheels/; tools/offline_gpu/run_benchmarks.sh stage
# copies them to .gpu/) and, optionally, ext/_ext*.so[.xz]: mmcv's CUDA ops for sm_90 /
# CPython 3.12 / torch 2.11.0+cu130, saved from an earlier build on a GPU machine or made
# beforehand by tools/offline_gpu/build_mmcv_cuda_ext.sh. With ext/ the 4-minute mmcv build is
# skipped; if those ops fail setup-gpu.sh's CUDA check there, they are removed and built after
# all. Run it from the checkout's root; it puts the checkout on PYTHONPATH.
# Usage: source tools/offline_gpu/gpu_prep.sh [GPU_DIR=.gpu]
gpu_dir="$(cd "${1:-.gpu}" && pwd)"
_mmcv_src=/tmp/mmcvsrc/mmcv-2.1.0
_ext_files="$(ls "$gpu_dir"/ext/_ext*.so "$gpu_dir"/ext/_ext*.so.xz 2>/dev/null)"
if [ -n "$_ext_files" ] && ! ls "$_mmcv_src"/mmcv/_ext*.so >/dev/null 2>&1; then
  mkdir -p /tmp/mmcvsrc && tar xzf "$gpu_dir/wheels/mmcv-2.1.0.tar.gz" -C /tmp/mmcvsrc
  for _f in $_ext_files; do  # .xz: compressed for the copy (26 MB -> 2.5 MB)
    python3 -c 'import lzma, shutil, sys
src = lzma.open(sys.argv[1]) if sys.argv[1].endswith(".xz") else open(sys.argv[1], "rb")
shutil.copyfileobj(src, open(sys.argv[2], "wb"))' "$_f" "$_mmcv_src/mmcv/$(basename "${_f%.xz}")"
  done
  echo "gpu_prep: mmcv CUDA ops from $gpu_dir/ext (no build)"
  if source "$gpu_dir/setup-gpu.sh"; then
    _gpu_ready=1
  else
    echo "gpu_prep: the prebuilt mmcv ops failed the CUDA check; building them here" >&2
    rm -f "$_mmcv_src"/mmcv/_ext*.so
  fi
fi
if [ "${_gpu_ready:-0}" = 1 ] || source "$gpu_dir/setup-gpu.sh"; then
  export PYTHONPATH="$(pwd):$PYTHONPATH"
else
  false
fi
