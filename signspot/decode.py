"""Per-frame scores -> sign intervals ``[class, start_ms, end_ms]``.

Default settings reproduce the original decoding exactly (SPEC, "Decode"):
argmax per frame; each run of one non-background class from frame s to e
(inclusive) becomes ``[class, int(s / fps * 1000), int(e / fps * 1000)]``,
dropped when the two millisecond values are equal. The original decoded a score
array with one all-zero row after the last scored frame, forced to background:
so the last scored frame is decoded like any other and a run reaching it ends
there. That padding row is implied here (a run open at the end is closed on the
last frame); it holds for every source of scores, ours and the original's
``dict_results.pkl``. It runs in O(T) with numpy (the original's beam
search was quadratic) and uses each video's real fps.

Optional post-processing (all off by default, see :class:`DecodeSettings`),
applied in this order:

1. ``smoothing``: moving average of the scores over this many frames (centred;
   near the ends the average is over the frames that exist);
2. ``background_margin``: the background score is raised by this amount before
   the argmax, so a sign wins a frame only if it beats background by the margin
   (negative values favour signs);
3. ``merge_gap``: two runs of the same class separated only by background for
   at most this many frames become one run;
4. ``min_length``: runs shorter than this many frames are dropped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import List, Mapping

import numpy as np

from .formats.errors import SignspotError
from .formats.safe_io import atomic_write
from .formats.timebase import frame_to_ms

__all__ = ["DecodeSettings", "DecodeSettingsError", "decode_all", "decode_frame_scores", "frame_labels", "labels_to_intervals"]


class DecodeSettingsError(SignspotError, ValueError):
    """Decode settings (a JSON file or flags) that do not fit :class:`DecodeSettings`."""


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    """Post-processing of per-frame scores; the defaults are the original decoding."""

    smoothing: int = 0  # moving-average width in frames (0 or 1: none)
    min_length: int = 0  # drop runs shorter than this many frames (0: keep all)
    merge_gap: int = 0  # merge same-class runs separated by <= this many background frames
    background_margin: float = 0.0  # a sign must beat background by this much to win a frame

    def __post_init__(self):
        for name in ("smoothing", "min_length", "merge_gap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise DecodeSettingsError(f"DecodeSettings.{name} must be an int >= 0, got {value!r}")
            object.__setattr__(self, name, int(value))
        margin = self.background_margin
        if isinstance(margin, bool) or not isinstance(margin, (int, float, np.floating, np.integer)):
            raise DecodeSettingsError(f"DecodeSettings.background_margin must be a number, got {margin!r}")
        try:
            value = float(margin)
        except OverflowError:  # an int beyond float's range
            value = math.inf
        if not math.isfinite(value):
            raise DecodeSettingsError(f"DecodeSettings.background_margin must be a finite number, got {margin!r}")
        object.__setattr__(self, "background_margin", value)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "decode settings") -> "DecodeSettings":
        if not isinstance(data, Mapping):
            raise DecodeSettingsError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise DecodeSettingsError(f"{source}: unknown decode settings {sorted(unknown)}; known: {sorted(known)}")
        try:
            return cls(**data)
        except DecodeSettingsError as exc:
            raise DecodeSettingsError(f"{source}: {exc}") from None

    def save_json(self, path: str | os.PathLike) -> None:
        with atomic_write(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "DecodeSettings":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file") from None
        except json.JSONDecodeError as exc:
            raise DecodeSettingsError(f"{path}: not valid JSON ({exc})") from None
        # tuning writes {"settings": {...}, ...}; a bare settings object is accepted too
        if isinstance(data, dict) and "settings" in data:
            data = data["settings"]
        return cls.from_dict(data, str(path))

    def is_original(self) -> bool:
        return self == DecodeSettings()


def smooth_scores(scores: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` frames (edges: mean of the frames available)."""
    if width <= 1 or len(scores) == 0:
        return scores
    t = len(scores)
    csum = np.concatenate([np.zeros((1, scores.shape[1])), np.cumsum(scores, axis=0, dtype=np.float64)])
    lo = np.clip(np.arange(t) - (width - 1) // 2, 0, t)
    hi = np.clip(np.arange(t) + width // 2 + 1, 0, t)
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None]


def frame_labels(scores: np.ndarray, *, smoothing: int = 0, background_margin: float = 0.0) -> np.ndarray:
    """Per-frame class ids (background = last column): the argmax of every frame."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be (num_frames, num_classes + 1), got shape {scores.shape}")
    background = scores.shape[1] - 1
    if smoothing > 1:
        scores = smooth_scores(scores.astype(np.float64), smoothing)
    if background_margin:
        scores = scores.astype(np.float64, copy=True)
        scores[:, background] += background_margin
    return np.argmax(scores, axis=1)


def labels_to_intervals(
    labels: np.ndarray, background: int, fps: float, *, min_length: int = 0, merge_gap: int = 0
) -> List[List[int]]:
    """Runs of equal non-background labels -> ``[[cls, start_ms, end_ms], ...]`` (ends inclusive)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return []
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change - 1, [len(labels) - 1]])
    classes = labels[starts]
    keep = classes != background
    starts, ends, classes = starts[keep], ends[keep], classes[keep]
    if merge_gap > 0 and len(starts) > 1:
        # consecutive sign runs: anything between them is background
        join = (classes[1:] == classes[:-1]) & (starts[1:] - ends[:-1] - 1 <= merge_gap)
        first = np.concatenate([[True], ~join])  # run opens a new merged group
        last = np.concatenate([~join, [True]])  # run closes its group
        starts, ends, classes = starts[first], ends[last], classes[first]
    if min_length > 0:
        keep = ends - starts + 1 >= min_length
        starts, ends, classes = starts[keep], ends[keep], classes[keep]
    start_ms, end_ms = frame_to_ms(starts, fps), frame_to_ms(ends, fps)
    keep = start_ms != end_ms
    return np.stack([classes[keep], start_ms[keep], end_ms[keep]], axis=1).astype(np.int64).tolist()


def decode_frame_scores(
    scores: np.ndarray,
    fps: float,
    *,
    smoothing: int = 0,
    min_length: int = 0,
    merge_gap: int = 0,
    background_margin: float = 0.0,
) -> List[List[int]]:
    """Decode one video's (num_frames, C+1) scores into ``[[cls, start_ms, end_ms], ...]``."""
    settings = DecodeSettings(smoothing, min_length, merge_gap, background_margin)  # validates
    scores = np.asarray(scores)
    labels = frame_labels(scores, smoothing=settings.smoothing, background_margin=settings.background_margin)
    return labels_to_intervals(
        labels, scores.shape[1] - 1, fps, min_length=settings.min_length, merge_gap=settings.merge_gap
    )


def decode_all(videos: Mapping[str, Mapping], settings: DecodeSettings = DecodeSettings()) -> dict:
    """``{name: {"scores", "fps", ...}}`` -> ``{name: [[cls, start_ms, end_ms], ...]}``, each with its own fps."""
    return {
        name: decode_frame_scores(np.asarray(v["scores"], dtype=np.float32), v["fps"], **settings.to_dict())
        for name, v in videos.items()
    }
