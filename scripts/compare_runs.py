#!/usr/bin/env python3
"""Compares two facetv results folders made from the same inputs on different devices (e.g.
`--device cpu` and `--device 0`): faces are matched per video and frame by box IoU, then the
boxes' IoU and the classifiers' ages and female probabilities are compared.

    scripts/compare_runs.py cpu_results/ gpu_results/ [--iou 0.95] [--age 0.5]

Exit status 0 when every face of each run has a twin in the other with IoU >= --iou and every age
differs by at most --age years (0.5 suits fp16 engines, 0.05 fp32); 1 otherwise.
"""
import argparse
import glob
import os
import sys

import pandas as pd


def load(folder):
    faces, ages = [], []
    for meta in glob.glob(os.path.join(folder, "*_face_metadata.tsv")):
        video = os.path.basename(meta)[: -len("_face_metadata.tsv")]
        m = pd.read_csv(meta, sep="\t")
        m["video"] = video
        faces.append(m)
        a = pd.read_csv(meta.replace("_face_metadata.tsv", "_age_gender.tsv"), sep="\t")
        ages.append(a)
    if not faces:
        sys.exit(f"{folder}: no *_face_metadata.tsv files")
    return pd.concat(faces), pd.concat(ages)


def iou(a, b):
    w = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    h = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = w * h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--iou", type=float, default=0.95)
    p.add_argument("--age", type=float, default=0.5)
    args = p.parse_args()
    faces_a, ages_a = load(args.a)
    faces_b, ages_b = load(args.b)
    by_frame = {k: g for k, g in faces_b.groupby(["video", "frame"])}
    pairs, unmatched = [], 0
    for key, group in faces_a.groupby(["video", "frame"]):
        others = by_frame.get(key)
        for face in group.itertuples():
            best = None
            if others is not None:
                scored = [(iou(face, o), o.image_basename) for o in others.itertuples()]
                best = max(scored, default=None)
            if best is None or best[0] < args.iou:
                unmatched += 1
            else:
                pairs.append((face.image_basename, best[1], best[0]))
    extra = len(faces_b) - len(pairs)
    pairs = pd.DataFrame(pairs, columns=["a", "b", "iou"])
    merged = pairs.merge(ages_a, left_on="a", right_on="filename").merge(
        ages_b, left_on=["b", "classifier"], right_on=["filename", "classifier"], suffixes=("_a", "_b")
    )
    merged["d_age"] = (merged.age_a - merged.age_b).abs()
    merged["d_female"] = (merged.gender_a - merged.gender_b).abs()
    print(f"faces: {len(faces_a)} in {args.a}, {len(faces_b)} in {args.b}; matched {len(pairs)}")
    print(f"unmatched (IoU < {args.iou}): {unmatched} of the first, {extra} of the second")
    if len(pairs):
        print(f"box IoU: min {pairs.iou.min():.4f}, median {pairs.iou.median():.4f}")
    for name, g in merged.groupby("classifier"):
        flips = ((g.gender_a >= 0.5) != (g.gender_b >= 0.5)).sum()
        print(
            f"{name}: |Δage| max {g.d_age.max():.4f} mean {g.d_age.mean():.4f} y; "
            f"|Δfemale| max {g.d_female.max():.4f}; gender flips {flips} of {len(g)}"
        )
    ok = unmatched == 0 and extra == 0 and (merged.d_age.max() if len(merged) else 0) <= args.age
    print("agree" if ok else "DIFFER")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
