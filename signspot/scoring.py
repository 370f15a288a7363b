"""Windows -> per-frame scores: the one path of validation and inference.

:func:`score_videos` streams the windows of whole videos
(:class:`datasets.video_windows.StreamingWindowDataset`), runs the network on them
and folds each batch into a :class:`FrameScoreAccumulator`, the original system's
aggregation (SPEC, "Inference"): softmax each head over classes, nearest-upsample it
in time to the window length, take the weighted sum over heads (inference: 1/5 each;
validation: head "x" alone, ``eval.head_weights``), add it to frames ``[s, s + window)``
of the window starting at ``s``, and divide each frame by the total weight it
received. Rows past the video's end (a padded short video) are discarded.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from signspot.datasets.transforms import normalize_clip
from signspot.datasets.video_windows import StreamingWindowDataset, gather_windows
from signspot.models.hs_i3d import HSI3D

from .formats.errors import SignspotError
from .formats.scores import as_numpy
from .formats.timebase import HEAD_NAMES
from .runtime import Runtime, loader_worker_init

__all__ = [
    "AMP_MODES",
    "ENGINES",
    "ScoringOptions",
    "on_device",
    "FrameScoreAccumulator",
    "ScoringError",
    "equal_head_weights",
    "head_weights_from",
    "score_videos",
    "score_videos_with_models",
    "softmax",
    "upsample_nearest",
]


class ScoringError(SignspotError, ValueError):
    """Scoring options or inputs that cannot give every frame a score."""


AMP_MODES = ("bf16", "fp16")
ENGINES = ("torch", "openvino")  # --engine: what runs the network (openvino: CPU, f32; signspot.openvino_engine)


@dataclasses.dataclass(frozen=True)
class ScoringOptions:
    """How checkpoints are run over videos, checked once for every command that runs one.

    The command line declares the flags once (:mod:`signspot.cli._flags`); inference and
    ``spot.py`` build one of these from them. ``window`` None: each checkpoint's own.
    """

    device: Optional[str] = None  # --device: cpu, cuda, cuda:N; None: CUDA when available
    amp: Optional[str] = None  # --amp: bf16 or fp16 autocast; None: fp32
    stride: int = 1  # --stride: frames between window starts (1: the original)
    window: Optional[int] = None  # --window: frames per window, a multiple of the model's temporal stride
    batch_size: int = 8  # --batch-size: windows per forward pass
    workers: int = 2  # --workers: processes decoding frames (0: in this process)
    flip_tta: bool = False  # --flip-tta: also score mirrored windows and average
    engine: str = "torch"  # --engine: torch, or openvino (CPU only, f32; no --device means the CPU)

    def __post_init__(self):
        def positive_int(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        problems = [
            (not positive_int(self.stride), f"--stride must be >= 1, got {self.stride!r}"),
            (not positive_int(self.batch_size), f"--batch-size must be >= 1, got {self.batch_size!r}"),
            (not (isinstance(self.workers, int) and self.workers >= 0), f"--workers must be >= 0, got {self.workers!r}"),
            (self.amp not in (None, *AMP_MODES), f"--amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}"),
            (self.window is not None and not (positive_int(self.window) and self.window % HSI3D.TEMPORAL_STRIDE == 0),
             f"--window must be a positive multiple of {HSI3D.TEMPORAL_STRIDE}, got {self.window!r}"),
            (self.engine not in ENGINES, f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}"),
            (self.engine == "openvino" and self.amp is not None,
             f"--engine openvino runs in f32 (its bf16 changes frames' argmax): drop --amp {self.amp}"),
            (self.engine == "openvino" and self.device is not None and not str(self.device).startswith("cpu"),
             f"--engine openvino runs on the CPU, not --device {self.device}: use --device cpu"),
        ]
        for bad, message in problems:
            if bad:
                raise ScoringError(message)
        if self.engine == "openvino":
            from .openvino_engine import OPENVINO_PIN, openvino_missing

            if openvino_missing():
                raise ScoringError(f"--engine openvino needs the openvino package: pip install {OPENVINO_PIN}")
            if self.device is None:  # the CPU, even where CUDA is the default
                object.__setattr__(self, "device", "cpu")

    def check_window(self, window: int) -> None:
        """The stride must leave no frame between windows."""
        if self.stride > window:
            raise ScoringError(f"--stride {self.stride} > window {window}: frames between windows would get no scores")


def on_device(model: torch.nn.Module, runtime: Runtime, *, exact: bool = False, engine: str = "torch",
              clip: Optional[tuple[int, int]] = None) -> torch.nn.Module:
    """``model`` on the runtime's device, in the memory layout (or engine) that runs fastest there.

    On a CPU the 3-D convolutions run in channels_last_3d: 1.53-1.58x the windows per second
    of the full HS-I3D at batch 8 (1.47-1.94x the tiny one), every frame's argmax unchanged and
    scores within 1e-6 (``bench/bench_cpu_engine.py``, two runs). ``exact`` (``--compat original``)
    keeps the contiguous layout, the one the agreement with the original code was measured in.
    ``engine="openvino"``: the network compiled by OpenVINO for clips of ``clip`` = (window, crop)
    frames (:class:`signspot.openvino_engine.OpenVinoNetwork`), on the CPU only.
    """
    if engine == "openvino":
        from .openvino_engine import EngineError, OpenVinoNetwork

        if clip is None:
            raise TypeError("on_device(engine='openvino') needs clip=(window, crop)")
        if runtime.device.type != "cpu":
            raise EngineError(f"--engine openvino runs on the CPU, not on {runtime.device}: add --device cpu")
        if exact or runtime.amp_dtype is not None:
            raise EngineError("--engine openvino runs signspot's windows in f32: "
                              + ("drop --compat original" if exact else "drop --amp"))
        return OpenVinoNetwork(model, window=clip[0], crop=clip[1])
    if engine != "torch":
        raise ScoringError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    model = model.to(runtime.device)
    if runtime.device.type == "cpu" and not exact:
        model = model.to(memory_format=torch.channels_last_3d)
    return model


def equal_head_weights() -> dict:
    """The original's inference weights: every head 1/5."""
    return {h: 1.0 / len(HEAD_NAMES) for h in HEAD_NAMES}


def head_weights_from(weights: Sequence[float]) -> dict:
    """``{head: weight}`` of the heads with a non-zero weight, from weights in HEAD_NAMES' order."""
    if len(weights) != len(HEAD_NAMES):
        raise ScoringError(f"{len(weights)} head weights for the {len(HEAD_NAMES)} heads {HEAD_NAMES}")
    return {head: float(w) for head, w in zip(HEAD_NAMES, weights) if w}


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float32 (float64 in, float64 out); sums stay in float64."""
    z = np.asarray(logits)
    z = z.astype(np.float64 if z.dtype == np.float64 else np.float32)
    z = z - z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def upsample_nearest(x: np.ndarray, size: int, axis: int = 1) -> np.ndarray:
    """Nearest-neighbour resize along ``axis`` (``torch.nn.functional.interpolate`` 'nearest')."""
    length = x.shape[axis]
    if length == size:
        return x
    index = np.minimum(np.floor(np.arange(size) * (length / size)).astype(np.int64), length - 1)
    return np.take(x, index, axis=axis)


class FrameScoreAccumulator:
    """Accumulate window predictions of one video into per-frame scores, batch by batch.

    >>> acc = FrameScoreAccumulator(num_frames, num_classes + 1, window=32)
    >>> for starts, logits in batches:      # logits: {"x4": (N, 4, C+1), ..., "x": (N, 32, C+1)}
    ...     acc.add(starts, logits)
    >>> frame_scores = acc.result()         # (num_frames, C+1) float32

    ``head_weights``: ``{head: weight}``; ``None`` gives every head of the first
    batch the same weight ``1 / number_of_heads`` (the original's 1/5 each).
    """

    def __init__(
        self, num_frames: int, num_columns: int, window: int, head_weights: Optional[Mapping[str, float]] = None,
        *, probabilities: bool = True,
    ):
        if num_frames < 1 or num_columns < 2 or window < 1:
            raise ValueError(f"need num_frames >= 1, num_columns >= 2, window >= 1; got {num_frames}, {num_columns}, {window}")
        self.num_frames = int(num_frames)
        self.num_columns = int(num_columns)
        self.window = int(window)
        self.probabilities = probabilities  # softmax of logits; False: features averaged as they are
        self.head_weights = None if head_weights is None else {k: float(v) for k, v in head_weights.items()}
        # Padding rows absorb windows that run past the end of a short video.
        self._sum = np.zeros((self.num_frames + self.window, self.num_columns), dtype=np.float64)
        self._weight = np.zeros(self.num_frames + self.window, dtype=np.float64)
        self.num_windows = 0

    def add(self, window_starts, head_logits: Mapping[str, object]) -> None:
        """Add a batch: ``window_starts`` (N,) ints; ``head_logits[h]`` (N, T_h, C+1) logits."""
        starts = np.asarray(as_numpy(window_starts), dtype=np.int64).reshape(-1)
        if not head_logits:
            raise ValueError("head_logits is empty")
        if self.head_weights is None:
            self.head_weights = {h: 1.0 / len(head_logits) for h in head_logits}
        unknown = set(head_logits) - set(self.head_weights)
        if unknown:
            raise ValueError(f"heads {sorted(unknown)} have no weight in head_weights {self.head_weights}")
        if len(starts) and (starts.min() < 0 or starts.max() >= self.num_frames):
            raise ValueError(f"window starts must lie in [0, {self.num_frames}), got {starts.min()}..{starts.max()}")
        combined = np.zeros((len(starts), self.window, self.num_columns), dtype=np.float64)
        total_weight = 0.0
        for head, weight in self.head_weights.items():
            if head not in head_logits:
                raise ValueError(f"head {head!r} (weight {weight}) is missing from this batch")
            if weight == 0:
                continue
            logits = as_numpy(head_logits[head])
            if logits.ndim != 3 or logits.shape[0] != len(starts) or logits.shape[2] != self.num_columns:
                raise ValueError(
                    f"head {head!r}: expected logits of shape ({len(starts)}, T, {self.num_columns}), got {logits.shape}"
                )
            values = softmax(logits) if self.probabilities else logits
            combined += weight * upsample_nearest(values, self.window, axis=1)
            total_weight += weight
        if total_weight <= 0:
            raise ValueError(f"head weights sum to {total_weight}; at least one must be positive")
        if len(np.unique(starts)) == len(starts):
            for offset in range(self.window):  # each offset touches distinct rows: plain += is exact
                self._sum[starts + offset] += combined[:, offset]
                self._weight[starts + offset] += total_weight
        else:
            rows = (starts[:, None] + np.arange(self.window)[None, :]).reshape(-1)
            np.add.at(self._sum, rows, combined.reshape(-1, self.num_columns))
            np.add.at(self._weight, rows, total_weight)
        self.num_windows += len(starts)

    def result(self, *, compat: str = "none") -> np.ndarray:
        """Per-frame scores (num_frames, C+1), float32. Every frame must be covered by a window.

        ``compat="original"``: the original's windows may leave a tail of the video uncovered;
        the rows of the frames up to the last covered one are returned.
        """
        weight = self._weight[: self.num_frames]
        uncovered = np.flatnonzero(weight == 0)
        rows = self.num_frames
        if compat == "original" and len(uncovered) and uncovered[-1] == rows - 1 and len(uncovered) == rows - uncovered[0]:
            rows = int(uncovered[0])  # only a tail is uncovered
            uncovered = uncovered[:0]
        if len(uncovered) or rows == 0:
            raise ValueError(
                f"{len(uncovered) or rows} of {self.num_frames} frames are covered by no window"
                + (f" (first {uncovered[0]}, last {uncovered[-1]})" if len(uncovered) else "")
            )
        return (self._sum[:rows] / weight[:rows, None]).astype(np.float32)


def score_videos(model: torch.nn.Module, store, videos: Sequence[str], **options) -> dict[str, dict]:
    """Score every frame of ``videos`` with one model (see :func:`score_videos_with_models`)."""
    return score_videos_with_models([model], store, videos, **options)[0]


def score_videos_with_models(
    models: Sequence[torch.nn.Module],
    store,
    videos: Sequence[str],
    *,
    window: int,
    stride: int,
    transform,
    runtime: Runtime,
    head_weights: Optional[Mapping[str, float]] = None,
    batch_size: int = 8,
    workers: int = 0,
    flip_tta: bool = False,
    compat: str = "none",
    drop_last_batch: bool = False,
    embed_layer: Optional[str] = None,
    on_windows=None,
    progress: bool = True,
) -> list[dict[str, dict]]:
    """Score every frame of ``videos`` with each of ``models`` in one pass over the frames.

    Each frame is decoded and transformed once; every batch of windows is run through
    every model. Returns, per model, ``{video: {"scores", "fps", "num_frames"}}``, the
    same as scoring with that model alone.

    ``scores`` is a float32 ``(num_frames, C + 1)`` array of probabilities; only the
    heads with a weight in ``head_weights`` (default: every head, 1/5 each) are read.
    With ``flip_tta`` each window is also run mirrored left-right and both count as
    windows of equal weight. The models run under ``runtime``'s device and autocast.

    ``compat`` / ``drop_last_batch``: where windows start (:func:`datasets.windows.window_starts`;
    ``"original"`` with ``drop_last_batch`` is the original's inference). Under the original's
    windows a video's tail may get no window: its entry then holds the covered frames only
    (``num_frames`` = rows), and a video with no window at all is left out.

    ``embed_layer``: per-frame features instead of scores (``model.embed(clips, embed_layer)``,
    averaged over the windows covering a frame, no softmax), in ``"scores"`` as ``(num_frames, D)``.

    ``on_windows(model_index, video, starts, head_logits)``, if given, also receives every batch's
    window starts and ``{head: (N, T_h, C + 1) logits}`` (``bench/bench_stride.py`` keeps them to
    fold subsets of the windows).
    """
    if stride > window:
        raise ScoringError(f"stride {stride} > window {window} would leave frames between windows without scores")
    if not models:
        raise ScoringError("no model to score with")
    device = runtime.device
    head_weights = dict(head_weights) if head_weights is not None else equal_head_weights()
    if embed_layer is not None:
        head_weights = {"features": 1.0}
    frame_counts = {v: int(store.num_frames(v)) for v in videos}
    for video, count in frame_counts.items():
        if count < 1:
            raise ScoringError(f"{getattr(store, 'path', 'frame store')}: video {video!r} has no frames")
    # Longest first so round-robin sharding over workers stays balanced.
    ordered = sorted(videos, key=lambda v: (-frame_counts[v], v))
    dataset = StreamingWindowDataset(
        store, ordered, window=window, stride=stride, batch_size=batch_size, transform=transform, compat=compat,
        drop_last_batch=drop_last_batch,
    )
    ordered = dataset.videos  # those with a window: the original's windows give short videos none
    total_windows = sum(dataset.num_windows(frame_counts[v]) for v in ordered)
    workers = min(int(workers), len(ordered))
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=loader_worker_init if workers > 0 else None,
        prefetch_factor=2 if workers > 0 else None,
        # Fresh interpreters: an LMDB environment inherited through fork cannot be reopened
        # in the child, and the store was opened here to count frames.
        multiprocessing_context="spawn" if workers > 0 else None,
    )
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    pending: dict[int, list] = {}  # video_index -> [accumulator per model, windows seen]
    results: list[dict[str, dict]] = [{} for _ in models]
    bar = _progress(total_windows, progress, desc="windows")
    projection = _Projection(total_windows, sum(frame_counts[v] for v in ordered),
                             len(models) * (2 if flip_tta else 1), enabled=progress)
    with torch.inference_mode():
        for batch in loader:
            frames = normalize_clip(batch["frames"].to(device, non_blocking=True))  # uint8 -> float, on the device
            clips = gather_windows(frames, batch["offsets"].tolist(), window)
            n_windows = len(clips)
            views = [clips, clips.flip(-1)] if flip_tta else [clips]
            video_index = int(batch["video_index"])
            starts = batch["starts"].numpy()
            for m, model in enumerate(models):
                for view in views:
                    with runtime.autocast():
                        outputs = model(view) if embed_layer is None else {"features": model.embed(view, embed_layer)}
                    head_logits = {h: outputs[h].float().cpu().numpy() for h in head_weights}
                    if on_windows is not None:
                        on_windows(m, ordered[video_index], starts, head_logits)
                    if video_index not in pending:
                        pending[video_index] = [[None] * len(models), 0]
                    accumulators = pending[video_index][0]
                    if accumulators[m] is None:
                        num_columns = next(iter(head_logits.values())).shape[-1]
                        accumulators[m] = FrameScoreAccumulator(int(batch["num_frames"]), num_columns, window,
                                                                head_weights, probabilities=embed_layer is None)
                    accumulators[m].add(starts, head_logits)
            pending[video_index][1] += n_windows
            bar.update(n_windows)
            projection.update(n_windows)
            if pending[video_index][1] == int(batch["num_windows"]):
                accumulators, _ = pending.pop(video_index)
                video = ordered[video_index]
                for m, accumulator in enumerate(accumulators):
                    frame_scores = accumulator.result(compat=compat)
                    results[m][video] = {
                        "scores": frame_scores,
                        "fps": float(store.fps(video)),
                        "num_frames": len(frame_scores),
                    }
    bar.close()
    for m, training in zip(models, was_training):
        m.train(training)
    if pending:  # a worker died without raising, or a batch went missing
        missing = [ordered[i] for i in pending]
        raise RuntimeError(f"scoring ended with videos not fully scored: {missing}")
    return [{v: found[v] for v in videos if v in found} for found in results]


class _Projection:
    """Before the work, what there is to score; after the first batches (10 s of them), the time it will take."""

    def __init__(self, windows: int, frames: int, passes: int, *, enabled: bool, after_s: float = 10.0):
        self.enabled, self.windows, self.after_s, self.done, self.said = enabled, windows, after_s, 0, False
        self.started = time.perf_counter()
        if enabled:
            print(f"to score: {frames} frames, {windows} windows x {passes} network pass(es)", file=sys.stderr,
                  flush=True)

    def update(self, windows: int) -> None:
        self.done += windows
        elapsed = time.perf_counter() - self.started
        if self.enabled and not self.said and (elapsed >= self.after_s or self.done == self.windows):
            self.said = True
            rate = self.done / max(elapsed, 1e-9)
            left = (self.windows - self.done) / rate
            print(f"projected: {_duration(elapsed + left)} in all ({rate:.2f} windows/s over the first "
                  f"{self.done} windows; {_duration(left)} left)", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


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
