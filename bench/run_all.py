"""Run every benchmark of the pipeline and print one table (and write JSON).

    python bench/run_all.py [--quick] [--only data,model,...] [--out bench_out]

Each ``bench/bench_<name>.py`` exposes ``run(quick: bool) -> list[dict]`` whose rows
hold at least ``name``, ``value`` and ``unit``; extra keys (``device``, ``note``)
are shown as they are. Benchmarks run one after the other in this process so their
figures do not compete for the CPU.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BENCHES = ("data", "model", "train", "inference", "scoring", "auto_box", "cpu_engine", "stride", "hour")


def machine_description() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    desc = f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    if torch.cuda.is_available():
        desc += f", GPU: {torch.cuda.get_device_name(0)}"
    return desc


def format_table(rows: list[dict]) -> str:
    columns = ["bench", "name", "value", "unit", "device", "note"]
    cells = [[str(r.get(c, "")) if c != "value" else f"{r['value']:.4g}" for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def main(quick: bool, only: str | None, out: str) -> int:
    selected = BENCHES if not only else tuple(s.strip() for s in only.split(","))
    unknown = set(selected) - set(BENCHES)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(BENCHES)}")
    rows: list[dict] = []
    failures = []
    for name in selected:
        start = time.perf_counter()
        print(f"== bench_{name} ==", flush=True)
        try:
            module = importlib.import_module(f"bench_{name}")
            for row in module.run(quick=quick):
                rows.append({"bench": name, **row})
        except Exception as exc:  # keep the other figures; report the failure at the end
            failures.append(f"bench_{name}: {type(exc).__name__}: {exc}")
            print(f"   FAILED: {exc}", flush=True)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    print()
    print(f"machine: {machine_description()}")
    print(format_table(rows))
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine_description(), "quick": quick, "rows": rows, "failures": failures}
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2))
    print(f"\nwritten: {out_dir / 'bench.json'}")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of: {', '.join(BENCHES)}")
    parser.add_argument("--out", default="bench_out", help="folder for bench.json (default: bench_out)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(**vars(parse_args())))
