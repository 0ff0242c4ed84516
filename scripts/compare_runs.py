#!/usr/bin/env python3
"""Compares two facetv results folders made from the same inputs on different devices (e.g.
`--device cpu` and `--device 0`): faces are matched per video and frame by box IoU, then the
boxes' IoU and the classifiers' ages and female probabilities are compared.

    scripts/compare_runs.py cpu_results/ gpu_results/ [--iou 0.95] [--age 0.5]

Exit status: 0 when both runs hold the same videos, every face of each has a twin in the other
with IoU >= --iou and every age differs by at most --age years (0.5 suits fp16 engines, 0.05
fp32); 1 when they differ; 2 when a folder holds no results or an option is out of range.
Needs pandas (pip install pandas).
"""
import argparse
import glob
import json
import os
import sys

try:
    import pandas as pd
except ImportError:
    sys.exit("compare_runs.py needs pandas: pip install pandas")

META = "_face_metadata.tsv"


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def load(folder):
    """Faces and estimates of every video below `folder`, keyed by its path relative to it
    (results keep the inputs' sub-folders), and each video's recorded options."""
    if not os.path.isdir(folder):
        fail(f"{folder}: not a folder")
    faces, ages, options = [], [], {}
    for meta in sorted(glob.glob(os.path.join(folder, "**", "*" + META), recursive=True)):
        video = os.path.relpath(meta, folder)[: -len(META)]
        m = pd.read_csv(meta, sep="\t")
        m["video"] = video
        faces.append(m)
        a = pd.read_csv(meta[: -len(META)] + "_age_gender.tsv", sep="\t")
        a["video"] = video
        ages.append(a)
        try:
            with open(meta[: -len(META)] + "_summary.json") as f:
                options[video] = json.load(f).get("options", {})
        except (OSError, ValueError):
            options[video] = {}
    if not faces:
        fail(f"{folder}: no facetv results (*{META}) in it or below it")
    return pd.concat(faces), pd.concat(ages), options


def iou(a, b):
    w = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    h = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = w * h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def main():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("a", help="one results folder (e.g. of --device cpu)")
    p.add_argument("b", help="the other (e.g. of --device 0)")
    p.add_argument("--iou", type=float, default=0.95, help="least box IoU of twin faces (0-1]")
    p.add_argument("--age", type=float, default=0.5, help="largest age difference, years (>= 0)")
    args = p.parse_args()
    if not 0 < args.iou <= 1:
        fail("--iou must be in (0, 1]")
    if args.age < 0:
        fail("--age must be zero or more")
    faces_a, ages_a, opts_a = load(args.a)
    faces_b, ages_b, opts_b = load(args.b)

    only_a, only_b = sorted(set(opts_a) - set(opts_b)), sorted(set(opts_b) - set(opts_a))
    both = sorted(set(opts_a) & set(opts_b))
    print(f"videos: {len(both)} in both, {len(only_a)} only in {args.a}, {len(only_b)} only in {args.b}")
    for v in only_a:
        print(f"  only in {args.a}: {v}")
    for v in only_b:
        print(f"  only in {args.b}: {v}")
    for v in both:
        differ = sorted(
            k for k in set(opts_a[v]) | set(opts_b[v]) if k != "device" and opts_a[v].get(k) != opts_b[v].get(k)
        )
        if differ:
            print(f"  {v}: made with different options: {', '.join(differ)}")

    faces_a = faces_a[faces_a.video.isin(both)]
    faces_b = faces_b[faces_b.video.isin(both)]
    by_frame = {k: g for k, g in faces_b.groupby(["video", "frame"])}
    pairs, unmatched = [], 0
    for key, group in faces_a.groupby(["video", "frame"]):
        others = by_frame.get(key)
        for face in group.itertuples():
            best = None
            if others is not None:
                best = max(((iou(face, o), o.image_basename) for o in others.itertuples()), default=None)
            if best is None or best[0] < args.iou:
                unmatched += 1
            else:
                pairs.append((face.video, face.image_basename, best[1], best[0]))
    extra = len(faces_b) - len(pairs)
    pairs = pd.DataFrame(pairs, columns=["video", "a", "b", "iou"])
    merged = pairs.merge(ages_a, left_on=["video", "a"], right_on=["video", "filename"]).merge(
        ages_b,
        left_on=["video", "b", "classifier"],
        right_on=["video", "filename", "classifier"],
        suffixes=("_a", "_b"),
    )
    merged["d_age"] = (merged.age_a - merged.age_b).abs()
    merged["d_female"] = (merged.gender_a - merged.gender_b).abs()
    print(f"faces in the shared videos: {len(faces_a)} and {len(faces_b)}; matched {len(pairs)}")
    print(f"unmatched (IoU < {args.iou}): {unmatched} of the first, {extra} of the second")
    if len(pairs):
        print(f"box IoU: min {pairs.iou.min():.4f}, median {pairs.iou.median():.4f}")
    for name, g in merged.groupby("classifier"):
        flips = ((g.gender_a >= 0.5) != (g.gender_b >= 0.5)).sum()
        print(
            f"{name}: |Δage| max {g.d_age.max():.4f} mean {g.d_age.mean():.4f} y; "
            f"|Δfemale| max {g.d_female.max():.4f}; gender flips {flips} of {len(g)}"
        )
    worst_age = merged.d_age.max() if len(merged) else 0.0
    ok = not only_a and not only_b and unmatched == 0 and extra == 0 and worst_age <= args.age
    print("agree" if ok else "DIFFER")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
