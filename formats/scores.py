"""Per-frame score files: the contract between inference and ensembling.

Inference turns the per-window, per-head logits of one checkpoint into one
probability row per frame (``num_classes + 1`` columns, background last) and
stores them here; ensembling averages such files and decodes them.

The aggregation of window logits into these rows is :mod:`signspot.scoring`'s.

File layout (a pickle of plain dicts, strings, numbers and numpy arrays, read
back with the restricted unpickler of :mod:`signspot.formats.safe_io`)::

    {"format": "signspot-frame-scores", "version": 1,
     "checkpoint": str, "head_weights": {head: float} | None,
     "window": int, "stride": int, "extra": dict,
     "videos": {name: {"scores": float32 (num_frames, C+1), "fps": float, "num_frames": int}}}

(Files of version 1 written before hold float16 scores; they read the same way.) A file
scored with the original's windows (``extra["compat"] == "original"``,
:func:`scored_with_original_windows`) may hold, per video, the scores of its first frames
only (``num_frames`` = rows): those windows leave the tail of a video without scores.
Ensembling averages each frame over the files that hold it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np

from .errors import SignspotError
from .safe_io import atomic_dump_pickle, safe_pickle_load

__all__ = [
    "SCORES_FILENAME",
    "SCORES_FORMAT",
    "SCORES_VERSION",
    "scored_with_original_windows",
    "ScoresFormatError",
    "save_frame_scores",
    "load_frame_scores",
    "validate_frame_scores",
    "as_numpy",
]

SCORES_FILENAME = "frame_scores.pkl"
SCORES_FORMAT = "signspot-frame-scores"
SCORES_VERSION = 1


def scored_with_original_windows(extra: Optional[Mapping]) -> bool:
    """Whether a scores file's ``extra`` says the original's windows were run (``--compat original``).

    Files written before the one name read ``"coverage": "prefix"`` for the same thing."""
    extra = extra or {}
    return extra.get("compat") == "original" or extra.get("coverage") == "prefix"


class ScoresFormatError(SignspotError, ValueError):
    """A per-frame score file (or the data meant for one) that breaks the format."""


def as_numpy(x) -> np.ndarray:
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
        scores = as_numpy(entry["scores"])
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
    """Write a per-frame score file atomically (scores stored as float32).

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
                "scores": np.ascontiguousarray(v["scores"], dtype=np.float32),
                "fps": v["fps"],
                "num_frames": v["num_frames"],
            }
            for name, v in clean.items()
        },
    }
    atomic_dump_pickle(payload, path)


def load_frame_scores(path: str | os.PathLike) -> dict:
    """Read a file written by :func:`save_frame_scores`; errors name the file and video.

    Returns the stored dict; ``videos[name]["scores"]`` is the stored array (float32, or
    float16 in older files: convert with ``.astype(np.float32)`` before arithmetic).
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
