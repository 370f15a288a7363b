"""Cross-validation folds: ground truth + frame store -> fold CSVs, split by video.

Layout written under ``out_dir`` (SPEC):

* ``original_split/``: training videos only, ``folds`` folds (default 5);
* ``new_split/``: training + validation videos, ``new_folds`` folds (default 7);

each holding ``train_{k}.csv`` / ``valid_{k}.csv`` for ``k = 0 .. K-1`` with the
columns ``video,label,start_frame,end_frame,fcount`` (one row per sign; frame =
round(ms * fps / 1000) with the store's fps, half up; fcount = the store's frame
count) and ``folds.json`` (the seed, each fold's videos and class counts).

Fold ``k``'s validation videos are the videos assigned to fold ``k``; its
training rows are every other video's. Videos are assigned greedily, largest
first (ties broken by the seed), each to the fold whose per-class counts fall
furthest short of an even share of that video's classes, so class counts are
balanced across folds as far as whole videos allow. A video without signs has
no rows and so appears in no CSV.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from signspot.formats.elan import DEFAULT_TIER
from signspot.formats.errors import SignspotError
from signspot.formats.gt import Intervals, load_intervals
from signspot.formats.safe_io import atomic_write, current_umask
from signspot.formats.timebase import ms_to_frame
from signspot.formats.vocabulary import Vocabulary

from .frame_store import FrameStore

__all__ = ["FOLD_COLUMNS", "FoldError", "fold_rows", "assign_folds", "write_split", "make_folds"]


FOLD_COLUMNS = ("video", "label", "start_frame", "end_frame", "fcount")


class FoldError(SignspotError, ValueError):
    """Ground truth that cannot be turned into folds; the message lists every problem."""


class _StoreSet:
    """Look videos up in several frame stores (e.g. the training and validation stores)."""

    def __init__(self, stores: Sequence[FrameStore]):
        self.stores = list(stores)

    def find(self, video: str) -> Optional[FrameStore]:
        for store in self.stores:
            if video in store:
                return store
        return None


def fold_rows(
    gt: Mapping[str, Intervals], stores: Sequence[FrameStore], *, num_classes: int
) -> Dict[str, List[dict]]:
    """Fold-CSV rows per video from ``{gt_source: intervals}``; raises :class:`FoldError` listing every problem.

    Problems (the rows come from ``load_intervals``, which refuses ``start_ms >= end_ms``): a class outside
    ``[0, num_classes)``, a video no
    store holds, a sign ending past the video's last frame, a video in two files.
    """
    lookup = _StoreSet(stores)
    rows: Dict[str, List[dict]] = {}
    seen_in: Dict[str, str] = {}
    problems: List[str] = []
    for source, intervals in gt.items():
        for video, signs in intervals.items():
            if video in seen_in:
                problems.append(f"{source}: video {video!r} is also in {seen_in[video]}")
                continue
            seen_in[video] = source
            store = lookup.find(video)
            if store is None:
                problems.append(f"{source}: video {video!r} is not in the frame store(s) {[s.path for s in stores]}")
                continue
            fps, fcount = store.fps(video), store.num_frames(video)
            video_rows = []
            for i, (label, start_ms, end_ms) in enumerate(signs):
                where = f"{source}: video {video!r}, sign {i} [{label}, {start_ms}, {end_ms}]"
                if not 0 <= label < num_classes:
                    problems.append(f"{where}: class {label} is outside [0, {num_classes})")
                    continue
                start, end = ms_to_frame(start_ms, fps), ms_to_frame(end_ms, fps)
                if end > fcount:
                    problems.append(
                        f"{where}: ends at frame {end}, past the video's end ({fcount} frames at {fps:g} fps)"
                    )
                    continue
                video_rows.append(
                    {"video": video, "label": int(label), "start_frame": start, "end_frame": end, "fcount": fcount}
                )
            rows[video] = video_rows
    if problems:
        shown = problems[:50]
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise FoldError(f"{len(problems)} problem(s) in the ground truth:\n  " + "\n  ".join(shown) + more)
    return rows


def assign_folds(class_counts: Mapping[str, np.ndarray], num_folds: int, *, seed: int = 0) -> Dict[str, int]:
    """Assign every video to one of ``num_folds`` folds, balancing per-class sign counts.

    ``class_counts[video]`` is the video's sign count per class. Deterministic for a
    given ``seed``; every fold gets at least one video.
    """
    videos = sorted(class_counts)
    if num_folds < 1:
        raise FoldError(f"the number of folds must be >= 1, got {num_folds}")
    if len(videos) < num_folds:
        raise FoldError(f"{len(videos)} videos cannot be split into {num_folds} folds (each fold needs a video)")
    counts = np.stack([np.asarray(class_counts[v], dtype=np.float64) for v in videos])
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(videos))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]  # largest first, seeded ties
    share = counts.sum(axis=0) / num_folds
    scale = np.where(share > 0, share, 1.0)
    current = np.zeros((num_folds, counts.shape[1]))
    n_videos = np.zeros(num_folds, dtype=np.int64)
    assignment: Dict[str, int] = {}
    for left, i in enumerate(order.tolist()):
        remaining = len(videos) - left
        empty = np.flatnonzero(n_videos == 0)
        if len(empty) >= remaining:
            candidates = empty  # the rest must fill the empty folds
        else:
            candidates = np.arange(num_folds)
        deficit = ((share - current[candidates]) / scale * counts[i]).sum(axis=1)
        # Most deficit first; then fewest signs, then fewest videos, then lowest fold id.
        keys = [(-deficit[j], current[f].sum(), n_videos[f], f) for j, f in enumerate(candidates.tolist())]
        fold = min(keys)[3]
        current[fold] += counts[i]
        n_videos[fold] += 1
        assignment[videos[i]] = int(fold)
    return assignment


def _csv_text(rows: List[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FOLD_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_split(
    out_dir: str | os.PathLike,
    rows: Mapping[str, List[dict]],
    num_folds: int,
    *,
    num_classes: int,
    seed: int = 0,
) -> Dict[str, int]:
    """Write ``train_{k}.csv`` / ``valid_{k}.csv`` (k = 0..K-1) and ``folds.json`` as the folder ``out_dir``.

    The split is written into a fresh folder beside it that then replaces ``out_dir`` whole,
    so no fold of an earlier split with more folds is left behind. A ``out_dir`` holding
    anything but fold files is refused, untouched.
    """
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    final_dir, out_dir = out_dir, Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=_made_parent(out_dir)))
    try:
        class_counts = {
            video: np.bincount([r["label"] for r in video_rows], minlength=num_classes)
            for video, video_rows in rows.items()
        }
        assignment = assign_folds(class_counts, num_folds, seed=seed)
        summary = {"seed": seed, "num_folds": num_folds, "folds": []}
        for k in range(num_folds):
            valid_videos = sorted(v for v, f in assignment.items() if f == k)
            train_videos = sorted(v for v, f in assignment.items() if f != k)
            with atomic_write(out_dir / f"train_{k}.csv", "w") as f:
                f.write(_csv_text([r for v in train_videos for r in rows[v]]))
            with atomic_write(out_dir / f"valid_{k}.csv", "w") as f:
                f.write(_csv_text([r for v in valid_videos for r in rows[v]]))
            counts = sum((class_counts[v] for v in valid_videos), np.zeros(num_classes, dtype=np.int64))
            summary["folds"].append({"fold": k, "valid_videos": valid_videos, "valid_class_counts": counts.tolist()})
        with atomic_write(out_dir / "folds.json", "w") as f:
            json.dump(summary, f, indent=1)
        _replace_folder(out_dir, final_dir)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return assignment


_FOLD_FILE = re.compile(r"^(train|valid)_\d+\.csv$|^folds\.json$")


def _check_replaceable(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FoldError(f"{out_dir}: is a file, not a folder for fold CSVs")
    foreign = sorted(p.name for p in out_dir.iterdir() if not _FOLD_FILE.match(p.name)) if out_dir.is_dir() else []
    if foreign:
        raise FoldError(
            f"{out_dir}: holds files that are not fold CSVs ({', '.join(foreign[:5])}); nothing was written. "
            "Choose another --out"
        )


def _made_parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent


def _replace_folder(new: Path, final: Path) -> None:
    """``new`` becomes ``final``; an old ``final`` (fold files only, checked) is removed after the swap."""
    os.chmod(new, 0o777 & ~current_umask())
    if not final.exists():
        new.rename(final)
        return
    old = final.with_name(f".{final.name}.replaced-{os.getpid()}")
    final.rename(old)
    new.rename(final)
    shutil.rmtree(old)


def make_folds(
    train_gt: str | os.PathLike,
    store: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    val_gt: str | os.PathLike | None = None,
    folds: int = 5,
    new_folds: int = 7,
    seed: int = 0,
    num_classes: int = 60,
    tier: str = DEFAULT_TIER,
    vocabulary: Vocabulary | str | os.PathLike | None = None,
) -> dict:
    """Write ``original_split`` (training videos, ``folds`` folds) and, given ``val_gt``,
    ``new_split`` (training + validation videos, ``new_folds`` folds) under ``out_dir``.

    ``store`` is one frame store or several (e.g. one per video set): every video of
    the ground truth must be in one of them. ``tier`` and ``vocabulary`` (a
    vocabulary or its file) read ground truth that is a folder of ELAN files (see
    :func:`signspot.formats.gt.load_intervals`). Returns ``{split: {video: fold}}``.
    """
    paths = [store] if isinstance(store, (str, os.PathLike)) else list(store)
    stores = [FrameStore(p) for p in paths]
    gt = {str(train_gt): load_intervals(train_gt, tier=tier, vocabulary=vocabulary)}
    if val_gt is not None:
        gt[str(val_gt)] = load_intervals(val_gt, tier=tier, vocabulary=vocabulary)
    rows = fold_rows(gt, stores, num_classes=num_classes)  # checks everything before writing anything
    train_videos = set(gt[str(train_gt)])
    # Both splits are checked before either is written.
    for name, n_videos, k in (("original_split", len(train_videos), folds), ("new_split", len(rows), new_folds)):
        if name == "new_split" and val_gt is None:
            continue
        if k < 1 or n_videos < k:
            raise FoldError(f"{name}: {n_videos} videos cannot be split into {k} folds (each fold needs a video)")
        _check_replaceable(Path(out_dir) / name)
    out = Path(out_dir)
    result = {
        "original_split": write_split(
            out / "original_split",
            {v: r for v, r in rows.items() if v in train_videos},
            folds,
            num_classes=num_classes,
            seed=seed,
        )
    }
    if val_gt is not None:
        result["new_split"] = write_split(out / "new_split", rows, new_folds, num_classes=num_classes, seed=seed)
    return result
