"""Ensembling of per-frame score files, decoding and decode-settings tuning.

Inputs, found recursively under a results folder:

* :data:`signspot.scores.SCORES_FILENAME` files written by inference;
* the original system's per-window ``dict_results.pkl`` files (see
  :func:`load_original_results`), turned into per-frame scores with the same
  aggregation, so old and new results can be mixed.

The ensemble of a video is the per-frame mean over the files that hold it
(frame by frame: a file with fewer frames, e.g. an original result whose last
partial batch was never run, contributes to the frames it has).
"""

from __future__ import annotations

import collections
import fnmatch
import io
import itertools
import json
import os
import pickle
import sys
import warnings
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .decode import DecodeSettings, frame_labels, labels_to_intervals
from .io import NUMPY_GLOBALS, UnsafePickleError, atomic_write
from .scores import (
    SCORES_FILENAME,
    FrameScoreAccumulator,
    ScoresFormatError,
    load_frame_scores,
    validate_frame_scores,
)

__all__ = [
    "ORIGINAL_RESULTS_FILENAME",
    "ORIGINAL_FPS",
    "find_score_files",
    "load_original_results",
    "load_any_scores",
    "ensemble_frame_scores",
    "decode_all",
    "default_tuning_grid",
    "tune_decode_settings",
    "format_tuning_table",
    "ensemble_main",
]

ORIGINAL_RESULTS_FILENAME = "dict_results.pkl"
ORIGINAL_FPS = 25.0  # the original hard-coded 25 fps
ORIGINAL_HEADS = ("x4", "x8", "x16", "x32", "x")


# --------------------------------------------------------------------------- original results


def _safe_load_storage(data: bytes):
    """Stand-in for ``torch.storage._load_from_bytes``, whose own version calls
    ``torch.load(weights_only=False)`` and could run code hidden in the bytes."""
    import torch

    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("tensor storage payload is not bytes")
    try:
        return torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        detail = [line for line in str(exc).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        raise UnsafePickleError(
            "tensor storage refused by torch.load(weights_only=True): " + (detail[0] if detail else str(exc))
        ) from None


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


class _TorchResultsUnpickler(pickle.Unpickler):
    """Admits plain containers, numpy arrays and torch CPU tensors, nothing else.

    Tensors pickled with plain ``pickle.dumps`` refer to exactly
    ``torch._utils._rebuild_tensor_v2``, ``torch.storage._load_from_bytes`` and
    ``collections.OrderedDict`` (torch 1.x to 2.x); the first two are replaced by
    checked versions.
    """

    _REPLACED = {
        ("torch._utils", "_rebuild_tensor_v2"): _safe_rebuild_tensor,
        ("torch.storage", "_load_from_bytes"): _safe_load_storage,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    _ALLOWED = NUMPY_GLOBALS | {("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex")}

    def __init__(self, file, source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str):
        if (module, name) in self._REPLACED:
            return self._REPLACED[(module, name)]
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._source}: refusing to unpickle {module}.{name}; a results file may only hold plain "
            "containers, numbers, numpy arrays and torch tensors."
        )


def _load_torch_results_pickle(path: Path):
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":  # written with torch.save: torch's own safe loader
        import torch

        try:
            return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as exc:
            detail = [line for line in str(exc).splitlines() if "GLOBAL" in line or "Unsupported" in line]
            raise UnsafePickleError(
                f"{path}: refused by torch.load(weights_only=True): " + (detail[0] if detail else str(exc))
            ) from None
    try:
        return _TorchResultsUnpickler(io.BytesIO(data), str(path)).load()
    except UnsafePickleError as exc:
        msg = str(exc)
        raise UnsafePickleError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except Exception as exc:
        raise ValueError(f"{path}: not a readable pickle file ({type(exc).__name__}: {exc})") from exc


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
    same structure as :func:`signspot.scores.load_frame_scores`.
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
    except (UnsafePickleError, ScoresFormatError) as first_error:
        if path.name == SCORES_FILENAME:
            raise
        try:
            return load_original_results(path)
        except (UnsafePickleError, ScoresFormatError) as exc:
            raise type(exc)(f"{exc} (and not a per-frame score file either: {first_error})") from None


# --------------------------------------------------------------------------- ensembling


def _excluded(rel: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            if fnmatch.fnmatch(rel, pattern):
                return True
        elif pattern in rel:
            return True
    return False


def find_score_files(results_dir: str | os.PathLike, exclude: Sequence[str] = ()) -> List[Path]:
    """Every scores file (new or original format) under ``results_dir``, minus excluded paths.

    ``exclude``: patterns matched against the path relative to ``results_dir``:
    a glob when it contains ``* ? [``, otherwise a substring (e.g. ``_fold3_``).
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: results folder not found")
    found = []
    for name in (SCORES_FILENAME, ORIGINAL_RESULTS_FILENAME):
        for path in root.rglob(name):
            if not _excluded(path.relative_to(root).as_posix(), list(exclude or ())):
                found.append(path)
    return sorted(found)


def ensemble_frame_scores(paths: Iterable[str | os.PathLike], progress: bool = True) -> Dict[str, dict]:
    """Mean per-frame scores over files: ``{video: {"scores": float32 (T, C+1), "fps", "num_frames", "num_files"}}``.

    Files are read one at a time. A video's fps comes from the new-format files when any has it
    (original results assume 25); files that disagree on a video's fps or column count are an error.
    """
    from tqdm import tqdm

    paths = list(paths)
    if not paths:
        raise FileNotFoundError("no score files to ensemble")
    sums: Dict[str, np.ndarray] = {}
    counts: Dict[str, np.ndarray] = {}
    fps: Dict[str, Tuple[float, bool]] = {}  # video -> (fps, from a new-format file)
    files_per_video: Dict[str, int] = collections.Counter()
    columns = None
    for path in tqdm(paths, desc="score files", unit="file", disable=not progress, file=sys.stderr):
        data = load_any_scores(path)
        original = data.get("format") != "signspot-frame-scores"
        for video, entry in data["videos"].items():
            scores = np.asarray(entry["scores"], dtype=np.float64)
            if columns is None:
                columns = scores.shape[1]
            elif scores.shape[1] != columns:
                raise ScoresFormatError(f"{path}: video {video!r} has {scores.shape[1]} score columns, earlier files {columns}")
            n = len(scores)
            if video not in sums:
                sums[video] = np.zeros_like(scores)
                counts[video] = np.zeros(n)
            elif n > len(sums[video]):
                grow = n - len(sums[video])
                sums[video] = np.concatenate([sums[video], np.zeros((grow, columns))])
                counts[video] = np.concatenate([counts[video], np.zeros(grow)])
            sums[video][:n] += scores
            counts[video][:n] += 1
            files_per_video[video] += 1
            known = fps.get(video)
            if known is None or (known[1] is False and not original):
                fps[video] = (entry["fps"], not original)
            elif not original and known[1] and abs(known[0] - entry["fps"]) > 1e-3:
                raise ScoresFormatError(f"{path}: video {video!r} has fps {entry['fps']}, earlier files {known[0]}")
    partial = sorted(v for v, k in files_per_video.items() if k < len(paths))
    if partial:
        warnings.warn(
            f"{len(partial)} videos are missing from some score files (e.g. {partial[:3]}); "
            "they are averaged over the files that have them",
            stacklevel=2,
        )
    return {
        video: {
            "scores": (sums[video] / counts[video][:, None]).astype(np.float32),
            "fps": float(fps[video][0]),
            "num_frames": len(sums[video]),
            "num_files": int(files_per_video[video]),
        }
        for video in sorted(sums)
    }


def decode_all(videos: Mapping[str, Mapping], settings: DecodeSettings = DecodeSettings()) -> dict:
    """Decode every video with its own fps."""
    out = {}
    for name, v in videos.items():
        scores = np.asarray(v["scores"], dtype=np.float32)
        labels = frame_labels(scores, smoothing=settings.smoothing, background_margin=settings.background_margin)
        out[name] = labels_to_intervals(
            labels, scores.shape[1] - 1, v["fps"], min_length=settings.min_length, merge_gap=settings.merge_gap
        )
    return out


# --------------------------------------------------------------------------- tuning


def default_tuning_grid() -> Dict[str, list]:
    """Values tried by :func:`tune_decode_settings` (the first of each is the original's)."""
    return {
        "smoothing": [0, 3, 5, 9, 15],
        "background_margin": [0.0, -0.1, 0.1, 0.2, 0.3],
        "merge_gap": [0, 2, 4, 8],
        "min_length": [0, 3, 5, 8],
    }


def tune_decode_settings(
    videos: Mapping[str, Mapping], gt: Mapping, grid: Optional[Mapping[str, Sequence]] = None, progress: bool = True
) -> Tuple[DecodeSettings, List[dict]]:
    """Grid search of :class:`DecodeSettings` by official F1 on ``videos`` (validation scores).

    The original setting is always evaluated first and a candidate replaces the
    best only if its F1 is strictly higher, so the result never scores lower than
    the original decoding on these videos. Returns (best, rows sorted by F1).
    """
    from tqdm import tqdm

    from .metric import official_score

    grid = dict(default_tuning_grid() if grid is None else grid)
    for key, original in DecodeSettings().to_dict().items():
        values = list(grid.get(key, [original]))
        grid[key] = [original] + [v for v in values if v != original]  # original first, once
    float_scores = {n: np.asarray(v["scores"], dtype=np.float32) for n, v in videos.items()}
    rows = []
    total = int(np.prod([len(v) for v in grid.values()]))
    bar = tqdm(total=total, desc="tuning decode", disable=not progress, file=sys.stderr)
    for smoothing, margin in itertools.product(grid["smoothing"], grid["background_margin"]):
        labels = {n: frame_labels(s, smoothing=smoothing, background_margin=margin) for n, s in float_scores.items()}
        for merge_gap, min_length in itertools.product(grid["merge_gap"], grid["min_length"]):
            settings = DecodeSettings(smoothing, min_length, merge_gap, margin)
            pred = {
                n: labels_to_intervals(lab, float_scores[n].shape[1] - 1, videos[n]["fps"],
                                       min_length=min_length, merge_gap=merge_gap)
                for n, lab in labels.items()
            }
            rows.append({**settings.to_dict(), **official_score(gt, pred)})
            bar.update()
    bar.close()
    best_row = rows[0]  # the original setting
    for row in rows[1:]:
        if row["f1"] > best_row["f1"]:
            best_row = row
    return _settings_of(best_row), sorted(rows, key=lambda r: -r["f1"])


def _settings_of(row: Mapping) -> DecodeSettings:
    return DecodeSettings.from_dict({k: row[k] for k in DecodeSettings().to_dict()})


def format_tuning_table(rows: Sequence[Mapping], limit: int = 15) -> str:
    """The ``limit`` best rows of :func:`tune_decode_settings`, plus the original setting's row."""
    lines = ["smoothing  margin  merge_gap  min_length      F1  precision  recall"]
    original = next((r for r in rows if _settings_of(r).is_original()), None)
    shown = list(rows[:limit]) + ([original] if original is not None and original not in rows[:limit] else [])
    for r in shown:
        tag = "  (original)" if r is original else ""
        lines.append(
            f"{r['smoothing']:9d} {r['background_margin']:7.2f} {r['merge_gap']:10d} {r['min_length']:11d} "
            f"{r['f1']:7.4f} {r['precision']:10.4f} {r['recall']:7.4f}{tag}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def ensemble_main(
    results_dir: str = "chalearn_results/test",
    out: str = "predictions.pkl",
    exclude: Sequence[str] = (),
    decode_config: Optional[str] = None,
    smoothing: Optional[int] = None,
    min_length: Optional[int] = None,
    merge_gap: Optional[int] = None,
    background_margin: Optional[float] = None,
    tune_on: Optional[str] = None,
    save_decode_config: Optional[str] = None,
    evaluate: Optional[str] = None,
    save_scores: Optional[str] = None,
    quiet: bool = False,
) -> dict:
    """Average score files, decode, write predictions; optionally tune/evaluate. Returns a summary."""
    from .gt import MalformedIntervalsError, load_intervals, save_intervals_pkl
    from .metric import format_score, official_score
    from .scores import save_frame_scores

    say = (lambda *a: None) if quiet else print
    try:
        settings = DecodeSettings.load_json(decode_config) if decode_config else DecodeSettings()
        overrides = {k: v for k, v in dict(smoothing=smoothing, min_length=min_length, merge_gap=merge_gap,
                                           background_margin=background_margin).items() if v is not None}
        settings = DecodeSettings.from_dict({**settings.to_dict(), **overrides}, "command line")
        paths = find_score_files(results_dir, exclude)
        if not paths:
            raise FileNotFoundError(
                f"{results_dir}: no {SCORES_FILENAME} or {ORIGINAL_RESULTS_FILENAME} files"
                + (f" left after --exclude {list(exclude)}" if exclude else "")
            )
        say(f"ensembling {len(paths)} score files under {results_dir}")
        videos = ensemble_frame_scores(paths, progress=not quiet)
        summary: dict = {"num_files": len(paths), "files": [str(p) for p in paths], "num_videos": len(videos)}

        if tune_on:
            gt = load_intervals(tune_on)
            missing = set(gt) - set(videos)
            if missing:
                warnings.warn(f"{len(missing)} ground-truth videos have no scores (e.g. {sorted(missing)[:3]})", stacklevel=2)
            settings, rows = tune_decode_settings(videos, gt, progress=not quiet)
            original_row = next(r for r in rows if _settings_of(r).is_original())
            best_row = next(r for r in rows if _settings_of(r) == settings)
            say(format_tuning_table(rows))
            say(f"best decode settings {settings.to_dict()}: F1 {best_row['f1']:.4f} "
                f"(original decoding {original_row['f1']:.4f}, gain {best_row['f1'] - original_row['f1']:+.4f})")
            config_path = Path(save_decode_config or Path(out).with_name("decode_config.json"))
            with atomic_write(config_path, "w") as f:
                json.dump({"settings": settings.to_dict(), "tuned_on": str(tune_on),
                           "f1": best_row["f1"], "original_f1": original_row["f1"]}, f, indent=2)
                f.write("\n")
            say(f"saved {config_path} (use --decode-config {config_path} for the test run)")
            summary.update(tuned=settings.to_dict(), tuned_f1=best_row["f1"], original_f1=original_row["f1"],
                           decode_config=str(config_path))
        elif save_decode_config:
            settings.save_json(save_decode_config)

        predictions = decode_all(videos, settings)
        save_intervals_pkl(predictions, out)
        n_signs = sum(len(v) for v in predictions.values())
        say(f"wrote {out}: {len(predictions)} videos, {n_signs} signs (decode {settings.to_dict()})")
        summary.update(settings=settings.to_dict(), out=str(out), num_signs=n_signs)

        if save_scores:
            save_frame_scores(
                save_scores,
                {n: {k: v[k] for k in ("scores", "fps", "num_frames")} for n, v in videos.items()},
                checkpoint=f"ensemble of {len(paths)} files",
                head_weights=None, window=0, stride=0,
                extra={"sources": [str(p) for p in paths]},
            )
            say(f"wrote ensembled scores to {save_scores}")
        if evaluate:
            score = official_score(load_intervals(evaluate), predictions)
            say(f"official score on {evaluate}: {format_score(score)}")
            summary["score"] = score
        return summary
    except (FileNotFoundError, MalformedIntervalsError, UnsafePickleError, ScoresFormatError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
