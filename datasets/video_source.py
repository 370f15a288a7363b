"""Video files read as a frame store: signer crops decoded on the fly, no LMDB.

:class:`VideoSource` answers what scoring asks of a frame store (``videos``,
``num_frames``, ``fps``, ``read_frames``) straight from the video files: each
frame is decoded, cropped to the video's box enlarged as the store enlarges it
(:func:`datasets.video_reader.crop_box`) and handed over as RGB at the crop's own
size, as a store made with the original encoding holds it (less the JPEG step).
Scoring reads a video front to back, so a reader keeps one open capture per video
and moves forward; going back reopens it. Memory holds the frames asked for.

The frames are what :func:`signspot.datasets.video_reader.read_frames` gives, as the
frame store writer has them: the header's frame count, a frame that does not decode black
(a warning names them), a variable frame rate refused.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from signspot.datasets.frame_store import FrameStoreError
from signspot.datasets.video_reader import (
    ReadStats,
    VideoHeader,
    black_frame,
    crop_box,
    find_videos,
    read_frames,
    spans,
)
from signspot.datasets.video_reader import probe_video as read_header

__all__ = ["VideoSource", "VideoSourceError", "find_video_files", "probe_video"]


class VideoSourceError(FrameStoreError):
    """A video that cannot be read as asked (unopenable, no frames, a bad box)."""


def probe_video(path: str | os.PathLike) -> VideoHeader:
    """The header of a video file (:func:`signspot.datasets.video_reader.probe_video`); errors name the file."""
    try:
        header = read_header(path)
    except ValueError as exc:
        raise VideoSourceError(f"{path}: {exc}") from None
    if header.num_frames <= 0:
        raise VideoSourceError(f"{path}: no frame count in its header (corrupt or not a video)")
    return header


class _Reader:
    """One pass of :func:`read_frames` through one video, moving forward; going back starts a new pass."""

    def __init__(self, path: str, header: VideoHeader, crop: Tuple[int, int, int, int]):
        self.path, self.header, self.crop = path, header, crop
        self.frames: Optional[Iterator] = None
        self.stats = ReadStats()
        self.position = 0  # index of the next frame the pass gives
        self.last: Optional[np.ndarray] = None  # the crop of frame position - 1

    def frame(self, index: int) -> np.ndarray:
        if self.frames is None or index < self.position - 1:
            if self.frames is not None:
                self.frames.close()
            self.stats, self.position = ReadStats(), 0
            self.frames = read_frames(self.path, self.header, stats=self.stats)
        try:
            while self.position <= index:
                _, frame = next(self.frames)
                x1, y1, x2, y2 = self.crop
                frame = frame if frame is not None else black_frame(self.header)
                self.last = cv2.cvtColor(frame[y1:y2, x1:x2], cv2.COLOR_BGR2RGB)
                self.position += 1
        except ValueError as exc:  # unopenable, a variable frame rate, a frame of another size
            raise VideoSourceError(str(exc)) from None
        return self.last

    def close(self) -> None:
        if self.frames is not None:
            self.frames.close()
            self.frames = None
        if self.stats.decoded == 0 and self.stats.undecodable:
            raise VideoSourceError(f"{self.path}: no frame could be decoded (corrupt or unreadable video)")
        if self.stats.undecodable:
            warnings.warn(f"{self.path}: {len(self.stats.undecodable)} of its {self.header.num_frames} frames could "
                          f"not be decoded and are black, as in a frame store: frames {spans(self.stats.undecodable)}",
                          stacklevel=2)
            self.stats = ReadStats()


class VideoSource:
    """Video files as a read-only frame store of signer crops.

    ``videos``: ``{name: path}``; ``boxes``: ``{name: [x1, y1, x2, y2]}`` signer boxes in
    pixels (the challenge's format), a video without a box is read whole.
    """

    def __init__(self, videos: Mapping[str, str | os.PathLike], boxes: Mapping[str, Sequence[int]]):
        self.path = "video files"
        self._paths: Dict[str, str] = {name: str(p) for name, p in videos.items()}
        self._info: Dict[str, dict] = {}
        self._headers: Dict[str, VideoHeader] = {}
        for name, path in self._paths.items():
            header = self._headers[name] = probe_video(path)
            box = boxes.get(name)
            try:
                crop = crop_box(box, header.width, header.height) if box is not None else (0, 0, header.width,
                                                                                           header.height)
            except ValueError as exc:
                raise VideoSourceError(f"{path}: {exc}") from None
            self._info[name] = {"width": header.width, "height": header.height, "fps": header.fps,
                                "num_frames": header.num_frames, "crop": crop}
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
            reader = self._readers[video] = _Reader(self._paths[video], self._headers[video],
                                                    self._info[video]["crop"])
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
