"""A synthetic sign-spotting dataset in the exact layout of ChaLearn 2022 MSSL.

Every later stage of the pipeline runs on real LSE_UVIGO data; this module makes
a stand-in with the same files, so the whole pipeline can be built, tested and
demonstrated without the (licensed) original::

    <out>/TRAIN/MSSL_TRAIN_SET_VIDEOS/<video>.mp4      25 fps, mp4v
    <out>/TRAIN/MSSL_TRAIN_SET_GT.pkl                  {video: [[class, start_ms, end_ms], ...]}
    <out>/TRAIN/MSSL_TRAIN_SET_GT_TXT/<video>.txt      one "class,start_ms,end_ms" line per sign
    <out>/VALIDATION/MSSL_VAL_SET_{VIDEOS,GT.pkl,GT_TXT}
    <out>/TEST/MSSL_TEST_SET_{VIDEOS,GT.pkl,GT_TXT}
    <out>/{train,valid,test}_bboxes.json               {video: [x1, y1, x2, y2]} signer boxes
    <out>/stats.json                                   statistics, class definitions, per-video signer

What is drawn
-------------
A cartoon signer (head with hair and eyes, neck, torso, two two-segment arms and
two hands) signs without pause.  Every sign of the repertoire combines

* a *place* relative to the body: ``head`` (beside the temple), ``chin``,
  ``chest``, ``belly``, ``side`` (the dominant side, at waist height) or
  ``shoulder`` (space above the dominant shoulder);
* a *path*: ``hold``, ``circle``, ``vertical`` (up-down), ``horizontal``
  (side to side), ``tap`` (forward taps: the hand grows as it comes toward the
  camera) or ``diagonal`` (a straight stroke);
* a *hand shape*: ``fist``, ``flat``, ``spread`` (five fingers) or ``point``,
  each a distinct polygon;
* a *hand mode*: ``one`` hand, ``sym`` (both hands, mirrored) or ``base``
  (the other hand held flat under the moving one).

The query classes are a fixed, maximally spread subset of these combinations
(they depend on ``classes`` only, never on the seed, so datasets made with
different seeds share one vocabulary); the non-query "distractor" signs are
other combinations of the same repertoire, chosen to differ from every query
class.  Between signs the hands move smoothly from the end of one sign to the
start of the next (co-articulation) and now and then drop to a rest pose.
Classes are defined relative to the dominant hand, so a left-handed signer
performs the mirror image (the pipeline's horizontal-flip augmentation
preserves the class).  Nothing is class-specific in colour: class identity lies
only in the motion, place and shape of the hands.

Per signer: body size and proportions, skin, hair and clothes colours, dominant
hand, signing speed and amplitude.  Per video: position in the frame,
background, camera noise and blur, and a slightly jittered signer box (never the
full frame).  Some signers appear only in TEST.

Statistics (shaped like LSE_UVIGO MSSL)
--------------------------------------
25 fps; every time is a frame boundary (a multiple of 40 ms); a sign occupying
frames ``[s, e)`` is written as ``[class, 40*s, 40*e]``; sign lengths 5-40
frames (mean ``mean_sign_frames``, 12 by default); query signs cover
``coverage`` (15 %) of the time; class frequencies fall geometrically so the
most frequent class has about ``imbalance`` (20) times the signs of the rarest.

The ``demo`` preset
-------------------
``--preset demo`` is sized for the CPU demo: 10 classes, 16/6/6 videos of 48 s
at 160x120, 5 train/validation signers and 2 test-only signers, mean sign length
15 frames, coverage 18 %, imbalance 6.  It is made so that a small 3-D CNN on
64x64 crops of the signer box can learn it in minutes: in the crop a hand is
8-15 px, the query classes differ in at least three of the four attributes, and
every distractor differs from every query class in at least two.  It takes well
under a minute on two cores.  Explicit flags override the preset's values.

Determinism: the same configuration and seed give byte-identical ground truth,
boxes and statistics (apart from the recorded generation time) and identical
video frames, whatever ``workers`` is.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from signspot.gt import load_intervals, save_intervals_pkl, save_intervals_txt
from signspot.io import atomic_write

__all__ = [
    "FPS",
    "MS_PER_FRAME",
    "SPLITS",
    "PRESETS",
    "PLACES",
    "PATHS",
    "HAND_SHAPES",
    "HAND_MODES",
    "SyntheticConfigError",
    "SynthConfig",
    "SignDef",
    "Signer",
    "VideoPlan",
    "DatasetPlan",
    "class_repertoire",
    "plan_dataset",
    "compute_poses",
    "render_video",
    "write_video",
    "generate_dataset",
    "make_contact_sheet",
    "parse_size",
    "parse_videos_per_split",
    "resolve_config",
]

FPS = 25
MS_PER_FRAME = 1000 // FPS  # 40
MIN_SIGN_FRAMES, MAX_SIGN_FRAMES = 5, 40

# (folder, file prefix, bbox file prefix) of each split, in the challenge's spelling.
SPLITS: Tuple[Tuple[str, str, str], ...] = (
    ("TRAIN", "MSSL_TRAIN_SET", "train"),
    ("VALIDATION", "MSSL_VAL_SET", "valid"),
    ("TEST", "MSSL_TEST_SET", "test"),
)

# ---------------------------------------------------------------------------
# The repertoire.  Body coordinates: unit = one "body unit" u (about a head
# height); origin at the middle of the shoulder line; y points down; +x points
# to the signer's dominant side (mirrored on screen for right-handed signers).
# ---------------------------------------------------------------------------
PLACES: Dict[str, Tuple[float, float]] = {
    "head": (0.50, -0.95),
    "chin": (0.08, -0.40),
    "chest": (0.10, 0.50),
    "belly": (0.10, 1.40),
    "side": (1.25, 0.85),
    "shoulder": (1.05, -0.55),
}
PATHS = ("hold", "circle", "vertical", "horizontal", "tap", "diagonal")
HAND_SHAPES = ("fist", "flat", "spread", "point")
HAND_MODES = ("one", "sym", "base")
# How much each attribute changes the look of a sign (used to spread the classes).
_ATTRIBUTE_WEIGHTS = (1.0, 1.0, 0.6, 0.8)  # place, path, shape, mode
# Typical duration of a path relative to the mean sign length.
_PATH_DURATION = {"hold": 0.8, "circle": 1.25, "vertical": 1.0, "horizontal": 1.0, "tap": 0.9, "diagonal": 0.9}
REST_POSITION = (0.55, 1.95)
SHOULDER = (0.85, 0.05)
_UPPER_ARM, _FOREARM = 1.02, 0.98
_PROFILE_POINTS = 72  # hand outlines: radius at 72 angles around the palm centre

PRESETS: Dict[str, Dict[str, object]] = {
    "demo": dict(
        classes=10,
        videos_per_split=(16, 6, 6),
        seconds=48.0,
        size=(160, 120),
        signers=5,
        test_only_signers=2,
        mean_sign_frames=15.0,
        coverage=0.18,
        imbalance=6.0,
    ),
}


class SyntheticConfigError(ValueError):
    """A generator setting that cannot produce a sensible dataset."""


@dataclass(frozen=True)
class SynthConfig:
    classes: int = 60  # number of query classes (ids 0..classes-1)
    videos_per_split: Tuple[int, int, int] = (24, 8, 8)  # TRAIN, VALIDATION, TEST
    seconds: float = 60.0  # length of every video
    size: Tuple[int, int] = (256, 192)  # frame width, height (pixels, even)
    seed: int = 0
    signers: int = 8  # signers seen in TRAIN/VALIDATION (and part of TEST)
    test_only_signers: int = 3  # signers that appear only in TEST
    mean_sign_frames: float = 12.0  # mean sign length; lengths are clipped to 5-40 frames
    coverage: float = 0.15  # share of frames inside a query sign
    imbalance: float = 20.0  # expected count of the most frequent class / the rarest

    def validate(self) -> "SynthConfig":
        def bad(msg):
            raise SyntheticConfigError(msg)

        max_classes = len(_all_combinations()) // 3
        if not isinstance(self.classes, int) or self.classes < 2:
            bad(f"--classes must be an integer >= 2, got {self.classes!r}")
        if self.classes > max_classes:
            bad(f"--classes {self.classes} is too many: the repertoire supports at most {max_classes}")
        if len(self.videos_per_split) != 3 or any(not isinstance(v, int) or v < 1 for v in self.videos_per_split):
            bad(f"--videos-per-split needs at least 1 video in each of TRAIN, VALIDATION, TEST, got {self.videos_per_split!r}")
        if not (4.0 <= self.seconds <= 3600.0):
            bad(f"--seconds must be between 4 and 3600 (a video must hold a few signs of up to "
                f"{MAX_SIGN_FRAMES} frames), got {self.seconds!r}")
        width, height = self.size
        if height < 64 or width < 64:
            bad(f"--size {width}x{height} is too small: width and height must be at least 64 pixels")
        if width > 4096 or height > 4096:
            bad(f"--size {width}x{height} is too large: at most 4096 pixels a side")
        if width % 2 or height % 2:
            bad(f"--size {width}x{height}: width and height must be even (the mp4 encoder needs it)")
        if width < height:
            bad(f"--size {width}x{height}: the width must be at least the height (the signer is as wide as tall)")
        if not isinstance(self.seed, int) or self.seed < 0:
            bad(f"--seed must be a non-negative integer, got {self.seed!r}")
        if self.signers < 1:
            bad(f"--signers must be >= 1, got {self.signers}")
        if self.test_only_signers < 0:
            bad(f"--test-only-signers must be >= 0, got {self.test_only_signers}")
        if self.test_only_signers > self.videos_per_split[2]:
            bad(f"--test-only-signers {self.test_only_signers} exceeds the {self.videos_per_split[2]} TEST videos")
        if not (6.0 <= self.mean_sign_frames <= 30.0):
            bad(f"--mean-sign-frames must be between 6 and 30 (lengths are clipped to "
                f"{MIN_SIGN_FRAMES}-{MAX_SIGN_FRAMES}), got {self.mean_sign_frames}")
        if not (0.0 < self.coverage <= 0.4):
            bad(f"--coverage must be in (0, 0.4], got {self.coverage}")
        if not (1.0 <= self.imbalance <= 1000.0):
            bad(f"--imbalance must be between 1 and 1000, got {self.imbalance}")
        frames = self.num_frames
        if frames * self.coverage < 1.5 * self.mean_sign_frames:
            bad(f"--seconds {self.seconds} is too short: with coverage {self.coverage} a video would hold "
                f"less than one query sign of {self.mean_sign_frames:g} frames")
        return self

    @property
    def num_frames(self) -> int:
        return int(round(self.seconds * FPS))


@dataclass(frozen=True)
class SignDef:
    place: str
    path: str
    shape: str
    mode: str

    @property
    def key(self) -> Tuple[int, int, int, int]:
        return (list(PLACES).index(self.place), PATHS.index(self.path), HAND_SHAPES.index(self.shape),
                HAND_MODES.index(self.mode))

    def describe(self) -> str:
        hands = {"one": "one hand", "sym": "two hands, mirrored", "base": "two hands, flat base"}[self.mode]
        return f"{self.path} at {self.place}, {self.shape}, {hands}"


@dataclass(frozen=True)
class Signer:
    index: int
    dominant: str  # "R" or "L"
    skin: Tuple[int, int, int]  # RGB
    hair: Tuple[int, int, int]
    clothes: Tuple[int, int, int]
    head_scale: float
    shoulder_width: float
    hand_scale: float
    speed: float  # >1: slower signing (longer signs)
    amplitude: float
    test_only: bool


@dataclass
class VideoPlan:
    """Everything needed to draw one video; pure data, so it travels to worker processes."""

    name: str
    split: str
    index: int
    num_frames: int
    width: int
    height: int
    signer: Signer
    unit: float  # pixels per body unit
    centre: Tuple[float, float]  # pixel position of the body origin
    bbox: Tuple[int, int, int, int]
    background: Dict[str, object]
    noise_sigma: float
    blur_sigma: float
    render_seed: int
    # (sign index into the repertoire, start_frame, end_frame (exclusive), query class or -1)
    signs: List[Tuple[int, int, int, int]] = field(default_factory=list)
    rests: List[Tuple[int, int]] = field(default_factory=list)

    @property
    def gt(self) -> List[List[int]]:
        return [[q, s * MS_PER_FRAME, e * MS_PER_FRAME] for _, s, e, q in self.signs if q >= 0]


@dataclass
class DatasetPlan:
    config: SynthConfig
    repertoire: List[SignDef]  # query classes first (index = class id), then the distractors
    signers: List[Signer]
    videos: List[VideoPlan]
    class_probabilities: List[float]

    def split_videos(self, split: str) -> List[VideoPlan]:
        return [v for v in self.videos if v.split == split]


# ---------------------------------------------------------------------------
# Class repertoire
# ---------------------------------------------------------------------------
def _all_combinations() -> List[SignDef]:
    return [SignDef(p, a, s, m) for p in PLACES for a in PATHS for s in HAND_SHAPES for m in HAND_MODES]


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Weighted count of differing attributes between rows of a and b (broadcast)."""
    return ((a != b) * np.asarray(_ATTRIBUTE_WEIGHTS)).sum(-1)


def class_repertoire(classes: int) -> Tuple[List[SignDef], List[SignDef]]:
    """The query classes and the distractor signs for ``classes`` query classes.

    Farthest-point selection over the attribute combinations, from a fixed
    order, so the classes are as different from each other as the repertoire
    allows and depend on ``classes`` only.  Distractors are the combinations
    farthest from every query class (at least two attributes away when enough
    exist).
    """
    combos = _all_combinations()
    order = np.random.default_rng(20220627).permutation(len(combos))
    combos = [combos[i] for i in order]
    keys = np.array([c.key for c in combos])
    chosen = [0]
    min_dist = _distance(keys, keys[0])
    for _ in range(classes - 1):
        nxt = int(np.argmax(min_dist))  # first index wins ties: deterministic
        chosen.append(nxt)
        min_dist = np.minimum(min_dist, _distance(keys, keys[nxt]))
    queries = [combos[i] for i in chosen]
    rest = [i for i in range(len(combos)) if i not in set(chosen)]
    far = [i for i in rest if min_dist[i] >= 2.0 - 1e-9]
    wanted = max(12, classes)
    if len(far) < wanted:  # many classes: take the farthest available
        far = sorted(rest, key=lambda i: -min_dist[i])[:wanted]
    distractors = [combos[i] for i in far]
    return queries, distractors


# ---------------------------------------------------------------------------
# Planning: signers, timelines, ground truth (main process, cheap)
# ---------------------------------------------------------------------------
def _luma(rgb) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


def _make_signers(cfg: SynthConfig, rng: np.random.Generator) -> List[Signer]:
    signers = []
    for i in range(cfg.signers + cfg.test_only_signers):
        tone = rng.uniform(0.0, 1.0)  # light to dark skin
        skin = np.array([235, 200, 170]) * (1 - tone) + np.array([125, 85, 60]) * tone
        skin = tuple(int(np.clip(c + rng.normal(0, 6), 0, 255)) for c in skin)
        hair = tuple(int(c) for c in rng.choice([[30, 25, 20], [80, 50, 25], [150, 110, 60], [20, 20, 25], [120, 120, 120]]))
        while True:  # clothes far from skin in brightness, so hands stand out against the torso
            hue = rng.uniform(0, 180)
            value = rng.uniform(30, 95) if _luma(skin) > 120 or rng.random() < 0.5 else rng.uniform(185, 235)
            hsv = np.uint8([[[hue, rng.uniform(40, 200), value]]])
            clothes = tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
            if abs(_luma(clothes) - _luma(skin)) >= 70:
                break
        signers.append(
            Signer(
                index=i,
                dominant="R" if rng.random() < 0.75 else "L",
                skin=skin,
                hair=hair,
                clothes=clothes,
                head_scale=float(rng.uniform(0.92, 1.08)),
                shoulder_width=float(rng.uniform(0.92, 1.08)),
                hand_scale=float(rng.uniform(1.05, 1.2)),
                speed=float(rng.uniform(0.88, 1.15)),
                amplitude=float(rng.uniform(0.9, 1.12)),
                test_only=i >= cfg.signers,
            )
        )
    # at least one left-handed signer among the seen ones when there are several
    if cfg.signers >= 3 and all(s.dominant == "R" for s in signers[: cfg.signers]):
        signers[1] = replace(signers[1], dominant="L")
    return signers


def _class_probabilities(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Geometric fall-off: the most frequent class is ``imbalance`` times the rarest."""
    rank = rng.permutation(cfg.classes)
    p = cfg.imbalance ** (-rank / (cfg.classes - 1))
    return p / p.sum()


def _allocate(total: int, p: np.ndarray, min_count: int) -> np.ndarray:
    """Integer counts summing to about ``total``, proportional to p (largest remainder)."""
    exact = total * p
    counts = np.floor(exact).astype(int)
    short = total - counts.sum()
    if short > 0:
        counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    return np.maximum(counts, min_count)


def _sign_length(rng, mean: float, factor: float, speed: float) -> int:
    sigma = 0.3
    value = mean * factor * speed * rng.lognormal(-sigma**2 / 2, sigma)
    return int(np.clip(round(value), MIN_SIGN_FRAMES, MAX_SIGN_FRAMES))


def _class_duration_factors(signdefs: Sequence[SignDef]) -> np.ndarray:
    f = np.array([_PATH_DURATION[d.path] for d in signdefs])
    return f / f.mean()


def _plan_timeline(rng, cfg: SynthConfig, signer: Signer, num_frames: int, query_classes: List[int],
                   query_factors: np.ndarray, distractor_factors: np.ndarray):
    """Place the video's query signs evenly, distractor signs and transitions between them.

    Returns (signs, rests): signs as (repertoire index, start, end, query class or -1).
    Query signs never follow each other directly: at least one distractor sign
    lies between two of them.
    """
    n_classes = cfg.classes
    signs: List[Tuple[int, int, int, int]] = []
    rests: List[Tuple[int, int]] = []
    t = int(rng.integers(6, 16))  # opening rest
    mean = cfg.mean_sign_frames

    def gap() -> int:
        nonlocal t
        if rng.random() < 0.1:  # hands down to rest for a moment
            length = int(rng.integers(14, 36))
            rests.append((t + 5, t + length - 5))
        else:  # co-articulated transition straight into the next sign
            length = int(rng.integers(3, 10))
        t += length
        return length

    def distractor(limit: int) -> bool:
        nonlocal t
        d = int(rng.integers(len(distractor_factors)))
        length = _sign_length(rng, mean, distractor_factors[d], signer.speed)
        if t + length > limit:
            return False
        signs.append((n_classes + d, t, t + length, -1))
        t += length
        return True

    end_limit = num_frames - 6
    n = len(query_classes)
    for i, q in enumerate(query_classes):
        target = int(num_frames * (i + rng.uniform(0.25, 0.75)) / max(n, 1))
        first = True
        while first or t + 12 < target:
            gap()
            if not distractor(end_limit):
                break
            first = False
        gap()
        length = _sign_length(rng, mean, query_factors[q], signer.speed)
        if t + length > end_limit:
            break
        signs.append((q, t, t + length, q))
        t += length
    while True:  # fill the rest of the video with distractors
        gap()
        if not distractor(end_limit):
            break
    return signs, rests


def _video_layout(rng, cfg: SynthConfig, signer: Signer):
    """Pixel scale, body position and the signer box of one video."""
    width, height = cfg.size
    top_margin = rng.uniform(0.12, 0.45)
    bottom = rng.uniform(2.05, 2.35)  # frame cuts the body at the hips
    head_top = -0.85 - 0.55 * signer.head_scale
    unit = height / (bottom - head_top + top_margin)
    half_width = 1.95 * unit
    slack = max(0.0, width / 2 - half_width - 2)
    cx = width / 2 + rng.uniform(-slack, slack) * 0.8
    cy = (top_margin - head_top) * unit
    jitter = lambda: rng.uniform(-0.06, 0.06) * unit  # noqa: E731 - a detector is not exact
    x1 = int(round(np.clip(cx - half_width + jitter(), 0, width - 2)))
    x2 = int(round(np.clip(cx + half_width + jitter(), x1 + 1, width - 1)))
    y1 = int(round(np.clip(cy + (head_top - 0.08) * unit + jitter(), 0, height - 2)))
    y2 = int(round(np.clip(height - 1 - abs(jitter()), y1 + 1, height - 1)))
    return float(unit), (float(cx), float(cy)), (x1, y1, x2, y2)


def _background(rng, signer: Signer) -> Dict[str, object]:
    while True:
        base = rng.uniform(60, 200, size=3)
        if abs(_luma(base) - _luma(signer.skin)) > 35 and abs(_luma(base) - _luma(signer.clothes)) > 35:
            break
    return {
        "base": [float(c) for c in base],
        "gradient": [float(c) for c in rng.uniform(-30, 30, size=3)],
        "blocks": [[float(v) for v in rng.uniform(0, 1, size=4)] + [float(rng.uniform(-25, 25))] for _ in range(rng.integers(1, 4))],
        "texture": float(rng.uniform(2, 8)),
    }


def plan_dataset(cfg: SynthConfig) -> DatasetPlan:
    """Decide every video's signer, layout and timeline (no drawing)."""
    cfg.validate()
    queries, distractors = class_repertoire(cfg.classes)
    repertoire = queries + distractors
    root = np.random.SeedSequence([cfg.seed, 0x5167])
    rng_signers, rng_classes, rng_videos = (np.random.default_rng(s) for s in root.spawn(3))
    signers = _make_signers(cfg, rng_signers)
    p = _class_probabilities(cfg, rng_classes)
    query_factors = _class_duration_factors(queries)
    distractor_factors = _class_duration_factors(distractors)
    seen = [s for s in signers if not s.test_only]
    unseen = [s for s in signers if s.test_only]
    frames = cfg.num_frames

    videos: List[VideoPlan] = []
    counter = 0
    for (folder, _prefix, _bbox), n_videos in zip(SPLITS, cfg.videos_per_split):
        # TEST: the first videos go to the test-only signers, the rest to seen signers
        if folder == "TEST" and unseen:
            n_unseen = max(len(unseen), (n_videos + 1) // 2)
            owners = [unseen[i % len(unseen)] for i in range(n_unseen)]
            owners += [seen[(i * 3 + 1) % len(seen)] for i in range(n_videos - n_unseen)]
        else:
            offset = 0 if folder == "TRAIN" else 2
            owners = [seen[(i + offset) % len(seen)] for i in range(n_videos)]
        expected_len = cfg.mean_sign_frames
        n_total = int(round(cfg.coverage * frames * n_videos / expected_len))
        counts = _allocate(n_total, p, 1 if folder == "TRAIN" and n_total >= 2 * cfg.classes else 0)
        class_list = np.repeat(np.arange(cfg.classes), counts)
        rng_videos.shuffle(class_list)
        per_video = np.array_split(class_list, n_videos)
        for signer, queue in zip(owners, per_video):
            rng = np.random.default_rng([cfg.seed, 0x7A1, counter])
            unit, centre, bbox = _video_layout(rng, cfg, signer)
            signs, rests = _plan_timeline(rng, cfg, signer, frames, [int(q) for q in queue], query_factors,
                                          distractor_factors)
            videos.append(
                VideoPlan(
                    name=f"p{signer.index + 1:02d}_n{counter:03d}",
                    split=folder,
                    index=counter,
                    num_frames=frames,
                    width=cfg.size[0],
                    height=cfg.size[1],
                    signer=signer,
                    unit=unit,
                    centre=centre,
                    bbox=bbox,
                    background=_background(rng, signer),
                    noise_sigma=float(rng.uniform(1.0, 4.5)),
                    blur_sigma=float(rng.uniform(0.0, 0.9)),
                    render_seed=int(rng.integers(2**31)),
                    signs=signs,
                    rests=rests,
                )
            )
            counter += 1
    return DatasetPlan(cfg, repertoire, signers, videos, [float(x) for x in p])


# ---------------------------------------------------------------------------
# Poses: per-frame hand position, size, rotation and outline
# ---------------------------------------------------------------------------
_ANGLES = np.linspace(0, 2 * np.pi, _PROFILE_POINTS, endpoint=False)


def _finger_profile(palm: float, directions_deg: Sequence[float], length: float, half_width_deg: float) -> np.ndarray:
    r = np.full(_PROFILE_POINTS, palm)
    deg = np.degrees(_ANGLES)
    for d in directions_deg:
        delta = np.abs((deg - d + 180) % 360 - 180)
        finger = length * np.clip(1.2 - (delta / half_width_deg) ** 3, 0, 1)
        r = np.maximum(r, finger)
    return r


def _hand_profile(shape: str) -> np.ndarray:
    """Radius of the hand outline (body units) at each angle; -90 degrees points along the fingers."""
    c, s = np.cos(_ANGLES), np.sin(_ANGLES)
    if shape == "fist":
        return 0.28 / (np.abs(c) ** 4 + np.abs(s) ** 4) ** 0.25
    if shape == "flat":
        return 1.0 / np.sqrt((c / 0.17) ** 2 + (s / 0.44) ** 2)
    if shape == "spread":
        return _finger_profile(0.22, (-165, -125, -92, -60, -28), 0.55, 11)
    if shape == "point":
        fist = 0.24 / (np.abs(c) ** 4 + np.abs(s) ** 4) ** 0.25
        return np.maximum(fist, _finger_profile(0.0, (-90,), 0.66, 9))
    if shape == "rest":
        return 1.0 / np.sqrt((c / 0.2) ** 2 + (s / 0.3) ** 2)
    raise ValueError(f"unknown hand shape {shape!r}")


_PROFILES = {name: _hand_profile(name) for name in HAND_SHAPES + ("rest",)}


@dataclass
class _HandTrack:
    pos: np.ndarray  # (F, 2) body units
    scale: np.ndarray  # (F,)
    rot: np.ndarray  # (F,) radians
    profile: np.ndarray  # (F, P)


def _path_offset(path: str, phase: np.ndarray, amplitude: float):
    """Offset (dx, dy), scale factor of the moving hand at phase 0..1 of a sign."""
    zeros = np.zeros_like(phase)
    ones = np.ones_like(phase)
    a = amplitude
    if path == "hold":
        return 0.03 * a * np.sin(6 * phase), zeros, ones
    if path == "circle":
        ang = 2 * np.pi * phase - np.pi / 2
        return 0.36 * a * np.cos(ang), 0.36 * a * np.sin(ang) + 0.36 * a, ones
    if path == "vertical":
        return zeros, -0.42 * a * np.sin(2 * np.pi * phase), ones
    if path == "horizontal":
        return 0.46 * a * np.sin(2 * np.pi * phase), zeros, ones
    if path == "tap":
        pulse = np.abs(np.sin(2 * np.pi * phase))
        return zeros, 0.10 * a * pulse, 1.0 + 0.55 * pulse
    if path == "diagonal":
        sm = phase * phase * (3 - 2 * phase)
        return a * (-0.35 + 0.7 * sm), a * (-0.35 + 0.7 * sm), ones
    raise ValueError(f"unknown path {path!r}")


def _sign_pose(d: SignDef, phase: np.ndarray, signer: Signer):
    """Dominant and non-dominant hand (pos (n,2), scale, rot, profile) during a sign."""
    n = len(phase)
    px, py = PLACES[d.place]
    if d.mode == "sym" and px < 0.5:
        px = 0.5
    dx, dy, scale = _path_offset(d.path, phase, signer.amplitude)
    dom_pos = np.stack([px + dx, py + dy], 1)
    dom_rot = np.full(n, -0.3)
    profile = np.repeat(_PROFILES[d.shape][None], n, 0)
    dom = (dom_pos, scale, dom_rot, profile)
    if d.mode == "one":
        nd_pos = np.repeat(np.array([[-REST_POSITION[0], REST_POSITION[1]]]), n, 0)
        nd = (nd_pos, np.ones(n), np.full(n, 0.2), np.repeat(_PROFILES["rest"][None], n, 0))
    elif d.mode == "sym":  # mirror image: x negated (the non-dominant hand's own outward is -x)
        nd = (np.stack([-(px + dx), py + dy], 1), scale, dom_rot, profile)
    else:  # base: flat hand held across the body under the moving hand
        base = np.array([0.45 * px - 0.05, py + 0.48])
        nd = (np.repeat(base[None], n, 0), np.ones(n), np.full(n, -np.pi / 2 + 0.1),
              np.repeat(_PROFILES["flat"][None], n, 0))
    return dom, nd


def _rest_pose(n: int, side: float, wobble: np.ndarray):
    pos = np.repeat(np.array([[side * REST_POSITION[0], REST_POSITION[1]]]), n, 0)
    pos = pos + wobble
    return (pos, np.ones(n), np.full(n, 0.2 if side < 0 else -0.2), np.repeat(_PROFILES["rest"][None], n, 0))


def compute_poses(plan: VideoPlan, repertoire: Sequence[SignDef]) -> Tuple[_HandTrack, _HandTrack]:
    """Per-frame state of the dominant and non-dominant hands (body units, dominant side = +x).

    Signs are filled from their definitions; every gap between two signs is a
    smooth (smoothstep) blend from the pose that ends one sign to the pose that
    starts the next, through the rest pose when the gap is a rest.
    """
    F = plan.num_frames
    rng = np.random.default_rng(plan.render_seed)
    tracks = []
    for _ in range(2):
        tracks.append(_HandTrack(np.full((F, 2), np.nan), np.ones(F), np.zeros(F), np.zeros((F, _PROFILE_POINTS))))
    filled = np.zeros(F, bool)

    def put(hand, sl, pose):
        t = tracks[hand]
        t.pos[sl], t.scale[sl], t.rot[sl], t.profile[sl] = pose

    wobble = lambda n: 0.04 * np.stack([np.sin(np.arange(n) / 7.0 + rng.uniform(0, 6)),  # noqa: E731
                                        np.sin(np.arange(n) / 9.0 + rng.uniform(0, 6))], 1)
    for rep, s, e, _q in plan.signs:
        phase = (np.arange(e - s) + 0.5) / (e - s)
        dom, nd = _sign_pose(repertoire[rep], phase, plan.signer)
        put(0, slice(s, e), dom)
        put(1, slice(s, e), nd)
        filled[s:e] = True
    for s, e in plan.rests:
        e = min(e, F - 3)
        if e > s:
            put(0, slice(s, e), _rest_pose(e - s, 1.0, wobble(e - s)))
            put(1, slice(s, e), _rest_pose(e - s, -1.0, wobble(e - s)))
            filled[s:e] = True
    # video start and end: rest
    for sl in (slice(0, 3), slice(F - 3, F)):
        n = sl.stop - sl.start
        if not filled[sl].any():
            put(0, sl, _rest_pose(n, 1.0, wobble(n)))
            put(1, sl, _rest_pose(n, -1.0, wobble(n)))
            filled[sl] = True
    # blend every unfilled run between its neighbouring filled frames
    f = 0
    while f < F:
        if filled[f]:
            f += 1
            continue
        g = f
        while g < F and not filled[g]:
            g += 1
        a, b = f - 1, g  # a and b are filled (the ends of the video are filled above)
        w = (np.arange(f, g) - a) / (b - a)
        w = (w * w * (3 - 2 * w))[:, None]
        for t in tracks:
            t.pos[f:g] = t.pos[a] * (1 - w) + t.pos[b] * w
            t.scale[f:g] = t.scale[a] * (1 - w[:, 0]) + t.scale[b] * w[:, 0]
            t.rot[f:g] = t.rot[a] * (1 - w[:, 0]) + t.rot[b] * w[:, 0]
            t.profile[f:g] = t.profile[a] * (1 - w) + t.profile[b] * w
        f = g
    return tracks[0], tracks[1]


# ---------------------------------------------------------------------------
# Rendering (worker processes)
# ---------------------------------------------------------------------------
_SHIFT = 4  # cv2 drawing with 1/16 pixel precision: smooth sub-pixel motion
_ONE = 1 << _SHIFT


def _fx(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _ONE).astype(np.int32)


def _elbow(shoulder: np.ndarray, wrist: np.ndarray, outward: float, arm_scale: float) -> np.ndarray:
    a, b = _UPPER_ARM * arm_scale, _FOREARM * arm_scale
    v = wrist - shoulder
    d = float(np.hypot(*v))
    d_c = min(max(d, abs(a - b) + 1e-3), a + b - 1e-3)
    alpha = math.acos((a * a + d_c * d_c - b * b) / (2 * a * d_c))
    base = math.atan2(v[1], v[0])
    cands = [shoulder + a * np.array([math.cos(base + sgn * alpha), math.sin(base + sgn * alpha)]) for sgn in (1, -1)]
    # elbows hang down and out
    return max(cands, key=lambda e: e[1] + 0.6 * outward * e[0])


def _background_image(plan: VideoPlan) -> np.ndarray:
    h, w = plan.height, plan.width
    bg = plan.background
    rng = np.random.default_rng(plan.render_seed + 1)
    ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None, None]
    img = np.asarray(bg["base"], np.float32)[None, None] + ys * np.asarray(bg["gradient"], np.float32)[None, None]
    img = np.repeat(img, w, 1)
    for x0, y0, bw, delta in [(b[0], b[1], b[2], b[4]) for b in bg["blocks"]]:
        xa, ya = int(x0 * w * 0.8), int(y0 * h * 0.8)
        img[ya : ya + int(h * (0.2 + 0.5 * bw)), xa : xa + int(w * (0.1 + 0.3 * bw))] += delta
    texture = rng.normal(0, bg["texture"], size=(h // 8 + 1, w // 8 + 1, 1)).astype(np.float32)
    img += cv2.resize(texture, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


class _Renderer:
    def __init__(self, plan: VideoPlan, repertoire: Sequence[SignDef], hand_colours=None, camera: bool = True):
        self.plan = plan
        self.signer = plan.signer
        self.mirror = -1.0 if plan.signer.dominant == "R" else 1.0  # a right hand appears on the image's left
        self.u = plan.unit
        self.cx, self.cy = plan.centre
        self.dom, self.nd = compute_poses(plan, repertoire)
        self.hand_colours = hand_colours
        self.camera = camera
        self.static = self._draw_static()
        rng = np.random.default_rng(plan.render_seed + 2)
        sigma = plan.noise_sigma
        shape = (6, plan.height, plan.width, 3)
        noise = rng.normal(0, sigma, size=shape)
        self.noise_pos = np.clip(noise, 0, 255).astype(np.uint8)
        self.noise_neg = np.clip(-noise, 0, 255).astype(np.uint8)
        self.noise_order = rng.integers(0, 6, size=plan.num_frames)
        self.gain = 1.0 + 0.02 * np.sin(np.arange(plan.num_frames) / 40.0 + rng.uniform(0, 6))

    def to_px(self, pts) -> np.ndarray:
        pts = np.asarray(pts, np.float64)
        out = np.empty_like(pts)
        out[..., 0] = self.cx + self.mirror * pts[..., 0] * self.u
        out[..., 1] = self.cy + pts[..., 1] * self.u
        return out

    def _draw_static(self) -> np.ndarray:
        s, u = self.signer, self.u
        img = _background_image(self.plan)
        sw = s.shoulder_width
        torso = np.array([[-0.95, 0.18], [-0.72, -0.08], [0.72, -0.08], [0.95, 0.18], [0.8, 3.2], [-0.8, 3.2]])
        torso[:, 0] *= sw
        cv2.fillPoly(img, [_fx(self.to_px(torso))], s.clothes, cv2.LINE_AA, _SHIFT)
        neck = np.array([[-0.17, -0.5], [0.17, -0.5], [0.19, 0.0], [-0.19, 0.0]])
        cv2.fillPoly(img, [_fx(self.to_px(neck))], tuple(int(c * 0.85) for c in s.skin), cv2.LINE_AA, _SHIFT)
        hs = s.head_scale
        centre = self.to_px([0.0, -0.85])
        axes = (0.40 * hs * u, 0.52 * hs * u)
        cv2.ellipse(img, (_fx(centre)[0], _fx(centre)[1]), (int(axes[0] * _ONE), int(axes[1] * _ONE)), 0, 0, 360,
                    s.skin, -1, cv2.LINE_AA, _SHIFT)
        hair_c = self.to_px([0.0, -0.93])
        cv2.ellipse(img, (_fx(hair_c)[0], _fx(hair_c)[1]), (int(0.44 * hs * u * _ONE), int(0.48 * hs * u * _ONE)),
                    0, 180, 360, s.hair, -1, cv2.LINE_AA, _SHIFT)
        for ex in (-0.16, 0.16):
            e = _fx(self.to_px([ex * hs, -0.85]))
            cv2.circle(img, (e[0], e[1]), max(int(0.05 * u * _ONE), _ONE // 2), (25, 20, 20), -1, cv2.LINE_AA, _SHIFT)
        m = self.to_px([0.0, -0.62])
        cv2.line(img, tuple(_fx(m - [0.1 * u, 0])), tuple(_fx(m + [0.1 * u, 0])), (120, 50, 50),
                 max(1, int(0.04 * u)), cv2.LINE_AA, _SHIFT)
        return img

    def _draw_hand(self, img, track: _HandTrack, f: int, side: float, colour, outline):
        s, u = self.signer, self.u
        pos = track.pos[f]
        size = s.hand_scale * track.scale[f]
        rot = track.rot[f]
        r = track.profile[f] * size
        # hand outline in body units; "side" mirrors the non-dominant hand
        local = np.stack([r * np.cos(_ANGLES), r * np.sin(_ANGLES)], 1)
        c, sn = math.cos(rot), math.sin(rot)
        local = local @ np.array([[c, sn], [-sn, c]])
        local[:, 0] *= side
        outline_pts = self.to_px(pos + local)
        wrist = pos + np.array([-side * math.sin(rot), math.cos(rot)]) * 0.25 * size
        shoulder = np.array([side * SHOULDER[0] * s.shoulder_width, SHOULDER[1]])
        elbow = _elbow(shoulder, wrist, side, 1.0)
        sleeve = tuple(int(cc * 0.72 + 12) for cc in s.clothes)
        thick = max(2, int(round(0.3 * u)))
        pts = _fx(self.to_px(np.stack([shoulder, elbow, wrist])))
        cv2.line(img, tuple(pts[0]), tuple(pts[1]), sleeve, thick, cv2.LINE_AA, _SHIFT)
        cv2.line(img, tuple(pts[1]), tuple(pts[2]), sleeve, thick, cv2.LINE_AA, _SHIFT)
        poly = _fx(outline_pts)
        cv2.fillPoly(img, [poly], colour, cv2.LINE_AA, _SHIFT)
        cv2.polylines(img, [poly], True, outline, max(1, int(round(0.05 * u))), cv2.LINE_AA, _SHIFT)

    def frame(self, f: int) -> np.ndarray:
        """RGB uint8 frame ``f``."""
        img = self.static.copy()
        skin = self.signer.skin
        edge = tuple(int(c * 0.55) for c in skin)
        colours = self.hand_colours or (skin, skin)
        edges = self.hand_colours or (edge, edge)
        # the hand nearer the camera (larger) is drawn last
        order = [(self.nd, -1.0, colours[1], edges[1]), (self.dom, 1.0, colours[0], edges[0])]
        for track, side, colour, outline in order:
            self._draw_hand(img, track, f, side, colour, outline)
        if self.camera:
            if self.plan.blur_sigma > 0.3:
                img = cv2.GaussianBlur(img, (0, 0), self.plan.blur_sigma)
            if abs(self.gain[f] - 1.0) > 1e-3:
                img = cv2.convertScaleAbs(img, alpha=float(self.gain[f]))
            k = self.noise_order[f]
            img = cv2.subtract(cv2.add(img, self.noise_pos[k]), self.noise_neg[k])
        return img


def render_video(plan: VideoPlan, repertoire: Sequence[SignDef], *, hand_colours=None,
                 camera: bool = True) -> Iterator[np.ndarray]:
    """Yield the video's frames (H, W, 3) uint8 RGB, exactly as written to the mp4 before encoding.

    ``hand_colours=(dominant_rgb, other_rgb)`` draws the hands in those flat
    colours (tests use it to find the hands), ``camera=False`` skips blur and noise.
    """
    renderer = _Renderer(plan, repertoire, hand_colours, camera)
    for f in range(plan.num_frames):
        yield renderer.frame(f)


def write_video(plan: VideoPlan, repertoire: Sequence[SignDef], path: str | os.PathLike) -> int:
    """Encode the video (mp4v, 25 fps) to ``path`` atomically; returns the frame count."""
    cv2.setNumThreads(1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{os.getpid()}.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(FPS), (plan.width, plan.height))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot open an mp4v video writer")
    n = 0
    try:
        for frame in render_video(plan, repertoire):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            n += 1
    finally:
        writer.release()
    if not tmp.exists() or tmp.stat().st_size == 0:
        raise RuntimeError(f"{path}: the video writer produced no file")
    os.replace(tmp, path)
    return n


def _write_video_job(args) -> Tuple[str, int]:
    plan, repertoire, path = args
    return plan.name, write_video(plan, repertoire, path)


# ---------------------------------------------------------------------------
# Dataset writing, statistics
# ---------------------------------------------------------------------------
def _split_paths(root: Path, folder: str, prefix: str):
    base = root / folder
    return base / f"{prefix}_VIDEOS", base / f"{prefix}_GT.pkl", base / f"{prefix}_GT_TXT"


def _statistics(plan: DatasetPlan) -> Dict[str, object]:
    cfg = plan.config
    splits = {}
    for folder, _prefix, _bbox in SPLITS:
        videos = plan.split_videos(folder)
        lengths = [e - s for v in videos for _, s, e, q in v.signs if q >= 0]
        dlengths = [e - s for v in videos for _, s, e, q in v.signs if q < 0]
        counts = np.bincount([q for v in videos for _, _, _, q in v.signs if q >= 0], minlength=cfg.classes)
        frames = sum(v.num_frames for v in videos)
        nonzero = counts[counts > 0]
        splits[folder] = {
            "videos": len(videos),
            "frames": frames,
            "query_signs": int(counts.sum()),
            "distractor_signs": len(dlengths),
            "coverage": round(sum(lengths) / max(frames, 1), 4),
            "mean_sign_frames": round(float(np.mean(lengths)), 2) if lengths else 0.0,
            "min_sign_frames": int(min(lengths)) if lengths else 0,
            "max_sign_frames": int(max(lengths)) if lengths else 0,
            "mean_distractor_frames": round(float(np.mean(dlengths)), 2) if dlengths else 0.0,
            "signs_per_class": [int(c) for c in counts],
            "classes_present": int((counts > 0).sum()),
            "imbalance_ratio": round(float(nonzero.max() / nonzero.min()), 2) if len(nonzero) else 0.0,
            "signers": sorted({v.signer.index for v in videos}),
            "test_only_signers": sorted({v.signer.index for v in videos if v.signer.test_only}),
        }
    # hand size in a 64x64 crop of the signer box enlarged by 10 % per side (the frame store's crop)
    crop_px = [64.0 / (1.2 * max(v.bbox[2] - v.bbox[0], v.bbox[3] - v.bbox[1]) / v.unit) for v in plan.videos]
    fist = 2 * 0.28 * min(s.hand_scale for s in plan.signers)
    return {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "fps": FPS,
        "classes": [
            {"id": i, "place": d.place, "path": d.path, "shape": d.shape, "hands": d.mode, "description": d.describe()}
            for i, d in enumerate(plan.repertoire[: cfg.classes])
        ],
        "distractor_signs_in_repertoire": len(plan.repertoire) - cfg.classes,
        "class_probabilities": [round(x, 5) for x in plan.class_probabilities],
        "splits": splits,
        "smallest_hand_px_at_64": round(fist * min(crop_px), 1),
        "signers": [
            {"id": s.index, "dominant": s.dominant, "test_only": s.test_only, "speed": round(s.speed, 3)}
            for s in plan.signers
        ],
        "videos": {
            v.name: {"split": v.split, "signer": v.signer.index, "dominant": v.signer.dominant,
                     "frames": v.num_frames, "test_only_signer": v.signer.test_only}
            for v in plan.videos
        },
    }


def _summary_table(stats: Dict[str, object]) -> str:
    cfg = stats["config"]
    lines = [f"classes={cfg['classes']} size={cfg['size'][0]}x{cfg['size'][1]} seconds={cfg['seconds']:g} "
             f"seed={cfg['seed']}  smallest hand in a 64x64 crop: {stats['smallest_hand_px_at_64']} px",
             f"{'split':<11}{'videos':>7}{'frames':>8}{'queries':>9}{'distract':>9}{'cover':>7}"
             f"{'mean len':>9}{'min-max':>9}{'classes':>8}{'imbal':>7}  signers (test-only)"]
    for name, s in stats["splits"].items():
        lines.append(
            f"{name:<11}{s['videos']:>7}{s['frames']:>8}{s['query_signs']:>9}{s['distractor_signs']:>9}"
            f"{s['coverage']:>7.3f}{s['mean_sign_frames']:>9.1f}{str(s['min_sign_frames']) + '-' + str(s['max_sign_frames']):>9}"
            f"{s['classes_present']:>8}{s['imbalance_ratio']:>7.1f}  {len(s['signers'])} ({len(s['test_only_signers'])})"
        )
    lines.append("signs per class (TRAIN): " + " ".join(str(c) for c in stats["splits"]["TRAIN"]["signs_per_class"]))
    return "\n".join(lines)


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def generate_dataset(
    out: str | os.PathLike,
    *,
    classes: int = 60,
    videos_per_split: Tuple[int, int, int] | int = (24, 8, 8),
    seconds: float = 60.0,
    size: Tuple[int, int] = (256, 192),
    seed: int = 0,
    workers: Optional[int] = None,
    signers: int = 8,
    test_only_signers: int = 3,
    mean_sign_frames: float = 12.0,
    coverage: float = 0.15,
    imbalance: float = 20.0,
    overwrite: bool = False,
    progress: bool = True,
) -> Dict[str, object]:
    """Write the dataset to ``out`` and return its statistics (also in ``<out>/stats.json``).

    The dataset is built in a temporary folder beside ``out`` and moved into
    place at the end, so an interrupted run leaves nothing that looks complete.
    ``out`` must not exist (or be empty) unless ``overwrite`` is set.
    """
    if isinstance(videos_per_split, int):
        videos_per_split = (videos_per_split,) * 3
    cfg = SynthConfig(classes=classes, videos_per_split=tuple(videos_per_split), seconds=float(seconds),
                      size=tuple(size), seed=seed, signers=signers, test_only_signers=test_only_signers,
                      mean_sign_frames=float(mean_sign_frames), coverage=float(coverage),
                      imbalance=float(imbalance)).validate()
    workers = _default_workers() if workers is None else workers
    if workers < 1:
        raise SyntheticConfigError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out}: already exists and is not empty (pass overwrite=True / --overwrite to replace it)")

    started = time.perf_counter()
    plan = plan_dataset(cfg)
    repertoire = plan.repertoire
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    tmp_root.chmod(0o755)  # mkdtemp makes it private; the dataset is ordinary data
    try:
        jobs = []
        for folder, prefix, bbox_prefix in SPLITS:
            videos_dir, gt_pkl, gt_txt = _split_paths(tmp_root, folder, prefix)
            videos_dir.mkdir(parents=True)
            split = plan.split_videos(folder)
            gt = {v.name: v.gt for v in split}
            save_intervals_pkl(gt, gt_pkl)
            save_intervals_txt(gt, gt_txt)
            boxes = {v.name: [int(c) for c in v.bbox] for v in split}
            with atomic_write(tmp_root / f"{bbox_prefix}_bboxes.json", "w") as f:
                f.write("{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(b)}" for k, b in sorted(boxes.items()))
                        + "\n}\n")
            jobs += [(v, repertoire, videos_dir / f"{v.name}.mp4") for v in split]
        # longest first keeps the workers busy to the end
        jobs.sort(key=lambda j: -j[0].num_frames)
        bar = _progress(len(jobs), progress)
        if workers == 1:
            for job in jobs:
                _write_video_job(job)
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
                for _ in pool.map(_write_video_job, jobs, chunksize=1):
                    bar.update(1)
        bar.close()
        stats = _statistics(plan)
        stats["generation_seconds"] = round(time.perf_counter() - started, 2)
        stats["workers"] = workers
        with atomic_write(tmp_root / "stats.json", "w") as f:
            json.dump(stats, f, indent=1)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp_root, out)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    if progress:
        print(_summary_table(stats))
        print(f"wrote {out} in {stats['generation_seconds']:.1f} s ({workers} workers)")
    return stats


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="videos", unit="video", disable=not enabled, leave=False)


# ---------------------------------------------------------------------------
# Contact sheet
# ---------------------------------------------------------------------------
def _read_frame(path: Path, index: int) -> Optional[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
    finally:
        cap.release()
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None


def make_contact_sheet(dataset: str | os.PathLike, path: str | os.PathLike, *, max_classes: int = 10,
                       per_class: int = 6, cell: int = 128) -> Path:
    """A PNG grid: one row per class, the middle frame of signs by different signers (signer box crops).

    Each cell shows the signer box (enlarged by 10 %, as the frame store crops
    it), the class id and the video; the three frames before and after the
    middle are blended faintly in, so the hand's path shows as a trail.
    """
    dataset = Path(dataset)
    entries: List[Tuple[int, str, Path, int, int, List[int]]] = []
    for folder, prefix, bbox_prefix in SPLITS:
        videos_dir, gt_pkl, _ = _split_paths(dataset, folder, prefix)
        boxes = json.loads((dataset / f"{bbox_prefix}_bboxes.json").read_text())
        for video, rows in load_intervals(gt_pkl).items():
            for cls, s, e in rows:
                entries.append((cls, video, videos_dir / f"{video}.mp4", s // MS_PER_FRAME, e // MS_PER_FRAME,
                                boxes[video]))
    classes = sorted({e[0] for e in entries})[:max_classes]
    rows_img = []
    for cls in classes:
        mine = [e for e in entries if e[0] == cls]
        picked, signers_seen = [], set()
        for e in mine:  # one sign per signer first, then any
            signer = e[1].split("_")[0]
            if signer not in signers_seen:
                picked.append(e)
                signers_seen.add(signer)
        picked += [e for e in mine if e not in picked]
        cells = []
        for _, video, mp4, s, e, box in picked[:per_class]:
            frames = [_read_frame(mp4, f) for f in np.linspace(s, e - 1, 5).round().astype(int)]
            frames = [f for f in frames if f is not None]
            if not frames:
                continue
            mid = frames[len(frames) // 2].astype(np.float32)
            trail = np.mean([f.astype(np.float32) for f in frames], 0)
            img = np.clip(0.65 * mid + 0.35 * trail, 0, 255).astype(np.uint8)
            x1, y1, x2, y2 = box
            dx, dy = int(0.1 * (x2 - x1)), int(0.1 * (y2 - y1))
            h, w = img.shape[:2]
            crop = img[max(0, y1 - dy) : min(h, y2 + dy), max(0, x1 - dx) : min(w, x2 + dx)]
            crop = cv2.resize(crop, (cell, cell), interpolation=cv2.INTER_AREA)
            cv2.putText(crop, f"class {cls}", (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 0), 1, cv2.LINE_AA)
            cv2.putText(crop, f"{video} {e - s}f", (3, cell - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 255), 1,
                        cv2.LINE_AA)
            cells.append(crop)
        cells += [np.zeros((cell, cell, 3), np.uint8)] * (per_class - len(cells))
        rows_img.append(np.concatenate(cells, 1))
    if not rows_img:
        raise ValueError(f"{dataset}: no query signs found to draw")
    sheet = np.concatenate(rows_img, 0)
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"{path}: PNG encoding failed")
    path = Path(path)
    with atomic_write(path, "wb") as f:
        f.write(png.tobytes())
    return path


# ---------------------------------------------------------------------------
# Command-line helpers (used by scripts/make_synthetic_dataset.py)
# ---------------------------------------------------------------------------
def parse_size(text: str) -> Tuple[int, int]:
    """``"160x120"`` -> (160, 120)."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise SyntheticConfigError(f"--size must look like WIDTHxHEIGHT (e.g. 160x120), got {text!r}") from None
    return w, h


def parse_videos_per_split(text: str) -> Tuple[int, int, int]:
    """``"8"`` -> (8, 8, 8); ``"16,6,6"`` -> (16, 6, 6) for TRAIN, VALIDATION, TEST."""
    try:
        values = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise SyntheticConfigError(
            f"--videos-per-split must be one integer or three comma-separated ones (TRAIN,VALIDATION,TEST), got {text!r}")
    return values  # type: ignore[return-value]


def resolve_config(preset: Optional[str] = None, **overrides) -> Dict[str, object]:
    """Keyword arguments for :func:`generate_dataset`: defaults, then the preset, then explicit values."""
    values = {k: v for k, v in asdict(SynthConfig()).items()}
    if preset is not None:
        if preset not in PRESETS:
            raise SyntheticConfigError(f"unknown --preset {preset!r}; choose from {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values
