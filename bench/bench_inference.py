#!/usr/bin/env python
"""Per-checkpoint inference: windows/s and peak memory vs video length and stride.

    python bench/bench_inference.py [--quick] [--device cpu|cuda] [--workers N]

Builds a frame store of synthetic videos (256 x 256 frames, as the real stores)
and runs :func:`signspot.inference.infer_videos` on one video per measurement,
each in a fresh child process so that its peak resident memory (``ru_maxrss``)
is its own: the inference process itself, and separately the largest DataLoader
worker. The original held a whole video as float tensors: 11.9 GB for 6,000
frames. Configurations:

* ``pipeline``: the real data path at 224 px (decode, resize, crop, windows,
  aggregation) with a stub network of negligible cost, on videos of 500 / 2,000 /
  6,000 frames (quick: 200 / 800) at stride 1 and 8: what memory does as videos
  grow, and the rate frames can be fed at.
* ``hs_i3d_tiny`` at 64 px, and the full ``hs_i3d`` at 224 px: the same with the
  network. On the CPU the full model scores about a window per second, so it runs
  on one short video there (skipped by ``--quick``); on CUDA, on every length.
* ``import torch``: the resident memory of a process that only imports torch,
  the floor every figure above includes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peak_memory import children_peak_rss_mb, own_peak_rss_mb  # noqa: E402

STORED_SIZE = 256  # frames in the store, as scripts/track1_lmdb_creator.py writes them by default


def _make_store(root: Path, lengths: list[int]) -> Path:
    """Frame store with one synthetic video per length (a square moving over noise)."""
    import cv2
    import numpy as np

    from signspot.datasets.store_writer import create_frame_store

    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    boxes = {}
    for n in lengths:
        name = f"video_{n:05d}"
        writer = cv2.VideoWriter(str(videos / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (160, 160))
        base = rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)
        for i in range(n):
            frame = base.copy()
            x = (2 * i) % 120
            frame[40:80, x : x + 40] = 255
            writer.write(frame)
        writer.release()
        boxes[name] = [20, 20, 140, 140]
    (root / "boxes.json").write_text(json.dumps(boxes))
    store = root / "bench_store"
    create_frame_store(store, videos, root / "boxes.json", size=STORED_SIZE, workers=2, progress=False)
    return store


def _stub_model():
    """Five heads computed from the clip's mean intensity: the data path's cost, no network's."""
    import torch

    class StubHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(1, 61)

        def forward(self, x):  # x: (B, T, 3, H, W)
            per_step = x.mean(dim=(2, 3, 4))[..., None]  # (B, T, 1)
            out = {}
            for head, steps in (("x4", 4), ("x8", 8), ("x16", 16), ("x32", 32), ("x", 32)):
                pooled = torch.nn.functional.adaptive_avg_pool1d(per_step.transpose(1, 2), steps)
                out[head] = self.proj(pooled.transpose(1, 2))  # (B, steps, 61)
            return out

    return StubHeads()


def _child(args: dict) -> dict:
    """Runs in its own process: one video through infer_videos; returns timings and peak RSS."""
    import torch

    if args["model"] == "import-only":
        return {"rss_main_mb": own_peak_rss_mb()}

    from signspot.datasets.frame_store import FrameStore
    from signspot.datasets.transforms import EvalClipTransform
    from signspot.datasets.windows import window_starts
    from signspot.models import build_model
    from signspot.runtime import fix_malloc_mmap_threshold, setup_runtime
    from signspot.scoring import score_videos

    fix_malloc_mmap_threshold()  # as main_results_creator_v2.py does
    torch.manual_seed(0)
    model = _stub_model() if args["model"] == "pipeline" else build_model(args["model"], num_classes=60)
    model.eval()
    store = FrameStore(args["store"])
    num_frames = store.num_frames(args["video"])
    transform = EvalClipTransform(resize=args["resize"], crop=args["crop"])
    start = time.perf_counter()
    runtime = setup_runtime(args["device"], None, cpu_autocast=True)
    model.to(runtime.device)
    scores = score_videos(
        model, store, [args["video"]], window=32, stride=args["stride"], batch_size=args["batch_size"],
        transform=transform, runtime=runtime, workers=args["workers"], progress=False,
    )
    if args["device"].startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    assert scores[args["video"]]["scores"].shape == (num_frames, 61)
    return {
        "windows": int(len(window_starts(num_frames, 32, args["stride"]))),
        "seconds": seconds,
        "rss_main_mb": own_peak_rss_mb(),
        "rss_worker_mb": children_peak_rss_mb(),
    }


def _measure(args: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(args)],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {args}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False, device: str | None = None, workers: int = 2) -> list[dict]:
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    lengths = [200, 800] if quick else [500, 2000, 6000]
    configs = [("pipeline", 256, 224, n, stride) for n in lengths for stride in (1, 8)]
    if device == "cpu":  # a few windows/s for the tiny model, about one per second for the full one
        configs += [("hs_i3d_tiny", 72, 64, lengths[0], 8)]
        if not quick:
            configs += [("hs_i3d_tiny", 72, 64, lengths[0], 1), ("hs_i3d", 256, 224, 96, 8)]
    else:
        configs += [(m, r, c, n, stride) for m, r, c in (("hs_i3d_tiny", 72, 64), ("hs_i3d", 256, 224))
                    for n in lengths for stride in (1, 8)]
    floor = _measure({"model": "import-only"})["rss_main_mb"]
    rows: list[dict] = [{"name": "peak RSS, import torch only", "value": floor, "unit": "MB", "device": "cpu",
                         "note": "included in every RSS figure below"}]
    print(f"import torch only: peak RSS {floor:.0f} MB", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as tmp:
        t0 = time.perf_counter()
        store = _make_store(Path(tmp), sorted({c[3] for c in configs}))
        print(f"frame store of {len(lengths)} videos built in {time.perf_counter() - t0:.1f} s", flush=True)
        for model, resize, crop, n, stride in configs:
            result = _measure({
                "store": str(store), "video": f"video_{n:05d}", "model": model, "resize": resize, "crop": crop,
                "stride": stride, "batch_size": 8, "device": device, "workers": workers,
            })
            label = f"{model} {crop}px, {n} frames, stride {stride}"
            note = f"{result['windows']} windows, batch 8, {workers} workers"
            rate = result["windows"] / result["seconds"]
            rows += [
                {"name": f"windows/s ({label})", "value": rate, "unit": "windows/s", "device": device, "note": note},
                {"name": f"peak RSS, inference process ({label})", "value": result["rss_main_mb"], "unit": "MB",
                 "device": device, "note": note},
                {"name": f"peak RSS, largest worker ({label})", "value": result["rss_worker_mb"], "unit": "MB",
                 "device": device, "note": note},
            ]
            print(f"{label}: {rate:.1f} windows/s, peak RSS {result['rss_main_mb']:.0f} MB "
                  f"(worker {result['rss_worker_mb']:.0f} MB), {result['seconds']:.1f} s", flush=True)
    return rows


def main(quick: bool = False, device: str | None = None, workers: int = 2, child: str | None = None):
    if child is not None:
        print(json.dumps(_child(json.loads(child))))
        return None
    return run(quick, device=device, workers=workers)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter videos, tiny model only")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    main(**vars(parser.parse_args()))
