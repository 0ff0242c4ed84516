#!/usr/bin/env bash
# The GPU check, run on a GPU node from the repository root after scripts/device-bundle.sh was
# run on a build machine (nothing is built here). Prints what the node provides (driver, NVDEC,
# NVRTC), then every CUDA kernel against its CPU twin with time per call and GB/s against the
# device-to-device copy bandwidth. Writes the table and JSON to $OUT (default: ./device-check,
# relative to the current folder).
# Exit status: 0 all kernels agree with their twins, 1 one does not, 2 the check could not run.
set -uo pipefail
out=$(realpath -m "${OUT:-device-check}")
cd "$(dirname "$0")/.."
bin=dist/device/facetv-gpu-check
if [[ ! -x $bin ]]; then
  echo "error: $bin is missing: run scripts/device-bundle.sh on the build machine and bring dist/device" >&2
  exit 2
fi
mkdir -p "$out"
{
  echo "== check binary: $("$bin" --version) (rebuild with scripts/device-bundle.sh if older than the tree: $(git describe --always --dirty 2>/dev/null || echo unknown))"
  echo "== GPU"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv 2>&1
  else
    echo "nvidia-smi: not available"
  fi
  echo "== libraries the driver provides (libcuda for everything, libnvcuvid for NVDEC decoding)"
  libs=$(ldconfig -p 2>/dev/null)
  for lib in libcuda.so.1 libnvcuvid.so.1 libnvidia-encode.so.1; do
    if grep -qF "$lib" <<< "$libs"; then echo "$lib: present"; else echo "$lib: MISSING"; fi
  done
  echo "== NVRTC (compiles the kernels): the first of FACETV_CUDA_LIB_DIR (${FACETV_CUDA_LIB_DIR:-unset}), .facetv/cuda, pip wheels, /usr/local/cuda"
  ls .facetv/cuda/nvidia/*/lib/libnvrtc.so* 2>/dev/null || echo "none in .facetv/cuda"
  python3 - <<'PY' 2>/dev/null || echo "python3 not available to list pip wheels"
import glob, site
dirs = site.getsitepackages() + [site.getusersitepackages()]
found = sorted({p for d in dirs for p in glob.glob(d + "/nvidia/*/lib/libnvrtc.so*")})
print("\n".join(found) or "no pip-installed NVRTC")
PY
  ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null || true
} | tee "$out/environment.txt"
# The compiled kernels are cached per architecture; a fresh cache shows the compile works here.
export FACETV_KERNEL_CACHE=${FACETV_KERNEL_CACHE:-$(mktemp -d)}
echo "== kernels against their CPU twins"
start=$(date +%s)
"$bin" --json-out "$out/gpu-check.json" 2>&1 | tee "$out/gpu-check.txt"
rc=${PIPESTATUS[0]}
echo "check: exit $rc after $(( $(date +%s) - start )) s" | tee -a "$out/gpu-check.txt"
exit "$rc"
