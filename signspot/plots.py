"""Figures for inspecting results (matplotlib, headless Agg backend).

* :func:`plot_video_timeline`: ground-truth and predicted signs of one video on
  a time axis, above a heatmap of its per-frame scores;
* :func:`plot_class_f1`: per-class F1 bars (official metric);
* :func:`plot_threshold_curves`: precision / recall / F1 against the IoU threshold.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .formats.errors import SignspotError  # noqa: E402

__all__ = [
    "ClassNamesError",
    "load_class_names",
    "plot_video_timeline",
    "plot_class_f1",
    "plot_threshold_curves",
]


class ClassNamesError(SignspotError, ValueError):
    """A class-names file that is neither a JSON list / object nor an 'id,name' CSV."""


def load_class_names(path: Optional[str | os.PathLike]) -> Dict[int, str]:
    """Class names from the older label files: JSON (a list, or ``{id: name}``) or CSV (``id,name`` rows, header
    optional).

    The project's one format for class names is the vocabulary file
    (:mod:`signspot.formats.vocabulary`); its ``names()`` is the mapping the plots take.
    """
    if not path:
        return {}
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: class-names file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ClassNamesError(f"{path}: not a text file (class names are JSON or 'id,name' CSV)") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ClassNamesError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(data, list):
            return {i: str(n) for i, n in enumerate(data)}
        if isinstance(data, dict):
            try:
                return {int(k): str(v) for k, v in data.items()}
            except ValueError:
                raise ClassNamesError(f"{path}: keys must be class ids") from None
        raise ClassNamesError(f"{path}: expected a JSON list of names or an object {{id: name}}")
    names = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(text, newline="")), 1):
        if not row or not row[0].strip():
            continue
        try:
            names[int(row[0])] = row[1].strip() if len(row) > 1 else row[0]
        except ValueError:
            if lineno == 1:
                continue  # header
            raise ClassNamesError(f"{path}: line {lineno}: expected 'class_id,name'") from None
    return names


def _label(cls: int, names: Mapping[int, str]) -> str:
    return names.get(cls, str(cls))


def _color(cls: int):
    return plt.get_cmap("tab20")(cls % 20)


def plot_video_timeline(
    path: str | os.PathLike,
    video: str,
    *,
    scores: Optional[np.ndarray] = None,
    fps: float = 25.0,
    gt: Sequence[Sequence[int]] = (),
    pred: Sequence[Sequence[int]] = (),
    class_names: Optional[Mapping[int, str]] = None,
    max_classes: int = 12,
) -> Path:
    """Timeline (GT above predictions, seconds) and, if given, a heatmap of the scores.

    The heatmap shows background plus the ``max_classes`` classes with the highest
    peak score, the GT's and predictions' classes first, so 60 classes stay readable.
    """
    names = class_names or {}
    path = Path(path)
    has_scores = scores is not None and len(scores) > 0
    fig, axes = plt.subplots(
        2 if has_scores else 1, 1, figsize=(14, 6 if has_scores else 2.6), sharex=True, squeeze=False,
        gridspec_kw={"height_ratios": [1, 2.2]} if has_scores else None,
    )
    ax = axes[0, 0]
    duration = len(scores) / fps if has_scores else max([r[2] for r in (*gt, *pred)] or [1000]) / 1000
    for y, rows in enumerate((pred, gt)):
        for cls, start, end in rows:
            s, e = start / 1000, end / 1000
            ax.broken_barh([(s, max(e - s, 1 / fps))], (y + 0.1, 0.8), facecolors=_color(cls), edgecolors="black",
                           linewidth=0.5)
            if e - s >= 0.012 * duration:  # no labels on slivers: they would overprint their neighbours
                ax.text((s + e) / 2, y + 0.5, _label(cls, names), ha="center", va="center", fontsize=7, clip_on=True)
    ax.set_yticks([0.5, 1.5], ["prediction", "ground truth"])
    ax.set_ylim(0, 2)
    ax.set_xlim(0, duration)
    ax.set_title(f"{video}: {len(gt)} ground-truth signs, {len(pred)} predicted")
    ax.grid(axis="x", alpha=0.3)

    if has_scores:
        scores = np.asarray(scores, dtype=np.float32)
        background = scores.shape[1] - 1
        wanted = []
        for cls in [r[0] for r in (*gt, *pred)] + list(np.argsort(-scores[:, :background].max(axis=0))):
            if cls not in wanted and cls != background:
                wanted.append(int(cls))
        shown = sorted(wanted[:max_classes]) + [background]
        hax = axes[1, 0]
        image = hax.imshow(scores[:, shown].T, aspect="auto", interpolation="nearest", cmap="viridis",
                           extent=(0, duration, len(shown) - 0.5, -0.5), vmin=0,
                           vmax=max(float(scores[:, shown].max()), 1e-6))
        hax.set_yticks(range(len(shown)),
                       [("background" if c == background else _label(c, names)) for c in shown], fontsize=7)
        hax.set_xlabel("time (s)")
        hax.set_ylabel("class")
        fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.02, pad=0.01, label="score")
    else:
        ax.set_xlabel("time (s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_class_f1(path: str | os.PathLike, report: Mapping, class_names: Optional[Mapping[int, str]] = None) -> Path:
    """Bars of per-class F1 from :func:`signspot.metric.score_report` (number of GT signs on top)."""
    names = class_names or {}
    rows = report["per_class"]
    path = Path(path)
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(rows) + 2), 4))
    x = np.arange(len(rows))
    ax.bar(x, [r["f1"] for r in rows], color=[_color(r["class"]) for r in rows], edgecolor="black", linewidth=0.4)
    for xi, r in zip(x, rows):
        ax.text(xi, r["f1"] + 0.01, str(r["n_gt"]), ha="center", va="bottom", fontsize=6)
    ax.set_xticks(x, [_label(r["class"], names) for r in rows], rotation=90, fontsize=7)
    total = report["total"]
    ax.axhline(total["f1"], color="black", linestyle="--", linewidth=0.8, label=f"overall F1 {total['f1']:.3f}")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("F1 (summed over IoU thresholds)")
    ax.set_title("per-class F1" + (" (strict one-to-one)" if report.get("strict") else " (official metric)")
                 + "; numbers: ground-truth signs")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_threshold_curves(path: str | os.PathLike, report: Mapping) -> Path:
    """Precision, recall and F1 against the IoU threshold."""
    rows = report["per_threshold"]
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    ious = [r["iou"] for r in rows]
    for key, marker in (("precision", "o"), ("recall", "s"), ("f1", "^")):
        ax.plot(ious, [r[key] for r in rows], marker=marker, label="F1" if key == "f1" else key)
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("value")
    ax.set_ylim(0, max(1.05, max(r["precision"] for r in rows) + 0.05))
    ax.grid(alpha=0.3)
    ax.set_title(f"official metric over IoU thresholds (F1 {report['total']['f1']:.3f})")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
