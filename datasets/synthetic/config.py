"""Generator settings: constants, the dataset's split layout, presets, validation, value parsers.

Every time is a frame boundary at 25 fps (a multiple of 40 ms); sign lengths
are clipped to 5-40 frames.

The ``demo`` preset
-------------------
``--preset demo`` is sized for the CPU demo: 10 classes, 16/6/6 videos of 48 s
at 160x120, 5 train/validation signers and 2 test-only signers, mean sign length
15 frames, coverage 18 %, imbalance 6.  It is made so that a small 3-D CNN on
64x64 crops of the signer box can learn it in minutes: in the crop a hand is
8-15 px, the query classes differ in at least three of the four attributes, and
every distractor differs from every query class in at least two.  It takes well
under a minute on two cores.  Explicit flags override the preset's values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

from signspot.formats.errors import SignspotError

from .repertoire import _all_combinations

FPS = 25
MS_PER_FRAME = 1000 // FPS  # 40
MIN_SIGN_FRAMES, MAX_SIGN_FRAMES = 5, 40

# (folder, file prefix, bbox file prefix) of each split, in the challenge's spelling.
SPLITS: Tuple[Tuple[str, str, str], ...] = (
    ("TRAIN", "MSSL_TRAIN_SET", "train"),
    ("VALIDATION", "MSSL_VAL_SET", "valid"),
    ("TEST", "MSSL_TEST_SET", "test"),
)
VOCABULARY_FILENAME = "vocabulary.txt"  # the glosses of the query classes, at the top of the dataset


def _split_paths(root: Path, folder: str, prefix: str):
    base = root / folder
    return base / f"{prefix}_VIDEOS", base / f"{prefix}_GT.pkl", base / f"{prefix}_GT_TXT"


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


class SyntheticConfigError(SignspotError, ValueError):
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
