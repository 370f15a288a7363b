"""The whole pipeline on the embedded synthetic dataset, stage by stage.

Each stage runs the project's own command-line script in a subprocess, exactly as a
user would type it (the commands are printed), so the demo doubles as a worked
example of the command sequence for real data:

1. ``scripts/make_synthetic_dataset.py``  -> videos, GT pkl/TXT, signer boxes
2. ``scripts/track1_lmdb_creator.py``     -> one LMDB frame store per split
3. ``scripts/make_folds.py``              -> fold CSVs
4. ``main.py``                            -> one HS-I3D (tiny) model per fold
5. ``main_results_creator_v2.py``         -> per-frame scores per checkpoint and split
6. ``solution_test_creator_v2.py``        -> decoding tuned on validation, test predictions
7. ``scripts/evaluate.py``, ``scripts/visualize.py`` -> official F1 and plots
8. ``scripts/spot.py``                    -> the raw test videos to ELAN files
9. ``scripts/find_sign.py``               -> one-shot spotting (OSLWL) of signs no model was trained on

A stage whose output already exists is skipped, so an interrupted demo continues
where it stopped (every stage writes atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from ..formats.errors import SignspotError
from ..inference import output_path
from ..run_dir import RunDir
from ._exit import run_main

__all__ = ["DemoError", "main", "parse_args", "run", "run_demo"]

_USAGE = """Run the whole pipeline on the embedded synthetic dataset (the README's `make demo`).

    python scripts/demo.py --out demo_out

Generates the synthetic data set, builds the frame stores, makes folds, trains the tiny
demo model on two folds, scores validation and test with each checkpoint, tunes the
decoding on validation, ensembles, scores the test split with the official metric and
writes plots. Each command is printed as it runs; rerunning continues where it stopped.
"""

ROOT = Path(__file__).resolve().parents[2]

SPLITS = (
    # (store name, dataset folder, videos folder, GT file, boxes file)
    ("train", "TRAIN", "MSSL_TRAIN_SET_VIDEOS", "MSSL_TRAIN_SET_GT.pkl", "train_bboxes.json"),
    ("valid", "VALIDATION", "MSSL_VAL_SET_VIDEOS", "MSSL_VAL_SET_GT.pkl", "valid_bboxes.json"),
    ("test", "TEST", "MSSL_TEST_SET_VIDEOS", "MSSL_TEST_SET_GT.pkl", "test_bboxes.json"),
)


class DemoError(SignspotError, RuntimeError):
    """A stage of the demo failed; the message names the command."""


def _shown(args: Sequence[str]) -> str:
    return "python " + " ".join(shlex.quote(str(a)) for a in args)


def _run(args: Sequence[str], log: list[str]) -> None:
    shown = _shown(args)
    print(f"\n$ {shown}", flush=True)
    log.append(shown)
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT)
    if completed.returncode != 0:
        raise DemoError(f"stage failed with exit status {completed.returncode}: {shown}")
    print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


def _run_parallel(jobs: Sequence[tuple[Sequence[str], Path]], log: list[str], parallel: int,
                  status=None) -> None:
    """Run ``(args, log_file)`` jobs, ``parallel`` at a time, each on one CPU thread.

    Several single-threaded processes use a small CPU better than one process whose
    threads wait on each other. Each job's output goes to its log file; ``status()``
    returns a line printed every 30 s while jobs run.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    pending = list(jobs)
    running: list[tuple[subprocess.Popen, str, Path, object]] = []
    start = last_status = time.perf_counter()
    failures = []
    while pending or running:
        while pending and len(running) < max(1, parallel):
            args, log_file = pending.pop(0)
            shown = _shown(args)
            print(f"\n$ {shown}   > {log_file}", flush=True)
            log.append(shown)
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handle = open(log_file, "w")
            proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, env=env,
                                    stdout=handle, stderr=subprocess.STDOUT)
            running.append((proc, shown, log_file, handle))
        time.sleep(1.0)
        for item in list(running):
            proc, shown, log_file, handle = item
            if proc.poll() is not None:
                handle.close()
                running.remove(item)
                if proc.returncode != 0:
                    failures.append(f"exit status {proc.returncode}: {shown} (log: {log_file})")
        if status is not None and time.perf_counter() - last_status >= 30 and running:
            last_status = time.perf_counter()
            print(f"  [{last_status - start:4.0f} s] {status()}", flush=True)
    if failures:
        raise DemoError("stage failed: " + "; ".join(failures))
    print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


def _training_status(run_dirs: Sequence[Path]) -> str:
    parts = []
    for run_dir in run_dirs:
        history = run_dir / "history.jsonl"
        rows = history.read_text().splitlines() if history.exists() else []
        if not rows:
            parts.append(f"{run_dir.name}: starting")
            continue
        row = json.loads(rows[-1])
        f1s = [json.loads(r).get("val_f1") for r in rows]
        f1s = [f for f in f1s if f is not None]
        text = f"{run_dir.name}: epoch {row['epoch']} loss {row['loss']:.3f}"
        if f1s:
            text += f" val F1 {f1s[-1]:.3f}"
        parts.append(text)
    return " | ".join(parts)


def run_demo(
    out: str = "demo_out",
    folds: int = 2,
    epochs: int | None = None,
    stride: int = 2,
    workers: int = 2,
    seed: int = 0,
    tiny: bool = False,
    train_only: bool = False,
) -> dict:
    """Run every stage into ``out``; return (and print) the test score and where things are.

    ``train_only``: stop after stage 4 and return ``{"checkpoints": [...], "data": ..., "stores": ...}``
    (the benchmarks' trained models of other seeds).
    """
    start = time.perf_counter()
    out_dir = Path(out).resolve()
    data = out_dir / "data"
    stores = out_dir / "lmdb"
    folds_dir = out_dir / "folds"
    runs = out_dir / "runs" / "5fold_neg0"
    results = out_dir / "chalearn_results"
    log: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. data
    if not (data / "test_bboxes.json").exists():
        cmd = ["scripts/make_synthetic_dataset.py", "--out", data, "--preset", "demo", "--seed", seed,
               "--workers", workers, "--overwrite"]
        if tiny:
            cmd += ["--videos-per-split", "4,2,2", "--seconds", "12"]
        _run(cmd, log)

    # 2. frame stores
    stores.mkdir(parents=True, exist_ok=True)
    for name, folder, videos, _, boxes in SPLITS:
        if not (stores / name).exists():
            _run(["scripts/track1_lmdb_creator.py", "--dest_dir", stores / name,
                  "--dataset_dir", data / folder / videos, "--bbox_dir", data / boxes,
                  "--size", 64, "--workers", workers], log)

    # 3. folds (original_split: training videos only, as the released 5-fold models)
    train_gt = data / "TRAIN" / SPLITS[0][3]
    val_gt = data / "VALIDATION" / SPLITS[1][3]
    test_gt = data / "TEST" / SPLITS[2][3]
    n_folds = 2 if tiny else 5
    if not (folds_dir / "original_split" / f"valid_{n_folds - 1}.csv").exists():
        _run(["scripts/make_folds.py", "--train-gt", train_gt, "--store", stores / "train",
              "--out", folds_dir, "--folds", n_folds, "--num-classes", 10, "--seed", seed], log)

    # 4. training, one run per fold, folds in parallel
    run_dirs = [runs / f"maxfix_neg0_fold{fold}" for fold in range(folds)]
    jobs = []
    for fold, run_dir in enumerate(run_dirs):
        if (run_dir / "done").exists():
            continue
        overrides = [
            f"data.frame_store={stores / 'train'}",
            f"data.folds_dir={folds_dir / 'original_split'}",
            f"data.fold={fold}",
            f"io.run_dir={run_dir}",
            f"train.seed={seed + fold}",
        ]
        if epochs is not None or tiny:
            overrides.append(f"train.epochs={epochs or 1}")
        if tiny:
            overrides.append("train.drop_last=False")  # a smoke run's folds hold less than a batch
        cmd = ["main.py", "--config", "config/demo_config.py"]
        for item in overrides:
            cmd += ["--set", item]
        jobs.append((cmd, run_dir / "train.log"))
    if jobs:
        _run_parallel(jobs, log, parallel=workers, status=lambda: _training_status(run_dirs))
        for run_dir in run_dirs:
            (run_dir / "done").write_text("training finished\n")
    checkpoints = [RunDir(run_dir).best_checkpoint() for run_dir in run_dirs]
    if train_only:
        return {"checkpoints": [str(c) for c in checkpoints], "data": str(data), "stores": str(stores)}

    # 5. per-checkpoint inference on validation (to tune decoding) and test
    jobs = []
    for ckpt in checkpoints:
        for split in ("valid", "test"):
            scores_file = output_path(results, stores / split, ckpt, split)
            if not scores_file.exists():
                jobs.append((["main_results_creator_v2.py", "--lmdb_dir", stores / split, "--checkpoint_dir", ckpt,
                              "--save_dir", results, "--split", split, "--stride", stride, "--batch-size", 16,
                              "--workers", 0, "--no-progress"],
                             out_dir / "logs" / f"inference_{split}_{scores_file.parent.name}.log"))
    if jobs:
        _run_parallel(jobs, log, parallel=workers)

    # 6. ensemble: original decoding, decoding tuned on validation, test predictions
    decode_json = out_dir / "decode_config.json"
    _run(["solution_test_creator_v2.py", "--results-dir", results / "test", "--out",
          out_dir / "predictions_original_decoding.pkl", "--evaluate", test_gt, "--quiet"], log)
    _run(["solution_test_creator_v2.py", "--results-dir", results / "valid", "--tune-on", val_gt,
          "--save-decode-config", decode_json, "--out", out_dir / "val_predictions.pkl", "--quiet"], log)
    predictions = out_dir / "predictions.pkl"
    _run(["solution_test_creator_v2.py", "--results-dir", results / "test", "--decode-config", decode_json,
          "--out", predictions, "--save-scores", out_dir / "test_ensemble_scores.pkl", "--quiet"], log)

    # 7. official score and plots
    score_json = out_dir / "test_score.json"
    score_original_json = out_dir / "test_score_original_decoding.json"
    vocabulary = data / "vocabulary.txt"  # the glosses of the classes, written by the generator
    _run(["scripts/evaluate.py", "--gt", test_gt, "--pred", predictions, "--json", score_json, "--report",
          "--vocabulary", vocabulary], log)
    _run(["scripts/evaluate.py", "--gt", test_gt, "--pred", out_dir / "predictions_original_decoding.pkl",
          "--json", score_original_json], log)
    plots = out_dir / "plots"
    _run(["scripts/visualize.py", "--scores", out_dir / "test_ensemble_scores.pkl", "--gt", test_gt,
          "--pred", predictions, "--out", plots, "--max-videos", 3, "--vocabulary", vocabulary], log)

    # 8. your own videos: the raw test videos, no store and no boxes, straight to ELAN files
    spotted = out_dir / "spotted"
    _run(["scripts/spot.py", "--videos", data / "TEST" / "MSSL_TEST_SET_VIDEOS", "--checkpoints", *checkpoints,
          "--out", spotted, "--vocabulary", vocabulary, "--stride", stride, "--decode-config", decode_json,
          "--workers", 0, "--no-progress"], log)
    spotted_json = out_dir / "spotted_score.json"
    _run(["scripts/evaluate.py", "--gt", test_gt, "--pred", spotted / "predictions.pkl", "--json", spotted_json], log)

    # 9. find a sign from one example: the one-shot track of the same settings, signs the models never saw
    oslwl = out_dir / "oslwl_data"
    if not (oslwl / "oslwl_stats.json").exists():
        cmd = ["scripts/make_synthetic_dataset.py", "--task", "oslwl", "--out", oslwl, "--preset", "demo",
               "--seed", seed, "--workers", workers, "--overwrite", "--quiet"]
        if tiny:
            cmd += ["--oslwl-signs", 2, "--clips-per-sign", 1]
        _run(cmd, log)
    found = out_dir / "found"
    if not (found / "predictions.pkl").exists():
        _run(["scripts/find_sign.py", "--queries", oslwl / "OSLWL_QUERY_TEST_SET", "--videos",
              oslwl / "OSLWL_TEST_SET_VIDEOS", "--checkpoints", *checkpoints, "--out", found, "--weak-labels",
              "--boxes", oslwl / "query_test_bboxes.json", oslwl / "oslwl_test_bboxes.json",
              "--vocabulary", oslwl / "vocabulary.txt", "--no-progress"], log)
    found_json = out_dir / "found_score.json"
    _run(["scripts/evaluate.py", "--gt", oslwl / "OSLWL_TEST_SET_GT.pkl", "--pred", found / "predictions.pkl",
          "--json", found_json], log)

    score = json.loads(score_json.read_text())
    score_found = json.loads(found_json.read_text())
    score_original = json.loads(score_original_json.read_text())
    score_spotted = json.loads(spotted_json.read_text())
    elapsed = time.perf_counter() - start
    summary = {
        "test_f1": score["f1"],
        "test_precision": score["precision"],
        "test_recall": score["recall"],
        "test_f1_original_decoding": score_original["f1"],
        "test_f1_spot": score_spotted["f1"],
        "oslwl_test_f1_weak_labels": score_found["f1"],
        "checkpoints": [str(c) for c in checkpoints],
        "seconds": round(elapsed, 1),
        "commands": log,
    }
    (out_dir / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    print("\n" + "=" * 72)
    print(f"data set        {data}")
    print(f"frame stores    {stores}/{{train,valid,test}}")
    print(f"fold CSVs       {folds_dir}")
    print(f"trained runs    {runs}")
    print(f"frame scores    {results}/{{valid,test}}")
    print(f"predictions     {predictions}")
    print(f"plots           {plots}")
    print(f"ELAN files      {spotted}/*.eaf  (scripts/spot.py on the raw test videos, boxes estimated)")
    print(f"one-shot        {found}  (scripts/find_sign.py: query videos of unseen signs, --weak-labels)")
    print(f"summary         {out_dir / 'demo_summary.json'}")
    print(f"test F1 (official metric): {score['f1']:.4f}  precision {score['precision']:.4f}  "
          f"recall {score['recall']:.4f}   [original decoding: {score_original['f1']:.4f}; "
          f"spot.py, estimated boxes: {score_spotted['f1']:.4f}]")
    print(f"one-shot test F1 (find_sign.py, weak labels, signs no model was trained on): {score_found['f1']:.4f}")
    print(f"total time: {elapsed / 60:.1f} min")
    return summary


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=_USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--folds", type=int, default=2, help="folds to train (default: 2)")
    parser.add_argument("--epochs", type=int, default=None, help="override the demo config's epochs")
    parser.add_argument("--stride", type=int, default=2, help="inference window stride (default: 2)")
    parser.add_argument("--workers", type=int, default=2, help="processes for data generation and stores")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and training (default: 0)")
    parser.add_argument("--train-only", action="store_true",
                        help="stop after training (stages 1-4: data, frame stores, folds, trained runs)")
    parser.add_argument("--tiny", action="store_true", help="a minute-long smoke run (tests use it)")
    return parser.parse_args(argv)


main = run_demo


def run(argv=None):
    return run_main(main, parse_args(argv), prefix="demo")
