"""Tuning of the decode settings on validation scores, by official F1."""

from __future__ import annotations

import itertools
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .decode import DecodeSettings, frame_labels, labels_to_intervals

__all__ = ["default_tuning_grid", "format_tuning_table", "settings_of", "tune_decode_settings"]


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
    return settings_of(best_row), sorted(rows, key=lambda r: -r["f1"])


def settings_of(row: Mapping) -> DecodeSettings:
    return DecodeSettings.from_dict({k: row[k] for k in DecodeSettings().to_dict()})


def format_tuning_table(rows: Sequence[Mapping], limit: int = 15) -> str:
    """The ``limit`` best rows of :func:`tune_decode_settings`, plus the original setting's row."""
    lines = ["smoothing  margin  merge_gap  min_length      F1  precision  recall"]
    original = next((r for r in rows if settings_of(r).is_original()), None)
    shown = list(rows[:limit]) + ([original] if original is not None and original not in rows[:limit] else [])
    for r in shown:
        tag = "  (original)" if r is original else ""
        lines.append(
            f"{r['smoothing']:9d} {r['background_margin']:7.2f} {r['merge_gap']:10d} {r['min_length']:11d} "
            f"{r['f1']:7.4f} {r['precision']:10.4f} {r['recall']:7.4f}{tag}"
        )
    return "\n".join(lines)
