#!/usr/bin/env bash
# Builds what scripts/device-check.sh runs on a GPU node, here, so the node builds nothing:
# dist/device/facetv-gpu-check, stripped (it links only the C library; CUDA's driver and NVRTC
# are loaded at run time from the node). Carry dist/device with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin facetv-gpu-check
mkdir -p dist/device
strip -o dist/device/facetv-gpu-check target/release/facetv-gpu-check
ls -l dist/device
