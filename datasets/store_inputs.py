"""What a frame store is made from: the video files of one or more folders and their signer boxes.

Box files are the challenge's JSON ``{video: [x1, y1, x2, y2]}``; a video's crop is its
box enlarged by :data:`BOX_MARGIN` on each side and clipped to the frame (:func:`crop_box`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from signspot.datasets.frame_store import FrameStoreError
from signspot.formats.gt import video_name
from signspot.formats.timebase import ORIGINAL_FPS

__all__ = [
    "BOX_MARGIN",
    "VIDEO_EXTENSIONS",
    "ConstantRateCheck",
    "VariableFrameRateError",
    "crop_box",
    "find_videos",
    "load_boxes",
    "pair_sources",
    "parse_box",
    "probe_video",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv")  # what OpenCV reads
BOX_MARGIN = 0.10  # crop = box enlarged by int(10%) of its width/height on each side


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
        self.enabled = True

    def check(self, index: int, timestamp_ms: float) -> None:
        if not self.enabled:
            return
        if self.first_ms is None:
            self.first_ms = timestamp_ms
            return
        if timestamp_ms <= 0:  # no timestamps from this container
            self.enabled = False
            return
        expected = self.first_ms + index * self.period_ms
        if abs(timestamp_ms - expected) > self.tolerance_ms:
            raise VariableFrameRateError(
                f"{self.source}: variable frame rate: frame {index} is at {timestamp_ms:.0f} ms, where the "
                f"header's {self.fps:g} fps puts it at {expected:.0f} ms, so the times of its signs would be wrong; "
                "convert it to a constant frame rate first, e.g. ffmpeg -i IN -fps_mode cfr -r 25 OUT.mp4"
            )


def probe_video(path: str | os.PathLike) -> Tuple[int, int, float, int]:
    """``(width, height, fps, frame_count)`` from a video's header; a missing or broken fps is
    the original's 25. Raises ``ValueError`` (without the path) for a file that cannot be
    opened or has no frame size."""
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
    return width, height, fps, count


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
