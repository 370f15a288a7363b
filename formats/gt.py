"""Ground-truth and prediction files of the MSSL track.

Both are ``{video_name: [[class_id, start_ms, end_ms], ...]}`` with plain ints,
stored as a pickle (``MSSL_*_GT.pkl``, ``predictions.pkl``), as a folder of
``<video>.txt`` files holding one ``class,start_ms,end_ms`` line per sign, or as a
folder of ``<video>.eaf`` ELAN files holding the signs on one tier (:mod:`.elan`;
the annotation values are glosses of a vocabulary, :mod:`.vocabulary`, or class
ids). Everything that reads such a file goes through :func:`load_intervals`, so
malformed input is reported the same way everywhere: file, video and row.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from .elan import DEFAULT_TIER, read_eafs, write_eaf
from .errors import SignspotError
from .safe_io import atomic_dump_pickle, atomic_write, safe_file_stems, safe_pickle_load, staged_folder
from .vocabulary import Vocabulary, VocabularyError, as_vocabulary

__all__ = [
    "Intervals",
    "MalformedIntervalsError",
    "video_name",
    "load_intervals",
    "validate_intervals",
    "VIDEO_EXTENSIONS",
    "save_intervals_pkl",
    "save_intervals_txt",
    "save_intervals_eaf",
]

Intervals = Dict[str, List[List[int]]]


class MalformedIntervalsError(SignspotError, ValueError):
    """A ground-truth or prediction file that does not follow the format."""


# The containers read as videos (what OpenCV's FFmpeg backend opens); the one list of the project.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv")


def video_name(path: str | os.PathLike) -> str:
    """The challenge's video key: the file name without its video or annotation extension and a trailing
    ``.cropped``."""
    stem = Path(path).name
    for suffix in (*VIDEO_EXTENSIONS, ".txt", ".eaf"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if stem.endswith(".cropped"):
        stem = stem[: -len(".cropped")]
    return stem


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


MAX_MS = 2**53  # times at or past this (285,000 years) are refused: no float or int64 arithmetic overflows
MAX_CLASS = 2**31


def validate_intervals(data, source: str, *, num_classes: Optional[int] = None) -> Intervals:
    """Check the structure and return a clean copy with plain Python ints.

    Rows may be lists, tuples or a numpy ``(n, 3)`` array, their values Python or numpy
    ints. Raises :class:`MalformedIntervalsError` naming ``source``, the video and the row
    for: a non-dict, a non-string key, a row that is not three ints, a negative
    time or one past :data:`MAX_MS`, ``start >= end`` (a sign lasts at least one
    millisecond: the one rule of every reader and writer, as ELAN has no zero-length
    annotations and such a sign could never be matched), or a class outside
    ``[0, num_classes)`` (``[0, MAX_CLASS)`` without ``num_classes``).
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
            if start >= MAX_MS or end >= MAX_MS:
                raise MalformedIntervalsError(f"{where}: a time past {MAX_MS} ms is not a time in a video")
            if start >= end:
                raise MalformedIntervalsError(f"{where}: start_ms {start} is not before end_ms {end} "
                                              "(a sign lasts at least 1 ms)")
            if cls < 0 or cls >= (num_classes if num_classes is not None else MAX_CLASS):
                bound = f"[0, {num_classes if num_classes is not None else MAX_CLASS})"
                raise MalformedIntervalsError(f"{where}: class {cls} is outside {bound}")
            out_rows.append([cls, start, end])
        clean[video] = out_rows
    return clean


def _annotation_files(folder: Path, suffix: str) -> Dict[str, Path]:
    """``{video: file}`` of the folder's ``<video><suffix>`` files; two files of one video are an error."""
    found: Dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() != suffix or not path.is_file():
            continue
        name = video_name(path)
        if name in found:
            raise MalformedIntervalsError(f"{folder}: {found[name].name} and {path.name} are the same video {name!r}")
        found[name] = path
    return found


def _load_txt_dir(files: Mapping[str, Path]) -> Intervals:
    data: Intervals = {}
    for video, txt in files.items():
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
        data[video] = rows
    return data


def _load_folder(folder: Path, tier: str, vocabulary: Vocabulary | str | os.PathLike | None) -> Intervals:
    txt, eaf = _annotation_files(folder, ".txt"), _annotation_files(folder, ".eaf")
    if txt and eaf:
        raise MalformedIntervalsError(
            f"{folder}: holds both <video>.txt ({len(txt)}) and <video>.eaf ({len(eaf)}) files; keep one kind here"
        )
    if eaf:
        return read_eafs(eaf, tier=tier, vocabulary=as_vocabulary(vocabulary), where=str(folder))
    if txt:
        return _load_txt_dir(txt)
    raise MalformedIntervalsError(f"{folder}: no <video>.txt or <video>.eaf files in this folder")


def load_intervals(
    path: str | os.PathLike,
    *,
    num_classes: Optional[int] = None,
    tier: str = DEFAULT_TIER,
    vocabulary: Vocabulary | str | os.PathLike | None = None,
) -> Intervals:
    """Load a ground-truth/prediction pickle, or a folder of TXT or of ELAN files, validated.

    ``tier`` and ``vocabulary`` (a :class:`~.vocabulary.Vocabulary` or its file) are
    for a folder of ``<video>.eaf`` files: the tier holding the signs, and the
    glosses its values are (without one, the values are class ids). A value that
    is not in the vocabulary is an error listing every such value, never dropped.
    """
    path = Path(path)
    if path.is_dir():
        data = _load_folder(path, tier, vocabulary)
    elif path.exists():
        data = safe_pickle_load(path, allow_numpy=True)  # numpy ints are common in files made with numpy
    else:
        raise FileNotFoundError(
            f"{path}: no such file or folder (expected a .pkl file or a folder of <video>.txt or <video>.eaf)"
        )
    return validate_intervals(data, str(path), num_classes=num_classes)


def save_intervals_pkl(data: Intervals, path: str | os.PathLike) -> None:
    """Write the challenge's pickle (plain dict of lists of int lists), atomically."""
    clean = validate_intervals(data, str(path))
    atomic_dump_pickle(clean, path)


def _check_file_names(clean: Intervals, folder: Path) -> None:
    for video in clean:
        if safe_file_stems([video])[video] != video:
            raise MalformedIntervalsError(
                f"{folder}: video name {video!r} cannot be a file name (only letters, digits, '.', '_', '-'); "
                "write a .pkl file instead"
            )


def save_intervals_txt(data: Intervals, folder: str | os.PathLike) -> None:
    """Write one ``<video>.txt`` per video with ``class,start_ms,end_ms`` lines."""
    folder = Path(folder)
    clean = validate_intervals(data, str(folder))
    _check_file_names(clean, folder)
    with staged_folder(folder) as staging:  # all files or none
        for video, rows in clean.items():
            with atomic_write(staging / f"{video}.txt", "w") as f:
                f.writelines(f"{c},{s},{e}\n" for c, s, e in rows)


def save_intervals_eaf(
    data: Intervals,
    folder: str | os.PathLike,
    *,
    tier: str = DEFAULT_TIER,
    vocabulary: Vocabulary | str | os.PathLike | None = None,
    media: Optional[Mapping[str, str | os.PathLike]] = None,
) -> List[Path]:
    """Write one ``<video>.eaf`` (EAF 3.0, :func:`~.elan.write_eaf`) per video; returns the files.

    The signs go on tier ``tier`` with their glosses (``vocabulary``; without one, the
    class ids) as values; ``media[video]``, when given, is the video file each .eaf
    links. Every row is checked before anything is written: a row
    :func:`validate_intervals` refuses or a class without a gloss is an error.
    """
    folder = Path(folder)
    vocabulary = as_vocabulary(vocabulary)
    clean = validate_intervals(data, str(folder))
    _check_file_names(clean, folder)
    for video, rows in clean.items():
        for i, (cls, _, _) in enumerate(rows):
            if vocabulary is not None and cls >= len(vocabulary):
                raise VocabularyError(
                    f"{folder}: video {video!r}, row {i}: class {cls} has no gloss in {vocabulary.source}, which has "
                    f"{len(vocabulary)} (classes 0-{len(vocabulary) - 1}); add the missing glosses to it"
                )
    media = media or {}
    with staged_folder(folder) as staging:  # all files or none
        for video, rows in clean.items():
            write_eaf(staging / f"{video}.eaf", rows, media=media.get(video), vocabulary=vocabulary, tier=tier,
                      links_from=folder)
    return [folder / f"{video}.eaf" for video in clean]
