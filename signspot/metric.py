"""The official MSSL metric (the organisers' evaluation script), and variants.

:func:`official_score` reproduces the organisers' score exactly, quirks
included (SPEC, "Official metric"):

* only videos of the ground truth are scored; a video missing from the
  predictions has no predictions; videos only in the predictions are ignored;
* per video, predictions are sorted by start (stable) and a prediction is
  dropped when the *next* one in that order has the same class and overlaps it
  (``end > next.start``); the last one is always kept. The filtered list is
  used for matching only;
* a ground-truth sign is a true positive at threshold t if at least one
  filtered prediction of its class has IoU >= t (no one-to-one matching, so one
  prediction can make several true positives);
* fp = number of predictions *before* filtering - tp, so fp can be negative;
* tp/fp/fn are summed over videos and the 13 thresholds of
  :data:`IOU_THRESHOLDS` (micro average); P, R and F1 are 0 when tp == 0.

IoU = (min(ends) - max(starts)) / (max(ends) - min(starts)), clipped at 0,
computed in float64 from the integer milliseconds, then compared with the
thresholds as produced by ``np.arange`` (0.39999999999999997 etc.), as the
organisers did. A pair of zero-length intervals (union 0) has IoU 0.

:func:`strict_score` is *not* the challenge metric: it matches one-to-one
(greedy by IoU, all predictions, no filtering) and so never gives fp < 0.

The work is vectorised per video (an IoU matrix between the ground truth and
the predictions of the same class, evaluated for all thresholds at once).
"""

from __future__ import annotations

import warnings
from typing import List, Mapping, Optional, Sequence

import numpy as np

__all__ = [
    "IOU_THRESHOLDS",
    "official_score",
    "strict_score",
    "score_report",
    "format_report",
    "filter_overlapping_predictions",
    "interval_iou",
    "format_score",
    "warn_if_no_signs",
]

IOU_THRESHOLDS = np.arange(0.2, 0.8 + 0.05 - 0.0001, 0.05)

_EMPTY = np.zeros((0, 3), dtype=np.int64)


def _rows(rows) -> np.ndarray:
    """``[[cls, start, end], ...]`` -> int64 (n, 3)."""
    if rows is None or len(rows) == 0:
        return _EMPTY
    arr = np.asarray(rows, dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"expected rows [class, start_ms, end_ms], got an array of shape {arr.shape}")
    return arr


def filter_overlapping_predictions(rows) -> np.ndarray:
    """The organisers' filter: sort by start; drop a prediction overlapping the next one of the same class."""
    arr = _rows(rows)
    if len(arr) < 2:
        return arr
    arr = arr[np.argsort(arr[:, 1], kind="stable")]
    drop = (arr[:-1, 0] == arr[1:, 0]) & (arr[:-1, 2] > arr[1:, 1])
    return arr[np.concatenate([~drop, [True]])]


def interval_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of [.., start, end] rows; 0 when disjoint or the union is empty."""
    sa, ea = a[:, 1, None].astype(np.float64), a[:, 2, None].astype(np.float64)
    sb, eb = b[None, :, 1].astype(np.float64), b[None, :, 2].astype(np.float64)
    inter = np.minimum(ea, eb) - np.maximum(sa, sb)
    union = np.maximum(ea, eb) - np.minimum(sa, sb)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.maximum(iou, 0.0)


def _best_iou_per_gt(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """For each GT row: the best IoU with a prediction of the same class (0 if none)."""
    if len(gt) == 0 or len(pred) == 0:
        return np.zeros(len(gt))
    iou = interval_iou(gt, pred)
    iou[gt[:, 0, None] != pred[None, :, 0]] = 0.0
    return iou.max(axis=1)


def _prf(tp, fp, fn):
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp > 0, tp / (tp + fn), 0.0)
        f1 = np.where(tp > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1


def _collect(gt: Mapping, pred: Mapping, matcher):
    """Per GT sign: its class and matched IoU; per GT video: counts of predictions by class."""
    gt_classes: List[np.ndarray] = []
    gt_ious: List[np.ndarray] = []
    pred_classes: List[np.ndarray] = []
    for video, gt_rows in gt.items():
        g = _rows(gt_rows)
        p = _rows(pred.get(video))
        gt_classes.append(g[:, 0])
        gt_ious.append(matcher(g, p))
        pred_classes.append(p[:, 0])
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    return cat(gt_classes, np.int64), cat(gt_ious, np.float64), cat(pred_classes, np.int64)


def _official_matcher(g, p):
    return _best_iou_per_gt(g, filter_overlapping_predictions(p))


def _strict_matcher(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Greedy one-to-one matching by decreasing IoU; returns each GT sign's matched IoU (0 if none).

    Greedy over pairs in decreasing IoU restricted to IoU >= t is a prefix of the
    same greedy run, so one run serves every threshold.
    """
    matched = np.zeros(len(g))
    if len(g) == 0 or len(p) == 0:
        return matched
    iou = interval_iou(g, p)
    iou[g[:, 0, None] != p[None, :, 0]] = 0.0
    gi, pi = np.nonzero(iou > 0)
    order = np.argsort(-iou[gi, pi], kind="stable")
    used_g, used_p = set(), set()
    for k in order:
        a, b = gi[k], pi[k]
        if a in used_g or b in used_p:
            continue
        used_g.add(a)
        used_p.add(b)
        matched[a] = iou[a, b]
    return matched


def _score(gt: Mapping, pred: Mapping, matcher, thresholds) -> dict:
    thresholds = np.asarray(thresholds, dtype=np.float64)
    _, ious, pred_classes = _collect(gt, pred, matcher)
    tp_t = (ious[:, None] >= thresholds[None, :]).sum(axis=0)
    n_gt, n_pred = len(ious), len(pred_classes)
    tp = int(tp_t.sum())
    fp = int(n_pred * len(thresholds) - tp)
    fn = int(n_gt * len(thresholds) - tp)
    precision, recall, f1 = _prf(tp, fp, fn)
    return {"f1": float(f1), "precision": float(precision), "recall": float(recall), "tp": tp, "fp": fp, "fn": fn}


def warn_if_no_signs(gt: Mapping, source: str) -> bool:
    """Warn (and return True) when ``gt`` holds no sign at all: every score against it is 0."""
    if any(len(rows) for rows in gt.values()):
        return False
    what = "no videos" if not gt else f"{len(gt)} video(s) but no signs"
    warnings.warn(f"{source}: the ground truth holds {what}, so precision, recall and F1 are 0 "
                  "whatever the predictions; is it the right file?", stacklevel=2)
    return True


def official_score(gt: Mapping, pred: Mapping, thresholds: Sequence[float] = IOU_THRESHOLDS) -> dict:
    """The challenge score: ``{"f1", "precision", "recall", "tp", "fp", "fn"}`` (plain Python numbers).

    ``gt``, ``pred``: ``{video: [[class, start_ms, end_ms], ...]}``.
    """
    return _score(gt, pred, _official_matcher, thresholds)


def strict_score(gt: Mapping, pred: Mapping, thresholds: Sequence[float] = IOU_THRESHOLDS) -> dict:
    """A one-to-one variant (NOT the challenge metric): greedy matching by IoU over all predictions."""
    return _score(gt, pred, _strict_matcher, thresholds)


def score_report(
    gt: Mapping, pred: Mapping, *, strict: bool = False, thresholds: Sequence[float] = IOU_THRESHOLDS
) -> dict:
    """Totals plus per-class and per-threshold breakdowns (tp/fp/fn summed as in the total).

    Returns ``{"total": {...}, "per_threshold": [{"iou", "tp", "fp", "fn", "precision",
    "recall", "f1"}], "per_class": [{"class", "n_gt", "n_pred", "tp", "fp", "fn",
    "precision", "recall", "f1"}]}``; per-class fp is that class's predictions minus its
    tp, so the per-class rows add up to the total.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    matcher = _strict_matcher if strict else _official_matcher
    gt_classes, ious, pred_classes = _collect(gt, pred, matcher)
    hit = ious[:, None] >= thresholds[None, :]  # (n_gt, n_thresholds)
    n_thr = len(thresholds)

    tp_t = hit.sum(axis=0)
    fp_t = len(pred_classes) - tp_t
    fn_t = len(ious) - tp_t
    p_t, r_t, f_t = _prf(tp_t, fp_t, fn_t)
    per_threshold = [
        {"iou": float(t), "tp": int(a), "fp": int(b), "fn": int(c), "precision": float(p), "recall": float(r), "f1": float(f)}
        for t, a, b, c, p, r, f in zip(thresholds, tp_t, fp_t, fn_t, p_t, r_t, f_t)
    ]

    classes = np.union1d(gt_classes, pred_classes)
    n_gt_c = np.array([(gt_classes == c).sum() for c in classes], dtype=np.int64)
    n_pred_c = np.array([(pred_classes == c).sum() for c in classes], dtype=np.int64)
    tp_c = np.array([hit[gt_classes == c].sum() for c in classes], dtype=np.int64)
    fp_c = n_pred_c * n_thr - tp_c
    fn_c = n_gt_c * n_thr - tp_c
    p_c, r_c, f_c = _prf(tp_c, fp_c, fn_c)
    per_class = [
        {
            "class": int(c), "n_gt": int(ng), "n_pred": int(npr), "tp": int(a), "fp": int(b), "fn": int(d),
            "precision": float(p), "recall": float(r), "f1": float(f),
        }
        for c, ng, npr, a, b, d, p, r, f in zip(classes, n_gt_c, n_pred_c, tp_c, fp_c, fn_c, p_c, r_c, f_c)
    ]
    total = _score(gt, pred, matcher, thresholds)
    return {"total": total, "per_threshold": per_threshold, "per_class": per_class, "strict": bool(strict)}


def format_report(report: dict, class_names: Optional[Mapping[int, str]] = None) -> str:
    """Plain-text tables of :func:`score_report`."""
    lines = ["IoU      tp      fp      fn  precision  recall      F1"]
    for row in report["per_threshold"]:
        lines.append(
            f"{row['iou']:.2f} {row['tp']:7d} {row['fp']:7d} {row['fn']:7d}  {row['precision']:9.4f} "
            f"{row['recall']:7.4f} {row['f1']:7.4f}"
        )
    lines.append("")
    lines.append("class  name                  n_gt  n_pred      tp      fp      fn      F1")
    for row in report["per_class"]:
        name = (class_names or {}).get(row["class"], "")[:20]
        lines.append(
            f"{row['class']:5d}  {name:20s} {row['n_gt']:5d} {row['n_pred']:7d} {row['tp']:7d} {row['fp']:7d} "
            f"{row['fn']:7d} {row['f1']:7.4f}"
        )
    return "\n".join(lines)


def format_score(score: Mapping) -> str:
    return (
        f"F1 {score['f1']:.4f}  precision {score['precision']:.4f}  recall {score['recall']:.4f}  "
        f"tp {score['tp']}  fp {score['fp']}  fn {score['fn']}"
    )
