"""The original grid of HS-I3D runs: both splits x every fold x neg_prob {0, 0.1, 0.5}.

Run folders are named like the released ones (``<out>/5fold_neg01/maxfix_neg01_fold4``);
:func:`train_grid` trains them one after the other, each in its own ``main.py``
process (under torchrun with ``nproc_per_node`` > 1), and since every run resumes
from its latest checkpoint, rerunning the grid continues where it stopped.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from .config import ConfigError, load_config
from .formats.errors import SignspotError

__all__ = ["GRID_NEG_PROBS", "SPLIT_FOLDS", "GridError", "count_folds", "grid_runs", "neg_tag", "train_grid"]


class GridError(SignspotError, RuntimeError):
    """A run of the grid failed."""


SPLIT_FOLDS = {"original_split": 5, "new_split": 7}  # folds per split when the folds folder is not there yet
GRID_NEG_PROBS = (0.0, 0.1, 0.5)


def neg_tag(neg_prob: float) -> str:
    """The released run names' spelling of neg_prob: 0 -> neg0, 0.1 -> neg01, 0.5 -> neg05."""
    return "neg" + f"{neg_prob:g}".replace(".", "")


def count_folds(split_dir: Path, default: int) -> int:
    """Folds in a split folder (``train_{k}.csv`` files), or ``default`` if it has none."""
    found = sorted(int(p.stem.split("_")[1]) for p in split_dir.glob("train_*.csv") if p.stem.split("_")[1].isdigit())
    return len(found) if found else default


def grid_runs(
    folds_root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    splits: Sequence[str] = tuple(SPLIT_FOLDS),
    neg_probs: Sequence[float] = GRID_NEG_PROBS,
    exclude_folds: Sequence[int] = (),
) -> list[dict]:
    """One entry per run of the grid: ``{"run_dir", "overrides"}``, named like the released runs
    (``<out>/5fold_neg01/maxfix_neg01_fold4``)."""
    runs = []
    for split in splits:
        if split not in SPLIT_FOLDS:
            raise ConfigError(f"unknown split {split!r}; choose from {', '.join(SPLIT_FOLDS)}")
        split_dir = Path(folds_root) / split
        num_folds = count_folds(split_dir, SPLIT_FOLDS[split])
        for neg_prob in neg_probs:
            tag = neg_tag(neg_prob)
            for fold in range(num_folds):
                if fold in exclude_folds:
                    continue
                run_dir = Path(out) / f"{num_folds}fold_{tag}" / f"maxfix_{tag}_fold{fold}"
                runs.append({
                    "run_dir": str(run_dir),
                    "overrides": [
                        f"data.folds_dir={split_dir}",
                        f"data.fold={fold}",
                        f"data.neg_prob={neg_prob}",
                        f"io.run_dir={run_dir}",
                    ],
                })
    return runs


def train_grid(
    folds_root: str,
    out: str,
    config: str,
    *,
    splits: Sequence[str] = tuple(SPLIT_FOLDS),
    neg_probs: Sequence[float] = GRID_NEG_PROBS,
    exclude_folds: Sequence[int] = (),
    overrides: Sequence[str] = (),
    nproc_per_node: int = 1,
    dry_run: bool = False,
    keep_going: bool = False,
) -> list[dict]:
    """Train every run of the grid one after the other, each in its own process.

    Runs resume from their latest checkpoint, so rerunning the grid after an interruption
    continues where it stopped. Returns ``[{"run_dir", "command", "returncode"}]``
    (``returncode`` None for a dry run).
    """
    main_py = Path(__file__).resolve().parents[1] / "main.py"
    if nproc_per_node > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}"]
    else:
        launcher = [sys.executable]
    results = []
    runs = grid_runs(folds_root, out, splits=splits, neg_probs=neg_probs, exclude_folds=exclude_folds)
    for run in runs:  # every run's config checked before the first one starts (a bad neg_prob fails now)
        try:
            load_config(str(config), list(run["overrides"]) + list(overrides))
        except ConfigError as exc:
            raise ConfigError(f"run {run['run_dir']}: {exc}") from None
    for number, run in enumerate(runs, 1):
        command = launcher + [str(main_py), "--config", str(config)]
        for item in list(run["overrides"]) + list(overrides):
            command += ["--set", item]
        print(f"[{number}/{len(runs)}] {shlex.join(command)}", flush=True)
        returncode = None
        if not dry_run:
            returncode = subprocess.run(command).returncode
            if returncode != 0:
                message = f"run {run['run_dir']} failed with exit status {returncode}"
                if not keep_going:
                    raise GridError(message + " (use --keep-going to continue with the other runs)")
                print(message, file=sys.stderr)
        results.append({"run_dir": run["run_dir"], "command": command, "returncode": returncode})
    return results
