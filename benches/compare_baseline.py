#!/usr/bin/env python3
"""Runs `facetv-gpu` and the seed-style baseline (seed_baseline.py) one after the other on the same
clips, models and cores, checks that they find the same faces with the same ages, and prints the
speed ratios as a Markdown table. Both timings include starting the process and loading the
models.

A CLIP may also be a folder of PNG frames: both sides then read the same pixels (no decoder
colour conversion in between), which isolates the models and the geometry: faces and ages must
then agree to the last printed digit.

Usage: benches/compare_baseline.py CLIP... [--binary target/release/facetv-gpu]
       [--models .facetv/models] [--every 1] [--repeat 2]
Needs: pip install opencv-python-headless onnxruntime numpy (the same ONNX Runtime version as
scripts/setup.sh installs for the Rust side, so both run the same kernels).
"""

import argparse
import csv
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def iou(a, b):
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def ours(binary, clip, every):
    out = tempfile.mkdtemp()
    t = time.perf_counter()
    subprocess.run([binary, "-q", "--input", clip, "--output", out, "--every", str(every)],
                   check=True)
    seconds = time.perf_counter() - t
    table = lambda suffix: read_tsv(glob.glob(os.path.join(out, f"*_{suffix}.tsv"))[0])
    meta = table("face_metadata")
    ages = {r["filename"]: float(r["age"]) for r in table("age_gender") if r["classifier"] == "imdb"}
    sampled = len({r["frame"] for r in meta}) if os.path.isdir(clip) else len(table("sampled_frames"))
    faces = [{"frame": int(r["frame"]),
              "box": [float(r["left"]), float(r["top"]), float(r["right"]), float(r["bottom"])],
              "imdb": ages[r["image_basename"]]} for r in meta]
    return seconds, sampled, faces


def baseline(clip, models, every):
    out = tempfile.mktemp(suffix=".json")
    t = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(HERE, "seed_baseline.py"), clip, models,
                    "--every", str(every), "--json", out], check=True, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t
    with open(out) as f:
        r = json.load(f)
    return seconds, r["sampled_frames"], [{"frame": x["frame"], "box": x["box"],
                                            "imdb": x["imdb"][0]} for x in r["rows"]]


def agreement(a, b):
    """Pairs each of our faces with the baseline's best-overlapping face of the same frame (both
    number decoded frames from 0; where the container's start time is not 0 the two sides'
    timestamps differ, the frame numbers do not)."""
    ious, dage, unmatched = [], [], 0
    for f in a:
        same = [g for g in b if g["frame"] == f["frame"]]
        best = max(same, key=lambda g: iou(f["box"], g["box"]), default=None)
        if best is None or iou(f["box"], best["box"]) < 0.5:
            unmatched += 1
            continue
        ious.append(iou(f["box"], best["box"]))
        dage.append(abs(f["imdb"] - best["imdb"]))
    return ious, dage, unmatched


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "target", "release", "facetv-gpu"))
    ap.add_argument("--models", default=os.path.join(HERE, "..", ".facetv", "models"))
    ap.add_argument("--every", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each; the fastest counts")
    a = ap.parse_args()
    print("| clip | sampled frames | faces (ours / baseline) | min box IoU | max abs Δage | "
          "baseline s | ours s | × sampled frames/s | × faces/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for clip in a.clips:
        runs = [(ours(a.binary, clip, a.every), baseline(clip, a.models, a.every))
                for _ in range(a.repeat)]
        (ts, n, mine) = min((r[0] for r in runs), key=lambda r: r[0])
        (tb, nb, theirs) = min((r[1] for r in runs), key=lambda r: r[0])
        ious, dage, unmatched = agreement(mine, theirs)
        print(f"| {os.path.basename(clip)} | {n} / {nb} | {len(mine)} / {len(theirs)}"
              f"{f' ({unmatched} unmatched)' if unmatched else ''} | "
              f"{min(ious, default=float('nan')):.3f} | {max(dage, default=float('nan')):.3f} | "
              f"{tb:.2f} | {ts:.2f} | {(n / ts) / (nb / tb):.2f} | "
              f"{(len(mine) / ts) / max(len(theirs) / tb, 1e-9):.2f} |")


if __name__ == "__main__":
    main()
