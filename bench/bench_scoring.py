#!/usr/bin/env python
"""Scoring, decoding and aggregation speed (CPU), and what decode tuning gains on synthetic scores.

    python bench/bench_scoring.py [--quick]

Rows: official metric on 1,000 videos x 50 signs (total over the 13 IoU thresholds and
per threshold), the strict variant, decoding one 6,000-frame video (the original's beam
search took 1.9 s), aggregating its 5,969 stride-1 windows into frame scores, and the
official F1 of the original vs the tuned decoding on noisy synthetic validation scores.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from signspot.decode import (  # noqa: E402
    DecodeSettings,
    decode_all,  # noqa: E402
    decode_frame_scores,
    smooth_scores,
)
from signspot.metric import IOU_THRESHOLDS, official_score, strict_score  # noqa: E402
from signspot.scoring import FrameScoreAccumulator  # noqa: E402
from signspot.tuning import tune_decode_settings  # noqa: E402

ORIGINAL_BEAM_SEARCH_S = 1.9  # SPEC: the original decoder on one 6,000-frame video


def _best_of(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def synthetic_intervals(n_videos, n_signs, seed=0):
    rng = np.random.default_rng(seed)
    gt, pred = {}, {}
    for v in range(n_videos):
        starts = np.sort(rng.integers(0, 240_000, n_signs))
        lengths = rng.integers(200, 1500, n_signs)
        classes = rng.integers(0, 60, n_signs)
        gt[f"v{v:04d}"] = np.stack([classes, starts, starts + lengths], 1).tolist()
        jitter = rng.integers(-300, 300, (n_signs, 2))
        p_cls = np.where(rng.random(n_signs) < 0.7, classes, rng.integers(0, 60, n_signs))
        p_start = np.clip(starts + jitter[:, 0], 0, None)
        pred[f"v{v:04d}"] = np.stack([p_cls, p_start, p_start + np.clip(lengths + jitter[:, 1], 40, None)], 1).tolist()
    return gt, pred


def noisy_validation(n_videos, frames, seed=0, num_columns=61, sigma=0.8, correlation=5):
    """Scores = softmax(3 * one-hot(true labels) + temporally correlated Gaussian noise)."""
    rng = np.random.default_rng(seed)
    gt, videos = {}, {}
    for v in range(n_videos):
        labels = np.full(frames, num_columns - 1)
        rows, t = [], 10
        while t < frames - 40:
            length = int(rng.integers(12, 30))
            cls = int(rng.integers(0, num_columns - 1))
            labels[t:t + length] = cls
            rows.append([cls, int(t / 25 * 1000), int((t + length - 1) / 25 * 1000)])
            t += length + int(rng.integers(8, 30))
        noise = smooth_scores(rng.standard_normal((frames, num_columns)), correlation) * np.sqrt(correlation)
        logits = 3.0 * np.eye(num_columns)[labels] + sigma * noise
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        videos[f"v{v}"] = {"scores": (probs / probs.sum(1, keepdims=True)).astype(np.float32), "fps": 25.0,
                           "num_frames": frames}
        gt[f"v{v}"] = rows
    return gt, videos


def run(quick: bool = False) -> list:
    rows = []
    repeats = 1 if quick else 3
    n_thr = len(IOU_THRESHOLDS)

    gt, pred = synthetic_intervals(1000, 50)
    t = _best_of(lambda: official_score(gt, pred), repeats)
    rows.append({"name": "official_score 1000 videos x 50 signs, 13 thresholds", "value": round(t, 4), "unit": "s"})
    rows.append({"name": "official_score 1000 videos x 50 signs, per threshold", "value": round(t / n_thr, 5),
                 "unit": "s", "note": "all thresholds are evaluated together; total / 13"})
    t = _best_of(lambda: strict_score(gt, pred), repeats)
    rows.append({"name": "strict_score 1000 videos x 50 signs, 13 thresholds", "value": round(t, 4), "unit": "s"})

    rng = np.random.default_rng(1)
    _, videos = noisy_validation(1, 6000, seed=1)
    scores = videos["v0"]["scores"]
    t = _best_of(lambda: decode_frame_scores(scores, 25.0), repeats * 3)
    rows.append({"name": "decode 6000-frame video (original rule)", "value": round(t * 1000, 3), "unit": "ms",
                 "speedup_vs_original_beam_search": round(ORIGINAL_BEAM_SEARCH_S / t)})
    t = _best_of(lambda: decode_frame_scores(scores, 25.0, smoothing=9, min_length=5, merge_gap=4,
                                             background_margin=0.1), repeats * 3)
    rows.append({"name": "decode 6000-frame video (all post-processing)", "value": round(t * 1000, 3), "unit": "ms"})

    window, n_frames = 32, 1000 if quick else 6000
    starts = np.arange(n_frames - window + 1)
    heads = {h: rng.standard_normal((len(starts), window * k // 32, 61)).astype(np.float32)
             for h, k in {"x4": 4, "x8": 8, "x16": 16, "x32": 32, "x": 32}.items()}

    def aggregate():
        acc = FrameScoreAccumulator(n_frames, 61, window)
        for lo in range(0, len(starts), 64):
            acc.add(starts[lo:lo + 64], {h: a[lo:lo + 64] for h, a in heads.items()})
        return acc.result()

    t = _best_of(aggregate, repeats)
    rows.append({"name": f"aggregate {len(starts)} stride-1 windows x 5 heads ({n_frames} frames)",
                 "value": round(len(starts) / t), "unit": "windows/s"})

    gt_val, val = noisy_validation(4 if quick else 10, 1500, seed=2, num_columns=11)
    original = official_score(gt_val, decode_all(val, DecodeSettings()))["f1"]
    t0 = time.perf_counter()
    best, _ = tune_decode_settings(val, gt_val, progress=False)
    tune_s = time.perf_counter() - t0
    tuned = official_score(gt_val, decode_all(val, best))["f1"]
    rows.append({"name": "synthetic noisy val: official F1, original decoding", "value": round(original, 4), "unit": "F1",
                 "note": "softmax(3*one-hot + correlated noise sigma 0.8), 10 classes"})
    rows.append({"name": "synthetic noisy val: official F1, tuned decoding", "value": round(tuned, 4), "unit": "F1",
                 "settings": best.to_dict(), "tuning_s": round(tune_s, 2)})
    for row in rows:
        extra = {k: v for k, v in row.items() if k not in ("name", "value", "unit")}
        print(f"{row['name']:<66} {row['value']:>10} {row['unit']}" + (f"  {extra}" if extra else ""))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a shorter aggregation video")
    run(**vars(parser.parse_args()))
