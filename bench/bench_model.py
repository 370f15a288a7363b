"""Benchmark HS-I3D: forward throughput and peak memory, tiny-variant training steps.

CPU cases run one per fresh process so each peak resident-set size (ru_maxrss) is
that case's own. On a CUDA machine the full model is also timed in float32, under
bf16 autocast and in channels_last_3d, with the card's name.

    python bench/bench_model.py            # full figures (batch 8)
    python bench/bench_model.py --quick    # smaller batches, fewer repeats
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from signspot.models import build_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import own_peak_rss_mb  # noqa: E402


def _rss_mib() -> float:
    return own_peak_rss_mb()


def _cpu_case(
    kind: str, name: str, batch: int, steps: int, size: int, repeats: int, threads: int
) -> dict:
    """One measurement in this process: seconds per iteration and peak RSS."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(name)
    clips = torch.randn(batch, steps, 3, size, size)
    before = _rss_mib()
    if kind == "forward":
        model.eval()

        def iteration() -> None:
            with torch.no_grad():
                model(clips)
    else:
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        targets = torch.randint(0, model.num_classes + 1, (batch, steps))

        def iteration() -> None:
            out = model(clips)
            loss = 0.0
            for logits in out.values():
                # Targets max-pooled to the head's steps is what training does;
                # striding is enough for timing.
                stride = steps // logits.shape[1]
                loss = loss + torch.nn.functional.cross_entropy(
                    logits.flatten(0, 1), targets[:, ::stride].flatten()
                )
            optimizer.zero_grad(set_to_none=True)
            (loss / len(out)).backward()
            optimizer.step()

    iteration()  # warm-up: allocator, kernels, optimizer state
    start = time.perf_counter()
    for _ in range(repeats):
        iteration()
    seconds = (time.perf_counter() - start) / repeats
    return {"seconds": seconds, "peak_rss_mib": _rss_mib(), "rss_before_mib": before}


def _run_isolated(*args) -> dict:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_cpu_case, args)


def _cuda_rows(batch: int, repeats: int) -> list[dict]:
    device = torch.device("cuda")
    card = torch.cuda.get_device_name(device)
    model = build_model("hs_i3d").to(device).eval()
    clips = torch.randn(batch, 32, 3, 224, 224, device=device)
    rows = []
    for mode in ("fp32", "bf16_autocast", "channels_last_3d_bf16"):
        if mode == "channels_last_3d_bf16":
            model = model.to(memory_format=torch.channels_last_3d)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode != "fp32")
        with torch.no_grad(), autocast:
            for _ in range(2):
                model(clips)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            for _ in range(repeats):
                model(clips)
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / repeats
        common = {"device": card, "batch": batch, "mode": mode}
        rows.append({"name": f"hs_i3d forward 32x224x224 {mode}", "value": batch / seconds,
                     "unit": "windows/s", **common})
        rows.append({"name": f"hs_i3d forward 32x224x224 {mode} peak memory",
                     "value": torch.cuda.max_memory_allocated() / 2**20, "unit": "MiB", **common})
    return rows


def run(quick: bool = False, threads: int | None = None) -> list[dict]:
    """Measure and return rows ``{"name", "value", "unit", ...}``.

    ``threads``: intra-op CPU threads (default: torch's, one per core). On a machine
    shared with other jobs, 1 thread avoids OpenMP oversubscription stalls.
    """
    full_batch = 2 if quick else 8
    repeats = 1 if quick else 3
    cases = [
        # (kind, model, batch, T, size)
        ("forward", "hs_i3d", full_batch, 32, 224),
        ("forward", "hs_i3d_tiny", 8, 32, 224),
        ("forward", "hs_i3d_tiny", 8, 32, 56),
        ("train", "hs_i3d_tiny", 8, 16, 64),
        ("train", "hs_i3d_tiny", 8, 32, 56),
    ]
    rows: list[dict] = []
    threads = threads or torch.get_num_threads()
    for kind, name, batch, steps, size in cases:
        result = _run_isolated(kind, name, batch, steps, size, repeats, threads)
        label = f"{name} {kind} {steps}x{size}x{size} b{batch}"
        common = {"device": "cpu", "threads": threads, "batch": batch}
        if kind == "forward":
            rows.append({"name": f"{label} throughput", "value": batch / result["seconds"],
                         "unit": "windows/s", **common})
        else:
            rows.append({"name": f"{label} step time", "value": result["seconds"],
                         "unit": "s", **common})
        rows.append({"name": f"{label} peak RSS", "value": result["peak_rss_mib"],
                     "unit": "MiB", "rss_before_run_mib": result["rss_before_mib"], **common})
    if torch.cuda.is_available():
        rows += _cuda_rows(batch=8, repeats=3 if quick else 10)
    for row in rows:
        print(f"{row['name']:<55} {row['value']:10.3f} {row['unit']}")
    return rows


def main(quick: bool = False, threads: int | None = None) -> list[dict]:
    return run(quick, threads)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batch 2 for the full model, one timed repeat")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per core)")
    return parser.parse_args()


if __name__ == "__main__":
    main(**vars(parse_args()))
