#!/usr/bin/env python
"""How many windows a frame needs: test F1 against the cost of scoring, over several generator seeds.

    python bench/bench_stride.py [--seeds 0,1,2] [--out bench_out/stride] [--quick]

For each seed, the demo's two checkpoints of that seed (``scripts/demo.py --seed N --train-only``,
run here when ``<out>/demo_seed<N>`` holds none; seed 0 reuses ``demo_out`` when it is trained)
score the demo's validation and test stores under every window plan below. For each plan the two
checkpoints' scores are averaged (the ensemble), decoding is tuned on validation
(``tuning.tune_decode_settings``) and the test split is scored with the official metric.

Plans: 32-frame windows at strides 1, 2, 4, 8, 16 and 32, and long windows (64, 128 and 256
frames) at half and at a quarter of their length, the second the same cost per frame as
32-frame windows at stride 8. The network runs once per window length, at the finest stride
wanted; a coarser stride's windows are a subset of those (``datasets.windows.window_starts``:
multiples of the stride, and the last window ending on the last frame), folded into the same
``scoring.FrameScoreAccumulator`` as inference uses. ``--quick`` checks that claim against
``scoring.score_videos`` run at the coarser stride.

Cost: seconds of network time per hour of 25-fps video for one checkpoint, from the windows per
second of each window length, timed apart (torch, spot.py's CPU layout, batches of 8; this
machine, the demo's tiny model). ``--engine openvino`` runs the scoring passes faster, with the
same scores within 1e-5. Prints one
table: F1 per seed, its mean, min-max and the difference from stride 1, and the policy, the
largest 32-frame stride whose mean F1 is within 0.01 of stride 1's. Writes ``<out>/stride.json``.
``--quick``: one seed of the tiny demo (1 epoch), strides 1, 4 and 8 and one long window.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOUR_FRAMES = 25 * 3600
TOLERANCE = 0.01  # F1 a cheaper stride may lose against stride 1 and still be the default
# (window, stride) plans; the first is the reference, the original's stride 1.
PLANS = [(32, 1), (32, 2), (32, 4), (32, 8), (32, 16), (32, 32),
         (64, 32), (64, 16), (128, 64), (128, 32), (256, 128), (256, 64)]
QUICK_PLANS = [(32, 1), (32, 4), (32, 8), (64, 16), (64, 32)]


def trained_checkpoints(seed: int, out: Path, *, quick: bool) -> tuple[list[str], Path]:
    """The demo's checkpoints of ``seed`` and its stores folder, trained here if missing."""
    from signspot.cli.demo import run_demo

    reuse = ROOT / "demo_out"
    if seed == 0 and not quick and (reuse / "runs" / "5fold_neg0" / "maxfix_neg0_fold1" / "done").exists():
        demo = reuse
    else:
        demo = out / (f"demo_seed{seed}" + ("_tiny" if quick else ""))
    found = run_demo(out=str(demo), seed=seed, tiny=quick, folds=1 if quick else 2, train_only=True)
    return found["checkpoints"], Path(found["stores"])


class WindowOutputs:
    """Every window's head logits at one window length and the finest stride, per checkpoint and video.

    Recorded through the scoring path itself (``scoring.score_videos_with_models``'s ``on_windows``).
    """

    def __init__(self, models, store, *, window: int, stride: int, transform, runtime, batch_size: int = 16):
        from signspot.scoring import equal_head_weights, score_videos_with_models

        self.window, self.stride = window, stride
        self.videos = list(store.videos)
        self.num_frames = {v: int(store.num_frames(v)) for v in self.videos}
        self.fps = {v: float(store.fps(v)) for v in self.videos}
        parts = [{v: {} for v in self.videos} for _ in models]  # model -> video -> {"starts": [...], head: [...]}

        def keep(model_index, video, starts, head_logits):
            entry = parts[model_index][video]
            entry.setdefault("starts", []).append(np.asarray(starts))
            for head, logits in head_logits.items():
                entry.setdefault(head, []).append(logits)

        started = time.perf_counter()
        score_videos_with_models(models, store, self.videos, window=window, stride=stride, transform=transform,
                                 runtime=runtime, head_weights=equal_head_weights(), batch_size=batch_size,
                                 on_windows=keep, progress=False)
        self.seconds = time.perf_counter() - started
        self.windows = sum(len(starts) for entry in parts[0].values() for starts in entry["starts"])  # as run
        self.outputs = [{v: {k: np.concatenate(x) for k, x in entry.items()} for v, entry in p.items()} for p in parts]

    def frame_scores(self, model_index: int, stride: int) -> dict:
        """``{video: {"scores", "fps", "num_frames"}}`` of the windows at ``stride`` (a multiple of the recorded one)."""
        from signspot.datasets.windows import window_starts
        from signspot.scoring import FrameScoreAccumulator, equal_head_weights

        if stride % self.stride:
            raise ValueError(f"stride {stride} is not a multiple of the recorded stride {self.stride}")
        result = {}
        for video, entry in self.outputs[model_index].items():
            n = self.num_frames[video]
            wanted = window_starts(n, self.window, stride)
            keep = np.searchsorted(entry["starts"], wanted)
            if not np.array_equal(entry["starts"][keep], wanted):
                raise AssertionError(f"{video}: the windows at stride {stride} are not among those recorded")
            heads = equal_head_weights()
            accumulator = FrameScoreAccumulator(n, entry["x"].shape[-1], self.window, heads)
            accumulator.add(wanted, {h: entry[h][keep] for h in heads})
            result[video] = {"scores": accumulator.result(), "fps": self.fps[video], "num_frames": n}
        return result


def ensemble(outputs: WindowOutputs, stride: int, count: int) -> dict:
    from signspot.ensemble import FrameScoreMean

    mean = FrameScoreMean()
    for m in range(count):
        mean.add(outputs.frame_scores(m, stride), source=f"checkpoint {m}")
    return mean.result()


def check_subset_equals_direct(outputs: WindowOutputs, models, store, *, stride: int, transform, runtime) -> float:
    """Largest |difference| between the subset's frame scores and ``score_videos`` run at ``stride``."""
    from signspot.scoring import score_videos

    direct = score_videos(models[0], store, outputs.videos, window=outputs.window, stride=stride,
                          transform=transform, runtime=runtime, progress=False)
    subset = outputs.frame_scores(0, stride)
    return max(float(np.abs(direct[v]["scores"] - subset[v]["scores"]).max()) for v in outputs.videos)


def run_seed(seed: int, out: Path, plans, *, quick: bool, engine: str = "torch", log=print) -> dict:
    """One seed's F1 per plan; kept in ``<out>/seed<N>.json`` and reused when its plans are the same."""
    saved = out / (f"seed{seed}" + ("_quick" if quick else "") + ".json")
    if saved.exists():
        kept = json.loads(saved.read_text())
        if sorted(kept["rows"]) == sorted(f"{w}/{s}" for w, s in plans):
            return kept
    result = _score_seed(seed, out, plans, quick=quick, engine=engine, log=log)
    saved.write_text(json.dumps(result, indent=1))
    return result


def _score_seed(seed: int, out: Path, plans, *, quick: bool, engine: str, log) -> dict:
    from signspot.datasets.frame_store import FrameStore
    from signspot.datasets.transforms import EvalClipTransform
    from signspot.decode import decode_all
    from signspot.formats.gt import load_intervals
    from signspot.inference import load_inference_model
    from signspot.metric import official_score
    from signspot.runtime import setup_runtime
    from signspot.scoring import on_device
    from signspot.tuning import tune_decode_settings

    checkpoints, stores = trained_checkpoints(seed, out, quick=quick)
    data = stores.parent / "data"
    gt = {"valid": load_intervals(data / "VALIDATION" / "MSSL_VAL_SET_GT.pkl"),
          "test": load_intervals(data / "TEST" / "MSSL_TEST_SET_GT.pkl")}
    runtime = setup_runtime("cpu", None, cpu_autocast=False)
    spec = load_inference_model(checkpoints[0])[1]
    transform = EvalClipTransform(resize=spec.resize, crop=spec.crop)
    rows, checks = {}, {}
    for window in sorted({w for w, _ in plans}):
        strides = sorted(s for w, s in plans if w == window)
        models = [on_device(load_inference_model(c, window=window)[0], runtime, engine=engine, clip=(window, spec.crop))
                  for c in checkpoints]
        scored = {}
        for split in ("valid", "test"):
            store = FrameStore(stores / split)
            scored[split] = WindowOutputs(models, store, window=window, stride=strides[0], transform=transform,
                                          runtime=runtime)
            if quick and split == "test":
                checks[window] = check_subset_equals_direct(scored[split], models, store, stride=strides[-1],
                                                            transform=transform, runtime=runtime)
        log(f"seed {seed}: window {window}: {sum(s.windows for s in scored.values())} windows x {len(models)} "
            f"checkpoints in {sum(s.seconds for s in scored.values()):.0f} s ({engine})")
        for stride in strides:
            videos = {split: ensemble(scored[split], stride, len(models)) for split in scored}
            settings, _ = tune_decode_settings(videos["valid"], gt["valid"], progress=False)
            test = official_score(gt["test"], decode_all(videos["test"], settings))
            rows[f"{window}/{stride}"] = {"window": window, "stride": stride, "f1": test["f1"],
                                          "decode": settings.to_dict()}
            log(f"seed {seed}: window {window} stride {stride}: test F1 {test['f1']:.4f}")
    runtime.shutdown()
    for window, diff in checks.items():
        log(f"seed {seed}: window {window}: the subset of recorded windows against score_videos at that stride: "
            f"max |diff| {diff:.2e}")
    return {"seed": seed, "checkpoints": checkpoints, "rows": rows, "engine": engine,
            "subset_check_max_abs_diff": checks}


def windows_per_second(checkpoint: str, windows, *, batch: int = 8, repeats: int = 3) -> dict:
    """The network's windows per second at each window length: torch on the CPU, spot.py's default layout.

    Timed apart from the scoring passes (which may run under another engine, or beside other work):
    ``repeats`` batches of random clips after one warm-up batch, the median.
    """
    import torch

    from signspot.inference import load_inference_model
    from signspot.runtime import setup_runtime
    from signspot.scoring import on_device

    runtime = setup_runtime("cpu", None, cpu_autocast=False)
    rates = {}
    for window in windows:
        model, spec = load_inference_model(checkpoint, window=window)
        model = on_device(model, runtime)
        clips = torch.rand(batch, window, 3, spec.crop, spec.crop) - 0.5
        times = []
        with torch.inference_mode():
            for _ in range(repeats + 1):
                started = time.perf_counter()
                model(clips)
                times.append(time.perf_counter() - started)
        rates[window] = batch / statistics.median(times[1:])
    runtime.shutdown()
    return rates


def summarise(per_seed: list[dict], plans, rates: dict) -> list[dict]:
    """One row per plan: F1 per seed, mean, spread, difference from stride 1, cost per hour of video."""
    reference = statistics.mean(s["rows"][f"{plans[0][0]}/{plans[0][1]}"]["f1"] for s in per_seed)
    table = []
    for window, stride in plans:
        f1s = [s["rows"][f"{window}/{stride}"]["f1"] for s in per_seed]
        rate = rates[window]
        table.append({
            "window": window, "stride": stride, "f1_per_seed": f1s, "f1_mean": statistics.mean(f1s),
            "f1_min": min(f1s), "f1_max": max(f1s), "delta_vs_stride1": statistics.mean(f1s) - reference,
            "passes_per_frame": window / stride / 32,  # network cost per frame, in 32-frame windows
            "s_per_hour_one_checkpoint": HOUR_FRAMES / stride / rate,
        })
    return table


def policy(table: list[dict]) -> int:
    """The largest 32-frame stride whose mean F1 is within TOLERANCE of stride 1's."""
    ok = [r["stride"] for r in table if r["window"] == 32 and r["delta_vs_stride1"] >= -TOLERANCE]
    return max(ok)


def format_table(table: list[dict], seeds) -> str:
    header = ["window", "stride", "32-frame windows per frame", *[f"F1 seed {s}" for s in seeds], "mean", "min-max",
              "vs stride 1", "s per hour, 1 ckpt"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in table:
        cells = [r["window"], r["stride"], f"{r['passes_per_frame']:.3g}", *[f"{f:.3f}" for f in r["f1_per_seed"]],
                 f"{r['f1_mean']:.3f}", f"{r['f1_min']:.3f}-{r['f1_max']:.3f}", f"{r['delta_vs_stride1']:+.3f}",
                 f"{r['s_per_hour_one_checkpoint']:.0f}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main(seeds, out: Path, quick: bool, engine: str = "torch") -> dict:
    plans = QUICK_PLANS if quick else PLANS
    out.mkdir(parents=True, exist_ok=True)
    per_seed = [run_seed(seed, out, plans, quick=quick, engine=engine) for seed in seeds]
    rates = windows_per_second(per_seed[0]["checkpoints"][0], sorted({w for w, _ in plans}))
    table = summarise(per_seed, plans, rates)
    chosen = policy(table)
    print(format_table(table, seeds))
    print(f"policy: stride {chosen}, the largest 32-frame stride within {TOLERANCE} mean test F1 of stride 1")
    report = {"seeds": list(seeds), "table": table, "policy_stride": chosen, "per_seed": per_seed, "quick": quick,
              "windows_per_s": rates}
    (out / "stride.json").write_text(json.dumps(report, indent=1))
    return report


def run(quick: bool = False) -> list[dict]:
    """``bench/run_all.py``'s entry: one row per plan (mean test F1) and the chosen stride."""
    # the scoring passes through OpenVINO: the same scores within 1e-5, in less time
    report = main([0] if quick else [0, 1, 2], ROOT / "bench_out" / "stride", quick, engine="openvino")
    rows = [{"name": f"test F1, window {r['window']} stride {r['stride']}", "value": r["f1_mean"], "unit": "F1",
             "note": f"{len(r['f1_per_seed'])} seed(s), {r['f1_min']:.3f}-{r['f1_max']:.3f}"}
            for r in report["table"]]
    rows.append({"name": "spot.py default stride (policy)", "value": report["policy_stride"], "unit": "frames"})
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2", help="generator and training seeds (default 0,1,2)")
    p.add_argument("--out", default=str(ROOT / "bench_out" / "stride"), help="trained seeds and stride.json")
    p.add_argument("--quick", action="store_true", help="one tiny seed, a few plans (the tests' run)")
    p.add_argument("--engine", choices=("torch", "openvino"), default="torch",
                   help="what runs the scoring passes (openvino: the same scores within 1e-5, faster); the cost "
                        "column is always timed with torch")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    seeds = [0] if args.quick and args.seeds == "0,1,2" else [int(s) for s in args.seeds.split(",")]
    main(seeds, Path(args.out), args.quick, args.engine)
