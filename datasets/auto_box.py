"""An automatic signer box for videos that come without one: the region where things move.

No model and no download: in a signing video the signer's hands and arms are
what moves.  The video is sampled at :data:`POSITIONS` places spread over its
length, with a short burst of frames read at each (a long video is seeked, a
short one read through with ``grab()``); neighbouring frames of a burst,
:data:`LAG_SECONDS` apart, make a pair.  Each pair becomes a grey, downscaled
difference image, thresholded above its noise, and the moving pixels are counted
per pixel.  The box is the bounding region of the frequent motion (the hands'
reach over the whole video, which covers the signer's upper body), grown a
little and squared about its centre, then clipped to the frame: the frame store
resizes every crop to a square, and a signer box seen whole is about as wide as
tall.  A video without motion gets the whole frame, with the reason stated.

Bounded whatever the video's length: ``positions * burst`` frames decoded into
pictures (plus what each seek decodes from the keyframe before its target), a
few downscaled grey frames and one count image in memory.  The result depends
only on the file.

The box is in the challenge's format, ``(x1, y1, x2, y2)`` ints in pixels, and is
the signer box itself: the frame store still enlarges it by
:data:`~datasets.video_reader.BOX_MARGIN` on each side
(:func:`~datasets.video_reader.crop_box`).

``bench/bench_auto_box.py`` measures the estimate's IoU with the true box on
synthetic videos (README, "Your own videos").
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import cv2
import numpy as np

from signspot.datasets.store_writer import BadVideoError
from signspot.datasets.video_reader import ReadStats, probe_video, read_frames
from signspot.formats.errors import SignspotError
from signspot.formats.gt import video_name

__all__ = [
    "METHODS",
    "AutoBoxError",
    "BoxEstimate",
    "box_from_frame_pairs",
    "estimate_signer_box",
    "full_frame_box",
    "sample_starts",
]

Box = Tuple[int, int, int, int]
METHODS = ("motion", "full")  # how a box is found: the region of motion, or the whole frame

POSITIONS = 48  # places in the video where a burst of frames is read
BURST = 7  # frames read at each place (BURST - 1 pairs)
LAG_SECONDS = 0.12  # between the two frames of a pair (3 frames at 25 fps): hands move, the rest does not
UNKNOWN_COUNT_STEP_SECONDS = 2.0  # without a frame count in the header: a burst every 2 s from the start
ANALYSIS_SIDE = 160  # pixels: the long side of the downscaled grey frames
MIN_DIFF = 12  # grey levels: the least difference counted as motion ...
NOISE_FACTOR = 4.0  # ... and at least this many times the pair's median difference (camera noise)
MAX_MOVING_SHARE = 0.5  # a pair in which more of the picture changes is a cut or camera motion: skipped
MIN_MOTION_SHARE = 0.002  # less motion than this share of all pixels of all pairs: a static video
FREQUENT = 0.05  # a pixel belongs to the motion region when it moves in this share of the pairs;
MASS_QUANTILE = 0.01  # the region ends at these quantiles of the motion mass over columns and rows
GROW = 0.08  # then grows by this share of its width (height) on each side: the body beyond the hands


class AutoBoxError(SignspotError, ValueError):
    """A request for a box that cannot be met (an unknown method, no burst to read)."""


@dataclass(frozen=True)
class BoxEstimate:
    """A signer box and how it was found, for a log line per video.

    ``box``: ``(x1, y1, x2, y2)`` pixels of the ``width`` x ``height`` frame.
    ``method``: ``"motion"`` or ``"full"`` (the whole frame: asked for, or no motion).
    ``reason``: one line saying how, or why the whole frame.
    ``pairs``: frame pairs compared; ``frames_read``: frames decoded into pictures;
    ``frames_grabbed``: frames passed over with ``grab()``; ``seeks``: jumps.
    """

    box: Box
    method: str
    reason: str
    width: int
    height: int
    pairs: int = 0
    frames_read: int = 0
    frames_grabbed: int = 0
    seeks: int = 0

    def as_list(self) -> List[int]:
        """The box as the challenge's box files hold it."""
        return [int(v) for v in self.box]


def full_frame_box(width: int, height: int) -> Box:
    """The whole frame as a signer box (the store's crop is then the frame itself)."""
    return 0, 0, int(width), int(height)


def sample_starts(num_frames: int, positions: int = POSITIONS, span: int = 1) -> List[int]:
    """First frames of up to ``positions`` bursts of ``span`` frames, spread evenly over the video.

    Every burst lies inside the video and no two overlap, so a short video gets fewer.
    """
    if span < 1 or num_frames < span:
        return []
    last = num_frames - span
    count = max(1, min(positions, last // span + 1))
    if count == 1:
        return [last // 2]
    return [int(round(i * last / (count - 1))) for i in range(count)]


class _MotionCounter:
    """How often each pixel of the downscaled picture moved, over the pairs compared."""

    def __init__(self, width: int, height: int):
        scale = min(1.0, ANALYSIS_SIDE / max(width, height))
        self.size = (max(8, int(round(width * scale))), max(8, int(round(height * scale))))
        self.scale = (self.size[0] / width, self.size[1] / height)
        self.counts = np.zeros((self.size[1], self.size[0]), np.int32)
        self.pairs = 0
        self.skipped = 0  # pairs taken for a cut or camera motion
        self._kernel = np.ones((3, 3), np.uint8)

    def grey(self, frame: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        if (grey.shape[1], grey.shape[0]) != self.size:
            grey = cv2.resize(grey, self.size, interpolation=cv2.INTER_AREA)
        return grey

    def add(self, before: np.ndarray, after: np.ndarray) -> None:
        """Count one pair of downscaled grey frames (:meth:`grey`)."""
        diff = cv2.absdiff(before, after)
        level = max(MIN_DIFF, NOISE_FACTOR * float(np.median(diff)))
        moving = (diff > level).astype(np.uint8)
        moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, self._kernel)  # isolated noise pixels out
        if moving.mean() > MAX_MOVING_SHARE:
            self.skipped += 1
            return
        self.counts += moving
        self.pairs += 1

    def motion_region(self) -> Optional[Tuple[float, float, float, float]]:
        """``(x1, y1, x2, y2)`` of the frequent motion in frame pixels (floats), or None without motion."""
        if self.pairs == 0 or self.counts.sum() < MIN_MOTION_SHARE * self.pairs * self.counts.size:
            return None
        frequency = self.counts / self.pairs
        frequent = np.where(frequency >= FREQUENT, frequency, 0.0)
        if not frequent.any():
            return None
        x1, x2 = _mass_extent(frequent.sum(0))
        y1, y2 = _mass_extent(frequent.sum(1))
        sx, sy = self.scale
        return x1 / sx, y1 / sy, x2 / sx, y2 / sy


def _mass_extent(mass: np.ndarray) -> Tuple[float, float]:
    """The index range holding all but :data:`MASS_QUANTILE` of ``mass`` at either end."""
    cumulative = np.cumsum(mass) / mass.sum()
    low = int(np.searchsorted(cumulative, MASS_QUANTILE))
    high = int(np.searchsorted(cumulative, 1.0 - MASS_QUANTILE)) + 1
    return float(low), float(high)


def _grow_and_square(region: Tuple[float, float, float, float], width: int, height: int) -> Box:
    """The motion region grown by :data:`GROW`, squared about its centre, clipped to the frame.

    Squared before clipping: a signer cut by the frame's edge keeps the aspect of
    what is seen.
    """
    x1, y1, x2, y2 = region
    side = max((x2 - x1), (y2 - y1)) * (1 + 2 * GROW)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return (
        max(0, int(math.floor(cx - side / 2))),
        max(0, int(math.floor(cy - side / 2))),
        min(width, int(math.ceil(cx + side / 2))),
        min(height, int(math.ceil(cy + side / 2))),
    )


def _result(counter: _MotionCounter, width: int, height: int, what: str, **counts) -> BoxEstimate:
    common = dict(width=width, height=height, pairs=counter.pairs, **counts)
    region = counter.motion_region()
    if region is None:
        skipped = f", {counter.skipped} more skipped as cuts or camera motion" if counter.skipped else ""
        why = (f"no motion in {counter.pairs} frame pairs{skipped} (a static video?)" if counter.pairs
               else f"no frame pair to compare{skipped}")
        return BoxEstimate(full_frame_box(width, height), "full", f"{what}; {why}: the whole frame", **common)
    box = _grow_and_square(region, width, height)
    return BoxEstimate(box, "motion", f"{what}; region of motion in {counter.pairs} frame pairs", **common)


def box_from_frame_pairs(pairs: Iterable[Tuple[np.ndarray, np.ndarray]], width: int, height: int) -> BoxEstimate:
    """The signer box from ``(before, after)`` frames in memory (BGR or grey uint8, ``height`` x ``width``).

    The two frames of a pair should be a fraction of a second apart
    (:data:`LAG_SECONDS`) and the pairs spread over the video; they are taken one
    at a time, so ``pairs`` may be a generator.
    """
    width, height = int(width), int(height)
    counter = _MotionCounter(width, height)
    read = 0
    for before, after in pairs:
        counter.add(counter.grey(before), counter.grey(after))
        read += 2
    return _result(counter, width, height, "frames in memory", frames_read=read)


def estimate_signer_box(path: str | os.PathLike, method: str = "motion", *, positions: int = POSITIONS,
                        burst: int = BURST) -> BoxEstimate:
    """The signer box of the video at ``path``.

    ``method="motion"``: the region of motion at ``positions`` places of the video
    (``burst`` frames read at each); the whole frame when nothing moves.
    ``method="full"``: the whole frame (only the header is read).

    Raises :class:`~datasets.store_writer.BadVideoError` naming the file when it is
    missing, OpenCV cannot open it, or not one frame decodes, and
    :class:`AutoBoxError` for an unknown ``method`` or too few ``positions`` / ``burst``.
    """
    if method not in METHODS:
        raise AutoBoxError(f"unknown signer box method {method!r}; choose from {', '.join(METHODS)}")
    if int(positions) < 1 or int(burst) < 2:
        raise AutoBoxError(f"need positions >= 1 and burst >= 2 (a pair), got {positions} and {burst}")
    path = Path(path)
    name = video_name(path)
    if not path.is_file():
        raise BadVideoError(name, f"{path}: no such video file")
    try:
        header = probe_video(path)
    except ValueError as exc:
        raise BadVideoError(name, f"{path}: {exc}") from None
    width, height = header.width, header.height
    if method == "full":
        return BoxEstimate(full_frame_box(width, height), "full", f"{path}; the whole frame, as asked", width, height)
    lag = max(1, int(round(LAG_SECONDS * header.fps)))
    span = (int(burst) - 1) * lag + 1
    what = str(path)
    if header.num_frames > 0:
        starts = sample_starts(header.num_frames, int(positions), span) or [0]
    else:
        step = max(span, int(round(UNKNOWN_COUNT_STEP_SECONDS * header.fps)))
        starts = [i * step for i in range(int(positions))]
        what += " (no frame count in its header: sampled from the start)"
    counter = _MotionCounter(width, height)
    stats = ReadStats()
    # the bursts: frames start, start + lag, ... of each; neighbours in a burst make a pair
    place = {start + k * lag: (burst_number, k) for burst_number, start in enumerate(starts) for k in range(int(burst))}
    previous: Optional[Tuple[Tuple[int, int], np.ndarray]] = None
    try:
        for index, frame in read_frames(path, header, sorted(place), stats=stats):
            if frame is None:  # does not decode: no pair with it
                previous = None
                continue
            grey = counter.grey(frame)
            burst_number, k = place[index]
            if previous is not None and previous[0] == (burst_number, k - 1):
                counter.add(previous[1], grey)
            previous = ((burst_number, k), grey)
    except ValueError as exc:  # a frame of another size than the header's
        raise BadVideoError(name, str(exc)) from None
    if stats.decoded == 0:
        raise BadVideoError(name, f"{path}: no frame could be decoded (corrupt or unreadable video)")
    return _result(counter, width, height, what, frames_read=stats.decoded, frames_grabbed=stats.grabbed,
                   seeks=stats.seeks)
