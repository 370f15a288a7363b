"""Validation during training: the official F1 of the fold's validation videos.

The per-frame scores come from :func:`signspot.scoring.score_videos`, the path
inference takes, with non-overlapping windows (stride = window) and the heads of
``eval.head_weights`` (default head "x" alone, the original's rule). They are
decoded with the original rule (:func:`signspot.decode.decode_frame_scores`) and
scored with the official metric. ``eval.compat`` chooses the windows:

* ``"original"`` (the recipe's): the original's windows, ``range(0, n - window, window)``; the
  frames after the last window get no scores, and a video of at most one window is
  left out (its signs count neither way), as the original's validation did;
* ``"none"``: every frame is scored, the last window shifted back onto the tail.

The ground truth is ``eval.ground_truth`` (the split's pkl files, as the original
read it) when given, else the validation CSV's signs converted to milliseconds.
Under torchrun each process scores its share of the videos; only the (small)
predictions travel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .config import Config, ConfigError
from .decode import decode_frame_scores
from .metric import official_score
from .runtime import Runtime, all_gather_objects
from .scoring import head_weights_from, score_videos
from .train_data import intervals_from_rows, read_fold_csv

__all__ = ["ValidationSet", "build_validation", "validate"]


@dataclass
class ValidationSet:
    videos: list  # every validation video
    gt: dict  # {video: [[cls, start_ms, end_ms]]}
    my_videos: list  # this process's share
    transform: object  # datasets.transforms.EvalClipTransform
    head_weights: dict  # {head: weight}


def build_validation(cfg: Config, store, rt: Runtime) -> Optional[ValidationSet]:
    if cfg.eval.every_epochs == 0:
        return None
    if cfg.data.val_csv is None:
        raise ConfigError("data.folds_dir or data.val_csv: one must be set to validate (or set eval.every_epochs=0)")
    from signspot.datasets.transforms import EvalClipTransform

    rows = read_fold_csv(cfg.data.val_csv, store, cfg.data.num_classes, role="val")
    videos = sorted({row["video"] for row in rows})
    transform = EvalClipTransform(resize=cfg.data.resize, crop=cfg.data.crop)
    if cfg.eval.ground_truth:
        gt = _ground_truth_of(videos, cfg.eval.ground_truth, cfg.data.num_classes)
    else:
        gt = intervals_from_rows(rows, store)
    return ValidationSet(
        videos=videos,
        gt=gt,
        my_videos=videos[rt.dist.rank :: rt.dist.world_size],
        transform=transform,
        head_weights=head_weights_from(cfg.eval.head_weights),
    )


def _ground_truth_of(videos: list, paths, num_classes: int) -> dict:
    """The signs of ``videos`` in the ground-truth files ``paths`` (``eval.ground_truth``)."""
    from .formats.gt import load_intervals

    merged: dict = {}
    for path in paths:
        merged.update(load_intervals(path, num_classes=num_classes))
    missing = [v for v in videos if v not in merged]
    if missing:
        raise ConfigError(
            f"eval.ground_truth: {len(missing)} validation video(s) are in none of {list(paths)} "
            f"(e.g. {missing[:3]}); give the ground truth of the split the folds were made from"
        )
    return {v: merged[v] for v in videos}


@torch.no_grad()
def validate(model: torch.nn.Module, val: ValidationSet, store, cfg: Config, rt: Runtime) -> dict:
    """Official F1 on the validation videos (all processes get the same result)."""
    compat = cfg.eval.compat
    scores = score_videos(
        model, store, val.my_videos, window=cfg.data.window, stride=cfg.data.window, transform=val.transform,
        runtime=rt, head_weights=val.head_weights, batch_size=cfg.eval.batch_size, workers=cfg.eval.num_workers,
        compat=compat, progress=False,
    )
    predictions = {video: decode_frame_scores(entry["scores"], entry["fps"]) for video, entry in scores.items()}
    merged = {}
    for part in all_gather_objects(predictions):
        merged.update(part)
    # the original scored the videos that had a window; "full" scores every video
    gt = {v: rows for v, rows in val.gt.items() if v in merged} if compat == "original" else val.gt
    return official_score(gt, merged)
