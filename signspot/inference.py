"""Inference: every window of every video of a frame store, through one or more checkpoints.

The checkpoints run in one pass over the store (each frame decoded once, each batch of
windows through every model, one pass per distinct window and frame size) and each
gives one scores file (:mod:`signspot.formats.scores`) holding, for each video, a
``(num_frames, C + 1)`` array of class + background probabilities together with the
fps, the frame count, the checkpoint path, the head weights, the window and the
stride: the file a run of that checkpoint alone writes.

* The model and its input are rebuilt from the config stored in the checkpoint,
  read through :mod:`signspot.config`'s schema; a released checkpoint (no config)
  gets the defaults, the original HS-I3D, with the class count and width read off
  its weights.
* The windows and their aggregation are :func:`signspot.scoring.score_videos`'s,
  the same path validation takes: windows of ``window`` frames every ``stride``
  frames (stride 1 is the original), every frame decoded once per video, the last
  window shifted back onto the tail, a short video padded by repeating its last
  frame (the original dropped the last partial batch and gave such videos nothing).
* Under ``torchrun`` the videos are sharded across ranks; each rank writes its
  part beside the output and rank 0 merges them (so the output folder must be
  on a file system every rank sees, which it is on one machine).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Mapping, Sequence

from .formats.errors import SignspotError
from .formats.safe_io import atomic_dump_pickle, safe_pickle_load
from .formats.scores import SCORES_FILENAME
from .run_dir import run_name

__all__ = [
    "InferenceError",
    "InferenceSpec",
    "RELEASED_SPEC",
    "infer_store",
    "load_inference_model",
    "output_path",
    "spec_from_checkpoint",
    "split_name",
]

SPLIT_KEYWORDS = ("test", "valid", "train")


class InferenceError(SignspotError, ValueError):
    """A problem with the user's input to inference (checkpoint, store, options)."""


@dataclasses.dataclass(frozen=True)
class InferenceSpec:
    """What inference needs to know about a checkpoint: the model and its input, resolved once."""

    model_name: str
    num_classes: int
    width: float
    window: int
    resize: int
    crop: int

    @classmethod
    def from_config(cls, cfg) -> "InferenceSpec":
        return cls(cfg.model.name, cfg.data.num_classes, cfg.model.width, cfg.data.window, cfg.data.resize,
                   cfg.data.crop)


def _default_spec() -> InferenceSpec:
    from .config import Config

    return InferenceSpec.from_config(Config())


# Released checkpoints carry no config: they are the original architecture (the config defaults).
RELEASED_SPEC = _default_spec()


def spec_from_checkpoint(checkpoint: Mapping, source: str = "") -> InferenceSpec:
    """The model/window/transform settings of ``checkpoint["config"]``, read with the config schema.

    A checkpoint without a config (the released ones) gets :data:`RELEASED_SPEC`;
    fields a stored config lacks keep their defaults (the original's values).
    """
    from .config import ConfigError, config_from_dict

    stored = checkpoint.get("config") if isinstance(checkpoint, Mapping) else None
    if stored is None:
        return RELEASED_SPEC
    try:
        return InferenceSpec.from_config(config_from_dict(stored, source=f"{source or 'checkpoint'} config"))
    except ConfigError as exc:
        raise InferenceError(str(exc)) from None


def split_name(lmdb_dir: str | os.PathLike) -> str:
    """``test`` / ``valid`` / ``train`` when the store folder's name says so, else that name."""
    folder = Path(lmdb_dir).resolve().name
    lowered = folder.lower()
    for keyword in SPLIT_KEYWORDS:
        if keyword in lowered:
            return keyword
    return folder


def output_path(save_dir, lmdb_dir, checkpoint_path, split: str | None = None, *, taken=()) -> Path:
    """``{save_dir}/{split}/{run}_{checkpoint stem}/<SCORES_FILENAME>``, as the original laid it out.

    Distinct checkpoints never share an output: when that folder already holds the scores
    of another checkpoint (e.g. ``2fold_neg0/maxfix_neg0_fold0`` and ``3fold_neg0/maxfix_neg0_fold0``),
    the name gets ``-`` and 8 hex digits of a hash of this checkpoint's absolute path; so it
    does when the path is in ``taken`` (outputs of other checkpoints of the same run).
    """
    split = split or split_name(lmdb_dir)
    checkpoint_path = Path(checkpoint_path)
    name = f"{run_name(checkpoint_path)}_{checkpoint_path.stem}"
    path = Path(save_dir) / split / name / SCORES_FILENAME
    if path in set(taken) or _written_for_another(path, checkpoint_path):
        digest = hashlib.sha1(str(checkpoint_path.resolve()).encode()).hexdigest()[:8]
        path = Path(save_dir) / split / f"{name}-{digest}" / SCORES_FILENAME
    return path


def _written_for_another(path: Path, checkpoint_path: Path) -> bool:
    if not path.is_file():
        return False
    try:  # only the header is wanted: no need to check every video's scores
        data = safe_pickle_load(path, allow_numpy=True)
    except SignspotError:
        return True  # not ours to replace
    return not isinstance(data, dict) or data.get("checkpoint") != str(checkpoint_path.resolve())


def load_inference_model(checkpoint_path: str | os.PathLike, *, window: int | None = None):
    """Rebuild the model a checkpoint was trained as and load its weights.

    Returns ``(model, spec)`` with the model in eval mode on the CPU. ``window``
    overrides the checkpoint's window.
    """
    from signspot.models import build_model

    from .checkpoint import infer_model_config, load_checkpoint, load_model_weights

    path = Path(checkpoint_path)
    if path.is_dir():
        candidates = sorted(p.name for p in path.glob("*.pt"))[:5]
        hint = f" (checkpoints inside: {', '.join(candidates)})" if candidates else ""
        raise InferenceError(f"{path}: is a folder; --checkpoint_dir takes one checkpoint file{hint}")
    if not path.is_file():
        raise InferenceError(f"{path}: no such checkpoint file")
    try:
        checkpoint = load_checkpoint(path)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise InferenceError(_naming(path, exc)) from exc
    spec = spec_from_checkpoint(checkpoint, source=str(path))
    if checkpoint.get("config") is None:
        # No config (released checkpoints): the original architecture, with the class
        # count and width read off the weights so other config-less files load too.
        released = True
        try:
            shape = infer_model_config(checkpoint.get("model", checkpoint))
            spec = dataclasses.replace(spec, num_classes=int(shape["num_classes"]), width=float(shape["width"]))
        except (ValueError, KeyError, AttributeError, TypeError):
            pass  # not an HS-I3D state dict: load_model_weights below says what is wrong
        else:
            released = (spec.num_classes, spec.width) == (RELEASED_SPEC.num_classes, RELEASED_SPEC.width)
        if not released:  # the released architecture runs at the original's sizes: nothing to say
            warnings.warn(
                f"{path}: the checkpoint stores no config, so the original's settings are assumed: "
                f"window {spec.window}, resize {spec.resize}, crop {spec.crop} (classes {spec.num_classes} and "
                f"width {spec.width:g} read off the weights); a model trained at other sizes runs correctly "
                "only from a checkpoint written by main.py, which stores its config",
                stacklevel=2,
            )
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


def _shard(videos: Sequence[str], frame_counts: Mapping[str, int], rank: int, world: int) -> list[str]:
    """Round-robin over videos ordered longest first: ranks get similar amounts of work."""
    ordered = sorted(videos, key=lambda v: (-frame_counts[v], v))
    return ordered[rank::world]


def find_checkpoints(items: Sequence[str | os.PathLike]) -> list[Path]:
    """Checkpoint files from files and folders: a folder gives the ``best_checkpoint_*.pt`` files
    under it (at any depth), or every ``*.pt`` file under it when it holds no best checkpoint."""
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            inside = sorted(path.rglob("best_checkpoint_*.pt")) or sorted(path.rglob("*.pt"))
            if not inside:
                raise InferenceError(f"{path}: a folder with no checkpoint (*.pt) in it")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise InferenceError(f"{path}: no such checkpoint file or folder")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(p) for p in unique]


def infer_store(
    lmdb_dir: str,
    checkpoints: Sequence[str | os.PathLike],
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
    compat: str | None = None,
    engine: str = "torch",
    progress: bool = True,
) -> list[Path]:
    """Run checkpoints over a frame store and write one per-frame scores file each.

    ``checkpoints``: checkpoint files and folders of them (:func:`find_checkpoints`).
    Returns the paths written, one per checkpoint, in order (empty on ranks other than 0
    under ``torchrun``). All are scored in one pass: each frame is decoded once and every
    batch goes through every model; each file is the one a run of that checkpoint alone
    writes. The flags that run the models are checked by :class:`ScoringOptions`.

    ``compat="original"`` runs the windows the original ran, in fp32: starts
    ``range(0, N - window)`` in batches of 8 with the last incomplete batch dropped, so
    a video's last frames (and a video shorter than a window) get no scores; the file
    then holds each video's covered frames. The default scores every frame.
    """
    from signspot.datasets.frame_store import FrameStore, FrameStoreError

    from .runtime import fix_malloc_mmap_threshold
    from .scoring import ScoringError, ScoringOptions

    if isinstance(checkpoints, (str, os.PathLike)):
        raise TypeError(f"checkpoints is a list of checkpoint files and folders, got the one path {checkpoints!r}")
    try:
        options = ScoringOptions(device=device, amp=amp or None, stride=stride, window=window, batch_size=batch_size,
                                 workers=workers, flip_tta=flip_tta, engine=engine)
    except ScoringError as exc:
        raise InferenceError(str(exc)) from None
    amp = options.amp
    if compat not in (None, "", "none", "original"):
        raise InferenceError(f"--compat must be original or none, got {compat!r}")
    original = compat == "original"
    if original:
        defaults = ScoringOptions()
        changed = [flag for flag, value, default in (("--stride", stride, defaults.stride),
                                                     ("--batch-size", batch_size, defaults.batch_size),
                                                     ("--amp", amp, defaults.amp), ("--flip-tta", flip_tta, False),
                                                     ("--window", window, None), ("--engine", engine, "torch"))
                   if value != default]
        if changed:
            raise InferenceError(
                f"--compat original runs the original's windows in fp32 (stride 1, batches of 8, no flip): "
                f"drop {', '.join(changed)}"
            )
    fix_malloc_mmap_threshold()

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

    checkpoints = find_checkpoints(checkpoints)
    loaded = [(path, *load_inference_model(path, window=window)) for path in checkpoints]
    try:
        options.check_window(min(spec.window for _, _, spec in loaded))
    except ScoringError as exc:
        raise InferenceError(str(exc)) from None
    out_paths: dict[Path, Path] = {}
    for path, _, _ in loaded:
        out_paths[path] = output_path(save_dir, lmdb_dir, path, split, taken=set(out_paths.values()))
    # One pass per distinct window and transform (checkpoints trained at other sizes run apart).
    groups: dict[tuple, list] = {}
    for path, model, spec in loaded:
        groups.setdefault((spec.window, spec.resize, spec.crop), []).append((path, model, spec))
    options = dict(stride=options.stride, batch_size=options.batch_size, device=options.device, amp=amp,
                   workers=options.workers, flip_tta=options.flip_tta, engine=options.engine, original=original,
                   progress=progress)
    for group in groups.values():
        if _score_group(store, lmdb_path, selected, group, out_paths, **options) is None:  # not rank 0
            return []
    return [out_paths[p] for p in checkpoints]


def _score_group(store, lmdb_path: Path, selected: list, group: list, out_paths: dict, *, stride: int,
                 batch_size: int, device, amp, workers: int, flip_tta: bool, engine: str, original: bool,
                 progress: bool) -> list | None:
    """Score ``group`` (checkpoints of one window and transform) in one pass; write their files."""
    from signspot.datasets.transforms import EvalClipTransform

    from .formats.scores import save_frame_scores
    from .runtime import RuntimeSetupError, setup_runtime
    from .scoring import equal_head_weights, on_device, score_videos_with_models

    spec = group[0][2]
    transform = EvalClipTransform(resize=spec.resize, crop=spec.crop)
    head_weights = equal_head_weights()
    try:
        # Rank 0 waits at the merge for the slowest rank: allow for long videos.
        runtime = setup_runtime(device, amp, cpu_autocast=True, timeout_s=6 * 3600.0, flags=("--device", "--amp"))
    except RuntimeSetupError as exc:
        raise InferenceError(str(exc)) from None
    rank, world = runtime.dist.rank, runtime.dist.world_size
    try:
        models = [on_device(model, runtime, exact=original, engine=engine, clip=(spec.window, spec.crop))
                  for _, model, _ in group]
        frame_counts = {v: int(store.num_frames(v)) for v in selected}
        mine = _shard(selected, frame_counts, rank, world)
        started = time.perf_counter()
        per_model = score_videos_with_models(
            models, store, mine, window=spec.window, stride=stride, transform=transform, runtime=runtime,
            head_weights=head_weights, batch_size=batch_size, workers=workers, flip_tta=flip_tta,
            compat="original" if original else "none", drop_last_batch=original, progress=progress and rank == 0,
        )
        written = []
        for (path, _, model_spec), scores in zip(group, per_model):
            out_path = out_paths[path]
            if world > 1:
                scores = _gather_to_rank0(scores, out_path, rank, world)
            if rank != 0:
                continue
            ordered_scores = {v: scores[v] for v in selected if v in scores}
            if not written:  # the models of a group share their windows: say this once
                unscored = [v for v in selected if v not in scores]
                if unscored:
                    print(f"warning: {len(unscored)} video(s) get no whole batch of windows under --compat original "
                          f"(as in the original): {', '.join(unscored[:5])}", file=sys.stderr)
                if not ordered_scores:
                    raise InferenceError(f"{lmdb_path}: no video is long enough for a window under --compat original")
            save_frame_scores(
                out_path,
                ordered_scores,
                checkpoint=str(path.resolve()),
                head_weights=head_weights,
                window=spec.window,
                stride=stride,
                extra={
                    "model": model_spec.model_name,
                    "num_classes": model_spec.num_classes,
                    "width": model_spec.width,
                    "resize": spec.resize,
                    "crop": spec.crop,
                    "flip_tta": bool(flip_tta),
                    "amp": amp or "off",
                    "engine": engine,
                    "frame_store": str(lmdb_path.resolve()),
                    # "original": a video's scores may stop before its last frame (the original's windows)
                    "compat": "original" if original else "none",
                },
            )
            written.append(out_path)
        if rank != 0:
            return None
        elapsed = time.perf_counter() - started
        print(f"wrote {len(written)} score file(s) ({len(selected)} videos, {elapsed:.1f} s): "
              + ", ".join(map(str, written)), file=sys.stderr)
        return written
    finally:
        runtime.shutdown()


def _gather_to_rank0(scores: dict, out_path: Path, rank: int, world: int) -> dict:
    """Each rank writes its videos beside the output; rank 0 reads and removes every part."""
    part = out_path.parent / f".{out_path.stem}.rank{rank}-of-{world}.part.pkl"
    from .runtime import barrier

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
