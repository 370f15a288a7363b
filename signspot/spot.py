"""Videos in, signs out: spotting on a researcher's own videos, no frame store needed.

:func:`spot_videos` decodes each video once (:class:`datasets.video_source.VideoSource`:
the signer crop of every frame, on the fly), runs every checkpoint on each batch of
windows (:func:`signspot.scoring.score_videos_with_models`), averages the checkpoints
frame by frame (:class:`signspot.ensemble.FrameScoreMean`, as ``solution_test_creator_v2.py``
averages their score files) and decodes with the same settings
(:func:`signspot.decode.decode_all`). It writes into the output folder:

* ``predictions.pkl``: the challenge's format, every video;
* ``<video>.eaf``: ELAN 3.0, linking the video, a tier ``signspot`` of glosses and its
  child tier ``signspot-score`` (:func:`signspot.formats.elan.write_eaf`);
* ``spotted.csv``: ``video,class,gloss,start_ms,end_ms,score`` (score: the mean
  ensemble probability of the sign's class over its frames);
* ``boxes.json``: the signer box each video got, in the challenge's box format (edit it
  and rerun with ``--boxes`` to correct one);
* with ``save_scores``: ``scores/<video>/frame_scores.pkl``, the per-frame ensemble.

Each video's result is kept in ``videos/<video>.json`` when it is done, and
``videos/index.json`` holds the file name each video got, over every run into the
folder (so ``a b.mp4`` of one run and ``a_b.mp4`` of a later one never share a file).
A rerun with the same checkpoints, decode settings and video file skips it, and the
summary files are rewritten from the results of every video in the folder, not only
this call's: ``boxes.json`` keeps every video's box, ``predictions.pkl`` and
``spotted.csv`` every video spotted with this call's checkpoints and settings (the
others are named). A folder holding such files that spot.py did not write is refused.
Memory: the frames of one batch of windows plus, per
checkpoint, the per-frame scores of the video being scored (README: spot.py's memory on a
1-hour video, ``bench/bench_spot.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from .decode import DecodeSettings, decode_all
from .formats.elan import DEFAULT_TIER
from .formats.errors import SignspotError
from .formats.safe_io import atomic_write, atomic_write_csv, safe_file_stems
from .formats.timebase import frame_to_ms

__all__ = ["DEFAULT_STRIDE", "SpotError", "spot_videos", "sign_scores"]

# Frames between window starts of spot.py: the largest stride whose mean test F1 stays within 0.01 of
# the original's stride 1 (3 generator seeds, decoding tuned on validation: 0.737 against 0.742, an
# eighth of the windows; stride 16 loses 0.127; bench/bench_stride.py, the README's "How many windows
# a frame needs"). Inference (main_results_creator_v2.py) keeps stride 1, the original.
DEFAULT_STRIDE = 8


class SpotError(SignspotError, ValueError):
    """Inputs of spotting that do not fit together (no video, a box file without a video's box, ...)."""


def sign_scores(scores: np.ndarray, fps: float, intervals: Sequence[Sequence[int]]) -> list[float]:
    """Per interval ``[cls, start_ms, end_ms]``: the mean score of ``cls`` over the frames it spans."""
    ms = frame_to_ms(np.arange(len(scores)), fps)
    out = []
    for cls, start, end in intervals:
        frames = (ms >= start) & (ms <= end)
        out.append(float(scores[frames, cls].mean()) if frames.any() else 0.0)
    return out


SUMMARY_FILES = ("predictions.pkl", "spotted.csv", "boxes.json")


def _read_index(out: Path) -> dict:
    """``{video: stem}`` of every video spotted into ``out`` before; refuses a folder spot.py did not write."""
    index_path = out / "videos" / "index.json"
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))["videos"]
            if not (isinstance(index, dict) and all(isinstance(v, str) for v in index.values())):
                raise ValueError("not {video: stem}")
        except (ValueError, KeyError, TypeError) as exc:
            raise SpotError(f"{index_path}: damaged ({exc}); move the folder aside or choose another --out") from None
        return index
    legacy = {}  # a folder of an earlier version: its results name their videos
    for done in sorted((out / "videos").glob("*.json")) if (out / "videos").is_dir() else ():
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            legacy[json.loads(done.read_text(encoding="utf-8"))["video"]] = done.stem
    if legacy:
        return legacy
    if out.is_dir():
        foreign = [name for name in SUMMARY_FILES if (out / name).exists()] + sorted(p.name for p in out.glob("*.eaf"))
        if foreign:
            raise SpotError(f"{out}: holds {foreign[0]} (and {len(foreign) - 1} more of spot.py's file names), "
                            "which spot.py did not write; choose another --out")
    return {}


def _file_identity(path: Path) -> dict:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def signer_boxes(paths: Mapping[str, Path], boxes_path, box_mode: str, log) -> dict:
    """``{video: (box, how)}`` from the box file(s) (``boxes_path``: one path or several, merged), or
    estimated (``auto``) or the whole frame (``full``)."""
    from signspot.datasets.auto_box import estimate_signer_box
    from signspot.datasets.video_reader import box_for, load_boxes, parse_box

    files = [] if not boxes_path else [boxes_path] if isinstance(boxes_path, (str, os.PathLike)) else list(boxes_path)
    given, source = ({}, {}) if files else (None, {})
    for file in files:
        for name, raw in load_boxes(Path(file)).items():
            if name in given and given[name] != raw:
                raise SpotError(f"{file}: video {name!r} has another box in {source[name]}")
            given[name], source[name] = raw, file
    named = ", ".join(map(str, files))
    chosen = {}
    for video, path in paths.items():
        if given is not None:
            raw = box_for(given, video, path)
            if raw is None:
                raise SpotError(f"{named}: no box for video {video!r} ({path}); add one, or drop --boxes")
            try:
                chosen[video] = (list(parse_box(raw)), f"from {source.get(video, source.get(path.stem))}")
            except ValueError as exc:
                raise SpotError(f"{named}: video {video!r}: {exc}") from None
        else:
            estimate = estimate_signer_box(path, "motion" if box_mode == "auto" else "full")
            chosen[video] = (list(estimate.box), estimate.reason)
        log(f"{video}: signer box {chosen[video][0]} ({chosen[video][1]})")
    return chosen


def spot_videos(
    videos: Sequence[str | os.PathLike],
    checkpoints: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    boxes: Optional[str] = None,
    box: str = "auto",
    vocabulary: Optional[str] = None,
    stride: int = DEFAULT_STRIDE,
    batch_size: int = 8,
    device: Optional[str] = None,
    amp: Optional[str] = None,
    workers: int = 1,
    window: Optional[int] = None,
    flip_tta: bool = False,
    engine: str = "torch",
    decode_config: Optional[str] = None,
    save_scores: bool = False,
    tier: str = DEFAULT_TIER,
    progress: bool = True,
    log=print,
) -> dict:
    """Spot the signs of ``videos`` (files, folders, globs) with ``checkpoints``; write into ``out``."""
    from signspot.datasets.video_reader import VIDEO_EXTENSIONS, save_boxes
    from signspot.datasets.video_source import VideoSource, find_video_files

    from .ensemble import FrameScoreMean
    from .formats.elan import write_eaf
    from .formats.gt import save_intervals_pkl
    from .formats.scores import save_frame_scores
    from .formats.vocabulary import as_vocabulary, check_name, gloss_of
    from .inference import InferenceError, find_checkpoints, load_inference_model
    from .runtime import RuntimeSetupError, setup_runtime
    from .scoring import ScoringOptions, equal_head_weights, on_device, score_videos_with_models

    if box not in ("auto", "full"):
        raise SpotError(f"--box must be auto or full, got {box!r}")
    options = ScoringOptions(device=device, amp=amp, stride=stride, window=window, batch_size=batch_size,
                             workers=workers, flip_tta=flip_tta, engine=engine)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpotError(f"{out}: --out exists and is not a folder")
    check_name(tier, "--tier")  # every input is checked before the first frame is read
    index = _read_index(out)
    settings = DecodeSettings.load_json(decode_config) if decode_config else DecodeSettings()
    glosses = as_vocabulary(vocabulary)
    paths = find_video_files(videos, VIDEO_EXTENSIONS)
    checkpoint_paths = find_checkpoints(checkpoints)
    loaded = [(p, *load_inference_model(p, window=window)) for p in checkpoint_paths]
    specs = {(spec.window, spec.resize, spec.crop, spec.num_classes) for _, _, spec in loaded}
    if len(specs) > 1:
        raise SpotError(f"the checkpoints differ in window, frame size or classes ({sorted(specs)}); "
                        "spot with one kind at a time")
    window, resize, crop, num_classes = specs.pop()
    options.check_window(window)
    if glosses is not None and len(glosses) < num_classes:
        raise SpotError(f"{vocabulary}: {len(glosses)} glosses for the checkpoints' {num_classes} classes")
    chosen_boxes = signer_boxes(paths, boxes, box, log)
    run_key = hashlib.sha1(json.dumps({
        "checkpoints": [_file_identity(p) for p in checkpoint_paths], "stride": stride, "amp": amp or "off",
        "window": window, "flip_tta": flip_tta, **({"engine": engine} if engine != "torch" else {}),
        "decode": settings.to_dict(), "glosses": list(glosses.glosses) if glosses else None, "tier": tier},
        sort_keys=True).encode()).hexdigest()

    from signspot.datasets.transforms import EvalClipTransform

    try:
        runtime = setup_runtime(options.device, amp, cpu_autocast=True, timeout_s=6 * 3600.0,
                                flags=("--device", "--amp"))
    except RuntimeSetupError as exc:
        raise InferenceError(str(exc)) from None
    if runtime.dist.world_size > 1:
        runtime.shutdown()
        raise SpotError("spot.py runs in one process; for several GPUs use the frame-store path with torchrun")
    results: dict = {}
    try:
        models = [on_device(model, runtime, engine=options.engine, clip=(window, crop)) for _, model, _ in loaded]
        new_stems = safe_file_stems(sorted(set(paths) - set(index)), taken=index.values())
        index.update(new_stems)
        stems = index
        results_dir = out / "videos"
        if new_stems:  # the names are taken before any file is written under them
            with atomic_write(results_dir / "index.json", "w") as f:
                json.dump({"videos": index}, f, indent=1, sort_keys=True)
        for number, video in enumerate(sorted(paths), 1):
            path = paths[video]
            done = results_dir / f"{stems[video]}.json"
            identity = {"video": _file_identity(path), "box": chosen_boxes[video][0], "run": run_key}
            if done.is_file():
                previous = json.loads(done.read_text())
                if previous.get("identity") == identity and (out / f"{stems[video]}.eaf").is_file():
                    log(f"[{number}/{len(paths)}] {video}: done before, kept")
                    results[video] = previous
                    continue
            source = VideoSource({video: path}, {video: chosen_boxes[video][0]})
            log(f"[{number}/{len(paths)}] {video}: {source.num_frames(video)} frames at {source.fps(video):g} fps, "
                f"{len(models)} checkpoint(s)")
            per_model = score_videos_with_models(
                models, source, [video], window=window, stride=stride, transform=EvalClipTransform(resize, crop),
                runtime=runtime, head_weights=equal_head_weights(), batch_size=batch_size, workers=min(workers, 1),
                flip_tta=flip_tta, progress=progress,
            )
            mean = FrameScoreMean()
            for checkpoint, scored in zip(checkpoint_paths, per_model):
                mean.add(scored, checkpoint)
            ensembled = mean.result()
            intervals = decode_all(ensembled, settings)[video]
            entry = ensembled[video]
            scores = sign_scores(entry["scores"], entry["fps"], intervals)
            if save_scores:
                save_frame_scores(out / "scores" / stems[video] / "frame_scores.pkl",
                                  {video: {k: entry[k] for k in ("scores", "fps", "num_frames")}},
                                  checkpoint=f"ensemble of {len(models)} checkpoint(s)", head_weights=equal_head_weights(),
                                  window=window, stride=stride,
                                  extra={"sources": [str(p) for p in checkpoint_paths], "video": str(path),
                                         "engine": options.engine})
            write_eaf(out / f"{stems[video]}.eaf", intervals, media=path, vocabulary=glosses, scores=scores, tier=tier)
            result = {"identity": identity, "video": video, "intervals": intervals, "scores": scores,
                      "box_source": chosen_boxes[video][1]}
            with atomic_write(done, "w") as f:
                json.dump(result, f)
            results[video] = result
            log(f"    {len(intervals)} sign(s); wrote {out / (stems[video] + '.eaf')}")
    finally:
        runtime.shutdown()

    # the summaries cover every video of the folder: earlier calls' results too
    every = dict(results)
    for video, stem in index.items():
        done = results_dir / f"{stem}.json"
        if video not in every and done.is_file():
            every[video] = json.loads(done.read_text())
    current = {video: r for video, r in every.items() if r["identity"]["run"] == run_key}
    other = sorted(set(every) - set(current))
    if other:
        log(f"note: {len(other)} video(s) in {out} were spotted with other checkpoints or settings and are left out "
            f"of predictions.pkl and spotted.csv (e.g. {', '.join(other[:3])}); name them in --videos to redo them")
    predictions = {video: current[video]["intervals"] for video in sorted(current)}
    save_intervals_pkl(predictions, out / "predictions.pkl")
    atomic_write_csv(out / "spotted.csv", ["video", "class", "gloss", "start_ms", "end_ms", "score"],
                     ([video, cls, gloss_of(cls, glosses), start, end, f"{score:.4f}"] for video in sorted(current)
                      for (cls, start, end), score in zip(current[video]["intervals"], current[video]["scores"])))
    save_boxes(out / "boxes.json", {video: every[video]["identity"]["box"] for video in every})
    n_signs = sum(len(r["intervals"]) for r in results.values())
    log(f"wrote {out}: predictions.pkl, spotted.csv ({len(current)} videos), boxes.json ({len(every)}) and "
        f"{len(results)} ELAN file(s) of this call ({n_signs} signs)")
    return {"out": str(out), "videos": sorted(results), "num_signs": n_signs,
            "eaf": [str(out / f"{stems[v]}.eaf") for v in sorted(results)]}
