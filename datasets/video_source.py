"""Video files read as a frame store: signer crops decoded on the fly, no LMDB.

:class:`VideoSource` answers what scoring asks of a frame store (``videos``,
``num_frames``, ``fps``, ``read_frames``) straight from the video files: each
frame is decoded, cropped to the video's box enlarged as the store enlarges it
(:func:`datasets.store_inputs.crop_box`) and handed over as RGB at the crop's own
size, as a store made with the original encoding holds it (less the JPEG step).
Scoring reads a video front to back, so a reader keeps one open capture per video
and moves forward; going back reopens it. Memory holds the frames asked for.

The frame count is the header's. A frame past the last one the decoder gives
repeats the last decoded frame (the count is then wrong, and a warning says so); a
variable frame rate is refused (:class:`datasets.store_inputs.ConstantRateCheck`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from signspot.datasets.frame_store import FrameStoreError
from signspot.datasets.store_inputs import ConstantRateCheck, VariableFrameRateError, crop_box, find_videos
from signspot.datasets.store_inputs import probe_video as read_header

__all__ = ["VideoSource", "VideoSourceError", "find_video_files", "probe_video"]


class VideoSourceError(FrameStoreError):
    """A video that cannot be read as asked (unopenable, no frames, a bad box)."""


def probe_video(path: str | os.PathLike) -> Tuple[int, int, float, int]:
    """``(width, height, fps, frame_count)`` of a video file from its header
    (:func:`datasets.store_inputs.probe_video`); errors name the file."""
    try:
        width, height, fps, count = read_header(path)
    except ValueError as exc:
        raise VideoSourceError(f"{path}: {exc}") from None
    if count <= 0:
        raise VideoSourceError(f"{path}: no frame count in its header (corrupt or not a video)")
    return width, height, fps, count


class _Reader:
    """One open capture, moving forward through one video."""

    def __init__(self, path: str, crop: Tuple[int, int, int, int], fps: float):
        self.path, self.crop, self.fps = path, crop, fps
        self.cap: Optional[cv2.VideoCapture] = None
        self.position = 0  # index of the next frame the capture gives
        self.last: Optional[np.ndarray] = None  # the last decoded crop
        self.padded = 0

    def _open(self) -> None:
        if self.cap is not None:
            self.cap.release()
        self.cap = cv2.VideoCapture(self.path)
        if not self.cap.isOpened():
            raise VideoSourceError(f"{self.path}: cannot be opened as a video")
        self.position, self.last = 0, None
        self.clock = ConstantRateCheck(self.fps, self.path)

    def frame(self, index: int) -> np.ndarray:
        if self.cap is None or index < self.position - (self.last is not None):
            self._open()
        while self.position <= index:
            ok, frame = self.cap.read()
            if ok:
                try:
                    self.clock.check(self.position, self.cap.get(cv2.CAP_PROP_POS_MSEC))
                except VariableFrameRateError as exc:
                    raise VideoSourceError(str(exc)) from None
                x1, y1, x2, y2 = self.crop
                self.last = cv2.cvtColor(frame[y1:y2, x1:x2], cv2.COLOR_BGR2RGB)
            elif self.last is None:
                raise VideoSourceError(f"{self.path}: frame {self.position} cannot be decoded, nor any before it")
            else:
                self.padded += 1
            self.position += 1
        return self.last

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
        if self.padded:
            warnings.warn(f"{self.path}: {self.padded} frame(s) at the end could not be decoded and repeat the "
                          "last decoded one (the header's frame count is too large)", stacklevel=2)
            self.padded = 0


class VideoSource:
    """Video files as a read-only frame store of signer crops.

    ``videos``: ``{name: path}``; ``boxes``: ``{name: [x1, y1, x2, y2]}`` signer boxes in
    pixels (the challenge's format), a video without a box is read whole.
    """

    def __init__(self, videos: Mapping[str, str | os.PathLike], boxes: Mapping[str, Sequence[int]]):
        self.path = "video files"
        self._paths: Dict[str, str] = {name: str(p) for name, p in videos.items()}
        self._info: Dict[str, dict] = {}
        for name, path in self._paths.items():
            width, height, fps, count = probe_video(path)
            box = boxes.get(name)
            try:
                crop = crop_box(box, width, height) if box is not None else (0, 0, width, height)
            except ValueError as exc:
                raise VideoSourceError(f"{path}: {exc}") from None
            self._info[name] = {"width": width, "height": height, "fps": fps, "num_frames": count, "crop": crop}
        self._readers: Dict[str, _Reader] = {}

    @property
    def videos(self) -> List[str]:
        return list(self._paths)

    def __contains__(self, video: str) -> bool:
        return video in self._paths

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_readers"] = {}  # captures stay in the process that opened them
        return state

    def num_frames(self, video: str) -> int:
        return self._info[video]["num_frames"]

    def fps(self, video: str) -> float:
        return self._info[video]["fps"]

    def meta(self, video: str) -> dict:
        return dict(self._info[video], source=self._paths[video])

    def read_frames(self, video: str, indices, out: Optional[np.ndarray] = None) -> np.ndarray:
        """RGB crops ``(len(indices), h, w, 3)`` uint8 of frames ``indices`` (fastest in increasing order)."""
        idx = [int(i) for i in indices]
        n = self.num_frames(video)
        if any(i < 0 or i >= n for i in idx):
            raise VideoSourceError(f"{self._paths[video]}: frame indices outside [0, {n})")
        reader = self._readers.get(video)
        if reader is None:
            for other in list(self._readers):  # one open video at a time per process
                self._readers.pop(other).close()
            info = self._info[video]
            reader = self._readers[video] = _Reader(self._paths[video], info["crop"], info["fps"])
        frames = [reader.frame(i) for i in idx]
        if idx and idx[-1] == n - 1:
            self._readers.pop(video).close()
        if out is not None:
            np.stack(frames, out=out)
            return out
        return np.stack(frames)


def _glob_files(pattern: str) -> list:
    """The files a glob pattern names; ``**`` never descends through a link to a folder (no loop can hang it)."""
    parts = Path(pattern).parts
    first_magic = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
    anchor = Path(*parts[:first_magic]) if first_magic else Path(".")
    rest = "/".join(parts[first_magic:])
    # pathlib's "**" (Python < 3.13: always; later: by default) does not follow links to folders
    found = anchor.glob(rest) if anchor.is_dir() else []
    return sorted(path for path in found if path.is_file())


def find_video_files(items: Sequence[str | os.PathLike], extensions: Sequence[str]) -> Dict[str, Path]:
    """``{name: path}`` from files, folders (their files with ``extensions``) and glob patterns."""
    from signspot.formats.gt import video_name

    found: Dict[str, Path] = {}
    for item in items:
        text = str(item)
        if any(ch in text for ch in "*?["):
            paths = _glob_files(text)
            if not paths:
                raise VideoSourceError(f"{text}: no file matches this pattern")
        elif Path(text).is_dir():
            paths = list(find_videos(Path(text), extensions).values())
        elif Path(text).is_file():
            paths = [Path(text)]
        else:
            raise VideoSourceError(f"{text}: no such video file or folder")
        for path in paths:
            name = video_name(path)
            if name in found and found[name] != path:
                raise VideoSourceError(f"{path}: another video has the same name {name!r} ({found[name]})")
            found[name] = path
    return found
