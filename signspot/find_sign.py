"""Query videos in, where their signs occur out: :func:`find_signs`, the engine of ``scripts/find_sign.py``.

Every query and every video is decoded once (:class:`~signspot.datasets.video_source.VideoSource`,
signer boxes as ``spot.py`` finds them), embedded by each checkpoint
(:meth:`~signspot.models.hs_i3d.HSI3D.embed`) and matched (:mod:`signspot.oneshot`). The output
folder is written whole at the end (nothing is left by a failed run) and holds:

* ``predictions.pkl``: ``{video: [[sign, start_ms, end_ms], ...]}``, the challenge's format;
* ``spotted.csv``: ``video,query,sign,gloss,start_ms,end_ms,similarity``;
* ``<video>.eaf``: ELAN 3.0, one tier ``signspot`` of the glosses found, a score tier below it;
* ``plots/<video>.png``: each query's similarity over the video, the intervals found shaded;
* ``match_config.json`` with ``--tune-on``: the open-search threshold tuned on that ground truth.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from .formats.elan import DEFAULT_TIER
from .oneshot import (
    BASELINE_WINDOW,
    MatchSettings,
    OneShotError,
    active_span,
    clip_sign_id,
    cosine_matrix,
    dtw_curve,
    dtw_intervals,
    intervals_from_curve,
    one_sign_at_a_time,
    query_sign_id,
    to_rows,
    tune_threshold,
)

__all__ = ["find_signs"]


def _embed(models, spec, source, names, *, layer: str, stride: int, runtime, batch_size: int, progress: bool):
    """``[{video: (T, D) float32}]`` per model: per-frame features averaged over the windows covering a frame."""
    from signspot.datasets.transforms import EvalClipTransform

    from .scoring import score_videos_with_models

    found = score_videos_with_models(models, source, names, window=spec.window, stride=stride,
                                     transform=EvalClipTransform(spec.resize, spec.crop), runtime=runtime,
                                     batch_size=batch_size, embed_layer=layer, progress=progress)
    return [{name: entry["scores"] for name, entry in per_model.items()} for per_model in found]


def _window_vectors(model, spec, source, name: str, *, runtime, batch_size: int) -> np.ndarray:
    """The baseline's clip side: one backbone vector per 8-frame window, stride 1 (``(windows, D)``)."""
    import torch

    from signspot.datasets.transforms import EvalClipTransform, normalize_clip
    from signspot.datasets.video_windows import StreamingWindowDataset, gather_windows

    dataset = StreamingWindowDataset(source, [name], window=BASELINE_WINDOW, stride=1, batch_size=batch_size,
                                     transform=EvalClipTransform(spec.resize, spec.crop))
    vectors = []
    with torch.inference_mode():
        for batch in dataset:
            clips = gather_windows(normalize_clip(batch["frames"].to(runtime.device)), batch["offsets"].tolist(),
                                   BASELINE_WINDOW)
            with runtime.autocast():
                vectors.append(model.embed(clips, "backbone")[:, 0].float().cpu().numpy())
    return np.concatenate(vectors)


def _query_vector(model, spec, source, name: str, span, *, runtime) -> np.ndarray:
    """The baseline's query side: one backbone vector of 8 frames spread over the query's signing."""
    import torch

    from signspot.datasets.transforms import EvalClipTransform, normalize_clip

    picks = np.linspace(span[0], span[1] - 1, BASELINE_WINDOW).round().astype(int)
    frames = EvalClipTransform(spec.resize, spec.crop)(source.read_frames(name, sorted(set(picks.tolist()))))
    frames = frames[np.searchsorted(np.unique(picks), picks)]
    with torch.inference_mode(), runtime.autocast():
        clip = normalize_clip(torch.as_tensor(np.ascontiguousarray(frames))[None].to(runtime.device))
        return model.embed(clip, "backbone")[0, 0].float().cpu().numpy()


def _centred(per_model: List[Dict[str, np.ndarray]], over: Sequence[str]) -> None:
    """Take, per model, the mean vector over the ``over`` entries (every frame or window searched) off every
    entry, in place: what all signing shares says nothing about which sign it is."""
    for found in per_model:
        mean = np.concatenate([found[name] for name in over]).mean(0)
        for name in found:
            found[name] = found[name] - mean


def feature_extractor(path: Path):
    """``(model, spec, layer)`` of a checkpoint: a trained HS-I3D (ours or released: layer ``"all"``), or a
    BSL-1K I3D (``model.bsl1k_weights``' file: its backbone in an HS-I3D, layer ``"backbone"``, 32-frame windows
    of 224-px crops from 256-px frames, as the I3D was trained)."""
    from .checkpoint import load_bsl1k_backbone, load_checkpoint
    from .inference import InferenceError, InferenceSpec, load_inference_model

    try:
        model, spec = load_inference_model(path)
        return model, spec, "all"
    except InferenceError:
        try:
            is_bsl1k = "state_dict" in load_checkpoint(path)
        except (OSError, ValueError, KeyError, RuntimeError):
            is_bsl1k = False
        if not is_bsl1k:
            raise
    from signspot.models import build_model

    model = build_model("hs_i3d", num_classes=1)
    load_bsl1k_backbone(model, path)
    return model.eval(), InferenceSpec("hs_i3d", 1, 1.0, window=32, resize=256, crop=224), "backbone"


def _glosses(query_ids: Mapping[str, int], vocabulary):
    """A vocabulary covering every query's sign id: the given one, else the query names as glosses."""
    from .formats.vocabulary import Vocabulary

    if vocabulary is not None:
        missing = sorted({i for i in query_ids.values() if i >= len(vocabulary)})
        if missing:
            raise OneShotError(f"{vocabulary.source}: no gloss for sign id(s) {missing} of the queries; "
                               f"it has {len(vocabulary)} (ids 0-{len(vocabulary) - 1})")
        return vocabulary
    names = {i: q for q, i in query_ids.items()}
    return Vocabulary([names.get(i, f"s{i:02d}") for i in range(max(query_ids.values()) + 1)], "the query names")


def _plot(path: Path, video: str, curves: Mapping[str, np.ndarray], found: Sequence[dict], fps: float,
          num_frames: int, settings: MatchSettings, weak: bool) -> None:
    from .plots import plt

    fig, ax = plt.subplots(figsize=(10, 3.2))
    seconds = np.arange(num_frames) / fps
    for query, curve in curves.items():
        shown = np.where(curve > -1, curve, np.nan)  # -1: no whole match ends there yet
        ax.plot(seconds[: len(curve)], shown, lw=1.2, label=query)
    for row in found:
        ax.axvspan(row["start_ms"] / 1000, row["end_ms"] / 1000, color="tab:green", alpha=0.25)
        ax.text(row["start_ms"] / 1000, ax.get_ylim()[1], f" {row['gloss']} {row['similarity']:.2f}", va="top",
                fontsize=8)
    if not weak:
        ax.axhline(settings.threshold, color="grey", ls="--", lw=0.8, label=f"threshold {settings.threshold:.3f}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("similarity" + (" (match ending here)" if settings.matcher == "dtw" else " (8-frame window)"))
    ax.set_title(f"{video}: {'weak labels' if weak else 'open search'}, matcher {settings.matcher}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def find_signs(
    queries: Sequence[str | os.PathLike],
    videos: Sequence[str | os.PathLike],
    checkpoints: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    weak_labels: bool = False,
    vocabulary: Optional[str] = None,
    boxes: Optional[str] = None,
    box: str = "auto",
    device: Optional[str] = None,
    matcher: Optional[str] = None,
    match_config: Optional[str] = None,
    tune_on: Optional[str] = None,
    stride: Optional[int] = None,
    batch_size: int = 8,
    tier: str = DEFAULT_TIER,
    plots: bool = True,
    progress: bool = True,
    log=print,
) -> dict:
    """Find each query's sign in ``videos``; write the results into ``out`` (see the module docstring)."""
    from signspot.datasets.video_reader import VIDEO_EXTENSIONS
    from signspot.datasets.video_source import VideoSource, find_video_files
    from signspot.models.hs_i3d import HSI3D

    from .formats.elan import write_eaf
    from .formats.gt import load_intervals, save_intervals_pkl
    from .formats.safe_io import atomic_write_csv, refuse_outputs_over_inputs, safe_file_stems, staged_folder
    from .formats.vocabulary import as_vocabulary, check_name
    from .inference import find_checkpoints
    from .runtime import setup_runtime
    from .scoring import on_device
    from .spot import signer_boxes

    # ---- every input checked before the first frame is read
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OneShotError(f"{out}: exists and is not an empty folder; choose another --out")
    refuse_outputs_over_inputs({"--out": out}, {"--queries": list(queries), "--videos": list(videos),
                                                "--checkpoints": list(checkpoints), "--tune-on": tune_on})
    check_name(tier, "--tier")
    if tune_on and weak_labels:
        raise OneShotError("--tune-on tunes the open-search threshold: it goes without --weak-labels")
    if tune_on and match_config:
        raise OneShotError("give --tune-on (to tune the threshold) or --match-config (to reuse one), not both")
    settings = MatchSettings.load_json(match_config) if match_config else MatchSettings()
    if matcher is not None:
        settings = dataclasses.replace(settings, matcher=matcher)
    glosses = as_vocabulary(vocabulary)
    query_paths = find_video_files(queries, VIDEO_EXTENSIONS)
    if not query_paths:
        raise OneShotError(f"{', '.join(map(str, queries))}: no query video")
    video_paths = find_video_files(videos, VIDEO_EXTENSIONS)
    both = set(query_paths) & set(video_paths)
    if both:
        raise OneShotError(f"{sorted(both)[0]}: is both a query and a video to search")
    query_ids = {q: query_sign_id(q, k, glosses) for k, q in enumerate(sorted(query_paths))}
    glosses = _glosses(query_ids, glosses)
    weak_ids = {v: clip_sign_id(v) for v in video_paths}
    if weak_labels:
        unlabelled = sorted(v for v, i in weak_ids.items() if i is None or i not in set(query_ids.values()))
        if unlabelled:
            raise OneShotError(f"{video_paths[unlabelled[0]]}: --weak-labels needs the sign id of a query in each "
                               f"video's name (..._sNN_...), as the challenge's clips have; {len(unlabelled)} "
                               "video(s) have none of the queries' ids")
    gt = load_intervals(tune_on, vocabulary=glosses) if tune_on else None
    if gt is not None and not set(gt) & set(video_paths):
        raise OneShotError(f"{tune_on}: none of its videos is among --videos; tune on labelled videos searched")
    checkpoint_paths = find_checkpoints(checkpoints)
    loaded = [feature_extractor(p) for p in checkpoint_paths]
    specs = {(s.window, s.resize, s.crop, layer) for _, s, layer in loaded}
    if len(specs) > 1:
        raise OneShotError(f"the checkpoints differ in window, frame size or kind ({sorted(specs)}); use one kind "
                           "at a time")
    spec, layer = loaded[0][1], loaded[0][2]
    stride = stride or max(1, spec.window // 4)
    if not 1 <= stride <= spec.window:
        raise OneShotError(f"--stride must be in 1..{spec.window} (the window), got {stride}")
    paths = {**query_paths, **video_paths}
    chosen = signer_boxes(paths, boxes, box, log)
    source = VideoSource(paths, {name: chosen[name][0] for name in paths})
    for query in query_paths:
        if source.num_frames(query) < HSI3D.TEMPORAL_STRIDE:
            raise OneShotError(f"{query_paths[query]}: {source.num_frames(query)} frames, shorter than the model's "
                               f"temporal stride ({HSI3D.TEMPORAL_STRIDE} frames): not a sign to look for")

    # ---- embeddings
    runtime = setup_runtime(device, None, cpu_autocast=True, flags=("--device", "--amp"))
    models = [on_device(model, runtime) for model, _, _ in loaded]
    try:
        log(f"embedding {len(query_paths)} queries and {len(video_paths)} videos with {len(models)} checkpoint(s)")
        frames = _embed(models, spec, source, sorted(paths), layer=layer, stride=stride, runtime=runtime,
                        batch_size=batch_size, progress=progress)
        _centred(frames, list(video_paths))
        spans = {q: active_span(np.mean([f[q] for f in frames], axis=0)) for q in query_paths}
        if settings.matcher == "baseline":
            windows = [{v: _window_vectors(m, spec, source, v, runtime=runtime, batch_size=batch_size)
                        for v in video_paths} for m in models]
            # the query vectors join their model's windows to be centred on the windows' mean
            vectors = [{**ws, **{q: _query_vector(m, spec, source, q, spans[q], runtime=runtime)[None]
                                 for q in query_paths}} for m, ws in zip(models, windows)]
            _centred(vectors, list(video_paths))
    finally:
        runtime.shutdown()

    # ---- matching
    candidates: Dict[str, list] = {v: [] for v in video_paths}  # (query, sign, first, last, similarity)
    curves: Dict[str, Dict[str, np.ndarray]] = {v: {} for v in video_paths}
    for video in sorted(video_paths):
        n = source.num_frames(video)
        for query in sorted(query_paths):
            sign = query_ids[query]
            if weak_labels and weak_ids[video] != sign:
                continue
            if settings.matcher == "dtw":
                start, stop = spans[query]
                similarity = np.mean([cosine_matrix(f[query][start:stop], f[video]) for f in frames], axis=0)
                curve, starts = dtw_curve(similarity)
                found = dtw_intervals(curve, starts, top1=weak_labels, threshold=-np.inf)  # thresholded below
            else:
                curve = np.mean([cosine_matrix(v[query], v[video])[0] for v in vectors], axis=0)
                # every run scores the clip's best window (the recipe's gate, in open search the threshold)
                found = [(a, b, float(curve.max())) for a, b, _ in intervals_from_curve(
                    curve, n, window=BASELINE_WINDOW, relative=settings.relative, close_gap=settings.close_gap)]
            curves[video][query] = curve
            candidates[video] += [(query, sign, first, last, score) for first, last, score in found]

    if not weak_labels:  # before any threshold: the one kept is the most similar, whatever the threshold
        candidates = {v: one_sign_at_a_time(found) for v, found in candidates.items()}
    table = None
    if gt is not None:
        scored = {v: [(c[1], row, c[4]) for c in found for row in to_rows([c[2:]], c[1], source.fps(v))[0]]
                  for v, found in candidates.items() if v in gt}
        threshold, table = tune_threshold(scored, gt)
        settings = dataclasses.replace(settings, threshold=threshold)
        best = next(r for r in table if r["threshold"] == threshold)
        log(f"tuned on {tune_on}: threshold {threshold:.4f}, F1 {best['f1']:.4f} (precision {best['precision']:.4f}, "
            f"recall {best['recall']:.4f})")
    if not weak_labels:
        candidates = {v: [c for c in found if c[4] >= settings.threshold] for v, found in candidates.items()}

    # ---- outputs, written whole
    predictions: Dict[str, List[List[int]]] = {}
    rows_of: Dict[str, List[dict]] = {}
    for video in sorted(video_paths):
        fps = source.fps(video)
        rows_of[video] = []
        for query, sign, first, last, score in sorted(candidates[video], key=lambda c: (c[2], c[0])):
            rows, _ = to_rows([(first, last, score)], sign, fps)
            for row in rows:
                rows_of[video].append({"query": query, "sign": sign, "gloss": glosses.gloss(sign),
                                       "start_ms": row[1], "end_ms": row[2], "similarity": score})
        predictions[video] = [[r["sign"], r["start_ms"], r["end_ms"]] for r in rows_of[video]]
    with staged_folder(out) as staging:
        save_intervals_pkl(predictions, staging / "predictions.pkl")
        atomic_write_csv(staging / "spotted.csv", ["video", "query", "sign", "gloss", "start_ms", "end_ms", "similarity"],
                         ([video, r["query"], r["sign"], r["gloss"], r["start_ms"], r["end_ms"], f"{r['similarity']:.4f}"]
                          for video in sorted(rows_of) for r in rows_of[video]))
        stems = safe_file_stems(sorted(video_paths))
        for video in sorted(video_paths):
            write_eaf(staging / f"{stems[video]}.eaf", predictions[video], media=video_paths[video], vocabulary=glosses,
                      scores=[min(1.0, max(0.0, r["similarity"])) for r in rows_of[video]], tier=tier, links_from=out)
            if plots:
                _plot(staging / "plots" / f"{stems[video]}.png", video, curves[video], rows_of[video],
                      source.fps(video), source.num_frames(video), settings, weak_labels)
        if table is not None:
            settings.save_json(staging / "match_config.json", tuned_on=str(tune_on), table=table)
    n = sum(len(r) for r in predictions.values())
    log(f"wrote {out}: {n} interval(s) in {len(predictions)} video(s) ({'weak labels' if weak_labels else 'open search'}"
        f", matcher {settings.matcher}" + ("" if weak_labels else f", threshold {settings.threshold:.4f}") + ")")
    return {"out": str(out), "intervals": n, "videos": len(predictions), "settings": settings,
            "predictions": predictions, "spans": spans}
