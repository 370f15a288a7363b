"""Training windows over a frame store, and where the windows of whole videos start.

Frame conventions (shared with the fold CSVs and the decoder): frames are
0-based; a sign covers frames ``start_frame ..= end_frame`` (inclusive: a
decoded run ``s ..= e`` becomes ``[cls, s/fps, e/fps]``, so the inclusive end
maps back onto the sign's end time). A window is ``window`` consecutive frames;
in a video shorter than a window the last frame is repeated (those padded
positions are background in targets), so no video is ever dropped.

* :class:`TrainWindowDataset`: one sample per fold-CSV row (SPEC): with
  probability ``neg_prob`` a uniformly random window of the row's video, else a
  random start in ``[max(start - context, 0), min(end + context, n) - window)``; a
  random window starts in ``[0, n - window - 2]``, as the original drew them.
  Targets ``(window, C + 1)`` are multi-hot: every sign of the video (all its CSV
  rows) sharing at least 2 frames with the window is set on its frames; column C
  (background) is 1 where no sign is. All randomness comes from ``(seed, epoch, index)``.
* :func:`window_starts`: where the windows of validation and inference start
  (:class:`datasets.video_windows.StreamingWindowDataset` streams them).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from .folds import FOLD_COLUMNS
from .frame_store import FrameStore
from .transforms import TrainClipTransform

__all__ = [
    "FOLD_COLUMNS",
    "read_fold_csv",
    "window_indices",
    "window_starts",
    "COMPAT_MODES",
    "sample_seed",
    "TrainWindowDataset",
    "collate_windows",
    "BatchLease",
]

StoreLike = Union[FrameStore, str, os.PathLike]


def _as_store(store: StoreLike) -> FrameStore:
    return store if isinstance(store, FrameStore) else FrameStore(store)


def read_fold_csv(path: str | os.PathLike) -> List[dict]:
    """Rows of a fold CSV (``video,label,start_frame,end_frame,fcount``), checked.

    Raises ``ValueError`` naming the file and line for a missing column, a
    non-integer field, ``start_frame > end_frame`` or a negative value.
    """
    path = Path(path)
    try:
        handle = path.open(newline="")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such fold CSV") from None
    rows = []
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in FOLD_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected {','.join(FOLD_COLUMNS)}")
        for line, rec in enumerate(reader, start=2):
            try:
                row = {"video": rec["video"]}
                for key in FOLD_COLUMNS[1:]:
                    row[key] = int(rec[key])
            except (TypeError, ValueError):
                raise ValueError(f"{path}: line {line}: {dict(rec)} has a non-integer field") from None
            if min(row["label"], row["start_frame"], row["end_frame"]) < 0:
                raise ValueError(f"{path}: line {line}: negative value in {row}")
            if row["start_frame"] > row["end_frame"]:
                raise ValueError(f"{path}: line {line}: start_frame > end_frame in {row}")
            rows.append(row)
    return rows


def window_indices(start: int, window: int, num_frames: int) -> np.ndarray:
    """Frame indices of the window at ``start``; past the last frame the last frame repeats."""
    return np.minimum(np.arange(start, start + window), num_frames - 1)


COMPAT_MODES = ("none", "original")  # --compat: signspot's windows, or the original's


def window_starts(num_frames: int, window: int, stride: int, *, compat: str = "none") -> np.ndarray:
    """First frame of every window scored on a ``num_frames``-frame video (validation and inference).

    ``compat="none"`` (signspot's): windows start every ``stride`` frames; the last one is
    moved back to end on the last frame, so the tail is covered at any stride; a video of
    at most ``window`` frames has the single start 0 (a window padded by the reader).

    ``compat="original"``, the original's windows: ``range(0, num_frames - window, stride)``: the last
    possible start is never run, frames after the last window are left without scores, and
    a video of at most ``window`` frames gets no window at all (an empty array).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    if compat == "original":
        return np.arange(0, num_frames - window, stride, dtype=np.int64)
    if compat != "none":
        raise ValueError(f"compat must be one of {COMPAT_MODES}, got {compat!r}")
    last = max(num_frames - window, 0)
    starts = np.arange(0, last + 1, stride, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, last)
    return starts


def sample_seed(seed: int, epoch: int, index: int) -> np.random.SeedSequence:
    """The seed of one sample: a function of (seed, epoch, index) only."""
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


class TrainWindowDataset(Dataset):
    """Training windows, one sample per fold-CSV row (see the module docstring).

    ``transform(frames, generator)`` maps a uint8 ``(T, H, W, 3)`` clip to a tensor;
    default :class:`TrainClipTransform` (256 -> random crop 224).
    Item: ``{"clip", "target" (T, C+1) float32, "label", "video_index", "start"}``.
    """

    def __init__(
        self,
        csv_path: str | os.PathLike,
        store: StoreLike,
        num_classes: int,
        *,
        window: int = 32,
        context: int = 16,
        neg_prob: float = 0.0,
        transform=None,
        seed: int = 0,
    ):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not 0.0 <= neg_prob <= 1.0:
            raise ValueError(f"neg_prob must be in [0, 1], got {neg_prob}")
        self.csv_path = str(csv_path)
        self.store = _as_store(store)
        self.num_classes = int(num_classes)
        self.window, self.context, self.neg_prob = int(window), int(context), float(neg_prob)
        self.transform = TrainClipTransform() if transform is None else transform
        self.seed = int(seed)
        self.epoch = 0
        self._frames: Optional[np.ndarray] = None  # decode buffer, reused when the transform copies

        rows = read_fold_csv(csv_path)
        if not rows:
            raise ValueError(f"{csv_path}: no rows")
        self.videos: List[str] = sorted({r["video"] for r in rows})
        video_index = {v: i for i, v in enumerate(self.videos)}
        missing = [v for v in self.videos if v not in self.store]
        if missing:
            raise KeyError(f"{csv_path}: video(s) {missing[:5]} are not in the frame store {self.store.path}")
        bad = [r for r in rows if r["label"] >= self.num_classes]
        if bad:
            raise ValueError(
                f"{csv_path}: label {bad[0]['label']} of video {bad[0]['video']!r} is outside [0, {num_classes})"
            )
        # The store's count is what can be read; a CSV written from another store may differ.
        self.num_frames = np.array([self.store.num_frames(v) for v in self.videos], dtype=np.int64)
        self.labels = np.array([r["label"] for r in rows], dtype=np.int64)
        self.row_video = np.array([video_index[r["video"]] for r in rows], dtype=np.int64)
        self.row_start = np.array([r["start_frame"] for r in rows], dtype=np.int64)
        self.row_end = np.array([r["end_frame"] for r in rows], dtype=np.int64)
        self.signs: List[np.ndarray] = []  # per video: (k, 3) label, start_frame, end_frame
        for i in range(len(self.videos)):
            sel = self.row_video == i
            self.signs.append(np.stack([self.labels[sel], self.row_start[sel], self.row_end[sel]], axis=1))

    def __len__(self) -> int:
        return len(self.labels)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_frames"] = None  # the decode buffer is not sent to loader workers
        return state

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def window_start(self, index: int, rng: np.random.Generator) -> int:
        """The start frame of sample ``index``'s window, drawn from ``rng``."""
        n = int(self.num_frames[self.row_video[index]])
        last = n - self.window  # the last start that keeps the window inside the video
        use_negative = rng.random() < self.neg_prob
        offset = rng.random()  # always drawn: the stream does not depend on the branch
        if last <= 0:
            return 0
        if use_negative:  # the original's randint(0, n - window - 1): starts 0 ..= n - window - 2
            return int(offset * max(last - 1, 1))
        lo = max(int(self.row_start[index]) - self.context, 0)
        hi = min(int(self.row_end[index]) + self.context, n) - self.window
        if hi <= lo:
            # Sign plus context no longer than a window: the window that ends where the
            # context ends (the original's choice), kept inside the video.
            return int(min(max(hi, 0), last))
        return lo + int(offset * (hi - lo))

    def target(self, video_index: int, start: int) -> np.ndarray:
        """Multi-hot ``(window, C + 1)`` target of the window at ``start``.

        A sign is a target when it shares at least 2 frames with the window, as in the
        original (a 1-frame overlap, or a 1-frame sign, is not); it is set on those frames.
        """
        target = np.zeros((self.window, self.num_classes + 1), dtype=np.float32)
        stop = min(start + self.window, int(self.num_frames[video_index])) - 1  # last real frame
        signs = self.signs[video_index]
        lo = np.maximum(signs[:, 1], start)
        hi = np.minimum(signs[:, 2], stop)
        overlapping = lo < hi  # at least two shared frames; only the few signs inside the window are visited
        for label, a, b in zip(signs[overlapping, 0].tolist(), lo[overlapping].tolist(), hi[overlapping].tolist()):
            target[a - start : b - start + 1, label] = 1.0
        target[:, self.num_classes] = target[:, : self.num_classes].max(axis=1) == 0
        return target

    def _draw(self, index: int):
        """Sample ``index``'s video, window start and augmentation generator (a function of
        seed, epoch and index only)."""
        seq = sample_seed(self.seed, self.epoch, index)
        rng = np.random.default_rng(seq)
        generator = torch.Generator().manual_seed(int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1)))
        video_index = int(self.row_video[index])
        return video_index, self.window_start(index, rng), generator

    def _read(self, video_index: int, start: int) -> np.ndarray:
        n = int(self.num_frames[video_index])
        indices = window_indices(start, self.window, n)
        if not getattr(self.transform, "copies_input", False):
            return self.store.read_frames(self.videos[video_index], indices)
        # The transform copies: every window decodes into the same memory.
        self._frames = self.store.read_frames(self.videos[video_index], indices, out=self._frames)
        return self._frames

    def __getitem__(self, index: int) -> Dict[str, object]:
        index = int(index)
        video_index, start, generator = self._draw(index)
        return {
            "clip": self.transform(self._read(video_index, start), generator),
            "target": torch.from_numpy(self.target(video_index, start)),
            "label": int(self.labels[index]),
            "video_index": video_index,
            "start": start,
        }

    def _transform_per_frame(self, video_index: int, start: int, generator, clip: np.ndarray):
        """The transform's loader stage with each frame handed over as soon as it is decoded
        (while it is in the CPU cache); the same result as ``transform(frames, generator, out=clip)``."""
        transform = self.transform
        params = transform.sample_params(generator)

        def take(frame: np.ndarray, positions: List[int]) -> None:
            transform.frame_stage(frame, params, clip[positions[0]])
            for pos in positions[1:]:  # padding repeats the last frame
                clip[pos] = clip[positions[0]]

        n = int(self.num_frames[video_index])
        self.store.for_each_frame(self.videos[video_index], window_indices(start, self.window, n), take)
        return transform.clip_stage(clip, params)

    def get_batch(self, indices: Sequence[int]) -> Dict[str, object]:
        """Samples ``indices`` already collated: equal to ``default_collate([self[i] for i in indices])``.

        Each clip is written straight into its slot of the batch tensor, which a
        DataLoader worker allocates in shared memory (as ``default_collate`` does):
        no per-sample tensors and no stacking copy, which on a 32x224x224 clip costs
        as much as its augmentation. Transforms that work frame by frame get each
        frame as it is decoded. Needs a transform with ``loader_shape`` (the
        project's transforms); any other transform goes through ``default_collate``.
        """
        loader_shape = getattr(self.transform, "loader_shape", None)
        if loader_shape is None:
            return default_collate([self[i] for i in indices])
        indices = [int(i) for i in indices]
        clips, lease = _clip_batch((len(indices), *loader_shape(self.window)))
        targets = _batch_tensor((len(indices), self.window, self.num_classes + 1), torch.float32)
        slots, target_slots = clips.numpy(), targets.numpy()
        params, video_indices, starts = [], [], []
        per_frame = getattr(self.transform, "per_frame", False)
        for slot, index in enumerate(indices):
            video_index, start, generator = self._draw(index)
            if per_frame:
                result = self._transform_per_frame(video_index, start, generator, slots[slot])
            else:
                result = self.transform(self._read(video_index, start), generator, out=slots[slot])
            if isinstance(result, dict):
                params.append(result["params"])
            target_slots[slot] = self.target(video_index, start)
            video_indices.append(video_index)
            starts.append(start)
        batch = {
            "clip": {"frames": clips, "params": torch.stack(params)} if params else clips,
            "target": targets,
            "label": torch.as_tensor(self.labels[indices], dtype=torch.int64),
            "video_index": torch.tensor(video_indices, dtype=torch.int64),
            "start": torch.tensor(starts, dtype=torch.int64),
        }
        if lease is not None:
            batch["lease"] = lease
        return batch


def _batch_tensor(shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor, in shared memory when made in a DataLoader worker (sent without a copy).

    Otherwise numpy allocates it: numpy asks Linux for transparent huge pages on large
    arrays, which makes first writes to a fresh batch several times cheaper than with
    torch's allocator (``bench/bench_data.py``).
    """
    if get_worker_info() is None:
        return torch.from_numpy(np.empty(shape, dtype=torch.empty(0, dtype=dtype).numpy().dtype))
    numel = int(np.prod(shape))
    storage = torch.UntypedStorage._new_shared(numel * torch.empty(0, dtype=dtype).element_size())
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


class BatchLease:
    """Comes with a batch whose clips a loader worker wrote into reused shared memory.

    :meth:`release` (once the clips have been copied to the device or turned into
    the network's float input) hands that memory back to the worker, which then
    writes a later batch into it instead of filling fresh shared memory, whose pages
    the kernel must zero first (a cost of the order of decoding the clip). A
    batch never released is never overwritten; the worker then makes new memory.
    Passes through the DataLoader's pinning unchanged.
    """

    def __init__(self, flags: torch.Tensor, slot: int):
        self.flags, self.slot = flags, int(slot)

    def release(self) -> None:
        self.flags[self.slot] = 0

    def pin_memory(self, *args, **kwargs) -> "BatchLease":
        return self


class _SharedBatchPool:
    """A worker's clip batch buffers in shared memory, each marked busy until released."""

    size = 8  # more than the batches a worker can have in flight (the DataLoader's prefetch_factor)

    def __init__(self):
        self.flags = torch.zeros(self.size, dtype=torch.uint8).share_memory_()
        self.buffers: List[Optional[torch.Tensor]] = [None] * self.size

    def acquire(self, shape: tuple):
        for slot in range(self.size):
            if int(self.flags[slot]) == 0:
                buffer = self.buffers[slot]
                if buffer is None or tuple(buffer.shape) != shape:
                    buffer = self.buffers[slot] = _batch_tensor(shape, torch.uint8)
                self.flags[slot] = 1
                return buffer, BatchLease(self.flags, slot)
        return _batch_tensor(shape, torch.uint8), None  # all in use: the consumer does not release


_POOL: Optional[_SharedBatchPool] = None  # one per worker process


def _clip_batch(shape: tuple):
    """The uint8 clip batch tensor and its :class:`BatchLease` (None outside loader workers)."""
    global _POOL
    if get_worker_info() is None:
        return _batch_tensor(shape, torch.uint8), None
    if _POOL is None:
        _POOL = _SharedBatchPool()
    return _POOL.acquire(shape)


def collate_windows(batch):
    """``collate_fn`` for loaders whose dataset fetches whole batches (:meth:`TrainWindowDataset.get_batch`
    through ``__getitems__``): such batches pass through; a list of samples is collated as usual."""
    return batch if isinstance(batch, dict) else default_collate(batch)
