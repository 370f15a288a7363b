#!/usr/bin/env python
"""One-shot spotting on synthetic OSLWL data: signspot's matcher against the re-created OSLWL third place
and a trivial baseline, with weak labels and in open search, over several generator seeds.

    python bench/bench_oslwl.py --checkpoints demo_out/runs [--seeds 0,1,2] [--out bench_out/oslwl]

For each seed a one-shot set of the demo's settings is drawn (``generate_oslwl``: the MSSL demo's
signers, layouts of that seed; signs no MSSL model has seen), and with the given checkpoints
(by default the demo's trained ones):

* weak labels: every test clip searched for its query's sign (``find_sign.py --weak-labels``);
* open search: the threshold tuned on the validation split (``--tune-on``), then every test query
  searched in every test clip with it (``--match-config``);
* trivial: the middle second of each clip, as its query's sign (weak labels only).

F1 is the official metric (``signspot.metric.official_score``), also split by who signed the
query: a signer of the MSSL training videos (``p03``) or a signer of no MSSL video (``p00``).
Time: the test run's wall time per query and per hour of video searched. Prints one table and
writes ``<out>/oslwl.json``. ``--quick``: one seed, 3 signs per split, 2 clips each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _split_by_query_signer(gt: dict, pred: dict, stats: dict, split: str) -> dict:
    """F1 over the clips whose query was signed by a signer seen in MSSL training, and by one never seen."""
    from signspot.metric import official_score

    seen_signs = {q["sign"] for q in stats["queries"].values() if q["split"] == split and q["signer_in_mssl_training"]}
    out = {}
    for label, keep in (("seen", True), ("unseen", False)):
        clips = [c for c in gt if (stats["clips"][c]["sign"] in seen_signs) == keep]
        out[label] = official_score({c: gt[c] for c in clips}, {c: pred.get(c, []) for c in clips})["f1"]
    return out


def run_seed(seed: int, checkpoints: list, out: Path, *, signs: int, clips: int, matchers=("dtw", "baseline"),
             log=print) -> list[dict]:
    from signspot.datasets.synthetic import generate_oslwl, resolve_config
    from signspot.find_sign import find_signs
    from signspot.formats.gt import load_intervals
    from signspot.metric import official_score
    from signspot.oneshot import trivial_intervals

    data = out / f"data_seed{seed}"
    if not (data / "oslwl_stats.json").is_file():
        generate_oslwl(data, signs=signs, clips_per_sign=clips, layout_seed=seed, overwrite=True, progress=False,
                       **resolve_config("demo"))
    stats = json.loads((data / "oslwl_stats.json").read_text())
    boxes = sorted(str(p) for p in data.glob("*_bboxes.json"))
    gt = {split: load_intervals(data / f"OSLWL_{split}_SET_GT.pkl") for split in ("VAL", "TEST")}
    rows = []
    quiet = dict(boxes=boxes, device="cpu", progress=False, plots=False, log=lambda *_: None)

    def searched(split):
        return dict(queries=[data / f"OSLWL_QUERY_{split}_SET"], videos=[data / f"OSLWL_{split}_SET_VIDEOS"],
                    checkpoints=checkpoints)

    clip_frames = sum(1 for _ in gt["TEST"]) * 100  # 4-s clips at 25 fps
    hours = clip_frames / 25 / 3600
    n_queries = len([q for q in stats["queries"].values() if q["split"] == "TEST"])
    for matcher in matchers:
        started = time.perf_counter()
        weak = find_signs(out=out / f"seed{seed}_{matcher}_weak", weak_labels=True, matcher=matcher,
                          **searched("TEST"), **quiet)
        weak_s = time.perf_counter() - started
        tuned = find_signs(out=out / f"seed{seed}_{matcher}_tune", matcher=matcher,
                           tune_on=str(data / "OSLWL_VAL_SET_GT.pkl"), **searched("VAL"), **quiet)
        config = out / f"seed{seed}_{matcher}_tune" / "match_config.json"
        started = time.perf_counter()
        open_ = find_signs(out=out / f"seed{seed}_{matcher}_open", match_config=str(config), **searched("TEST"),
                           **quiet)
        open_s = time.perf_counter() - started
        for mode, result, seconds in (("weak labels", weak, weak_s), ("open search", open_, open_s)):
            score = official_score(gt["TEST"], result["predictions"])
            by_signer = _split_by_query_signer(gt["TEST"], result["predictions"], stats, "TEST")
            rows.append({"seed": seed, "method": matcher, "mode": mode, "f1": round(score["f1"], 4),
                         "precision": round(score["precision"], 4), "recall": round(score["recall"], 4),
                         "f1_query_signer_seen": round(by_signer["seen"], 4),
                         "f1_query_signer_unseen": round(by_signer["unseen"], 4),
                         "threshold": round(tuned["settings"].threshold, 4) if mode == "open search" else None,
                         "seconds": round(seconds, 1),
                         "s_per_query_per_video_hour": round(seconds / n_queries / hours, 1)})
            log(rows[-1])
    trivial = {clip: trivial_intervals(100, 25.0, stats["clips"][clip]["sign"]) for clip in gt["TEST"]}
    score = official_score(gt["TEST"], trivial)
    by_signer = _split_by_query_signer(gt["TEST"], trivial, stats, "TEST")
    rows.append({"seed": seed, "method": "trivial (middle second)", "mode": "weak labels", "f1": round(score["f1"], 4),
                 "precision": round(score["precision"], 4), "recall": round(score["recall"], 4),
                 "f1_query_signer_seen": round(by_signer["seen"], 4),
                 "f1_query_signer_unseen": round(by_signer["unseen"], 4), "threshold": None, "seconds": 0.0,
                 "s_per_query_per_video_hour": 0.0})
    log(rows[-1])
    return rows


def summary(rows: list[dict]) -> str:
    import numpy as np

    lines = ["| method | mode | F1 mean (min-max over seeds) | query signer seen | unseen | s per query per video hour |",
             "|---|---|---|---|---|---|"]
    keys = sorted({(r["method"], r["mode"]) for r in rows}, key=lambda k: (k[1], k[0]))
    for method, mode in keys:
        mine = [r for r in rows if r["method"] == method and r["mode"] == mode]
        f1 = [r["f1"] for r in mine]
        lines.append(f"| {method} | {mode} | {np.mean(f1):.3f} ({min(f1):.3f}-{max(f1):.3f}) | "
                     f"{np.mean([r['f1_query_signer_seen'] for r in mine]):.3f} | "
                     f"{np.mean([r['f1_query_signer_unseen'] for r in mine]):.3f} | "
                     f"{np.mean([r['s_per_query_per_video_hour'] for r in mine]):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", nargs="+", default=None,
                   help="HS-I3D checkpoints or folders (default: the best checkpoint of each run of `make demo`)")
    p.add_argument("--seeds", default="0,1,2", help="layout seeds of the one-shot sets (default 0,1,2)")
    p.add_argument("--out", default=str(ROOT / "bench_out" / "oslwl"), help="working folder (default bench_out/oslwl)")
    p.add_argument("--quick", action="store_true", help="one seed, 3 signs per split, 2 clips each")
    args = p.parse_args(argv)
    out = Path(args.out)
    import shutil

    shutil.rmtree(out / "runs_tmp", ignore_errors=True)
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    if args.checkpoints is None:
        from signspot.run_dir import RunDir

        runs = sorted({p.parent.parent for p in (ROOT / "demo_out" / "runs").rglob("best_checkpoint_*.pt")})
        args.checkpoints = [str(RunDir(run).best_checkpoint()) for run in runs]
        if not args.checkpoints:
            raise SystemExit("no checkpoints: run `make demo` first, or give --checkpoints")
    print(f"checkpoints: {args.checkpoints}")
    rows = []
    for seed in seeds:
        for old in out.glob(f"seed{seed}_*"):
            shutil.rmtree(old)
        rows += run_seed(seed, args.checkpoints, out, signs=3 if args.quick else 10, clips=2 if args.quick else 4)
    out.mkdir(parents=True, exist_ok=True)
    (out / "oslwl.json").write_text(json.dumps(rows, indent=1))
    print(summary(rows))
    return rows


if __name__ == "__main__":
    main()
