"""Rendering (worker processes): the drawn signer, camera effects, mp4 encoding.

A cartoon signer (head with hair and eyes, neck, torso, two two-segment arms and
two hands) is drawn over a textured background.  Nothing is class-specific in
colour: class identity lies only in the motion, place and shape of the hands.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from .config import FPS
from .plan import VideoPlan
from .pose import _ANGLES, _HandTrack, compute_poses
from .repertoire import SignDef

# Body coordinates as in repertoire.PLACES.
SHOULDER = (0.85, 0.05)
_UPPER_ARM, _FOREARM = 1.02, 0.98

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
