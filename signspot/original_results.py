"""The original system's per-window results (``dict_results.pkl``), read safely.

Such files hold torch tensors pickled with plain ``pickle``; they are read with the
project's restricted unpickler (:class:`signspot.formats.safe_io.RestrictedUnpickler`)
whose tensor rebuilds are checked stand-ins (torch's own ``_load_from_bytes`` would
call ``torch.load(weights_only=False)``), or with ``torch.load(weights_only=True)``
when written with ``torch.save``. The logits are aggregated into per-frame scores
with :class:`signspot.scoring.FrameScoreAccumulator`, so old and new results mix.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from .formats.safe_io import NotAPickleError, RestrictedUnpickler, UnsafePickleError, allowed_globals
from .formats.scores import SCORES_FILENAME, ScoresFormatError, load_frame_scores, validate_frame_scores
from .formats.timebase import ORIGINAL_FPS
from .scoring import FrameScoreAccumulator

__all__ = ["ORIGINAL_RESULTS_FILENAME", "load_any_scores", "load_original_results"]

ORIGINAL_RESULTS_FILENAME = "dict_results.pkl"


def _weights_only_load(data: bytes, refused: str):
    """``torch.load(weights_only=True)`` of ``data``; a refusal is an UnsafePickleError ``refused: <why>``."""
    import torch

    try:
        return torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        detail = [line for line in str(exc).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        raise UnsafePickleError(f"{refused}: " + (detail[0] if detail else str(exc))) from None


def _safe_load_storage(data: bytes):
    """Stand-in for ``torch.storage._load_from_bytes``, whose own version calls
    ``torch.load(weights_only=False)`` and could run code hidden in the bytes."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("tensor storage payload is not bytes")
    return _weights_only_load(data, "tensor storage refused by torch.load(weights_only=True)")


def _safe_rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` with its arguments checked (no hooks, no odd metadata)."""
    import torch

    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"tensor rebuilt from a {type(storage).__name__}, not a torch storage")
    if backward_hooks:
        raise UnsafePickleError("tensor pickled with backward hooks")
    if metadata is not None and not isinstance(metadata, dict):
        raise UnsafePickleError("tensor metadata is not a dict")
    if not (isinstance(storage_offset, int) and all(isinstance(v, int) for v in (*size, *stride))):
        raise UnsafePickleError("tensor geometry is not made of ints")
    return torch._utils._rebuild_tensor_v2(
        storage, storage_offset, tuple(size), tuple(stride), False, collections.OrderedDict(), metadata or None
    )


# Tensors pickled with plain ``pickle.dumps`` refer to exactly these (torch 1.x to 2.x); the
# first two are replaced by checked versions.
_TENSOR_REPLACEMENTS = {
    ("torch._utils", "_rebuild_tensor_v2"): _safe_rebuild_tensor,
    ("torch.storage", "_load_from_bytes"): _safe_load_storage,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
_WHAT = "plain containers, numbers, numpy arrays and torch tensors"


def _load_torch_results_pickle(path: Path):
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":  # written with torch.save: torch's own safe loader
        return _weights_only_load(data, f"{path}: refused by torch.load(weights_only=True)")
    try:
        allowed = allowed_globals(allow_numpy=True)
        return RestrictedUnpickler(io.BytesIO(data), allowed, str(path), replaced=_TENSOR_REPLACEMENTS, what=_WHAT).load()
    except UnsafePickleError as exc:
        msg = str(exc)
        raise UnsafePickleError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except Exception as exc:
        raise NotAPickleError(f"{path}: not a readable pickle file ({type(exc).__name__}: {exc})") from exc


def _head_array(value, where: str) -> np.ndarray:
    """A head's logits as (N_windows, T_head, C+1): a tensor/array, or a list of per-window or per-batch ones."""
    def to_np(x):
        if hasattr(x, "detach"):
            return x.detach().cpu().float().numpy()
        return np.asarray(x, dtype=np.float32)

    if isinstance(value, (list, tuple)):
        if not value:
            raise ScoresFormatError(f"{where}: no windows")
        parts = [to_np(v) for v in value]
        if all(p.ndim == 2 for p in parts):
            arr = np.stack(parts)
        elif all(p.ndim == 3 for p in parts):
            arr = np.concatenate(parts)
        else:
            raise ScoresFormatError(f"{where}: list items must all be (T, C+1) or all be (N, T, C+1)")
    else:
        arr = to_np(value)
    if arr.ndim != 3:
        raise ScoresFormatError(f"{where}: expected logits (N_windows, T_head, C+1), got shape {arr.shape}")
    return arr


def load_original_results(path: str | os.PathLike, *, window: Optional[int] = None) -> dict:
    """Read the original's per-window results and aggregate them into per-frame scores.

    Assumed layout (the original's exact structure is not documented):
    ``{video: {"x4": (N, 4, C+1), "x8": ..., "x16": ..., "x32": ..., "x": (N, 32, C+1)}}``
    logits as torch tensors (or numpy arrays, or lists of per-window / per-batch
    tensors), for windows at stride 1 starting at frames 0..N-1, at 25 fps. The
    frame count is taken as N + window - 1 (what the windows cover). Returns the
    same structure as :func:`signspot.formats.scores.load_frame_scores`.
    """
    path = Path(path)
    data = _load_torch_results_pickle(path)
    if not isinstance(data, Mapping):
        raise ScoresFormatError(f"{path}: expected a dict {{video: {{head: logits}}}}, got {type(data).__name__}")
    videos = {}
    for video, heads in data.items():
        where = f"{path}: video {video!r}"
        if not isinstance(heads, Mapping) or not heads:
            raise ScoresFormatError(f"{where}: expected a dict {{head_name: per-window logits}}")
        arrays = {str(h): _head_array(v, f"{where}, head {h!r}") for h, v in heads.items()}
        counts = {a.shape[0] for a in arrays.values()}
        columns = {a.shape[2] for a in arrays.values()}
        if len(counts) != 1 or len(columns) != 1:
            raise ScoresFormatError(f"{where}: heads disagree on windows/classes: { {h: a.shape for h, a in arrays.items()} }")
        n_windows = counts.pop()
        win = window or max(a.shape[1] for a in arrays.values())
        num_frames = n_windows + win - 1
        acc = FrameScoreAccumulator(num_frames, columns.pop(), win)
        starts = np.arange(n_windows)
        step = 512  # bounded float64 temporaries on long videos
        for lo in range(0, n_windows, step):
            acc.add(starts[lo : lo + step], {h: a[lo : lo + step] for h, a in arrays.items()})
        videos[str(video)] = {"scores": acc.result(), "fps": ORIGINAL_FPS, "num_frames": num_frames}
    return {
        "format": "original-dict-results",
        "checkpoint": str(path),
        "head_weights": None,
        "window": window,
        "stride": 1,
        "videos": validate_frame_scores(videos, str(path)),
    }


def load_any_scores(path: str | os.PathLike) -> dict:
    """A per-frame score file, or an original ``dict_results.pkl`` (chosen by the file's content)."""
    path = Path(path)
    try:
        return load_frame_scores(path)
    except (UnsafePickleError, ScoresFormatError, NotAPickleError) as first_error:  # a torch.save zip is no pickle
        if path.name == SCORES_FILENAME:
            raise
        try:
            return load_original_results(path)
        except (UnsafePickleError, ScoresFormatError, NotAPickleError) as exc:
            raise type(exc)(f"{exc} (and not a per-frame score file either: {first_error})") from None
