"""Automatic signer box benchmark: IoU with the true box and time, per synthetic video; an hour-long video.

    python bench/bench_auto_box.py [--quick] [--keep DIR] [--long-minutes M] [--long-size WxH]

* per video of a generated synthetic dataset (all splits; full mode: 8/4/4 videos
  of 60 s at 256x192, --quick: 4/2/2 of 20 s at 160x120): the time of
  ``estimate_signer_box``, the IoU of its box with the true box of
  ``{split}_bboxes.json``, the IoU of the store's crops of the two
  (``crop_box``: each enlarged by the 10% margin and clipped), and, for scale,
  the IoU of the true box with its own crop.
* a long video (60 minutes at 25 fps, 90,000 frames; --quick: 10 minutes; at the
  dataset's frame size or --long-size) made by playing one synthetic video
  forwards and backwards: the time, the frames
  decoded (read into pictures and passed over with ``grab()``) and the seeks,
  beside the time a full decode of it takes (the least that storing or scoring
  it costs). Each seek also decodes from the keyframe before its target: the
  worst case for a 250-frame keyframe interval is printed too.

``run(quick)`` returns the summary rows for ``bench/run_all.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from signspot.datasets.auto_box import estimate_signer_box  # noqa: E402
from signspot.datasets.synthetic import FPS, SPLITS, generate_dataset  # noqa: E402
from signspot.datasets.video_reader import crop_box  # noqa: E402

FULL = dict(classes=20, videos_per_split=(8, 4, 4), seconds=60, size=(256, 192), signers=8, test_only_signers=3)
QUICK = dict(classes=10, videos_per_split=(4, 2, 2), seconds=20, size=(160, 120), signers=3, test_only_signers=1)
WORST_KEYFRAME_INTERVAL = 250  # frames (x264's default maximum)


def iou(a, b) -> float:
    inter_w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def bench_videos(root: Path) -> list[dict]:
    results = []
    for folder, prefix, bbox_prefix in SPLITS:
        boxes = json.loads((root / f"{bbox_prefix}_bboxes.json").read_text())
        for name, true_box in sorted(boxes.items()):
            path = root / folder / f"{prefix}_VIDEOS" / f"{name}.mp4"
            start = time.perf_counter()
            estimate = estimate_signer_box(path)
            seconds = time.perf_counter() - start
            width, height = estimate.width, estimate.height
            true_crop = crop_box(true_box, width, height)
            results.append({
                "split": bbox_prefix, "video": name, "true": list(true_box), "estimate": estimate.as_list(),
                "method": estimate.method, "seconds": seconds, "iou": iou(estimate.box, true_box),
                "crop_iou": iou(crop_box(estimate.box, width, height), true_crop),
                "margin_iou": iou(true_box, true_crop), "frames_read": estimate.frames_read,
                "frames_grabbed": estimate.frames_grabbed,
            })
    return results


def make_long_video(source: Path, dest: Path, num_frames: int, size: tuple[int, int] | None = None) -> None:
    """``source`` played forwards then backwards, again and again (no cut), to ``num_frames`` frames."""
    import cv2

    cap = cv2.VideoCapture(str(source))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR))
    cap.release()
    cycle = frames + frames[::-1]
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"mp4v"), float(FPS), (width, height))
    for i in range(num_frames):
        writer.write(cycle[i % len(cycle)])
    writer.release()


def decode_ms_per_frame(path: Path, frames: int = 3000) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path))
    start = time.perf_counter()
    count = 0
    while count < frames and cap.grab():
        count += 1
    cap.release()
    return 1000 * (time.perf_counter() - start) / max(count, 1)


def bench_long(source: Path, tmp: Path, minutes: float, size: tuple[int, int] | None = None) -> dict:
    path = tmp / "long.mp4"
    num_frames = int(round(minutes * 60 * FPS))
    make_long_video(source, path, num_frames, size)
    start = time.perf_counter()
    estimate = estimate_signer_box(path)
    seconds = time.perf_counter() - start
    ms = decode_ms_per_frame(path)
    return {
        "minutes": minutes, "num_frames": num_frames, "size": f"{estimate.width}x{estimate.height}",
        "seconds": seconds, "frames_read": estimate.frames_read, "frames_grabbed": estimate.frames_grabbed,
        "seeks": estimate.seeks, "decode_ms_per_frame": ms, "full_decode_seconds": num_frames * ms / 1000,
        "worst_seconds": seconds + estimate.seeks * WORST_KEYFRAME_INTERVAL * ms / 1000,
    }


def print_report(videos: list[dict], long: dict) -> None:
    print(f"{'split':5} {'video':9} {'true box':22} {'estimate':22} {'IoU':>5} {'crops':>5} "
          f"{'margin':>6} {'read':>4} {'grab':>5} {'time':>6}")
    for r in videos:
        print(f"{r['split']:5} {r['video']:9} {str(r['true']):22} {str(r['estimate']):22} {r['iou']:5.3f} "
              f"{r['crop_iou']:5.3f} {r['margin_iou']:6.3f} {r['frames_read']:4d} {r['frames_grabbed']:5d} "
              f"{r['seconds']:5.3f}s")
    print("IoU: estimate vs true box; crops: the store's crops of the two; margin: true box vs its own crop")
    for split in [s for _, _, s in SPLITS] + ["all"]:
        rows = [r for r in videos if split in ("all", r["split"])]
        ious = np.array([r["iou"] for r in rows])
        crops = np.array([r["crop_iou"] for r in rows])
        margins = np.array([r["margin_iou"] for r in rows])
        print(f"{split:5}: {len(rows):2d} videos, IoU mean {ious.mean():.3f} min {ious.min():.3f}; crops mean "
              f"{crops.mean():.3f} min {crops.min():.3f}; margin mean {margins.mean():.3f}; "
              f"time mean {np.mean([r['seconds'] for r in rows]):.3f} s")
    print(f"long video: {long['minutes']:g} min, {long['num_frames']} frames at {long['size']}: "
          f"{long['seconds']:.2f} s ({long['frames_read']} frames read, {long['frames_grabbed']} grabbed, "
          f"{long['seeks']} seeks); a full decode takes {long['full_decode_seconds']:.1f} s "
          f"({long['decode_ms_per_frame']:.2f} ms/frame); with a {WORST_KEYFRAME_INTERVAL}-frame keyframe "
          f"interval at most {long['worst_seconds']:.1f} s")


def measure(quick: bool, keep: str | None = None, long_minutes: float | None = None,
            long_size: str | None = None) -> tuple[list[dict], dict]:
    with tempfile.TemporaryDirectory(prefix="bench_auto_box_") as tmp_name:
        tmp = Path(tmp_name)
        root = Path(keep) if keep else tmp / "synthetic"
        if not (root / "stats.json").exists():
            generate_dataset(root, seed=1, workers=1, progress=False, **(QUICK if quick else FULL))
        videos = bench_videos(root)
        source = root / SPLITS[0][0] / f"{SPLITS[0][1]}_VIDEOS" / f"{videos[0]['video']}.mp4"
        minutes = long_minutes if long_minutes is not None else (10.0 if quick else 60.0)
        size = tuple(int(v) for v in long_size.lower().split("x")) if long_size else None
        long = bench_long(source, tmp, minutes, size)
    return videos, long


def run(quick: bool) -> list[dict]:
    videos, long = measure(quick)
    ious = [r["iou"] for r in videos]
    return [
        {"name": "IoU with the true box, mean", "value": float(np.mean(ious)), "unit": "", "note": f"{len(ious)} videos"},
        {"name": "IoU with the true box, min", "value": float(np.min(ious)), "unit": ""},
        {"name": "time per synthetic video", "value": float(np.mean([r["seconds"] for r in videos])), "unit": "s"},
        {"name": f"time for a {long['minutes']:g}-minute video", "value": long["seconds"], "unit": "s",
         "note": f"{long['frames_read']} frames read, {long['seeks']} seeks, {long['size']}; "
                 f"full decode {long['full_decode_seconds']:.0f} s"},
    ]


def main(quick: bool, keep: str | None, long_minutes: float | None, long_size: str | None) -> None:
    videos, long = measure(quick, keep, long_minutes, long_size)
    print_report(videos, long)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller dataset and a 10-minute long video")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="generate the synthetic dataset in DIR (or use the one already there)")
    parser.add_argument("--long-minutes", type=float, default=None,
                        help="length of the long video (default 60; --quick: 10)")
    parser.add_argument("--long-size", default=None, metavar="WxH",
                        help="frame size of the long video, e.g. 1280x720 (default: the dataset's)")
    return parser.parse_args()


if __name__ == "__main__":
    main(**vars(parse_args()))
