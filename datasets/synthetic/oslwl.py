"""The one-shot track (OSLWL) from the same generator: query videos and clips in the challenge's layout::

    <out>/OSLWL_QUERY_VAL_SET/p00_s00.mp4            one isolated sign each (rest, the sign, rest)
    <out>/OSLWL_VAL_SET_VIDEOS/p03_s00_n000.mp4      about 4 s, one occurrence of sign s00 among other signing
    <out>/OSLWL_VAL_SET_GT.pkl                       {clip: [[sign, start_ms, end_ms]]}
    <out>/OSLWL_QUERY_TEST_SET/, OSLWL_TEST_SET_VIDEOS/, OSLWL_TEST_SET_GT.pkl   the same, signs 10..19
    <out>/query_{valid,test}_bboxes.json, oslwl_{valid,test}_bboxes.json        signer boxes
    <out>/vocabulary.txt                             the glosses of the one-shot signs (line k = sign k)
    <out>/oslwl_stats.json                           signs, signers (seen in MSSL training or not), counts

What is matched to the challenge (``docs/OSLWL.md`` gives the sources): 25 fps; the query
is named ``p<signer>_s<sign>``, the clip ``p<signer>_s<sign>_n<number>`` with the sign id
of its query (the weak label) and a number unique in the split; validation and test have
their own signs (ids 0..S-1 and S..2S-1); half of each split's queries are signed by a
signer who appears in no MSSL video (``p00``, as the challenge's interpreter) and half by
one of the MSSL training signers; clips are signed by the MSSL signers (seen in training
and test-only ones); a clip is about 4 s and holds its sign once. Scaled down for a CPU:
``signs`` per split (challenge: 20) and ``clips_per_sign`` (challenge: 5-65, 15 on
average).

The one-shot signs are none of the MSSL classes nor of the MSSL videos' distractor signs
of the same settings (``classes``): a model trained on the MSSL data has never seen them.
They are drawn from the rest of the repertoire, as far from each other as it allows, and
depend on ``classes`` and ``signs`` only, never on the seed.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from signspot.datasets.video_reader import save_boxes
from signspot.formats.gt import save_intervals_pkl
from signspot.formats.safe_io import atomic_write

from .config import MAX_SIGN_FRAMES, MS_PER_FRAME, SynthConfig, SyntheticConfigError
from .plan import (
    Signer,
    VideoPlan,
    _background,
    _class_duration_factors,
    _make_signers,
    _plan_timeline,
    _sign_length,
    _video_layout,
    plan_dataset,
)
from .repertoire import SignDef, _all_combinations, _distance, class_repertoire

__all__ = ["OSLWL_SPLITS", "generate_oslwl", "oslwl_signs"]

# (split name in file names, bbox file infix, folder infix)
OSLWL_SPLITS: Tuple[Tuple[str, str], ...] = (("VAL", "valid"), ("TEST", "test"))
CLIP_SECONDS = 4.0
UNSEEN_QUERY_SIGNER = -1  # index of the query signer who appears in no MSSL video: named p00


def oslwl_signs(classes: int, signs: int) -> List[SignDef]:
    """``2 * signs`` signs (validation's, then test's), none of them an MSSL class or distractor of ``classes``."""
    queries, distractors = class_repertoire(classes)
    used = {d.key for d in queries + distractors}
    pool = [c for c in _all_combinations() if c.key not in used]
    order = np.random.default_rng(20221023).permutation(len(pool))
    pool = [pool[i] for i in order]
    keys = np.array([c.key for c in pool])
    taken = np.array([d.key for d in queries + distractors])
    # farthest-point selection, also away from what the MSSL model has seen
    min_dist = _distance(keys[:, None, :], taken[None, :, :]).min(1)
    chosen: List[int] = []
    for _ in range(2 * signs):
        nxt = int(np.argmax(min_dist))
        chosen.append(nxt)
        min_dist = np.minimum(min_dist, _distance(keys, keys[nxt]))
        min_dist[nxt] = -1.0
    return [pool[i] for i in chosen]


def _query_signers(cfg: SynthConfig, signers: List[Signer]) -> Tuple[Signer, Signer]:
    """A signer of no MSSL video (``p00``) and a signer of the MSSL training videos."""
    rng = np.random.default_rng([cfg.seed, 0x0517])
    stranger = _make_signers(replace(cfg, signers=1, test_only_signers=0), rng)[0]
    stranger = replace(stranger, index=UNSEEN_QUERY_SIGNER, test_only=True)
    seen = [s for s in signers if not s.test_only]
    return stranger, seen[min(2, len(seen) - 1)]


def _plan(name: str, split: str, index: int, frames: int, cfg: SynthConfig, signer: Signer, rng,
          signs: list, rests: list) -> VideoPlan:
    unit, centre, bbox = _video_layout(rng, cfg, signer)
    return VideoPlan(name=name, split=split, index=index, num_frames=frames, width=cfg.size[0], height=cfg.size[1],
                     signer=signer, unit=unit, centre=centre, bbox=bbox, background=_background(rng, signer),
                     noise_sigma=float(rng.uniform(1.0, 4.5)), blur_sigma=float(rng.uniform(0.0, 0.9)),
                     render_seed=int(rng.integers(2**31)), signs=signs, rests=rests)


def _query_plan(cfg, signer, sign_id: int, rep_index: int, factor: float, split: str, counter: int) -> VideoPlan:
    """Rest, the sign, rest: 1.2 s of stillness around it, as a dictionary entry is filmed."""
    rng = np.random.default_rng([cfg.seed, 0x9E7, counter])
    length = _sign_length(rng, cfg.mean_sign_frames, factor, signer.speed)
    lead = int(rng.integers(14, 22))
    frames = lead + length + int(rng.integers(14, 22))
    name = f"p{signer.index + 1:02d}_s{sign_id:02d}"
    return _plan(name, split, counter, frames, cfg, signer, rng, [(rep_index, lead, lead + length, sign_id)],
                 [(3, lead - 4), (lead + length + 4, frames - 3)])


def _clip_plan(cfg, signer, sign_id: int, rep_index: int, factor: float, distractor_factors, split: str,
               number: int) -> VideoPlan:
    """About 4 s of continuous signing (MSSL distractor signs) holding the one-shot sign once."""
    rng = np.random.default_rng([cfg.seed, 0xC11, number, sign_id])
    frames = int(round(CLIP_SECONDS * 25))
    while True:  # the MSSL timeline planner with no query class, then the sign placed over one distractor
        signs, rests = _plan_timeline(rng, cfg, signer, frames, [], np.ones(1), distractor_factors)
        inner = [k for k, (_, s, e, _) in enumerate(signs) if 8 <= s and e <= frames - 8]
        if inner:
            break
    k = inner[int(rng.integers(len(inner)))]
    _, s, e, _ = signs[k]
    length = min(_sign_length(rng, cfg.mean_sign_frames, factor, signer.speed), MAX_SIGN_FRAMES, frames - 8 - s)
    length = max(length, 5)
    signs[k] = (rep_index, s, s + length, sign_id)
    if k + 1 < len(signs) and signs[k + 1][1] < s + length + 3:  # keep a transition before the next sign
        signs = signs[: k + 1] + [sg for sg in signs[k + 1:] if sg[1] >= s + length + 3]
    name = f"p{signer.index + 1:02d}_s{sign_id:02d}_n{number:03d}"
    return _plan(name, split, number, frames, cfg, signer, rng, signs, rests)


def generate_oslwl(out: str | os.PathLike, *, signs: int = 10, clips_per_sign: int = 4, workers: int = 1,
                   layout_seed: Optional[int] = None, overwrite: bool = False, progress: bool = True,
                   **config) -> Dict[str, object]:
    """Write the one-shot track of the generator settings ``config`` (those of :func:`generate_dataset`).

    The signers are those of the MSSL dataset of ``config`` (its seed); ``layout_seed`` (default: that
    seed) draws the query and clip layouts, so several one-shot sets share the MSSL signers."""
    from .generate import _vocabulary_text, dataset_folder, draw_videos

    cfg = SynthConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items()}).validate()
    layout = replace(cfg, seed=cfg.seed if layout_seed is None else int(layout_seed))
    if not 1 <= signs <= 50 or not 1 <= clips_per_sign <= 100:
        raise SyntheticConfigError(f"--oslwl-signs must be in 1..50 and --clips-per-sign in 1..100, got {signs}, "
                                   f"{clips_per_sign}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out}: already exists and is not empty (pass --overwrite to replace it)")
    mssl = plan_dataset(cfg)
    mssl_queries, distractors = class_repertoire(cfg.classes)
    one_shot = oslwl_signs(cfg.classes, signs)
    repertoire = mssl_queries + distractors + one_shot
    first_rep = len(mssl_queries) + len(distractors)
    factors = _class_duration_factors(one_shot)
    distractor_factors = _class_duration_factors(distractors)
    stranger, seen_query_signer = _query_signers(cfg, mssl.signers)
    clip_signers = mssl.signers  # seen in training and test-only ones

    jobs, gt, boxes, stats = [], {}, {}, {"signs": [], "queries": {}, "clips": {}}
    counter = 0
    with dataset_folder(out) as tmp_root:
        for split_index, (split, box_infix) in enumerate(OSLWL_SPLITS):
            query_dir = tmp_root / f"OSLWL_QUERY_{split}_SET"
            clip_dir = tmp_root / f"OSLWL_{split}_SET_VIDEOS"
            query_boxes, clip_boxes, split_gt = {}, {}, {}
            number = 0
            for k in range(signs):
                sign_id = split_index * signs + k
                rep = first_rep + sign_id
                signer = stranger if k % 2 == 0 else seen_query_signer
                query = _query_plan(layout, signer, sign_id, rep, factors[sign_id], split, counter)
                counter += 1
                jobs.append((query, repertoire, query_dir / f"{query.name}.mp4"))
                query_boxes[query.name] = list(query.bbox)
                stats["queries"][query.name] = {"split": split, "sign": sign_id,
                                                "signer_in_mssl_training": signer is not stranger}
                for c in range(clips_per_sign):
                    clip_signer = clip_signers[(sign_id * 3 + c) % len(clip_signers)]
                    clip = _clip_plan(layout, clip_signer, sign_id, rep, factors[sign_id], distractor_factors, split,
                                      number)
                    number += 1
                    jobs.append((clip, repertoire, clip_dir / f"{clip.name}.mp4"))
                    clip_boxes[clip.name] = list(clip.bbox)
                    split_gt[clip.name] = [[q, s * MS_PER_FRAME, e * MS_PER_FRAME] for _, s, e, q in clip.signs
                                           if q >= 0]
                    stats["clips"][clip.name] = {"split": split, "sign": sign_id,
                                                 "signer_test_only": clip_signer.test_only}
            save_intervals_pkl(split_gt, tmp_root / f"OSLWL_{split}_SET_GT.pkl")
            gt.update(split_gt)
            for prefix, found in (("query", query_boxes), ("oslwl", clip_boxes)):
                save_boxes(tmp_root / f"{prefix}_{box_infix}_bboxes.json", found)
            boxes.update(query_boxes, **clip_boxes)
        stats["signs"] = [{"id": i, "gloss": d.gloss, "definition": d.describe()} for i, d in enumerate(one_shot)]
        stats["settings"] = {"classes": cfg.classes, "seed": cfg.seed, "layout_seed": layout.seed,
                             "size": list(cfg.size), "signs": signs,
                             "clips_per_sign": clips_per_sign, "clip_seconds": CLIP_SECONDS}
        draw_videos(jobs, workers, progress)
        with atomic_write(tmp_root / "vocabulary.txt", "w") as f:
            f.write(_vocabulary_text(one_shot).replace("synthetic sign classes", "synthetic one-shot signs"))
        with atomic_write(tmp_root / "oslwl_stats.json", "w") as f:
            json.dump(stats, f, indent=1)
    if progress:
        print(f"wrote {out}: {2 * signs} one-shot signs, {len(gt)} clips, {2 * signs} queries")
    return stats
