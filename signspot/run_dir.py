"""The run folder: every path and file name of a training run, in one place.

Layout (the released runs' names, e.g. ``runs/5fold_neg01/maxfix_neg01_fold4``)::

    <run_dir>/config.json                          the resolved config
    <run_dir>/history.jsonl                        one JSON row per epoch (val_* keys on validated epochs)
    <run_dir>/ckpts/latest_checkpoint.pt           every epoch: what a resumed run continues from
    <run_dir>/ckpts/best_checkpoint_{epoch}_{f1:.4f}.pt   the eval.keep_best best validated epochs
    <run_dir>/tensorboard/                         with io.tensorboard

Which epochs are the best is read from ``history.jsonl`` (:meth:`RunDir.ranked_epochs`):
highest official F1 first, rounded as in the file name. On ties the newer epoch goes
first under ``eval.compat="original"`` (an equal F1 replaces a kept checkpoint,
as the original's checkpoint handler did), the older one under ``eval.compat="none"``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from .formats.errors import SignspotError
from .formats.safe_io import atomic_write

__all__ = [
    "CHECKPOINT_FOLDER",
    "LATEST_NAME",
    "RunDir",
    "RunDirError",
    "best_checkpoint_name",
    "run_name",
]

CHECKPOINT_FOLDER = "ckpts"
CHECKPOINT_FOLDER_NAMES = (CHECKPOINT_FOLDER, "checkpoints")  # "checkpoints": other trees' spelling
LATEST_NAME = "latest_checkpoint.pt"
HISTORY_NAME = "history.jsonl"
CONFIG_NAME = "config.json"
TENSORBOARD_NAME = "tensorboard"


class RunDirError(SignspotError, ValueError):
    """A run folder whose files do not fit together (e.g. an unreadable history)."""


def best_checkpoint_name(epoch: int, f1: float) -> str:
    return f"best_checkpoint_{epoch}_{f1:.4f}.pt"


def _rounded(f1: float) -> float:
    return float(f"{f1:.4f}")  # what the file name keeps


def run_name(checkpoint_path: str | os.PathLike) -> str:
    """The training run a checkpoint belongs to: the folder above ``ckpts/`` (else its parent)."""
    parent = Path(checkpoint_path).resolve().parent
    if parent.name in CHECKPOINT_FOLDER_NAMES and parent.parent.name:
        return parent.parent.name
    return parent.name


class RunDir:
    """Paths of one run folder, its history, and its best checkpoints."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.ckpt_dir = self.path / CHECKPOINT_FOLDER
        self.latest = self.ckpt_dir / LATEST_NAME
        self.history_path = self.path / HISTORY_NAME
        self.config_path = self.path / CONFIG_NAME
        self.tensorboard_dir = self.path / TENSORBOARD_NAME

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def holds_run(self) -> bool:
        """Whether a training run already wrote here (a checkpoint or a history)."""
        return self.latest.is_file() or self.history_path.is_file() or any(self.ckpt_dir.glob("best_checkpoint_*.pt"))

    def remove_leftovers(self) -> List[Path]:
        """Delete the temporary files of writes a killed run left unfinished; returns them.

        Every file of a run is written to ``.<name>.<random>.tmp`` beside it and renamed when
        complete (:func:`signspot.formats.safe_io.atomic_write`), so such files are never
        complete outputs. Only those of the run's own files are touched.
        """
        removed = []
        for folder, names in ((self.path, (HISTORY_NAME, CONFIG_NAME)), (self.ckpt_dir, (LATEST_NAME, "best_checkpoint_*.pt"))):
            for name in names:
                for leftover in folder.glob(f".{name}.*.tmp"):
                    if leftover.is_file():
                        leftover.unlink()
                        removed.append(leftover)
        return removed

    def move_aside(self) -> Path:
        """Rename the folder to ``<name>.old-<n>`` (the first free n); returns the new path."""
        for n in range(1, 10_000):
            target = self.path.with_name(f"{self.path.name}.old-{n}")
            if not target.exists():
                self.path.rename(target)
                return target
        raise RunDirError(f"{self.path}: too many old runs beside it ({self.path.name}.old-*)")

    def best_path(self, epoch: int, f1: float) -> Path:
        return self.ckpt_dir / best_checkpoint_name(epoch, f1)

    # ------------------------------------------------------------- history
    def read_history(self) -> List[dict]:
        if not self.history_path.is_file():
            return []
        try:
            text = self.history_path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise RunDirError(f"{self.history_path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                              "the run's history is damaged") from None
        rows = []
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RunDirError(f"{self.history_path}: line {number} is not JSON ({exc})") from None
            if not isinstance(row, dict) or not isinstance(row.get("epoch", 0), int):
                raise RunDirError(f"{self.history_path}: line {number} is not an epoch's record "
                                  f"(a JSON object with an integer 'epoch'): {line[:80]!r}")
            rows.append(row)
        return rows

    def write_history(self, rows: Sequence[dict]) -> None:
        with atomic_write(self.history_path, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")

    # ------------------------------------------------------------- best checkpoints
    @staticmethod
    def ranked_epochs(history: Sequence[dict], *, newer_first: bool = False) -> List[Tuple[float, int]]:
        """``(f1, epoch)`` of every validated epoch, best first (on ties the older first, or the newer)."""
        ranked = [(_rounded(row["val_f1"]), int(row["epoch"])) for row in history if row.get("val_f1") is not None]
        ranked.sort(key=lambda item: (-item[0], -item[1] if newer_first else item[1]))
        return ranked

    def newer_first_on_ties(self) -> bool:
        """The run's tie rule, from its ``config.json`` (``eval.compat``; the original's when unknown)."""
        try:
            section = json.loads(self.config_path.read_text()).get("eval", {})
            compat = section.get("compat", {"full": "none"}.get(section.get("protocol"), "original"))
        except (OSError, ValueError, AttributeError):
            compat = "original"
        return compat != "none"

    def best_checkpoints(self, history: Optional[Sequence[dict]] = None, *,
                         newer_first: Optional[bool] = None) -> List[Tuple[float, int, Path]]:
        """``(f1, epoch, path)`` of the best checkpoints on disk, in the order of the history's ranking."""
        history = self.read_history() if history is None else history
        newer_first = self.newer_first_on_ties() if newer_first is None else newer_first
        found = [(f1, epoch, self.best_path(epoch, f1)) for f1, epoch in self.ranked_epochs(history, newer_first=newer_first)]
        return [item for item in found if item[2].is_file()]

    def best_checkpoint(self) -> Path:
        """The best checkpoint of the run (highest validation F1; ties by the run's rule)."""
        best = self.best_checkpoints()
        if not best:
            raise RunDirError(f"{self.path}: no best checkpoint (none in {self.ckpt_dir} matches {self.history_path})")
        return best[0][2]

    def save_if_best(self, history: Sequence[dict], keep: int, save: Callable[[Path], object], *,
                     newer_first: bool = False) -> Optional[Path]:
        """Keep the ``keep`` best validated epochs of ``history`` (the last row is this epoch's).

        ``save(path)`` writes this epoch's checkpoint; it is called only when the epoch
        enters the top ``keep`` (a tie with the worst kept one does so only with
        ``newer_first``). Best checkpoints pushed out are deleted after the new one is on disk.
        """
        if keep <= 0 or not history or history[-1].get("val_f1") is None:
            return None
        current = int(history[-1]["epoch"])
        ranked = self.ranked_epochs(history, newer_first=newer_first)
        top, rest = ranked[:keep], ranked[keep:]
        if current not in {epoch for _, epoch in top}:
            return None
        path = self.best_path(current, history[-1]["val_f1"])
        save(path)
        kept = {self.best_path(epoch, f1) for f1, epoch in top}
        for f1, epoch in rest:
            old = self.best_path(epoch, f1)
            if old not in kept:
                old.unlink(missing_ok=True)
        return path
