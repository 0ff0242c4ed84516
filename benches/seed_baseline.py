#!/usr/bin/env python3
"""The research seed's way of working, on the same ONNX models, as a baseline for `facetv-gpu`.

What the seed did (see ../shared/mission/seed-README.md), step by step, one thing at a time:
OpenCV decodes the video and one frame per second is taken (the first frame at or after each
whole second); the detector runs on each sampled frame alone; each face is aligned to the
224x224 ArcFace-template chip with the same similarity transform and cv2.warpAffine; each chip is
JPEG-encoded into an uncompressed tar; then every chip goes through every age/gender model on its
own (batch size 1). No batching, no overlap of decoding with inference.

The numeric conventions are the ones `facetv-gpu` documents in models/README.md (and OpenCV's
resize and warpAffine are the functions our Rust ports reproduce), so faces and ages must agree
with ours; `compare_baseline.sh` checks that and reports the speed ratio from one run.

Usage: seed_baseline.py VIDEO MODELS_DIR [--every S] [--threads N] [--json OUT]
"""

import argparse
import io
import json
import os
import sys
import tarfile
import time

import cv2
import numpy as np
import onnxruntime as ort

STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE = (0.1, 0.2)
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
     [41.5493, 92.3655], [70.7299, 92.2041]])
CHIP = 224


def session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def priors(w, h):
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        for i in range(-(-h // step)):
            for j in range(-(-w // step)):
                for s in sizes:
                    out.append(((j + 0.5) * step / w, (i + 0.5) * step / h, s / w, s / h))
    return np.array(out, dtype=np.float32)


def iou_plus_one(a, b):
    w = max(min(a[2], b[2]) - max(a[0], b[0]) + 1, 0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]) + 1, 0)
    inter = w * h
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)
    return inter / (area(a) + area(b) - inter)


def detect(det, frame, threshold=0.8, nms_iou=0.4, side=640):
    """RetinaFace-MobileNet (biubug6 export): longer side to 640, top-left on a 640x640 canvas,
    BGR minus (104, 117, 123)."""
    h, w = frame.shape[:2]
    r = side / max(w, h)
    resized = cv2.resize(frame, None, fx=r, fy=r, interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((side, side, 3), np.float32) - np.array([104, 117, 123], np.float32)
    canvas[: resized.shape[0], : resized.shape[1]] = resized.astype(np.float32) - [104, 117, 123]
    blob = canvas.transpose(2, 0, 1)[None]
    loc, conf, landm = det.run(None, {det.get_inputs()[0].name: blob})
    p = PRIORS
    keep = conf[0, :, 1] >= threshold
    loc, score, landm, p = loc[0][keep], conf[0, keep, 1], landm[0][keep], p[keep]
    cx = p[:, 0] + loc[:, 0] * VARIANCE[0] * p[:, 2]
    cy = p[:, 1] + loc[:, 1] * VARIANCE[0] * p[:, 3]
    bw = p[:, 2] * np.exp(loc[:, 2] * VARIANCE[1])
    bh = p[:, 3] * np.exp(loc[:, 3] * VARIANCE[1])
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * side
    lms = np.stack([p[:, :2] + landm[:, 2 * i: 2 * i + 2] * VARIANCE[0] * p[:, 2:]
                    for i in range(5)], 1) * side
    kept = []
    for k in np.argsort(-score, kind="stable"):
        if all(iou_plus_one(boxes[j], boxes[k]) <= nms_iou for j in kept):
            kept.append(k)
    faces = [(boxes[k] / r, float(score[k]), lms[k] / r) for k in kept]
    faces.sort(key=lambda f: tuple(f[0]))
    return faces


def similarity(src, dst):
    ms, md = src.mean(0), dst.mean(0)
    p, q = src - ms, dst - md
    norm = (p ** 2).sum()
    a = (p * q).sum() / norm
    b = (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum() / norm
    return np.array([[a, -b, md[0] - (a * ms[0] - b * ms[1])],
                     [b, a, md[1] - (b * ms[0] + a * ms[1])]])


def classify(model, chip):
    x = cv2.resize(chip, (64, 64), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    gender, age = model.run(None, {model.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})
    return float((age[0] * np.arange(age.shape[1])).sum()), float(gender[0, 0])


def frames(video, every):
    """(index, seconds, BGR frame) of each sampled frame: the first frame at or after each
    multiple of `every`. A folder of PNG files stands for a video of its frames, every one taken."""
    if os.path.isdir(video):
        for i, name in enumerate(sorted(f for f in os.listdir(video) if f.endswith(".png"))):
            yield i, 0.0, cv2.imread(os.path.join(video, name))
        return
    cap = cv2.VideoCapture(video)
    next_t, index = 0.0, -1
    while cap.grab():
        index += 1
        t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if t + 1e-9 < next_t:
            continue
        next_t = (np.floor((t + 1e-9) / every) + 1) * every
        ok, frame = cap.retrieve()
        if ok:
            yield index, t, frame


def main():
    global PRIORS
    ap = argparse.ArgumentParser()
    ap.add_argument("video")
    ap.add_argument("models")
    ap.add_argument("--every", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    det = session(os.path.join(a.models, "retinaface_mnet025_biubug6_640.onnx"), a.threads)
    classifiers = [("imdb", session(os.path.join(a.models, "wrn16x8_imdb.onnx"), a.threads))]
    utk = os.path.join(a.models, "wrn16x8_utk.onnx")
    if os.path.exists(utk):
        classifiers.append(("utk", session(utk, a.threads)))
    PRIORS = priors(640, 640)

    start = time.perf_counter()
    tar = tarfile.open(fileobj=io.BytesIO(), mode="w")
    rows, sampled = [], 0
    for index, t, frame in frames(a.video, a.every):
        sampled += 1
        for i, (box, score, lms) in enumerate(detect(det, frame)):
            m = similarity(lms.astype(np.float64), ARCFACE_112 * CHIP / 112)
            chip = cv2.warpAffine(frame, m, (CHIP, CHIP), flags=cv2.INTER_LINEAR, borderValue=0)
            jpeg = cv2.imencode(".jpg", chip, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
            info = tarfile.TarInfo(f"frame_{index}_face{i}.jpg")
            info.size = len(jpeg)
            tar.addfile(info, io.BytesIO(jpeg))
            row = {"frame": index, "timestamp": t, "face": i, "box": [float(v) for v in box],
                   "score": score}
            for name, model in classifiers:
                row[name] = classify(model, chip)
            rows.append(row)
    seconds = time.perf_counter() - start
    report = {"video": a.video, "sampled_frames": sampled, "faces": len(rows),
              "seconds": seconds, "sampled_frames_per_second": sampled / seconds,
              "faces_per_second": len(rows) / seconds, "rows": rows}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f)
    print(f"{a.video}: {sampled} sampled frames, {len(rows)} faces in {seconds:.2f} s "
          f"({sampled / seconds:.2f} frames/s, {len(rows) / seconds:.2f} faces/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
