"""Training throughput (clips/s): the tiny CPU recipe here, the full recipe on a GPU if there is one.

    python bench/bench_train.py [--quick]

Two figures per setting: end to end (``main.py``'s loop: data loading, augmentation, forward,
backward, optimizer; the second epoch, after warm-up) and the model step alone on random clips of
the same shape. When end to end comes close to the model step, the data loader keeps the
device busy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_data(root: Path, *, videos: int, frames: int, size: int, store_size: int, num_classes: int) -> None:
    """A small frame store and fold CSVs: noisy frames with coloured blocks as signs."""
    from signspot.datasets.store_writer import create_frame_store

    rng = np.random.default_rng(0)
    (root / "videos").mkdir(parents=True)
    rows, boxes = [], {}
    for v in range(videos):
        name = f"bench{v}"
        signs, t = [], 8
        while t + 40 < frames:
            length = int(rng.integers(10, 20))
            signs.append((int(rng.integers(num_classes)), t, t + length - 1))
            t += length + int(rng.integers(10, 30))
        writer = cv2.VideoWriter(str(root / "videos" / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (size, size))
        for f in range(frames):
            image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            for label, s, e in signs:
                if s <= f <= e:
                    image[size // 4 : size // 2, size // 4 : size // 2] = (label * 40) % 255
            writer.write(image)
        writer.release()
        rows += [f"{name},{label},{s},{e},{frames}" for label, s, e in signs]
        boxes[name] = [0, 0, size, size]
    (root / "boxes.json").write_text(json.dumps(boxes))
    create_frame_store(root / "store", root / "videos", root / "boxes.json", size=store_size, workers=0, progress=False)
    (root / "folds").mkdir()
    header = "video,label,start_frame,end_frame,fcount"
    (root / "folds" / "train_0.csv").write_text("\n".join([header] + rows) + "\n")
    (root / "folds" / "valid_0.csv").write_text("\n".join([header] + rows[:2]) + "\n")


def _model_step_rate(name: str, batch: int, window: int, crop: int, num_classes: int, device: str,
                     amp_dtype, steps: int) -> float:
    from signspot.losses import head_losses, weighted_total
    from signspot.models import build_model

    model = build_model(name, num_classes=num_classes).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    clip = torch.randn(batch, window, 3, crop, crop, device=device)
    target = torch.zeros(batch, window, num_classes + 1, device=device)
    target[..., -1] = 1
    autocast = torch.autocast(device_type="cuda", dtype=amp_dtype) if amp_dtype else torch.autocast("cpu", enabled=False)

    def step():
        with autocast:
            outputs = model(clip)
        losses = head_losses(outputs, target)
        loss = weighted_total(losses, list(losses), [0.2] * len(losses))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(2):  # warm-up: kernel selection, allocator
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()
    return steps * batch / (time.perf_counter() - start)


def _end_to_end_rate(root: Path, overrides: list) -> float:
    from signspot.train import run_training as train_main

    run_dir = root / "run"
    train_main(
        str(ROOT / "config" / "demo_config.py"),
        [f"data.frame_store={root / 'store'}", f"data.folds_dir={root / 'folds'}", f"io.run_dir={run_dir}",
         "train.epochs=2", "eval.every_epochs=0", "train.resume=False"] + overrides,
    )
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    return float(history[-1]["clips_per_s"])  # second epoch: workers and kernels warmed up


def run(quick: bool) -> list[dict]:
    rows = []
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        root = Path(tmp) / "tiny"
        make_data(root, videos=4 if quick else 8, frames=160, size=96, store_size=64, num_classes=10)
        e2e = _end_to_end_rate(root, ["model.name='hs_i3d_tiny'", "data.num_workers=1", "train.device='cpu'"])
        model_only = _model_step_rate("hs_i3d_tiny", 8, 32, 56, 10, "cpu", None, 2 if quick else 5)
        note = f"hs_i3d_tiny, 8x32x3x56x56, fp32, {threads} threads"
        rows.append({"name": "train_tiny_end_to_end", "value": e2e, "unit": "clips/s", "device": "cpu", "note": note})
        rows.append({"name": "train_tiny_model_step", "value": model_only, "unit": "clips/s", "device": "cpu", "note": note})
        if torch.cuda.is_available():
            card = torch.cuda.get_device_name(0)
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            full = Path(tmp) / "full"
            make_data(full, videos=8 if quick else 16, frames=400, size=320, store_size=256, num_classes=60)
            e2e = _end_to_end_rate(full, [
                "model.name='hs_i3d'", "data.num_classes=60", "data.resize=256", "data.crop=224",
                "data.num_workers=8", "train.device='cuda'", "train.amp='auto'",
            ])
            model_only = _model_step_rate("hs_i3d", 8, 32, 224, 60, "cuda", dtype, 10 if quick else 30)
            note = f"hs_i3d, 8x32x3x224x224, {str(dtype).replace('torch.', '')}, 8 loader workers"
            rows.append({"name": "train_full_end_to_end", "value": e2e, "unit": "clips/s", "device": card, "note": note})
            rows.append({"name": "train_full_model_step", "value": model_only, "unit": "clips/s", "device": card,
                         "note": note})
    for row in rows:
        print(f"{row['name']}: {row['value']:.2f} {row['unit']} ({row['device']}; {row['note']})")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer clips and steps")
    run(parser.parse_args().quick)
