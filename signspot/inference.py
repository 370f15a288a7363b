"""Per-checkpoint inference: every window of every video -> per-frame scores.

One checkpoint is run over a frame store and the result is one scores file
(:mod:`signspot.scores`) holding, for each video, a ``(num_frames, C + 1)``
array of class + background probabilities together with the fps, the frame
count, the checkpoint path, the head weights, the window and the stride.

How the original did it, and what changes here:

* Windows of ``window`` frames start every ``stride`` frames (stride 1 is the
  original). Each head's logits are softmaxed, nearest-upsampled to the window
  length and averaged over heads (equal weights) and over every window covering
  a frame; :class:`signspot.scores.FrameScoreAccumulator` does that arithmetic.
* Frames are decoded and transformed once per video, whatever the stride: a
  worker keeps a rolling buffer of transformed frames and ships, per batch, only
  the span of frames the batch's windows cover plus each window's offset into
  it; the windows themselves are gathered on the compute device. Memory is
  bounded by the batch, not the video length (the original held whole videos
  as float tensors: 11.9 GB for 6,000 frames).
* Every window is scored (the original dropped the last partial batch), the
  last window is shifted back so the tail of the video is covered at any
  stride, and a video shorter than the window is padded by repeating its last
  frame (the original gave such videos nothing).
* Under ``torchrun`` the videos are sharded across ranks; each rank writes its
  part beside the output and rank 0 merges them (so the output folder must be
  on a file system every rank sees, which it is on one machine).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from signspot.io import atomic_dump_pickle, safe_pickle_load

__all__ = [
    "InferenceError",
    "InferenceSpec",
    "RELEASED_SPEC",
    "spec_from_checkpoint",
    "window_starts",
    "gather_windows",
    "StreamingWindowDataset",
    "split_name",
    "run_name",
    "output_path",
    "load_inference_model",
    "infer_videos",
    "fix_malloc_mmap_threshold",
    "main",
]

SPLIT_KEYWORDS = ("test", "valid", "train")
CHECKPOINT_FOLDER_NAMES = ("ckpts", "checkpoints")


class InferenceError(Exception):
    """A problem with the user's input to inference (checkpoint, store, options)."""


@dataclasses.dataclass(frozen=True)
class InferenceSpec:
    """Everything inference needs to know about a checkpoint, resolved once."""

    model_name: str = "hs_i3d"
    num_classes: int = 60
    width: float = 1.0
    window: int = 32
    resize: int = 256
    crop: int = 224


# Released checkpoints carry no config: they are the original architecture.
RELEASED_SPEC = InferenceSpec()

# Where each field may sit in a checkpoint's (nested, plain-dict) config; the
# first path present wins. Keeps inference working across config revisions.
_CONFIG_PATHS = {
    "model_name": (("model", "name"), ("model", "arch"), ("model_name",), ("arch",)),
    "num_classes": (("model", "num_classes"), ("data", "num_classes"), ("num_classes",)),
    "width": (("model", "width"), ("model", "width_mult"), ("width",)),
    "window": (("data", "window"), ("model", "window"), ("data", "clip_length"), ("window",)),
    "resize": (("data", "resize"), ("transform", "resize"), ("data", "resize_size"), ("resize",)),
    "crop": (("data", "crop"), ("transform", "crop"), ("data", "crop_size"), ("crop",)),
}


def _lookup(config: Mapping, path: Sequence[str]):
    node = config
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def spec_from_checkpoint(checkpoint: Mapping, source: str = "") -> InferenceSpec:
    """Resolve the model/window/transform settings stored in ``checkpoint["config"]``.

    A checkpoint without a config (the released ones) gets :data:`RELEASED_SPEC`;
    fields a config lacks keep the original's values.
    """
    config = checkpoint.get("config") if isinstance(checkpoint, Mapping) else None
    if config is None:
        return RELEASED_SPEC
    if not isinstance(config, Mapping):
        raise InferenceError(f"{source}: checkpoint 'config' is a {type(config).__name__}, expected a dict")
    values = {}
    for field in dataclasses.fields(InferenceSpec):
        default = getattr(RELEASED_SPEC, field.name)
        found = None
        for path in _CONFIG_PATHS[field.name]:
            found = _lookup(config, path)
            if found is not None:
                break
        if found is None:
            values[field.name] = default
            continue
        try:
            values[field.name] = type(default)(found)
        except (TypeError, ValueError):
            raise InferenceError(
                f"{source}: checkpoint config {'.'.join(path)}={found!r} is not a {type(default).__name__}"
            ) from None
    return InferenceSpec(**values)


def window_starts(num_frames: int, window: int, stride: int) -> np.ndarray:
    """First frame of every window scored on a ``num_frames``-frame video.

    Windows start every ``stride`` frames; the last one is moved back to end on
    the last frame so the tail is covered; a video shorter than the window gets
    one window at 0 (padded by the reader).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    last = max(num_frames - window, 0)
    starts = np.arange(0, last + 1, stride, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, last)
    return starts


class StreamingWindowDataset(IterableDataset):
    """Batches of windows streamed video by video; every frame read once.

    Each item is one batch of up to ``batch_size`` windows of one video::

        {"frames": (L, 3, crop, crop) float32   # frames [first_frame, first_frame + L)
         "offsets": (B,) int64                  # window b = frames[offsets[b] : offsets[b] + window]
         "starts": (B,) int64                   # absolute first frame of each window
         "video_index": int, "num_frames": int, "num_windows": int}

    The worker keeps the transformed frames the next batch shares with this one,
    so overlapping windows cost no extra decoding. Videos are split across
    DataLoader workers round-robin; ``videos`` should be ordered longest first
    for an even split.
    """

    def __init__(self, store, videos: Sequence[str], *, window: int, stride: int, batch_size: int, transform):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.store = store
        self.videos = list(videos)
        self.window = int(window)
        self.stride = int(stride)
        self.batch_size = int(batch_size)
        self.transform = transform

    def num_windows(self, num_frames: int) -> int:
        return len(window_starts(num_frames, self.window, self.stride))

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
        starts = window_starts(num_frames, self.window, self.stride)
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


# ----------------------------------------------------------------------------- naming


def split_name(lmdb_dir: str | os.PathLike) -> str:
    """``test`` / ``valid`` / ``train`` when the store folder's name says so, else that name."""
    folder = Path(lmdb_dir).resolve().name
    lowered = folder.lower()
    for keyword in SPLIT_KEYWORDS:
        if keyword in lowered:
            return keyword
    return folder


def run_name(checkpoint_path: str | os.PathLike) -> str:
    """The training run a checkpoint belongs to: the folder above ``ckpts/`` (else its parent)."""
    parent = Path(checkpoint_path).resolve().parent
    if parent.name in CHECKPOINT_FOLDER_NAMES and parent.parent.name:
        return parent.parent.name
    return parent.name


def output_path(save_dir, lmdb_dir, checkpoint_path, split: str | None = None) -> Path:
    """``{save_dir}/{split}/{run}_{checkpoint stem}/<SCORES_FILENAME>``, as the original laid it out."""
    from signspot.scores import SCORES_FILENAME

    split = split or split_name(lmdb_dir)
    checkpoint_path = Path(checkpoint_path)
    return Path(save_dir) / split / f"{run_name(checkpoint_path)}_{checkpoint_path.stem}" / SCORES_FILENAME


# ----------------------------------------------------------------------------- model


def load_inference_model(checkpoint_path: str | os.PathLike, *, window: int | None = None):
    """Rebuild the model a checkpoint was trained as and load its weights.

    Returns ``(model, spec)`` with the model in eval mode on the CPU. ``window``
    overrides the checkpoint's window.
    """
    from models import build_model, infer_model_config, load_checkpoint, load_model_weights

    path = Path(checkpoint_path)
    if path.is_dir():
        candidates = sorted(p.name for p in path.glob("*.pt"))[:5]
        hint = f" (checkpoints inside: {', '.join(candidates)})" if candidates else ""
        raise InferenceError(f"{path}: is a folder; --checkpoint_dir takes one checkpoint file{hint}")
    if not path.is_file():
        raise InferenceError(f"{path}: no such checkpoint file")
    try:
        checkpoint = load_checkpoint(path)
    except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as exc:
        raise InferenceError(_naming(path, exc)) from exc
    spec = spec_from_checkpoint(checkpoint, source=str(path))
    if checkpoint.get("config") is None:
        # No config (released checkpoints): the original architecture, with the class
        # count and width read off the weights so other config-less files load too.
        try:
            shape = infer_model_config(checkpoint.get("model", checkpoint))
            spec = dataclasses.replace(spec, num_classes=int(shape["num_classes"]), width=float(shape["width"]))
        except (ValueError, KeyError, AttributeError, TypeError):
            pass  # not an HS-I3D state dict: load_model_weights below says what is wrong
    if window is not None:
        spec = dataclasses.replace(spec, window=int(window))
    if spec.window < 8 or spec.window % 8:
        raise InferenceError(f"window must be a positive multiple of 8 (HS-I3D's coarsest head), got {spec.window}")
    try:
        model = build_model(spec.model_name, num_classes=spec.num_classes, width=spec.width)
    except (KeyError, ValueError) as exc:
        raise InferenceError(f"{path}: cannot build model {spec.model_name!r}: {exc}") from exc
    try:
        load_model_weights(model, checkpoint, source=str(path))
    except (ValueError, KeyError, RuntimeError) as exc:
        raise InferenceError(_naming(path, exc)) from exc
    model.eval()
    return model, spec


def _naming(path: Path, exc: Exception) -> str:
    """The error's message, prefixed with the file unless it names it already."""
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return message if str(path) in message else f"{path}: {message}"


# ----------------------------------------------------------------------------- inference


def _autocast(device: torch.device, amp: str | None):
    if not amp:
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype)


def fix_malloc_mmap_threshold(threshold: int = 1 << 20) -> bool:
    """Keep glibc from hoarding the large blocks every batch allocates and frees.

    glibc raises its mmap threshold each time a large block is freed; later blocks
    of that size then come from the heap, which is not given back, and a process
    that allocates a few tens of MB per batch grows by that much per batch (1.6 GB
    after 25 batches of 224-px frames). A fixed threshold keeps such blocks in mmap,
    returned on free. Returns False where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, int(threshold)))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def _worker_init(_worker_id: int) -> None:
    # Decoding/resizing runs in many workers at once; one thread each avoids oversubscription.
    import cv2

    cv2.setNumThreads(1)
    fix_malloc_mmap_threshold()


def infer_videos(
    model: torch.nn.Module,
    store,
    videos: Sequence[str],
    *,
    window: int,
    stride: int = 1,
    batch_size: int = 8,
    transform,
    device: str | torch.device = "cpu",
    amp: str | None = None,
    workers: int = 0,
    flip_tta: bool = False,
    head_weights: Mapping[str, float] | None = None,
    progress: bool = True,
) -> dict[str, dict]:
    """Score every frame of ``videos``; returns ``{video: {"scores", "fps", "num_frames"}}``.

    ``scores`` is a float16 ``(num_frames, C + 1)`` array of probabilities.
    With ``flip_tta`` each window is also run mirrored left-right and both
    count as windows of equal weight (their probabilities are averaged).
    """
    from datasets.transforms import normalize_clip
    from models import HEAD_NAMES
    from signspot.scores import FrameScoreAccumulator

    if stride > window:
        raise InferenceError(
            f"stride {stride} > window {window} would leave frames between windows without scores"
        )
    device = torch.device(device)
    head_weights = dict(head_weights) if head_weights is not None else {h: 1.0 / len(HEAD_NAMES) for h in HEAD_NAMES}
    # Longest first so round-robin sharding over workers stays balanced.
    frame_counts = {v: int(store.num_frames(v)) for v in videos}
    for video, count in frame_counts.items():
        if count < 1:
            raise InferenceError(f"{getattr(store, 'path', 'frame store')}: video {video!r} has no frames")
    ordered = sorted(videos, key=lambda v: (-frame_counts[v], v))
    dataset = StreamingWindowDataset(
        store, ordered, window=window, stride=stride, batch_size=batch_size, transform=transform
    )
    total_windows = sum(dataset.num_windows(frame_counts[v]) for v in ordered)
    workers = min(int(workers), len(ordered))
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init if workers > 0 else None,
        prefetch_factor=2 if workers > 0 else None,
        # Fresh interpreters: an LMDB environment inherited through fork cannot be reopened
        # in the child, and the store was opened here to count frames.
        multiprocessing_context="spawn" if workers > 0 else None,
    )
    model = model.to(device).eval()
    num_channels = None
    pending: dict[int, list] = {}  # video_index -> [accumulator, windows seen]
    results: dict[str, dict] = {}
    bar = _progress(total_windows, progress, desc="windows")
    with torch.inference_mode():
        for batch in loader:
            frames = normalize_clip(batch["frames"].to(device, non_blocking=True))  # uint8 -> float, on the device
            clips = gather_windows(frames, batch["offsets"].tolist(), window)
            n_windows = len(clips)
            views = [clips, clips.flip(-1)] if flip_tta else [clips]
            video_index = int(batch["video_index"])
            starts = batch["starts"].numpy()
            for view in views:
                with _autocast(device, amp):
                    outputs = model(view)
                head_logits = {h: outputs[h].float().cpu().numpy() for h in HEAD_NAMES}
                if num_channels is None:
                    num_channels = head_logits[HEAD_NAMES[0]].shape[-1]
                if video_index not in pending:
                    accumulator = FrameScoreAccumulator(
                        int(batch["num_frames"]), num_channels, window, head_weights
                    )
                    pending[video_index] = [accumulator, 0]
                pending[video_index][0].add(starts, head_logits)
            pending[video_index][1] += n_windows
            bar.update(n_windows)
            if pending[video_index][1] == int(batch["num_windows"]):
                accumulator, _ = pending.pop(video_index)
                video = ordered[video_index]
                results[video] = {
                    "scores": np.asarray(accumulator.result(), dtype=np.float16),
                    "fps": float(store.fps(video)),
                    "num_frames": frame_counts[video],
                }
    bar.close()
    if pending:  # a worker died without raising, or a batch went missing
        missing = [ordered[i] for i in pending]
        raise RuntimeError(f"inference ended with videos not fully scored: {missing}")
    return {v: results[v] for v in videos}


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


def _progress(total: int, enabled: bool, desc: str):
    if enabled:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="win", dynamic_ncols=True)

    class _Silent:
        def update(self, n):
            pass

        def close(self):
            pass

    return _Silent()


# ----------------------------------------------------------------------------- distributed


def _distributed_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def _shard(videos: Sequence[str], frame_counts: Mapping[str, int], rank: int, world: int) -> list[str]:
    """Round-robin over videos ordered longest first: ranks get similar amounts of work."""
    ordered = sorted(videos, key=lambda v: (-frame_counts[v], v))
    return ordered[rank::world]


def _resolve_device(device: str | None, local_rank: int, world: int) -> torch.device:
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
        return torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InferenceError(f"--device {device}: CUDA is not available on this machine")
        if world > 1 and resolved.index is None:
            resolved = torch.device("cuda", local_rank)
    return resolved


# ----------------------------------------------------------------------------- entry point


def main(
    lmdb_dir: str,
    checkpoint_dir: str,
    save_dir: str = "chalearn_results",
    *,
    split: str | None = None,
    stride: int = 1,
    batch_size: int = 8,
    device: str | None = None,
    amp: str | None = None,
    workers: int = 2,
    videos: Sequence[str] | None = None,
    flip_tta: bool = False,
    window: int | None = None,
    progress: bool = True,
) -> Path | None:
    """Run one checkpoint over a frame store and write its per-frame scores file.

    ``checkpoint_dir`` is one checkpoint file (the original's flag name). Returns
    the path written (``None`` on ranks other than 0 under ``torchrun``).
    """
    from datasets.frame_store import FrameStore, FrameStoreError
    from datasets.transforms import EvalClipTransform
    from signspot.scores import save_frame_scores

    if stride < 1:
        raise InferenceError(f"--stride must be >= 1, got {stride}")
    if batch_size < 1:
        raise InferenceError(f"--batch-size must be >= 1, got {batch_size}")
    if workers < 0:
        raise InferenceError(f"--workers must be >= 0, got {workers}")
    if amp not in (None, "", "bf16", "fp16"):
        raise InferenceError(f"--amp must be bf16 or fp16, got {amp!r}")
    amp = amp or None
    fix_malloc_mmap_threshold()

    rank, world, local_rank = _distributed_env()
    device = _resolve_device(device, local_rank, world)
    if amp == "fp16" and device.type != "cuda":
        raise InferenceError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")

    lmdb_path = Path(lmdb_dir)
    if not lmdb_path.exists():
        raise InferenceError(f"{lmdb_path}: frame store not found")
    try:
        store = FrameStore(lmdb_path)
        all_videos = list(store.videos)
    except (FrameStoreError, OSError, ValueError, KeyError) as exc:
        raise InferenceError(f"{lmdb_path}: cannot open frame store: {exc}") from exc
    if videos:
        wanted = [name for item in videos for name in str(item).split(",") if name]
        unknown = [v for v in wanted if v not in set(all_videos)]
        if unknown:
            raise InferenceError(
                f"{lmdb_path}: unknown video(s) {', '.join(unknown)}; the store holds {len(all_videos)} videos"
                + (f", e.g. {', '.join(all_videos[:3])}" if all_videos else "")
            )
        selected = list(dict.fromkeys(wanted))
    else:
        selected = all_videos
    if not selected:
        raise InferenceError(f"{lmdb_path}: the frame store holds no videos")

    model, spec = load_inference_model(checkpoint_dir, window=window)
    if stride > spec.window:
        raise InferenceError(f"--stride {stride} > window {spec.window}: frames between windows would get no scores")
    out_path = output_path(save_dir, lmdb_dir, checkpoint_dir, split)
    transform = EvalClipTransform(resize=spec.resize, crop=spec.crop)
    from models import HEAD_NAMES

    head_weights = {h: 1.0 / len(HEAD_NAMES) for h in HEAD_NAMES}

    from signspot.distributed import init_distributed, shutdown_distributed

    created_group = world > 1 and not dist.is_initialized()
    if world > 1:
        # Rank 0 waits at the merge for the slowest rank: allow for long videos.
        init_distributed(device.type == "cuda", timeout_s=6 * 3600.0)
    try:
        frame_counts = {v: int(store.num_frames(v)) for v in selected}
        mine = _shard(selected, frame_counts, rank, world)
        started = time.perf_counter()
        scores = infer_videos(
            model,
            store,
            mine,
            window=spec.window,
            stride=stride,
            batch_size=batch_size,
            transform=transform,
            device=device,
            amp=amp,
            workers=workers,
            flip_tta=flip_tta,
            head_weights=head_weights,
            progress=progress and rank == 0,
        )
        if world > 1:
            scores = _gather_to_rank0(scores, out_path, rank, world)
        if rank != 0:
            return None
        ordered_scores = {v: scores[v] for v in selected}
        save_frame_scores(
            out_path,
            ordered_scores,
            checkpoint=str(Path(checkpoint_dir).resolve()),
            head_weights=head_weights,
            window=spec.window,
            stride=stride,
            extra={
                "model": spec.model_name,
                "num_classes": spec.num_classes,
                "width": spec.width,
                "resize": spec.resize,
                "crop": spec.crop,
                "flip_tta": bool(flip_tta),
                "amp": amp or "off",
                "frame_store": str(lmdb_path.resolve()),
            },
        )
        elapsed = time.perf_counter() - started
        print(f"wrote {out_path} ({len(ordered_scores)} videos, {elapsed:.1f} s)", file=sys.stderr)
        return out_path
    finally:
        if created_group:
            shutdown_distributed()


def _gather_to_rank0(scores: dict, out_path: Path, rank: int, world: int) -> dict:
    """Each rank writes its videos beside the output; rank 0 reads and removes every part."""
    part = out_path.parent / f".{out_path.stem}.rank{rank}-of-{world}.part.pkl"
    from signspot.distributed import barrier

    atomic_dump_pickle(scores, part)
    barrier()
    merged: dict = {}
    if rank == 0:
        for other in range(world):
            other_part = out_path.parent / f".{out_path.stem}.rank{other}-of-{world}.part.pkl"
            merged.update(safe_pickle_load(other_part, allow_numpy=True))
    barrier()  # nobody deletes a part before rank 0 has read them all
    part.unlink(missing_ok=True)
    return merged
