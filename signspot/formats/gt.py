"""Ground-truth and prediction files of the MSSL track.

Both are ``{video_name: [[class_id, start_ms, end_ms], ...]}`` with plain ints,
stored either as a pickle (``MSSL_*_GT.pkl``, ``predictions.pkl``) or as a folder
of ``<video>.txt`` files holding one ``class,start_ms,end_ms`` line per sign.
Everything that reads such a file goes through :func:`load_intervals`, so
malformed input is reported the same way everywhere: file, video and row.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Dict, List, Optional

from .errors import SignspotError
from .safe_io import atomic_dump_pickle, atomic_write, safe_file_stems, safe_pickle_load

__all__ = [
    "Intervals",
    "MalformedIntervalsError",
    "video_name",
    "load_intervals",
    "validate_intervals",
    "save_intervals_pkl",
    "save_intervals_txt",
]

Intervals = Dict[str, List[List[int]]]


class MalformedIntervalsError(SignspotError, ValueError):
    """A ground-truth or prediction file that does not follow the format."""


def video_name(path: str | os.PathLike) -> str:
    """The challenge's video key: the file stem with a trailing ``.cropped`` removed."""
    stem = Path(path).name
    for suffix in (".mp4", ".avi", ".mov", ".mkv", ".txt"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if stem.endswith(".cropped"):
        stem = stem[: -len(".cropped")]
    return stem


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate_intervals(
    data, source: str, *, num_classes: Optional[int] = None, allow_empty_interval: bool = True
) -> Intervals:
    """Check the structure and return a clean copy with plain Python ints.

    Rows may be lists, tuples or a numpy ``(n, 3)`` array, their values Python or numpy
    ints. Raises :class:`MalformedIntervalsError` naming ``source``, the video and the row
    for: a non-dict, a non-string key, a row that is not three ints, a negative
    time, start > end (or start == end when ``allow_empty_interval`` is False),
    or a class outside ``[0, num_classes)`` when ``num_classes`` is given.
    """
    if not isinstance(data, dict):
        raise MalformedIntervalsError(
            f"{source}: expected a dict {{video_name: [[class, start_ms, end_ms], ...]}}, got {type(data).__name__}"
        )
    clean: Intervals = {}
    for video, rows in data.items():
        if not isinstance(video, str):
            raise MalformedIntervalsError(f"{source}: video key {video!r} is not a string")
        if hasattr(rows, "tolist") and getattr(rows, "ndim", None) == 2:  # a numpy (n, 3) int array
            rows = rows.tolist()
        if not isinstance(rows, (list, tuple)):
            raise MalformedIntervalsError(
                f"{source}: video {video!r}: expected a list of [class, start_ms, end_ms] rows, got {type(rows).__name__}"
            )
        out_rows = []
        for i, row in enumerate(rows):
            where = f"{source}: video {video!r}, row {i} ({row!r})"
            if not isinstance(row, (list, tuple)) or len(row) != 3 or not all(_is_int(v) for v in row):
                raise MalformedIntervalsError(f"{where}: a row must be three ints [class, start_ms, end_ms]")
            cls, start, end = (int(v) for v in row)
            if start < 0 or end < 0:
                raise MalformedIntervalsError(f"{where}: negative time")
            if start > end or (start == end and not allow_empty_interval):
                raise MalformedIntervalsError(f"{where}: start_ms {start} is not before end_ms {end}")
            if cls < 0 or (num_classes is not None and cls >= num_classes):
                bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
                raise MalformedIntervalsError(f"{where}: class {cls} is outside {bound}")
            out_rows.append([cls, start, end])
        clean[video] = out_rows
    return clean


def _load_txt_dir(folder: Path) -> Intervals:
    data: Intervals = {}
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise MalformedIntervalsError(f"{folder}: no <video>.txt files in this folder")
    for txt in files:
        rows = []
        for lineno, line in enumerate(txt.read_text().splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(",")]
            try:
                if len(parts) != 3:
                    raise ValueError
                rows.append([int(p) for p in parts])
            except ValueError:
                raise MalformedIntervalsError(
                    f"{txt}: line {lineno} ({line!r}): expected 'class,start_ms,end_ms' with three integers"
                ) from None
        data[video_name(txt)] = rows
    return data


def load_intervals(path: str | os.PathLike, *, num_classes: Optional[int] = None) -> Intervals:
    """Load a ground-truth/prediction pickle or a folder of TXT files, validated."""
    path = Path(path)
    if path.is_dir():
        data = _load_txt_dir(path)
    elif path.exists():
        data = safe_pickle_load(path, allow_numpy=True)  # numpy ints are common in files made with numpy
    else:
        raise FileNotFoundError(f"{path}: no such file or folder (expected a .pkl file or a folder of <video>.txt)")
    return validate_intervals(data, str(path), num_classes=num_classes)


def save_intervals_pkl(data: Intervals, path: str | os.PathLike) -> None:
    """Write the challenge's pickle (plain dict of lists of int lists), atomically."""
    clean = validate_intervals(data, str(path))
    atomic_dump_pickle(clean, path)


def save_intervals_txt(data: Intervals, folder: str | os.PathLike) -> None:
    """Write one ``<video>.txt`` per video with ``class,start_ms,end_ms`` lines."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clean = validate_intervals(data, str(folder))
    for video in clean:
        if safe_file_stems([video])[video] != video:
            raise MalformedIntervalsError(
                f"{folder}: video name {video!r} cannot be a file name (only letters, digits, '.', '_', '-'); "
                "write a .pkl file instead"
            )
    for video, rows in clean.items():
        with atomic_write(folder / f"{video}.txt", "w") as f:
            f.writelines(f"{c},{s},{e}\n" for c, s, e in rows)
