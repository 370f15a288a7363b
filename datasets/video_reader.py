"""The one video reader: every video file the project reads goes through here.

The frame store writer, the video source of ``scripts/spot.py`` and the automatic signer box
read videos with the same pieces, so the same broken video gives the same frames everywhere:

* :data:`VIDEO_EXTENSIONS` (from :mod:`signspot.formats.gt`, which names videos by them) and
  :func:`find_videos`: which files of a folder are videos;
* :func:`probe_video`: the header (size, fps, frame count);
* :func:`load_boxes`, :func:`box_for` (a video's box by its name, else its file stem),
  :func:`parse_box` and :func:`crop_box` (the box enlarged by :data:`BOX_MARGIN`, clipped);
* :func:`read_frames`: the one capture loop, with the one rule for a frame that does not
  decode: the header's frame count is the video's, and such a frame is ``None`` (the store
  and the video source store and give it black, as the original creator did; the automatic
  box skips it); :class:`ConstantRateCheck` refuses a variable frame rate on the way.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from signspot.datasets.frame_store import FrameStoreError
from signspot.formats.gt import VIDEO_EXTENSIONS, video_name
from signspot.formats.timebase import ORIGINAL_FPS

__all__ = [
    "BOX_MARGIN",
    "VIDEO_EXTENSIONS",
    "ConstantRateCheck",
    "ReadStats",
    "VariableFrameRateError",
    "VideoHeader",
    "black_frame",
    "box_for",
    "crop_box",
    "find_videos",
    "load_boxes",
    "save_boxes",
    "pair_sources",
    "parse_box",
    "probe_video",
    "read_frames",
    "spans",
]

BOX_MARGIN = 0.10  # crop = box enlarged by int(10%) of its width/height on each side
SEEK_GAP = 250  # frames: a longer gap to the next wanted frame is seeked (keyframes are rarely further apart), a shorter one grabbed through


class VariableFrameRateError(ValueError):
    """A video whose frames are not evenly spaced in time."""


class ConstantRateCheck:
    """Checks, frame by frame, that a video's decoder timestamps follow its constant frame rate.

    The pipeline turns frame indices into milliseconds with one fps per video, which is
    only right for a constant frame rate. A variable-rate video (e.g. frames 40 ms apart,
    then 120 ms) has an average fps in its header, and the times of its signs would be off
    by seconds. ``check(index, timestamp_ms)`` raises :class:`VariableFrameRateError` when
    a frame's timestamp (``cv2.CAP_PROP_POS_MSEC`` after reading it) lies more than
    ``tolerance_frames`` frame periods from where the header's rate puts it. Containers
    that give no timestamps (all 0) are not checked.
    """

    def __init__(self, fps: float, source: str, tolerance_frames: float = 2.0):
        self.period_ms = 1000.0 / fps
        self.fps = fps
        self.source = source
        self.tolerance_ms = tolerance_frames * self.period_ms
        self.first_ms = None
        self.first_index = 0
        self.enabled = True

    def check(self, index: int, timestamp_ms: float) -> None:
        if not self.enabled:
            return
        if self.first_ms is None:
            self.first_ms, self.first_index = timestamp_ms, index
            return
        if timestamp_ms <= 0:  # no timestamps from this container
            self.enabled = False
            return
        expected = self.first_ms + (index - self.first_index) * self.period_ms
        if abs(timestamp_ms - expected) > self.tolerance_ms:
            raise VariableFrameRateError(
                f"{self.source}: variable frame rate: frame {index} is at {timestamp_ms:.0f} ms, where the "
                f"header's {self.fps:g} fps puts it at {expected:.0f} ms, so the times of its signs would be wrong; "
                "convert it to a constant frame rate first, e.g. ffmpeg -i IN -fps_mode cfr -r 25 OUT.mp4"
            )


@dataclass(frozen=True)
class VideoHeader:
    """What a video's header says; ``num_frames`` is 0 when it gives no count."""

    width: int
    height: int
    fps: float
    num_frames: int

    def __iter__(self):  # (width, height, fps, num_frames), as a tuple unpacks
        return iter((self.width, self.height, self.fps, self.num_frames))


def probe_video(path: str | os.PathLike) -> VideoHeader:
    """The header of a video file; a missing or broken fps is the original's 25. Raises
    ``ValueError`` (without the path) for a file that cannot be opened or has no frame size."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError("cannot be opened (corrupt, truncated or not a video)")
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if width <= 0 or height <= 0:
        raise ValueError("has no readable frame size (corrupt or not a video)")
    if not (fps > 0 and math.isfinite(fps)):
        fps = ORIGINAL_FPS
    return VideoHeader(width, height, fps, max(count, 0))


@dataclass
class ReadStats:
    """What one :func:`read_frames` call did: frames decoded, undecodable (their indices), grabbed past, seeks."""

    decoded: int = 0
    undecodable: List[int] = field(default_factory=list)
    grabbed: int = 0
    seeks: int = 0


def black_frame(header: VideoHeader) -> np.ndarray:
    """What a frame that does not decode becomes in a store or a video source (the original's rule)."""
    return np.zeros((header.height, header.width, 3), np.uint8)


def read_frames(path: str | os.PathLike, header: VideoHeader, indices: Optional[Iterable[int]] = None, *,
                stats: Optional[ReadStats] = None) -> Iterator[Tuple[int, Optional[np.ndarray]]]:
    """``(index, BGR frame or None)`` for the frames ``indices`` (increasing; default every frame).

    The one capture loop of the project. The header's frame count is the video's length:
    the frames are ``0 .. num_frames - 1``, and one that does not decode (corrupt data, or
    past the end of what the decoder gives) comes as ``None``, never as a neighbour's
    picture. A header without a count gives frames until the decoder stops. Frames between
    the wanted ones are grabbed through (seeked over, past :data:`SEEK_GAP`). A decoded
    frame of another size than the header's, a variable frame rate
    (:class:`VariableFrameRateError`) or a file OpenCV cannot open raise ``ValueError``
    naming the file. ``stats`` collects the counts.
    """
    import cv2

    stats = stats if stats is not None else ReadStats()
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise ValueError(f"{path} cannot be opened (corrupt, truncated or not a video)")
    count = header.num_frames
    wanted = iter(indices) if indices is not None else (iter(range(count)) if count > 0 else _count_up())
    clock = ConstantRateCheck(header.fps, str(path))
    position = 0  # the index of the frame the next read gives
    try:
        for index in wanted:
            if count > 0 and index >= count:
                break
            if index - position > SEEK_GAP:
                cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                stats.seeks += 1
                position = index
                clock.enabled = False  # a seek lands where the container can: timestamps are checked on runs only
            while position < index:
                cap.grab()
                stats.grabbed += 1
                position += 1
            ok, frame = cap.read()
            position += 1
            if not ok:
                if count <= 0:  # no count: the decoder's end is the video's
                    return
                stats.undecodable.append(index)
                yield index, None
                continue
            clock.check(index, cap.get(cv2.CAP_PROP_POS_MSEC))
            if frame.shape[0] != header.height or frame.shape[1] != header.width:
                raise ValueError(f"{path}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, the header says "
                                 f"{header.width}x{header.height}")
            stats.decoded += 1
            yield index, frame
    finally:
        cap.release()


def _count_up() -> Iterator[int]:
    index = 0
    while True:
        yield index
        index += 1


def spans(indices: Sequence[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    parts, start = [], indices[0]
    for prev, cur in zip(indices, list(indices[1:]) + [None]):
        if cur != prev + 1:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = cur
    return ", ".join(parts)


def box_for(boxes: Mapping[str, object], video: str, path: Path) -> Optional[object]:
    """A video's entry in a box file: by its name, else by its file stem (None when it has none)."""
    return boxes.get(video, boxes.get(Path(path).stem))


def crop_box(box: Sequence[int], width: int, height: int) -> Tuple[int, int, int, int]:
    """The crop taken for signer box ``[x1, y1, x2, y2]`` in a ``width`` x ``height`` frame.

    The box is enlarged by ``int(0.1 * width)`` of the box (``int(0.1 * height)``: the
    margin truncated, as the original creator did) on the left and right (top and
    bottom), then clipped to the frame. Raises ``ValueError`` for a box of zero size
    or one that lies outside the frame.
    """
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    if bw <= 0 or bh <= 0:
        raise ValueError(f"signer box {list(box)} has zero size (need x1 < x2 and y1 < y2)")
    if min(x2, width) <= max(x1, 0) or min(y2, height) <= max(y1, 0):  # the box itself, before the margin
        raise ValueError(f"signer box {list(box)} lies outside the {width}x{height} frame")
    margin_x, margin_y = int(BOX_MARGIN * bw), int(BOX_MARGIN * bh)
    cx1, cy1 = max(0, x1 - margin_x), max(0, y1 - margin_y)
    cx2, cy2 = min(width, x2 + margin_x), min(height, y2 + margin_y)
    if cx2 <= cx1 or cy2 <= cy1:
        raise ValueError(f"signer box {list(box)} lies outside the {width}x{height} frame")
    return cx1, cy1, cx2, cy2


def save_boxes(path: Path, boxes: Mapping[str, Sequence[int]]) -> None:
    """Write a box file in the challenge's format, ``{video: [x1, y1, x2, y2]}``, a video a line, atomically."""
    from signspot.formats.safe_io import atomic_write

    with atomic_write(path, "w") as f:
        f.write("{\n" + ",\n".join(f"  {json.dumps(video)}: {json.dumps([int(c) for c in box])}"
                                    for video, box in sorted(boxes.items())) + "\n}\n")


def load_boxes(bbox_path: Path) -> Dict[str, object]:
    try:
        boxes = json.loads(bbox_path.read_text())
    except FileNotFoundError:
        raise FrameStoreError(f"{bbox_path}: no such box file") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameStoreError(f"{bbox_path}: not a JSON file ({exc})") from None
    if not isinstance(boxes, dict):
        raise FrameStoreError(f"{bbox_path}: expected a JSON object {{video: [x1, y1, x2, y2]}}")
    return boxes


def parse_box(value) -> Tuple[int, int, int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise ValueError(f"signer box {value!r} is not [x1, y1, x2, y2] numbers")
    return tuple(int(round(v)) for v in value)


def find_videos(dataset_dir: Path, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> Dict[str, Path]:
    """``{video name: path}`` of the files of a folder with ``extensions``; two files of one video are an error."""
    if not dataset_dir.is_dir():
        raise FrameStoreError(f"{dataset_dir}: no such video folder")
    found: Dict[str, Path] = {}
    for path in sorted(dataset_dir.iterdir()):
        if path.suffix.lower() not in extensions or not path.is_file():
            continue
        name = video_name(path)
        if name in found:
            raise FrameStoreError(f"{dataset_dir}: {found[name].name} and {path.name} are the same video {name!r}")
        found[name] = path
    if not found:
        raise FrameStoreError(f"{dataset_dir}: no video files ({', '.join(extensions)})")
    return found


def as_path_list(value, what: str) -> List[Path]:
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    paths = [Path(v) for v in value]
    if not paths:
        raise FrameStoreError(f"no {what} given")
    return paths


def pair_sources(dataset_dirs: List[Path], bbox_paths: List[Path]) -> Dict[str, Tuple[Path, Path]]:
    """``{video: (file, box file)}`` over every video folder, each paired with its box file.

    A video name found in two folders is an error naming both files.
    """
    if len(dataset_dirs) != len(bbox_paths):
        raise FrameStoreError(
            f"{len(dataset_dirs)} video folder(s) but {len(bbox_paths)} box file(s): give one box file per "
            f"video folder, in the same order (folders: {', '.join(map(str, dataset_dirs))}; "
            f"box files: {', '.join(map(str, bbox_paths))})"
        )
    videos: Dict[str, Tuple[Path, Path]] = {}
    for folder, bbox_path in zip(dataset_dirs, bbox_paths):
        for name, path in find_videos(folder).items():
            if name in videos:
                raise FrameStoreError(
                    f"video {name!r} is in two video folders: {videos[name][0]} and {path}; "
                    "a store holds each video name once"
                )
            videos[name] = (path, bbox_path)
    return videos
