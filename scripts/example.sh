#!/usr/bin/env bash
# Runs the main job on the bundled example: the clips in ../shared/media/videos when present
# (or $FACETV_SHARED/media/videos), else a short public clip downloaded once into .facetv/example.
# Results go to results/example (override with $1).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/example}"
shared="${FACETV_SHARED:-../shared}"
if [[ -d "$shared/media/videos" ]]; then
  input="$shared/media/videos"
else
  input=".facetv/example"
  if [[ ! -s "$input/short_hamilton_clip.mp4" ]]; then
    mkdir -p "$input"
    echo "downloading a short example clip (WhiteHouse.gov footage, via ageitgey/face_recognition)"
    curl --fail --location --silent --show-error -o "$input/short_hamilton_clip.mp4.part" \
      https://github.com/ageitgey/face_recognition/raw/master/examples/short_hamilton_clip.mp4
    mv "$input/short_hamilton_clip.mp4.part" "$input/short_hamilton_clip.mp4"
  fi
fi
target/release/facetv-gpu --input "$input" --output "$out" --frames 5
echo
echo "results are in $out:"
ls "$out" | head -20
