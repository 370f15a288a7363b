"""Ensembling of per-frame score files.

Inputs, found recursively under a results folder: :data:`signspot.formats.scores.SCORES_FILENAME`
files written by inference, and the original system's per-window ``dict_results.pkl``
files (:mod:`signspot.original_results`). The ensemble of a video is the per-frame
mean over the files that hold it (frame by frame: a file with fewer frames, e.g. an
original result whose last partial batch was never run, contributes to the frames it has).
"""

from __future__ import annotations

import collections
import fnmatch
import os
import sys
import warnings
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from .formats.scores import SCORES_FILENAME, SCORES_FORMAT, ScoresFormatError, scored_with_original_windows
from .original_results import ORIGINAL_RESULTS_FILENAME, load_any_scores

__all__ = ["FrameScoreMean", "ensemble_frame_scores", "find_score_files"]


def _excluded(rel: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            if fnmatch.fnmatch(rel, pattern):
                return True
        elif pattern in rel:
            return True
    return False


def find_score_files(results_dir: str | os.PathLike, exclude: Sequence[str] = ()) -> List[Path]:
    """Every scores file (new or original format) under ``results_dir``, minus excluded paths.

    ``exclude``: patterns matched against the path relative to ``results_dir``:
    a glob when it contains ``* ? [``, otherwise a substring (e.g. ``_fold3_``).
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: results folder not found")
    found = []
    for name in (SCORES_FILENAME, ORIGINAL_RESULTS_FILENAME):
        for path in root.rglob(name):
            if not _excluded(path.relative_to(root).as_posix(), list(exclude or ())):
                found.append(path)
    return sorted(found)


class FrameScoreMean:
    """The per-frame mean of score sets (files, or models scored in one pass), added one at a time.

    :meth:`add` takes one set ``{video: {"scores", "fps", ...}}``; a set that covers only
    a prefix of a video (``prefix``: an original result, or the original's windows) adds
    to the frames it has. :meth:`result` gives ``{video: {"scores": float32 (T, C+1),
    "fps", "num_frames", "num_files"}}``. Sets that disagree on a video's fps, frame
    count or column count are an error naming both.
    """

    def __init__(self):
        self.sums: Dict[str, np.ndarray] = {}
        self.counts: Dict[str, np.ndarray] = {}
        self.fps: Dict[str, Tuple[float, bool]] = {}  # video -> (fps, stated by a set that knows it)
        self.sets_per_video: Dict[str, int] = collections.Counter()
        self.frame_counts: Dict[str, dict] = {}  # video -> the stated count and the longest prefix seen
        self.columns = None
        self.num_sets = 0

    def add(self, videos: Dict[str, dict], source, *, prefix: bool = False, fps_known: bool = True) -> None:
        self.num_sets += 1
        for video, entry in videos.items():
            scores = np.asarray(entry["scores"], dtype=np.float64)
            if self.columns is None:
                self.columns = scores.shape[1]
            elif scores.shape[1] != self.columns:
                raise ScoresFormatError(
                    f"{source}: video {video!r} has {scores.shape[1]} score columns, earlier files {self.columns}")
            n = len(scores)
            self._check_frame_count(video, n, declared=not prefix, source=source)
            if video not in self.sums:
                self.sums[video] = np.zeros_like(scores)
                self.counts[video] = np.zeros(n)
            elif n > len(self.sums[video]):
                grow = n - len(self.sums[video])
                self.sums[video] = np.concatenate([self.sums[video], np.zeros((grow, self.columns))])
                self.counts[video] = np.concatenate([self.counts[video], np.zeros(grow)])
            self.sums[video][:n] += scores
            self.counts[video][:n] += 1
            self.sets_per_video[video] += 1
            known = self.fps.get(video)
            if known is None or (known[1] is False and fps_known):
                self.fps[video] = (entry["fps"], fps_known)
            elif fps_known and known[1] and abs(known[0] - entry["fps"]) > 1e-3:
                raise ScoresFormatError(f"{source}: video {video!r} has fps {entry['fps']}, earlier files {known[0]}")

    def _check_frame_count(self, video: str, n: int, *, declared: bool, source) -> None:
        """Sets of one video must agree on its frame count.

        A per-frame score file states the video's frame count; an original result, or a file
        scored with the original's windows (``--compat original``), covers a prefix of the video
        (its last partial batch of windows was never run), so its length is only a lower
        bound. Two stated counts that differ, or a prefix longer than a stated count, mean
        the files were scored on different videos or stores: an error naming both.
        """
        entry = self.frame_counts.setdefault(video, {"declared": None, "longest": (0, None)})
        if declared:
            known = entry["declared"]
            if known is not None and known[0] != n:
                raise ScoresFormatError(
                    f"{source}: video {video!r} has {n} frames, but {known[1]} gives it {known[0]}: "
                    "the files were scored on different frame stores; ensemble files of one store only"
                )
            entry["declared"] = (n, source)
        elif n > entry["longest"][0]:
            entry["longest"] = (n, source)
        stated, longest = entry["declared"], entry["longest"]
        if stated is not None and longest[0] > stated[0]:
            raise ScoresFormatError(
                f"{longest[1]}: video {video!r} has scores for {longest[0]} frames, but {stated[1]} gives it "
                f"{stated[0]}: the files were scored on different frame stores; ensemble files of one store only"
            )

    def result(self) -> Dict[str, dict]:
        partial = sorted(v for v, k in self.sets_per_video.items() if k < self.num_sets)
        if partial:
            warnings.warn(
                f"{len(partial)} videos are missing from some score files (e.g. {partial[:3]}); "
                "they are averaged over the files that have them",
                stacklevel=2,
            )
        return {
            video: {
                "scores": (self.sums[video] / self.counts[video][:, None]).astype(np.float32),
                "fps": float(self.fps[video][0]),
                "num_frames": len(self.sums[video]),
                "num_files": int(self.sets_per_video[video]),
            }
            for video in sorted(self.sums)
        }


def ensemble_frame_scores(paths: Iterable[str | os.PathLike], progress: bool = True) -> Dict[str, dict]:
    """Mean per-frame scores over files: ``{video: {"scores": float32 (T, C+1), "fps", "num_frames", "num_files"}}``.

    Files are read one at a time (:class:`FrameScoreMean`). A video's fps comes from the
    new-format files when any has it (original results assume 25); files that disagree on
    a video's fps, frame count or column count are an error.
    """
    from tqdm import tqdm

    paths = list(paths)
    if not paths:
        raise FileNotFoundError("no score files to ensemble")
    mean = FrameScoreMean()
    for path in tqdm(paths, desc="score files", unit="file", disable=not progress, file=sys.stderr):
        data = load_any_scores(path)
        original = data.get("format") != SCORES_FORMAT
        prefix = original or scored_with_original_windows(data.get("extra"))
        mean.add(data["videos"], path, prefix=prefix, fps_known=not original)
    return mean.result()
