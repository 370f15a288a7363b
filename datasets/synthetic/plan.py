"""Planning: signers, per-video layout, timelines and ground truth (main process, cheap; no drawing).

Per signer: body size and proportions, skin, hair and clothes colours, dominant
hand, signing speed and amplitude.  Per video: position in the frame,
background, camera noise and blur, and a slightly jittered signer box (never the
full frame).  Some signers appear only in TEST.  The signer signs without
pause: query signs are spread over the video and non-query distractor signs fill
the time between; now and then the hands drop to a rest pose.

Statistics (shaped like LSE_UVIGO MSSL)
--------------------------------------
25 fps; every time is a frame boundary (a multiple of 40 ms); a sign occupying
frames ``[s, e)`` is written as ``[class, 40*s, 40*e]``; sign lengths 5-40
frames (mean ``mean_sign_frames``, 12 by default); query signs cover
``coverage`` (15 %) of the time; class frequencies fall geometrically so the
most frequent class has about ``imbalance`` (20) times the signs of the rarest.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from .config import MAX_SIGN_FRAMES, MIN_SIGN_FRAMES, MS_PER_FRAME, SPLITS, SynthConfig
from .repertoire import _PATH_DURATION, SignDef, class_repertoire


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
