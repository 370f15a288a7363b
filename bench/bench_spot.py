#!/usr/bin/env python
"""Several checkpoints in one pass, and spot.py's memory on a long video.

    python bench/bench_spot.py [--quick] [--checkpoints K] [--minutes M]

* ``one pass vs K runs``: ``main_results_creator_v2.py``'s path (:func:`signspot.inference.infer_store`)
  over a frame store with K checkpoints given together, against K calls with one
  checkpoint each: wall time, and where it goes (the frames' read + decode + transform,
  measured with a stub network, and the networks).
* ``spot.py on a long video``: :func:`signspot.spot.spot_videos` on one synthetic video of
  M minutes at 25 fps (a moving square on a textured background, 96x72), run in a fresh
  child process so that its peak resident memory (``ru_maxrss``) is its own; the same for
  a 1-minute video shows what grows with the length (the per-frame scores, ~2 kB a frame
  per checkpoint) and what does not (the frames: one batch of windows at a time).

The model is ``hs_i3d_tiny`` at 32 px with 16-frame windows (stride 16 for the long
video), small enough for a CPU; the figures are about the data path, not the network.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peak_memory import own_peak_rss_mb  # noqa: E402

WINDOW, RESIZE, CROP, CLASSES = 16, 32, 32, 10


def _video(path: Path, frames: int, size=(96, 72)) -> Path:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), (7, 7), 2.0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, size)
    for i in range(frames):
        frame = base.copy()
        x = (2 * i) % (size[0] - 20)
        frame[20:40, x : x + 20] = 255
        writer.write(frame)
    writer.release()
    return path


def _checkpoints(folder: Path, k: int) -> list:
    import torch

    from signspot.config import Config, config_to_dict
    from signspot.models import build_model

    cfg = Config()
    cfg.model.name, cfg.data.num_classes = "hs_i3d_tiny", CLASSES
    cfg.data.window, cfg.data.resize, cfg.data.crop = WINDOW, RESIZE, CROP
    paths = []
    for i in range(k):
        torch.manual_seed(i)
        path = folder / f"run{i}" / "ckpts" / "best_checkpoint_1_0.5000.pt"
        path.parent.mkdir(parents=True)
        torch.save({"model": build_model("hs_i3d_tiny", num_classes=CLASSES).state_dict(),
                    "config": config_to_dict(cfg)}, path)
        paths.append(path)
    return paths


def one_pass_vs_k_runs(root: Path, k: int, frames: int) -> dict:
    import json as _json

    from signspot.datasets.store_writer import create_frame_store
    from signspot.inference import infer_store

    (root / "videos").mkdir(parents=True)
    for i in range(3):
        _video(root / "videos" / f"v{i}.mp4", frames)
    (root / "boxes.json").write_text(_json.dumps({f"v{i}": [10, 5, 86, 67] for i in range(3)}))
    create_frame_store(root / "store", root / "videos", root / "boxes.json", workers=0, progress=False)
    checkpoints = _checkpoints(root / "ckpts", k)
    common = dict(device="cpu", workers=0, progress=False, stride=1)
    started = time.perf_counter()
    infer_store(str(root / "store"), [str(p) for p in checkpoints], save_dir=str(root / "together"), **common)
    together = time.perf_counter() - started
    started = time.perf_counter()
    for i, path in enumerate(checkpoints):
        infer_store(str(root / "store"), [str(path)], save_dir=str(root / f"alone{i}"), **common)
    apart = time.perf_counter() - started
    data = _data_path_seconds(root / "store")
    return {"checkpoints": k, "videos": 3, "frames_per_video": frames, "one_pass_s": round(together, 2),
            "k_runs_s": round(apart, 2), "speed_up": round(apart / together, 2),
            "data_path_s_per_pass": round(data, 2), "network_s_per_checkpoint": round((together - data) / k, 2)}


def _data_path_seconds(store_path: Path) -> float:
    """One pass of the frames through read + decode + transform + windows, with a network that costs nothing."""
    import torch

    from signspot.datasets.frame_store import FrameStore
    from signspot.datasets.transforms import EvalClipTransform
    from signspot.runtime import setup_runtime
    from signspot.scoring import score_videos

    class Stub(torch.nn.Module):
        def forward(self, x):
            n = x.shape[0]
            return {h: torch.zeros(n, t, CLASSES + 1) for h, t in (("x4", 4), ("x8", 2), ("x16", 1), ("x32", 1),
                                                                   ("x", WINDOW))}

    store = FrameStore(store_path)
    runtime = setup_runtime("cpu", None, cpu_autocast=False)
    started = time.perf_counter()
    score_videos(Stub(), store, store.videos, window=WINDOW, stride=1, transform=EvalClipTransform(RESIZE, CROP),
                 runtime=runtime, workers=0, progress=False)
    return time.perf_counter() - started


def spot_child(video: str, checkpoint: str, out: str) -> None:
    from signspot.spot import spot_videos

    started = time.perf_counter()
    spot_videos([video], [checkpoint], out, box="full", stride=WINDOW, workers=1, progress=False,
                log=lambda *_: None)
    print(json.dumps({"seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": round(own_peak_rss_mb(), 1)}))


def spot_memory(root: Path, minutes: float) -> list:
    checkpoint = _checkpoints(root / "spot_ckpts", 1)[0]
    rows = []
    for length in sorted({1.0, minutes}):
        frames = int(length * 60 * 25)
        video = _video(root / f"long_{length:g}min.mp4", frames)
        result = subprocess.run([sys.executable, __file__, "--child", str(video), str(checkpoint),
                                 str(root / f"spotted_{length:g}")], capture_output=True, text=True, check=True)
        rows.append({"minutes": length, "frames": frames, **json.loads(result.stdout.strip().splitlines()[-1])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames, a 10-minute long video")
    parser.add_argument("--checkpoints", type=int, default=4, help="K, checkpoints in one pass (default 4)")
    parser.add_argument("--minutes", type=float, default=None, help="length of the long video (default 60; quick 10)")
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spot_child(*args.child)
        return
    minutes = args.minutes or (10.0 if args.quick else 60.0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one_pass = one_pass_vs_k_runs(root / "one_pass", args.checkpoints, 150 if args.quick else 400)
        memory = spot_memory(root, minutes)
    print(f"one pass over {one_pass['checkpoints']} checkpoints ({one_pass['videos']} videos x "
          f"{one_pass['frames_per_video']} frames, stride 1): {one_pass['one_pass_s']} s; "
          f"{one_pass['checkpoints']} runs: {one_pass['k_runs_s']} s (x{one_pass['speed_up']}); "
          f"data path {one_pass['data_path_s_per_pass']} s per pass, network ~{one_pass['network_s_per_checkpoint']} s "
          "per checkpoint")
    for row in memory:
        print(f"spot.py, {row['minutes']:g}-min video ({row['frames']} frames, stride {WINDOW}): "
              f"{row['seconds']} s, peak RSS {row['peak_rss_mb']} MB")
    print(json.dumps({"one_pass": one_pass, "spot_memory": memory}))


if __name__ == "__main__":
    main()
