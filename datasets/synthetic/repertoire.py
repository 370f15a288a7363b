"""The sign repertoire: the attributes a sign combines and the query classes drawn from them.

Every sign of the repertoire combines

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
class.  Classes are defined relative to the dominant hand, so a left-handed
signer performs the mirror image (the pipeline's horizontal-flip augmentation
preserves the class).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

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

    @property
    def gloss(self) -> str:
        """A made-up gloss naming the attributes, e.g. ``CIRCLE-CHEST-FIST-ONE`` (unique per sign)."""
        return f"{self.path}-{self.place}-{self.shape}-{self.mode}".upper()

    def describe(self) -> str:
        hands = {"one": "one hand", "sym": "two hands, mirrored", "base": "two hands, flat base"}[self.mode]
        return f"{self.path} at {self.place}, {self.shape}, {hands}"


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
