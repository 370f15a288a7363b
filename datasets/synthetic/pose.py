"""Poses: per-frame hand position, size, rotation and outline.

Between signs the hands move smoothly from the end of one sign to the start of
the next (co-articulation) and now and then drop to a rest pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

from .plan import Signer, VideoPlan
from .repertoire import HAND_SHAPES, PLACES, SignDef

# Body coordinates as in repertoire.PLACES (unit = one body unit, origin at the
# middle of the shoulder line, y down, +x to the signer's dominant side).
REST_POSITION = (0.55, 1.95)
_PROFILE_POINTS = 72  # hand outlines: radius at 72 angles around the palm centre

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
