#!/usr/bin/env python
"""An hour of video on this CPU: the full HS-I3D, the original's scoring against signspot's default.

    python bench/bench_hour.py [--minutes 2] [--original-windows 64] [--out bench_out/hour] [--quick]

A synthetic test video of ``--minutes`` at 25 fps goes into a frame store of the original's encoding
(``scripts/track1_lmdb_creator.py``'s default), and a checkpoint of the released architecture (60
classes, 32 x 224 x 224, no config; random weights with measured BatchNorm statistics: the time does
not depend on the weights) scores it through the one scoring path of inference and ``spot.py``
(``scoring.score_videos_with_models``), one checkpoint per pass:

* the original's scoring: ``--compat original`` (windows at stride 1, the contiguous layout of the
  exact path). At a second or so per window the whole video would take hours: its first
  ``--original-windows`` windows are timed (the video cut to that many windows) and projected;
* signspot's default: ``spot.py``'s stride (``signspot.spot.DEFAULT_STRIDE``) in channels_last_3d,
  timed on the whole video;
* the same with ``--engine openvino`` (f32), timed on the whole video after the conversion.

Each setting's wall time per window is projected, at its stride, to one hour (90,000 frames) and to the 30
checkpoints of the released ensemble (30 passes: the network's time dominates; a frame's decoding is
shared in one pass over several checkpoints, so this errs long). Prints one table, writes
``<out>/hour.json``. ``--quick``: the tiny model at 56 px, a 20-s video, 16 original windows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOUR_FRAMES = 25 * 3600
ENSEMBLE = 30  # the released checkpoints: 5 folds x 6 runs


class _Prefix:
    """The first ``frames`` frames of a store's videos (the original's scoring timed on a part of the video)."""

    def __init__(self, store, frames: int):
        self.store, self.frames, self.videos = store, frames, store.videos

    def num_frames(self, video):
        return min(self.frames, self.store.num_frames(video))

    def fps(self, video):
        return self.store.fps(video)

    def read_frames(self, video, indices):
        return self.store.read_frames(video, indices)


def _video_store(out: Path, seconds: float, size: tuple) -> Path:
    from signspot.datasets.store_writer import create_frame_store
    from signspot.datasets.synthetic import generate_dataset

    data, store = out / f"data_{seconds:g}s", out / f"store_{seconds:g}s"
    if not (data / "test_bboxes.json").exists():
        generate_dataset(data, classes=10, videos_per_split=(1, 1, 1), seconds=seconds, size=size, signers=2,
                         test_only_signers=1, workers=1, overwrite=True, progress=False)
    if not store.exists():
        create_frame_store(store, data / "TEST" / "MSSL_TEST_SET_VIDEOS", data / "test_bboxes.json", workers=1,
                           progress=False)
    return store


def _checkpoint(out: Path, name: str, classes: int, crop: int, quick: bool) -> Path:
    import torch

    from signspot.models import build_model, recalibrate_batchnorm

    path = out / f"{name}.pt"
    if not path.exists():
        torch.manual_seed(0)
        model = build_model(name, num_classes=classes)
        recalibrate_batchnorm(model, torch.rand(2, 32, 3, crop, crop) - 0.5)
        payload = {"model": model.state_dict()}
        if quick:  # the tiny model is not the released architecture: its config says its sizes
            from signspot.config import Config, config_to_dict

            cfg = Config()
            cfg.model.name, cfg.data.num_classes, cfg.data.resize, cfg.data.crop = name, classes, 64, crop
            payload["config"] = config_to_dict(cfg)
        torch.save(payload, path)
    return path


def _time(checkpoint: Path, store, *, stride: int, original: bool, batch_size: int, engine: str = "torch") -> dict:
    from signspot.datasets.transforms import EvalClipTransform
    from signspot.inference import load_inference_model
    from signspot.runtime import setup_runtime
    from signspot.scoring import equal_head_weights, on_device, score_videos_with_models

    model, spec = load_inference_model(checkpoint)
    compat = "original" if original else "none"
    runtime = setup_runtime("cpu", None, cpu_autocast=False)
    model = on_device(model, runtime, exact=original, engine=engine, clip=(spec.window, spec.crop))
    run = []  # the windows of each batch, as the scoring path ran them
    started = time.perf_counter()
    scored = score_videos_with_models(
        [model], store, list(store.videos), window=spec.window, stride=stride, runtime=runtime,
        transform=EvalClipTransform(resize=spec.resize, crop=spec.crop), head_weights=equal_head_weights(),
        batch_size=batch_size, compat=compat, drop_last_batch=original,
        on_windows=lambda _m, _v, starts, _logits: run.append(len(starts)), progress=False)[0]
    seconds = time.perf_counter() - started
    runtime.shutdown()
    windows = sum(run)
    frames = sum(v["num_frames"] for v in scored.values())
    hour = seconds / windows * (HOUR_FRAMES / stride)  # an hour's windows: one per `stride` frames
    return {"frames_timed": frames, "windows_timed": windows, "seconds": seconds, "stride": stride,
            "windows_per_s": windows / seconds, "hour_one_checkpoint_h": hour / 3600,
            "hour_ensemble_h": hour * ENSEMBLE / 3600}


def main(minutes: float, original_windows: int, out: Path, quick: bool) -> list[dict]:
    import torch

    from signspot.datasets.frame_store import FrameStore
    from signspot.spot import DEFAULT_STRIDE

    out.mkdir(parents=True, exist_ok=True)
    name, classes, crop = ("hs_i3d_tiny", 10, 56) if quick else ("hs_i3d", 60, 224)
    store = FrameStore(_video_store(out, 20.0 if quick else minutes * 60, (160, 120) if quick else (320, 240)))
    checkpoint = _checkpoint(out, name, classes, crop, quick)
    batch = 8
    # the original's windows: range(0, frames - 32) in whole batches; this many frames give original_windows
    original = _time(checkpoint, _Prefix(store, 32 + original_windows + 1), stride=1, original=True, batch_size=batch)
    default = _time(checkpoint, store, stride=DEFAULT_STRIDE, original=False, batch_size=batch)
    openvino = _time(checkpoint, store, stride=DEFAULT_STRIDE, original=False, batch_size=batch, engine="openvino")
    rows = [{"scoring": "the original's (--compat original, stride 1)", **original,
             "measured_on": f"its first {original['windows_timed']} windows, projected"},
            {"scoring": f"signspot's default (spot.py: stride {DEFAULT_STRIDE}, channels_last_3d)", **default,
             "measured_on": f"{default['frames_timed'] / 1500:.1f} min of video ({default['windows_timed']} windows), "
                            "projected"},
            {"scoring": f"signspot's default with --engine openvino (stride {DEFAULT_STRIDE}, f32)", **openvino,
             "measured_on": f"the same {openvino['frames_timed'] / 1500:.1f} min, projected (network compiled once "
                            "before the timing)"}]
    print(f"An hour of 25-fps video, {name} ({classes} classes, {crop} px), {torch.get_num_threads()} CPU threads:")
    print("| scoring | measured on | windows/s | 1 checkpoint | 30 checkpoints |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scoring']} | {r['measured_on']} | {r['windows_per_s']:.3g} | {r['hour_one_checkpoint_h']:.1f} h "
              f"| {r['hour_ensemble_h']:.0f} h |")
    for r in rows[1:]:
        print(f"{r['scoring']}: {rows[0]['hour_one_checkpoint_h'] / r['hour_one_checkpoint_h']:.1f}x faster than "
              "the original's")
    (out / "hour.json").write_text(json.dumps({"model": name, "rows": rows}, indent=1))
    return rows


def run(quick: bool = False) -> list[dict]:
    """``bench/run_all.py``'s entry: hours per hour of video, one checkpoint, each scoring."""
    rows = main(2.0, 16 if quick else 64, ROOT / "bench_out" / "hour", quick)
    return [{"name": f"hour of video, 1 checkpoint: {r['scoring']}", "value": r["hour_one_checkpoint_h"], "unit": "h",
             "note": r["measured_on"]} for r in rows]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=2.0, help="length of the video timed at the default (default 2)")
    p.add_argument("--original-windows", type=int, default=64,
                   help="windows of the original's scoring timed (default 64)")
    p.add_argument("--out", default=str(ROOT / "bench_out" / "hour"), help="video, store, checkpoint and hour.json")
    p.add_argument("--quick", action="store_true", help="the tiny model on a 20-s video (the tests' run)")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    main(args.minutes, 16 if args.quick else args.original_windows, Path(args.out), args.quick)
