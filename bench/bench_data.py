"""Data pipeline benchmark: frame-store creation and training-window loading.

    python bench/bench_data.py [--quick]

* creator: frames/s and peak RSS (writer process and its encoding worker, each
  measured with getrusage in a child process) for a generated 1280x720 video,
  10 minutes at 25 fps (15,000 frames; --quick: 30 s), stored at 256x256 with one
  encoding worker. Target: < 1 GB peak RSS.
* loader: training windows/s per CPU-second of the loading process (torch and
  OpenCV limited to one thread; whole batches of 8 fetched as training fetches
  them) from a 256x256 store, for a short and a long video (6,000 frames;
  --quick: 1,500), to show the cost does not grow with video length. Target:
  >= 80/s. For both settings of data.augment_on: "device" (the default with a
  GPU: the loader decodes, rotates, crops and flips; the colour steps run on
  the GPU, not measured here) and "loader" (the whole augmentation in the
  loader, the CPU-only setting). In this process (median of several runs) and
  in one DataLoader worker process, whose figure also pays the shared-memory
  transport of each batch to the training process. Also: the CPU time of
  reading + decoding 32 frames and of the loader's augmentation alone, the
  stored frames' size, and this machine's cost of fresh shared memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from signspot.train_data import _EpochIndexedDataset, augmentation_backend  # noqa: E402  (as training loads)


def make_video(path: Path, num_frames: int, width: int, height: int, fps: float = 25.0) -> None:
    """A smooth textured background with a moving bright blob (compresses like real footage)."""
    import cv2

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    background = cv2.resize(small, (width + 32, height + 32), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-6, 7, (4, height, width, 3)).astype(np.int16)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: cannot write a test video")
    for i in range(num_frames):
        dx, dy = (i * 3) % 32, (i * 2) % 32
        frame = background[dy : dy + height, dx : dx + width].copy()
        cx = int(width * (0.5 + 0.2 * np.sin(i / 15.0)))
        cy = int(height * (0.5 + 0.15 * np.cos(i / 11.0)))
        cv2.circle(frame, (cx, cy), max(8, height // 10), (230, 200, 180), -1)
        frame = np.clip(frame.astype(np.int16) + noise[i % 4], 0, 255).astype(np.uint8)
        writer.write(frame)
    writer.release()


_CREATOR_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {root!r} + "/bench")
from peak_memory import children_peak_rss_mb, own_peak_rss_mb
from signspot.datasets.store_writer import create_frame_store
if __name__ == "__main__":
    start = time.perf_counter()
    create_frame_store({dest!r}, {videos!r}, {boxes!r}, size=256, workers=1, progress=False)
    wall = time.perf_counter() - start
    print(json.dumps({{"wall": wall, "self_mb": own_peak_rss_mb(), "worker_mb": children_peak_rss_mb()}}))
"""


def bench_creator(tmp: Path, quick: bool) -> list[dict]:
    num_frames = 750 if quick else 15000
    width, height = 1280, 720
    videos = tmp / "creator_videos"
    videos.mkdir()
    make_video(videos / "long_720p.mp4", num_frames, width, height)
    boxes = tmp / "creator_boxes.json"
    boxes.write_text(json.dumps({"long_720p": [400, 60, 880, 700]}))
    code = _CREATOR_CHILD.format(root=str(ROOT), dest=str(tmp / "creator_store"), videos=str(videos),
                                 boxes=str(boxes))
    script = tmp / "creator_child.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    minutes = num_frames / 25.0 / 60.0
    note = f"{num_frames} frames 1280x720 ({minutes:.1f} min) -> 256x256, 1 worker"
    return [
        {"name": "creator_frames_per_s", "value": num_frames / stats["wall"], "unit": "frames/s", "note": note},
        {"name": "creator_peak_rss_writer", "value": stats["self_mb"], "unit": "MB", "note": note},
        {"name": "creator_peak_rss_worker", "value": stats["worker_mb"], "unit": "MB",
         "note": note + "; target < 1024"},
    ]


class _Stamped(_EpochIndexedDataset):
    """The dataset as training's loader sees it (``(epoch, index)`` keys, whole batches fetched at
    once), each batch stamped with the CPU time of the process that made it, so the work of a
    loader worker process can be measured too."""

    def __getitems__(self, keys):
        import cv2
        import torch

        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        batch = super().__getitems__(keys)
        batch["cpu_s"] = torch.tensor(time.process_time(), dtype=torch.float64)
        return batch


def _windows_per_cpu_s(dataset, keys, batch: int, workers: int) -> tuple[float, float]:
    """(windows per CPU-second of the loading process, windows per wall-clock second).

    In this process (``workers=0``) or in one spawned worker process, whose CPU time
    then also covers the DataLoader's shared-memory transport of every batch.
    """
    from torch.utils.data import DataLoader

    from signspot.datasets.windows import collate_windows

    extra = {"multiprocessing_context": "spawn", "prefetch_factor": 2} if workers else {}
    loader = DataLoader(_Stamped(dataset), batch_size=batch, sampler=keys, collate_fn=collate_windows,
                        num_workers=workers, **extra)
    stamps, start_wall = [], None
    for item in loader:
        stamps.append(float(item["cpu_s"]))
        if "lease" in item:  # as training does once the batch is on the device
            item["lease"].release()
        if start_wall is None:  # timed from the end of the first batch: warm-up and start-up excluded
            start_wall = time.perf_counter()
    windows = (len(stamps) - 1) * batch
    return windows / (stamps[-1] - stamps[0]), windows / (time.perf_counter() - start_wall)


def bench_loader(tmp: Path, quick: bool) -> list[dict]:
    import cv2
    import torch

    from signspot.datasets.frame_store import FrameStore, _frame_key
    from signspot.datasets.store_writer import create_frame_store
    from signspot.datasets.transforms import TrainClipTransform
    from signspot.datasets.windows import TrainWindowDataset

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    lengths = {"short": 100 if quick else 300, "long": 1500 if quick else 6000}
    videos = tmp / "loader_videos"
    videos.mkdir()
    for name, n in lengths.items():
        make_video(videos / f"{name}.mp4", n, 320, 320)
    boxes = tmp / "loader_boxes.json"
    boxes.write_text(json.dumps({name: [40, 30, 280, 300] for name in lengths}))
    create_frame_store(tmp / "loader_store", videos, boxes, size=256, workers=2, progress=False)
    store = FrameStore(tmp / "loader_store")

    rows = []
    samples, repeats, batch = (64, 3, 8) if quick else (320, 5, 8)
    cpu = torch.device("cpu")
    for name, n in lengths.items():
        rng = np.random.default_rng(1)
        csv_path = tmp / f"{name}.csv"
        lines = ["video,label,start_frame,end_frame,fcount"]
        for _ in range(50):
            start = int(rng.integers(0, n - 20))
            lines.append(f"{name},{int(rng.integers(0, 60))},{start},{start + int(rng.integers(5, 20))},{n}")
        csv_path.write_text("\n".join(lines) + "\n")
        for augment_on in ("device", "loader"):
            backend = augmentation_backend(augment_on, cpu)
            dataset = TrainWindowDataset(csv_path, store, 60, window=32, neg_prob=0.1, seed=0,
                                         transform=TrainClipTransform(backend=backend))
            what = ("decode + rotation/crop/flip (colour steps on the device)" if augment_on == "device"
                    else "decode + the whole augmentation")
            # Median of several runs: other work on the machine moves single runs by up to 40%.
            for workers in (0, 1):
                runs = []
                for r in range(repeats if workers == 0 else 1):
                    # a new epoch every 6 batches (never inside a batch, as in training)
                    keys = [(1 + r * 100 + i // (6 * batch), i % len(dataset)) for i in range(samples + batch)]
                    runs.append(_windows_per_cpu_s(dataset, keys, batch, workers))
                cpu_rate, wall_rate = (float(np.median([x[k] for x in runs])) for k in (0, 1))
                place = "in one worker process (shared-memory transport included)" if workers else "in process"
                note = f"{n}-frame video, 256x256 store, {what}, batches of {batch}, {place}"
                suffix = "_worker" if workers else ""
                rows.append({"name": f"loader_{augment_on}{suffix}_windows_per_cpu_s_{name}", "value": cpu_rate,
                             "unit": "windows/s", "note": note + ", per CPU-second; target >= 80"})
                if not workers:
                    rows.append({"name": f"loader_{augment_on}_windows_per_wall_s_{name}", "value": wall_rate,
                                 "unit": "windows/s", "note": note + ", wall clock"})
        buffer, t0 = None, time.process_time()
        for _ in range(samples):
            s = int(rng.integers(0, n - 32))
            buffer = store.read_frames(name, range(s, s + 32), out=buffer)
        rows.append({"name": f"read_ms_per_window_{name}", "value": 1000 * (time.process_time() - t0) / samples,
                     "unit": "ms", "note": f"{n}-frame video: 32 frames read + JPEG-decoded (CPU time)"})
    # The augmentation alone (the same for any video length): the rest of a window's cost.
    clip = store.read_frames(name, range(32))
    for augment_on in ("device", "loader"):
        transform = TrainClipTransform(backend=augmentation_backend(augment_on, cpu))
        t0 = time.process_time()
        for i in range(samples):
            transform(clip, torch.Generator().manual_seed(i))
        rows.append({"name": f"augment_{augment_on}_ms_per_window", "value": 1000 * (time.process_time() - t0) / samples,
                     "unit": "ms", "note": f"loader part of the augmentation (data.augment_on={augment_on}) of a "
                                           "decoded 32x256x256 clip (CPU time, random parameters)"})
    with store._open().begin() as txn:
        jpeg_bytes = np.mean([len(txn.get(_frame_key(name, i))) for i in range(32)])
    rows.append({"name": "stored_jpeg_kb_per_frame", "value": jpeg_bytes / 1024, "unit": "KB",
                 "note": "size of a stored 256x256 frame of the benchmark video (JPEG quality 90)"})
    rows.append({"name": "shared_memory_ms_per_mb", "value": _shared_memory_ms_per_mb(), "unit": "ms",
                 "note": "CPU cost of filling 1 MB of fresh shared memory (as a worker's batch travels), this machine"})
    return rows


def _shared_memory_ms_per_mb() -> float:
    """CPU time to fill fresh shared memory, minus filling memory already in place, per MB."""
    import torch

    size = 32 << 20
    src = np.ones(size, np.uint8)
    kept = np.empty(size, np.uint8)
    np.copyto(kept, src)
    t0 = time.process_time()
    for _ in range(5):
        np.copyto(kept, src)
    reused = (time.process_time() - t0) / 5
    t0 = time.process_time()
    for _ in range(5):
        storage = torch.UntypedStorage._new_shared(size)
        np.copyto(torch.empty(0, dtype=torch.uint8).set_(storage, 0, (size,)).numpy(), src)
        del storage
    fresh = (time.process_time() - t0) / 5
    return 1000 * (fresh - reused) / 32


def run(quick: bool) -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        tmp = Path(tmp)
        rows += bench_creator(tmp, quick)
        rows += bench_loader(tmp, quick)
    for row in rows:
        print(f"{row['name']:32s} {row['value']:10.1f} {row['unit']:10s} {row.get('note', '')}", flush=True)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter videos, fewer samples")
    run(**vars(parser.parse_args()))
