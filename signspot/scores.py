"""Per-frame score files: the contract between inference and ensembling.

Inference turns the per-window, per-head logits of one checkpoint into one
probability row per frame (``num_classes + 1`` columns, background last) and
stores them here; ensembling averages such files and decodes them.

Aggregation follows the original system exactly (SPEC, "Inference"): softmax
each head over classes, nearest-upsample it in time to the window length, take
the weighted sum over heads (equal weights, 1/5 each, by default), add it to
frames ``[s, s + window)`` of the window starting at ``s``, and divide each
frame by the total weight it received. Rows past ``num_frames`` (windows padded
beyond the end of a short video) are discarded.

File layout (a pickle of plain dicts, strings, numbers and numpy arrays, read
back with the restricted unpickler of :mod:`signspot.io`)::

    {"format": "signspot-frame-scores", "version": 1,
     "checkpoint": str, "head_weights": {head: float} | None,
     "window": int, "stride": int, "extra": dict,
     "videos": {name: {"scores": float16 (num_frames, C+1), "fps": float, "num_frames": int}}}
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np

from .io import atomic_dump_pickle, safe_pickle_load

__all__ = [
    "SCORES_FILENAME",
    "SCORES_FORMAT",
    "SCORES_VERSION",
    "ScoresFormatError",
    "save_frame_scores",
    "load_frame_scores",
    "validate_frame_scores",
    "softmax",
    "upsample_nearest",
    "FrameScoreAccumulator",
    "aggregate_window_logits",
]

SCORES_FILENAME = "frame_scores.pkl"
SCORES_FORMAT = "signspot-frame-scores"
SCORES_VERSION = 1


class ScoresFormatError(ValueError):
    """A per-frame score file (or the data meant for one) that breaks the format."""


def _as_numpy(x) -> np.ndarray:
    """A numpy view/copy of a numpy array or a torch tensor (any device/dtype)."""
    if hasattr(x, "detach"):  # torch tensor; torch is not imported here on purpose
        x = x.detach().cpu()
        if x.dtype.is_floating_point:  # numpy has no bfloat16; float32 holds every half value
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def validate_frame_scores(videos, source: str) -> Dict[str, dict]:
    """Check ``{name: {"scores": (T, C+1), "fps", "num_frames"}}``; return a clean copy.

    Errors name ``source`` and the video. Every video must have the same number
    of columns, ``scores.shape[0] == num_frames``, a positive finite fps and
    finite scores.
    """
    if not isinstance(videos, Mapping):
        raise ScoresFormatError(f"{source}: 'videos' must be a dict {{name: {{...}}}}, got {type(videos).__name__}")
    clean: Dict[str, dict] = {}
    num_columns = None
    for name, entry in videos.items():
        where = f"{source}: video {name!r}"
        if not isinstance(name, str):
            raise ScoresFormatError(f"{source}: video key {name!r} is not a string")
        if not isinstance(entry, Mapping) or not {"scores", "fps", "num_frames"} <= set(entry):
            raise ScoresFormatError(f"{where}: expected a dict with keys 'scores', 'fps', 'num_frames'")
        scores = _as_numpy(entry["scores"])
        if scores.ndim != 2 or scores.shape[1] < 2 or not np.issubdtype(scores.dtype, np.floating):
            raise ScoresFormatError(
                f"{where}: scores must be a 2-D float array (num_frames, num_classes + 1), "
                f"got shape {scores.shape} dtype {scores.dtype}"
            )
        try:
            fps = float(entry["fps"])
            num_frames = int(entry["num_frames"])
        except (TypeError, ValueError):
            raise ScoresFormatError(f"{where}: fps and num_frames must be numbers") from None
        if not math.isfinite(fps) or fps <= 0:
            raise ScoresFormatError(f"{where}: fps must be positive, got {fps}")
        if num_frames != scores.shape[0]:
            raise ScoresFormatError(f"{where}: num_frames is {num_frames} but scores has {scores.shape[0]} rows")
        if num_columns is None:
            num_columns = scores.shape[1]
        elif scores.shape[1] != num_columns:
            raise ScoresFormatError(
                f"{where}: scores has {scores.shape[1]} columns, other videos of the file have {num_columns}"
            )
        if not np.isfinite(scores).all():
            raise ScoresFormatError(f"{where}: scores contain NaN or infinite values")
        clean[name] = {"scores": scores, "fps": fps, "num_frames": num_frames}
    return clean


def save_frame_scores(
    path: str | os.PathLike,
    videos: Mapping[str, Mapping],
    *,
    checkpoint: str,
    head_weights: Optional[Mapping[str, float]],
    window: int,
    stride: int,
    extra: Optional[Mapping] = None,
) -> None:
    """Write a per-frame score file atomically (scores stored as float16).

    ``videos``: ``{name: {"scores": (num_frames, C+1) array, "fps": float, "num_frames": int}}``.
    ``extra``: optional plain-data metadata (e.g. ``{"flip_tta": True}``).
    """
    clean = validate_frame_scores(videos, str(path))
    try:  # the restricted unpickler reads plain data only: a Path or numpy scalar here would be unreadable
        json.dumps(dict(extra or {}))
    except TypeError as exc:
        raise ScoresFormatError(f"{path}: 'extra' must hold plain str/int/float/bool/list/dict values ({exc})") from None
    payload = {
        "format": SCORES_FORMAT,
        "version": SCORES_VERSION,
        "checkpoint": str(checkpoint),
        "head_weights": None if head_weights is None else {str(k): float(v) for k, v in head_weights.items()},
        "window": int(window),
        "stride": int(stride),
        "extra": dict(extra or {}),
        "videos": {
            name: {
                "scores": np.ascontiguousarray(v["scores"], dtype=np.float16),
                "fps": v["fps"],
                "num_frames": v["num_frames"],
            }
            for name, v in clean.items()
        },
    }
    atomic_dump_pickle(payload, path)


def load_frame_scores(path: str | os.PathLike) -> dict:
    """Read a file written by :func:`save_frame_scores`; errors name the file and video.

    Returns the stored dict; ``videos[name]["scores"]`` is the stored float16 array
    (convert with ``.astype(np.float32)`` before arithmetic).
    """
    path = Path(path)
    data = safe_pickle_load(path, allow_numpy=True)
    if not isinstance(data, dict) or data.get("format") != SCORES_FORMAT:
        raise ScoresFormatError(
            f"{path}: not a per-frame score file (expected a dict with format={SCORES_FORMAT!r}; "
            "original per-window results are read by signspot.ensemble.load_original_results)"
        )
    version = data.get("version")
    if not isinstance(version, int) or version > SCORES_VERSION:
        raise ScoresFormatError(
            f"{path}: format version {version!r} is not supported (this code reads up to {SCORES_VERSION})"
        )
    for key in ("checkpoint", "window", "stride", "videos"):
        if key not in data:
            raise ScoresFormatError(f"{path}: missing key {key!r}")
    data["videos"] = validate_frame_scores(data["videos"], str(path))
    return data


# --------------------------------------------------------------------------- aggregation


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float32 (float64 in, float64 out); sums stay in float64."""
    z = np.asarray(logits)
    z = z.astype(np.float64 if z.dtype == np.float64 else np.float32)
    z = z - z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def upsample_nearest(x: np.ndarray, size: int, axis: int = 1) -> np.ndarray:
    """Nearest-neighbour resize along ``axis`` (``torch.nn.functional.interpolate`` 'nearest')."""
    length = x.shape[axis]
    if length == size:
        return x
    index = np.minimum(np.floor(np.arange(size) * (length / size)).astype(np.int64), length - 1)
    return np.take(x, index, axis=axis)


class FrameScoreAccumulator:
    """Accumulate window predictions of one video into per-frame scores, batch by batch.

    >>> acc = FrameScoreAccumulator(num_frames, num_classes + 1, window=32)
    >>> for starts, logits in batches:      # logits: {"x4": (N, 4, C+1), ..., "x": (N, 32, C+1)}
    ...     acc.add(starts, logits)
    >>> frame_scores = acc.result()         # (num_frames, C+1) float32

    ``head_weights``: ``{head: weight}``; ``None`` gives every head of the first
    batch the same weight ``1 / number_of_heads`` (the original's 1/5 each).
    """

    def __init__(
        self, num_frames: int, num_columns: int, window: int, head_weights: Optional[Mapping[str, float]] = None
    ):
        if num_frames < 1 or num_columns < 2 or window < 1:
            raise ValueError(f"need num_frames >= 1, num_columns >= 2, window >= 1; got {num_frames}, {num_columns}, {window}")
        self.num_frames = int(num_frames)
        self.num_columns = int(num_columns)
        self.window = int(window)
        self.head_weights = None if head_weights is None else {k: float(v) for k, v in head_weights.items()}
        # Padding rows absorb windows that run past the end of a short video.
        self._sum = np.zeros((self.num_frames + self.window, self.num_columns), dtype=np.float64)
        self._weight = np.zeros(self.num_frames + self.window, dtype=np.float64)
        self.num_windows = 0

    def add(self, window_starts, head_logits: Mapping[str, object]) -> None:
        """Add a batch: ``window_starts`` (N,) ints; ``head_logits[h]`` (N, T_h, C+1) logits."""
        starts = np.asarray(_as_numpy(window_starts), dtype=np.int64).reshape(-1)
        if not head_logits:
            raise ValueError("head_logits is empty")
        if self.head_weights is None:
            self.head_weights = {h: 1.0 / len(head_logits) for h in head_logits}
        unknown = set(head_logits) - set(self.head_weights)
        if unknown:
            raise ValueError(f"heads {sorted(unknown)} have no weight in head_weights {self.head_weights}")
        if len(starts) and (starts.min() < 0 or starts.max() >= self.num_frames):
            raise ValueError(f"window starts must lie in [0, {self.num_frames}), got {starts.min()}..{starts.max()}")
        combined = np.zeros((len(starts), self.window, self.num_columns), dtype=np.float64)
        total_weight = 0.0
        for head, weight in self.head_weights.items():
            if head not in head_logits:
                raise ValueError(f"head {head!r} (weight {weight}) is missing from this batch")
            if weight == 0:
                continue
            logits = _as_numpy(head_logits[head])
            if logits.ndim != 3 or logits.shape[0] != len(starts) or logits.shape[2] != self.num_columns:
                raise ValueError(
                    f"head {head!r}: expected logits of shape ({len(starts)}, T, {self.num_columns}), got {logits.shape}"
                )
            combined += weight * upsample_nearest(softmax(logits), self.window, axis=1)
            total_weight += weight
        if total_weight <= 0:
            raise ValueError(f"head weights sum to {total_weight}; at least one must be positive")
        if len(np.unique(starts)) == len(starts):
            for offset in range(self.window):  # each offset touches distinct rows: plain += is exact
                self._sum[starts + offset] += combined[:, offset]
                self._weight[starts + offset] += total_weight
        else:
            rows = (starts[:, None] + np.arange(self.window)[None, :]).reshape(-1)
            np.add.at(self._sum, rows, combined.reshape(-1, self.num_columns))
            np.add.at(self._weight, rows, total_weight)
        self.num_windows += len(starts)

    def result(self) -> np.ndarray:
        """Per-frame scores (num_frames, C+1), float32. Every frame must be covered by a window."""
        weight = self._weight[: self.num_frames]
        uncovered = np.flatnonzero(weight == 0)
        if len(uncovered):
            raise ValueError(
                f"{len(uncovered)} of {self.num_frames} frames are covered by no window "
                f"(first {uncovered[0]}, last {uncovered[-1]})"
            )
        return (self._sum[: self.num_frames] / weight[:, None]).astype(np.float32)


def aggregate_window_logits(
    window_starts,
    head_logits: Mapping[str, object],
    num_frames: int,
    window: int,
    head_weights: Optional[Mapping[str, float]] = None,
) -> np.ndarray:
    """One-shot form of :class:`FrameScoreAccumulator`: (num_frames, C+1) float32 frame scores."""
    any_head = next(iter(head_logits.values()))
    acc = FrameScoreAccumulator(num_frames, _as_numpy(any_head).shape[-1], window, head_weights)
    acc.add(window_starts, head_logits)
    return acc.result()
