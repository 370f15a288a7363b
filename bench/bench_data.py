"""Data pipeline benchmark: frame-store creation and training-window loading.

    python bench/bench_data.py [--quick]

* creator: frames/s and peak RSS (writer process and its encoding worker, each
  measured with getrusage in a child process) for a generated 1280x720 video,
  10 minutes at 25 fps (15,000 frames; --quick: 30 s), stored at 256x256 with one
  encoding worker. Target: < 1 GB peak RSS.
* loader: training windows/s on one core (torch and OpenCV limited to one
  thread, batches of 8 collated in this process) from a 256x256 store, for a
  short and a long video (6,000 frames; --quick: 1,500), to show the cost does
  not grow with video length. Target: >= 80/s. Both places the augmentation can
  run (config data.augment_on): "loader" (decode + OpenCV augmentation in the
  loader, the CPU-only setting) and "device" (the loader decodes, the GPU
  augments: the default with a GPU; the GPU's share is not measured here).
  Also the CPU time of reading + decoding 32 frames, of the loader augmentation
  alone, and the stored frames' size.
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
from torch.utils.data import Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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
from datasets.frame_store import create_frame_store
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


class _Epochs(Dataset):
    """``(epoch, index)`` keys, as training uses them: every epoch draws new windows and augmentations."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]

    def __getitems__(self, keys):  # whole batches, as training fetches them
        self.dataset.set_epoch(keys[0][0])
        return self.dataset.get_batch([index for _, index in keys])


def bench_loader(tmp: Path, quick: bool) -> list[dict]:
    import cv2
    import torch
    from torch.utils.data import DataLoader

    from datasets.frame_store import FrameStore, create_frame_store
    from datasets.transforms import TrainClipTransform
    from datasets.windows import TrainWindowDataset, collate_windows

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
    samples = 48 if quick else 320
    batch = 8
    where = {"loader": "fast", "device": "device"}  # data.augment_on -> transform backend
    for name, n in lengths.items():
        rng = np.random.default_rng(1)
        csv_path = tmp / f"{name}.csv"
        lines = ["video,label,start_frame,end_frame,fcount"]
        for _ in range(50):
            start = int(rng.integers(0, n - 20))
            lines.append(f"{name},{int(rng.integers(0, 60))},{start},{start + int(rng.integers(5, 20))},{n}")
        csv_path.write_text("\n".join(lines) + "\n")
        for augment_on, backend in where.items():
            dataset = TrainWindowDataset(csv_path, store, 60, window=32, neg_prob=0.1, seed=0,
                                         transform=TrainClipTransform(backend=backend))
            keys = [(1 + i // len(dataset), i % len(dataset)) for i in range(samples)]
            # As in training (collated into batches of 8), in this process: its CPU time is what
            # one loader core spends; wall time also counts waiting when other work shares the machine.
            loader = DataLoader(_Epochs(dataset), batch_size=batch, sampler=keys, collate_fn=collate_windows)
            next(iter(DataLoader(_Epochs(dataset), batch_size=batch, sampler=keys[:batch], collate_fn=collate_windows)))
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for item in loader:
                pass
            wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
            clip = item["clip"]["frames"] if augment_on == "device" else item["clip"]
            assert clip.dtype == torch.uint8 and clip.shape[:2] == (batch, 32)
            what = "decode only (augmentation on the device)" if augment_on == "device" else "decode + augmentation"
            note = f"{n}-frame video, 256x256 store, {what}, batches of {batch}, 1 thread"
            rows.append({"name": f"loader_{augment_on}_windows_per_cpu_s_{name}", "value": samples / cpu,
                         "unit": "windows/s", "note": note + ", per CPU-second; target >= 80"})
            rows.append({"name": f"loader_{augment_on}_windows_per_wall_s_{name}", "value": samples / wall,
                         "unit": "windows/s", "note": note + ", wall clock"})
        buffer, t0 = None, time.process_time()
        for i in range(samples):
            s = int(rng.integers(0, n - 32))
            buffer = store.read_frames(name, range(s, s + 32), out=buffer)
        rows.append({"name": f"read_ms_per_window_{name}", "value": 1000 * (time.process_time() - t0) / samples,
                     "unit": "ms", "note": f"{n}-frame video: 32 frames read + JPEG-decoded (CPU time)"})
    # The augmentation alone (the same for any video length): the rest of a window's cost.
    clip = store.read_frames(name, range(32))
    transform = TrainClipTransform()
    t0 = time.process_time()
    for i in range(samples):
        transform(clip, torch.Generator().manual_seed(i))
    rows.append({"name": "augment_ms_per_window", "value": 1000 * (time.process_time() - t0) / samples, "unit": "ms",
                 "note": "loader augmentation of a 32x256x256 clip -> 32x224x224 uint8 (CPU time, random parameters)"})
    from datasets.frame_store import _frame_key

    with store._open().begin() as txn:
        jpeg_bytes = np.mean([len(txn.get(_frame_key(name, i))) for i in range(32)])
    rows.append({"name": "stored_jpeg_kb_per_frame", "value": jpeg_bytes / 1024, "unit": "KB",
                 "note": "size of a stored 256x256 frame of the benchmark video (JPEG quality 90)"})
    return rows


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
