"""Windows over whole videos, streamed: the data side of scoring (validation and inference).

:class:`StreamingWindowDataset` yields, video by video, batches of windows of
``window`` frames starting every ``stride`` frames (:func:`datasets.windows.window_starts`:
the last window is moved back onto the tail, a video shorter than a window gets one
window padded by repeating its last frame). Each frame is decoded and transformed
once per video, whatever the stride: a worker keeps a rolling buffer of transformed
frames and ships, per batch, only the span the batch's windows cover plus each
window's offset into it; :func:`gather_windows` makes the windows on the compute
device. Memory is bounded by the batch, not by the video's length.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .windows import window_starts

__all__ = ["StreamingWindowDataset", "gather_windows"]


class StreamingWindowDataset(IterableDataset):
    """Batches of windows streamed video by video; every frame read once.

    Each item is one batch of up to ``batch_size`` windows of one video::

        {"frames": (L, crop, crop, 3) uint8     # frames [first_frame, first_frame + L), as the eval transform
                                                # gives them; normalised on the device (normalize_clip)
         "offsets": (B,) int64                  # window b = frames[offsets[b] : offsets[b] + window]
         "starts": (B,) int64                   # absolute first frame of each window
         "video_index": int, "num_frames": int, "num_windows": int}

    The worker keeps the transformed frames the next batch shares with this one,
    so overlapping windows cost no extra decoding. Videos are split across
    DataLoader workers round-robin; ``videos`` should be ordered longest first
    for an even split.
    """

    def __init__(self, store, videos: Sequence[str], *, window: int, stride: int, batch_size: int, transform,
                 compat: str = "none", drop_last_batch: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.store = store
        self.window = int(window)
        self.stride = int(stride)
        self.batch_size = int(batch_size)
        self.transform = transform
        self.compat = compat
        self.drop_last_batch = bool(drop_last_batch)
        # the videos streamed: those with a window (the original's windows give short ones none)
        self.videos = [v for v in videos if self.num_windows(int(store.num_frames(v)))]

    def starts(self, num_frames: int) -> np.ndarray:
        """The window starts of a video (:func:`datasets.windows.window_starts` with this dataset's
        ``compat``); with ``drop_last_batch`` only whole batches, as the original's inference ran them."""
        starts = window_starts(num_frames, self.window, self.stride, compat=self.compat)
        if self.drop_last_batch:
            starts = starts[: len(starts) // self.batch_size * self.batch_size]
        return starts

    def num_windows(self, num_frames: int) -> int:
        return len(self.starts(num_frames))

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # A tensor a worker hands over is moved into shared memory, which the receiving
        # side may release: the worker must not read it again, so it ships a copy and
        # keeps its own buffer (reading a sent buffer crashes the worker).
        for video_index in range(worker_id, len(self.videos), num_workers):
            yield from self._video_batches(video_index, copy_out=info is not None)

    def _read(self, video: str, first: int, stop: int, num_frames: int) -> torch.Tensor:
        """Transformed frames ``first..stop-1``; indices past the end repeat the last frame."""
        wanted = np.minimum(np.arange(first, stop), num_frames - 1)
        unique = np.unique(wanted)
        frames = np.asarray(self.store.read_frames(video, unique.tolist()))
        clip = self.transform(frames)
        if len(unique) != len(wanted):
            clip = clip[torch.from_numpy(np.searchsorted(unique, wanted))]
        return clip

    def _video_batches(self, video_index: int, copy_out: bool = False) -> Iterator[dict]:
        video = self.videos[video_index]
        num_frames = int(self.store.num_frames(video))
        starts = self.starts(num_frames)
        buffer, buffer_first = None, 0  # transformed frames [buffer_first, buffer_first + len(buffer))
        for b in range(0, len(starts), self.batch_size):
            batch_starts = starts[b : b + self.batch_size]
            first, stop = int(batch_starts[0]), int(batch_starts[-1]) + self.window
            kept = None
            if buffer is not None and first < buffer_first + len(buffer):
                kept = buffer[first - buffer_first :]
            read_from = first if kept is None else buffer_first + len(buffer)
            new = self._read(video, read_from, stop, num_frames) if read_from < stop else None
            parts = [p for p in (kept, new) if p is not None]
            buffer = parts[0] if len(parts) == 1 else torch.cat(parts)
            buffer_first = first
            yield {
                "frames": buffer.clone() if copy_out else buffer,
                "offsets": torch.from_numpy(batch_starts - first),
                "starts": torch.from_numpy(batch_starts.copy()),
                "video_index": video_index,
                "num_frames": num_frames,
                "num_windows": len(starts),
            }


def gather_windows(frames: torch.Tensor, offsets: Sequence[int], window: int) -> torch.Tensor:
    """``(L, C, H, W)`` frames -> ``(B, window, C, H, W)`` windows starting at ``offsets``.

    Evenly spaced windows (every batch but possibly a video's last) are a strided
    view of the frames, no copy; the network's first layer reads them once. Others
    are stacked. (``index_select`` of whole frames is ~10x slower than either on CPU.)
    """
    if len(offsets) == 0:
        raise ValueError("no window offsets")
    if max(offsets) + window > len(frames) or min(offsets) < 0:
        raise ValueError(f"windows {min(offsets)}..{max(offsets)}+{window} exceed the {len(frames)} frames given")
    frames = frames.contiguous()
    step = offsets[1] - offsets[0] if len(offsets) > 1 else 0
    if all(b - a == step for a, b in zip(offsets, offsets[1:])) and step >= 0:
        frame_stride = frames.stride(0)
        return frames.as_strided(
            (len(offsets), window, *frames.shape[1:]),
            (step * frame_stride, *frames.stride()),
            frames.storage_offset() + offsets[0] * frame_stride,
        )
    return torch.stack([frames[o : o + window] for o in offsets])
