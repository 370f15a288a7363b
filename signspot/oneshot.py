"""Find a sign from one example: query-by-example spotting (the challenge's OSLWL track).

No model is trained on the sign looked for. A trained HS-I3D (the MSSL checkpoints,
ours or the released ones) gives every frame of the query and of the videos an
embedding, and a temporal similarity decides where the query's sign occurs:

* ``"dtw"`` (signspot's matcher): per-frame embeddings of layer ``"all"`` (what the
  final head classifies, every scale side by side; :meth:`HSI3D.embed`), averaged over
  the sliding windows that cover a frame. The query is trimmed to its signing (the
  frames unlike its first and last ones, which are rest). Subsequence dynamic time
  warping with the cosine distance (steps (1,1), (1,2), (2,1): the sign may be signed
  from half to twice as fast as the query) gives, for every frame of the video, the
  best match of the whole query ending there and where it starts; the similarity is
  the mean cosine along the path. With several checkpoints the cosine matrices are
  averaged.
* ``"baseline"``: the training-free recipe of the OSLWL third place (Wong et al.,
  ``docs/OSLWL.md``): one I3D vector (Mixed_5c pooled) per 8-frame window at stride 1,
  one for the query (8 frames spread over its signing), cosine similarity per window;
  the windows within 90 % of the best one mark their frames, gaps of up to 10 frames
  are closed, and each run is an interval.

Decisions: with weak labels (each clip is known to hold its query's sign) the best
match is the interval; in open search a query is found where the similarity reaches
``threshold`` (tuned on a labelled set, :func:`tune_threshold`), several times in a
long video (non-overlapping peaks), and where matches of several queries overlap the
most similar one stays (:func:`one_sign_at_a_time`). Both matchers compare centred embeddings (the mean
over every frame, or window, searched is taken off: what all signing shares says nothing
about which sign it is).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .formats.errors import SignspotError
from .formats.safe_io import atomic_write
from .formats.timebase import frame_to_ms

__all__ = [
    "MATCHERS",
    "MatchSettings",
    "OneShotError",
    "active_span",
    "dtw_curve",
    "intervals_from_curve",
    "one_sign_at_a_time",
    "query_sign_id",
    "trivial_intervals",
    "tune_threshold",
]

MATCHERS = ("dtw", "baseline")
BASELINE_WINDOW = 8  # frames per I3D window in the third place's recipe
_SIGN_IN_NAME = re.compile(r"_s(\d+)(?=_|$)")


class OneShotError(SignspotError, ValueError):
    """Inputs of one-shot spotting that do not fit (no query, a query too short, an unknown sign id, ...)."""


@dataclasses.dataclass(frozen=True)
class MatchSettings:
    """How matches become intervals; saved by ``--tune-on``, read back with ``--match-config``."""

    matcher: str = "dtw"
    threshold: float = 0.5  # open search: the similarity a match must reach
    relative: float = 0.9  # baseline: windows within this share of the best one mark their frames
    close_gap: int = 10  # baseline: gaps of up to this many frames between marked frames are closed

    def __post_init__(self):
        if self.matcher not in MATCHERS:
            raise OneShotError(f"matcher must be one of {', '.join(MATCHERS)}, got {self.matcher!r}")
        if not (isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold)):
            raise OneShotError(f"threshold must be a finite number, got {self.threshold!r}")
        if not 0 < self.relative <= 1 or self.close_gap < 0:
            raise OneShotError(f"relative must be in (0, 1] and close_gap >= 0, got {self.relative}, {self.close_gap}")

    def save_json(self, path: str | os.PathLike, **extra) -> None:
        with atomic_write(path, "w") as f:
            json.dump({"settings": dataclasses.asdict(self), **extra}, f, indent=2)
            f.write("\n")

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "MatchSettings":
        try:
            data = json.loads(Path(path).read_text())
            data = data.get("settings", data)
            known = {f.name for f in dataclasses.fields(cls)}
            if not isinstance(data, dict) or set(data) - known:
                raise ValueError(f"expected an object with the keys {sorted(known)}")
            return cls(**data)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such match settings file") from None
        except (ValueError, TypeError) as exc:
            raise OneShotError(f"{path}: not match settings ({exc})") from None


def query_sign_id(name: str, index: int, glosses=None) -> int:
    """The sign id of a query: ``sNN`` in its name (the challenge's ``p00_s20``), else its gloss in the
    vocabulary (a file named after the gloss), else ``index``."""
    found = _SIGN_IN_NAME.search(name)
    if found:
        return int(found.group(1))
    if glosses is not None and glosses.class_id(name) is not None:
        return int(glosses.class_id(name))
    return index


def clip_sign_id(name: str) -> Optional[int]:
    """The weak label of a clip: the sign id in its name (``p03_s20_n088`` -> 20), None without one."""
    found = _SIGN_IN_NAME.search(name)
    return int(found.group(1)) if found else None


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def active_span(embedding: np.ndarray, *, edge: int = 3, share: float = 0.5) -> Tuple[int, int]:
    """``(start, stop)`` of the signing in an isolated example: the frames unlike its first and last ones.

    A frame is active when its cosine distance to the mean of the ``edge`` first and last
    frames (the rest pose) exceeds ``share`` of the largest such distance; the span runs
    from the first active frame to the last. At least one window of 8 frames is kept.
    """
    emb = _unit(embedding)
    n = len(emb)
    rest = _unit(np.concatenate([emb[:edge], emb[-edge:]]).mean(0))
    distance = 1.0 - emb @ rest
    if n <= 8 or distance.max() <= 1e-6:
        return 0, n
    active = np.flatnonzero(distance > share * distance.max())
    start, stop = int(active[0]), int(active[-1]) + 1
    if stop - start < 8:  # too short to be a sign: centre 8 frames on it
        middle = (start + stop) // 2
        start = max(0, min(n - 8, middle - 4))
        stop = start + 8
    return start, stop


def cosine_matrix(query: np.ndarray, video: np.ndarray) -> np.ndarray:
    """``(M, N)`` cosine similarities of query frames and video frames."""
    return _unit(query) @ _unit(video).T


def dtw_curve(similarity: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Subsequence DTW over a ``(M, N)`` similarity matrix (query x video).

    Returns, for every video frame j, the mean similarity along the best path of the whole
    query ending at j, and the frame that path starts at. Steps (1, 1), (1, 2) and (2, 1):
    each row depends on the two before it only, so every row is one vectorised step.
    """
    cost = 1.0 - np.asarray(similarity, dtype=np.float64)
    m, n = cost.shape
    inf = np.inf
    acc = np.full((m, n), inf)
    steps = np.zeros((m, n))  # path length, to average over
    start = np.zeros((m, n), dtype=np.int64)
    acc[0], steps[0], start[0] = cost[0], 1, np.arange(n)
    for i in range(1, m):
        candidates = np.full((3, n), inf)
        lengths = np.zeros((3, n))
        starts = np.zeros((3, n), dtype=np.int64)
        candidates[0, 1:], lengths[0, 1:], starts[0, 1:] = acc[i - 1, :-1], steps[i - 1, :-1], start[i - 1, :-1]
        candidates[1, 2:], lengths[1, 2:], starts[1, 2:] = acc[i - 1, :-2], steps[i - 1, :-2], start[i - 1, :-2]
        if i >= 2:
            candidates[2, 1:], lengths[2, 1:], starts[2, 1:] = acc[i - 2, :-1], steps[i - 2, :-1], start[i - 2, :-1]
        best = np.argmin(candidates, axis=0)
        columns = np.arange(n)
        acc[i] = candidates[best, columns] + cost[i]
        steps[i] = lengths[best, columns] + 1
        start[i] = starts[best, columns]
    with np.errstate(invalid="ignore"):
        mean_similarity = np.where(np.isfinite(acc[-1]), 1.0 - acc[-1] / np.maximum(steps[-1], 1), -1.0)
    return mean_similarity.astype(np.float32), start[-1]


def dtw_intervals(curve: np.ndarray, starts: np.ndarray, *, top1: bool, threshold: float) -> List[Tuple[int, int, float]]:
    """``[(first_frame, last_frame, similarity)]``: the best match (``top1``), or every non-overlapping
    match reaching ``threshold``, best first."""
    order = np.argsort(-curve, kind="stable")
    taken = np.zeros(len(curve), bool)
    found = []
    for end in order:
        score = float(curve[end])
        if not top1 and score < threshold:
            break
        first = int(starts[end])
        if taken[first:end + 1].any():
            continue
        found.append((first, int(end), score))
        taken[first:end + 1] = True
        if top1:
            break
    return found


def one_sign_at_a_time(found: Sequence[tuple]) -> List[tuple]:
    """Open search: where matches of several queries overlap in a video, the most similar one stays
    (a signer signs one sign at a time). ``found``: ``(query, sign, first, last, similarity)`` tuples."""
    kept: List[tuple] = []
    for match in sorted(found, key=lambda m: -m[4]):
        if all(match[3] < other[2] or match[2] > other[3] for other in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: (m[2], m[0]))


def intervals_from_curve(window_scores: np.ndarray, num_frames: int, *, window: int, relative: float,
                         close_gap: int) -> List[Tuple[int, int, float]]:
    """The baseline's decision: windows within ``relative`` of the best mark their frames, gaps of up to
    ``close_gap`` frames are closed; ``[(first_frame, last_frame, best window score)]`` per run."""
    scores = np.asarray(window_scores, dtype=np.float64)
    if not len(scores):
        return []
    best = scores.max()
    marked = np.zeros(num_frames, bool)
    for i in np.flatnonzero(scores >= relative * best if best > 0 else scores >= best):
        marked[i:i + window] = True
    frames = np.flatnonzero(marked)
    runs, begin = [], frames[0]
    for prev, cur in zip(frames, list(frames[1:]) + [None]):
        if cur is None or cur - prev - 1 > close_gap:
            inside = scores[max(0, begin - window + 1):prev + 1]
            runs.append((int(begin), int(prev), float(inside.max() if len(inside) else best)))
            begin = cur
    return runs


def to_rows(intervals: Sequence[Tuple[int, int, float]], sign: int, fps: float) -> Tuple[List[List[int]], List[float]]:
    """Frame intervals -> the challenge's ``[sign, start_ms, end_ms]`` rows (as the decoder writes them) and scores."""
    rows, scores = [], []
    for first, last, score in intervals:
        start_ms, end_ms = int(frame_to_ms(first, fps)), int(frame_to_ms(last + 1, fps))
        if end_ms > start_ms:
            rows.append([int(sign), start_ms, end_ms])
            scores.append(float(score))
    return rows, scores


def trivial_intervals(num_frames: int, fps: float, sign: int) -> List[List[int]]:
    """The trivial baseline: the middle second of the clip."""
    middle_ms = frame_to_ms(num_frames, fps) / 2
    return [[int(sign), max(0, int(middle_ms - 500)), int(middle_ms + 500)]]


def tune_threshold(candidates: Mapping[str, List[Tuple[int, List[int], float]]], gt: Mapping,
                   grid: Optional[Sequence[float]] = None) -> Tuple[float, List[dict]]:
    """The open-search threshold with the best official F1 on a labelled set.

    ``candidates``: ``{video: [(sign, [sign, start_ms, end_ms], similarity), ...]}``, every match
    found at any threshold. Returns (best threshold, rows of threshold / F1 / precision / recall).
    """
    from .metric import official_score

    scores = sorted({c[2] for rows in candidates.values() for c in rows})
    if grid is None:
        grid = np.unique(np.quantile(scores, np.linspace(0, 1, 41))) if scores else [0.5]
    table = []
    for threshold in grid:
        pred = {video: [row for _, row, score in rows if score >= threshold] for video, rows in candidates.items()}
        table.append({"threshold": float(threshold), **official_score(gt, pred)})
    best = max(table, key=lambda r: (r["f1"], -r["threshold"]))
    return best["threshold"], table

