"""Clip transforms: one set of random parameters for every frame of a clip.

Both take a uint8 RGB clip ``(T, H, W, 3)`` (as read from the frame store: the
signer crop at its native size, any size, or frames already resized) and
return a uint8 tensor ``(T, crop, crop, 3)``: the loader ships bytes, a
quarter of the float clip's size, and :func:`normalize_clip` turns a batch into
the network's float input ``x / 255 - 0.5``, ``(..., 3, crop, crop)``, on the
device the network runs on (one elementwise pass there; on a CPU-only run it
is the same pass the loader would otherwise have made).

:class:`TrainClipTransform` is the original recipe's augmentation, with the
original's 8-bit arithmetic (albumentations 0.5.2 on OpenCV): bilinear
rotation with reflected borders on the native-size crop, bilinear resize,
random crop, flip, colour jitter through uint8 lookup tables and OpenCV's
180-step HSV, grey. Its parameters are drawn from the ``torch.Generator``
passed in (never the global RNG), with the original's distribution, so a
sample is a function of the generator's seed alone: training resumes exactly
and does not depend on the number of loader workers. Given the same
parameters, its default (OpenCV) implementation gives the original's pixels
exactly (``tests/test_augment_reference.py`` holds it to reference outputs).
Two more implementations of the same operations: the colour steps in torch on
the training device (backend ``"device"``: the same 8-bit arithmetic), and a
float reference with ``torchvision.transforms.v2.functional`` on the whole
clip (backend ``"torchvision"``), which the tests hold the fast path to up to
the 8-bit rounding. The loader stage's cost per clip is measured by
``bench/bench_data.py`` (README, "Speed").

Loaders may hand the frames over one at a time as they are decoded
(``sample_params`` / ``frame_stage`` / ``clip_stage``): each frame is rotated,
resized and cropped while it is still in the CPU cache.

:class:`EvalClipTransform` reproduces the original inference path: OpenCV
bilinear resize (``cv2.INTER_LINEAR``, no antialiasing) on uint8 frames, centre
crop; with :func:`normalize_clip` it gives the original's ``x / 255 - 0.5``.
"""

from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

__all__ = [
    "TrainClipTransform", "EvalClipTransform", "normalize_clip", "pack_params", "unpack_params", "BACKENDS",
    "rotation_matrix", "rotation_maps", "brightness_lut", "contrast_lut", "hue_lut",
]


def normalize_clip(clip: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., H, W, 3)`` -> contiguous float32 ``(..., 3, H, W)`` = ``x / 255 - 0.5``.

    Runs where ``clip`` is: call it after moving a batch to the device.
    """
    if clip.dtype != torch.uint8 or clip.ndim < 3 or clip.shape[-1] != 3:
        raise ValueError(f"expected uint8 clips (..., H, W, 3), got {clip.dtype} {tuple(clip.shape)}")
    out = torch.empty(clip.movedim(-1, -3).shape, dtype=torch.float32, device=clip.device)
    out.copy_(clip.movedim(-1, -3))
    return out.div_(255.0).sub_(0.5)


def _check_clip(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected a uint8 clip (T, H, W, 3), got {frames.dtype} {frames.shape}")


def _output(out: Optional[np.ndarray], shape: tuple) -> np.ndarray:
    """``out`` checked to be a contiguous uint8 array of ``shape``, or a new one."""
    if out is None:
        return np.empty(shape, np.uint8)
    if out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous uint8 array of shape {shape}, got {out.dtype} {out.shape}")
    return out


def _frame_by_frame(transform, frames: np.ndarray, params, out: Optional[np.ndarray]) -> np.ndarray:
    """``transform.frame_stage`` on each frame of a decoded clip, into ``out`` (or a new array)."""
    _check_clip(frames)
    clip = _output(out, transform.loader_shape(len(frames)))
    for frame, dst in zip(frames, clip):
        transform.frame_stage(frame, params, dst)
    return clip


def _needs_colour(params: dict) -> bool:
    return params["jitter"] is not None or params["grey"]


# -- The recipe's 8-bit operations, as formulas (shared by the OpenCV and the torch implementations)

def rotation_matrix(height: int, width: int, angle: float) -> np.ndarray:
    """The 2x3 OpenCV matrix of a rotation by ``angle`` degrees (counter-clockwise on screen for
    positive angles) about the point ``(width / 2, height / 2)``, for ``cv2.warpAffine``."""
    return cv2.getRotationMatrix2D((width / 2, height / 2), float(angle), 1.0)


def rotation_maps(height: int, width: int, angle: float) -> tuple:
    """``cv2.remap`` maps of :func:`rotation_matrix`: for each output pixel, the input pixel
    (int16 ``(H, W, 2)``) and the 1/32-pixel fraction (uint16 ``(H, W)``), in OpenCV 4's
    ``warpAffine`` fixed point (the matrix inverted in float64, 10-bit coordinates rounded to
    even, then 5 bits of fraction).

    ``cv2.remap`` with these maps gives OpenCV 4's bilinear ``warpAffine`` exactly, with any
    OpenCV version (OpenCV 5's ``warpAffine`` samples at unrounded coordinates: up to a few
    grey levels apart).
    """
    m = rotation_matrix(height, width, angle).ravel().copy()
    det = m[0] * m[4] - m[1] * m[3]
    det = 1.0 / det if det != 0 else 0.0
    m[0], m[4] = m[4] * det, m[0] * det
    m[1] *= -det
    m[3] *= -det
    m[2], m[5] = -m[0] * m[2] - m[1] * m[5], -m[3] * m[2] - m[4] * m[5]
    xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    scale, half_step = 1 << 10, 1 << 4  # 10-bit coordinates; + half of a 1/32 step
    x = (np.rint((m[1] * ys + m[2]) * scale).astype(np.int64) + half_step)[:, None] \
        + np.rint(m[0] * xs * scale).astype(np.int64)[None, :]
    y = (np.rint((m[4] * ys + m[5]) * scale).astype(np.int64) + half_step)[:, None] \
        + np.rint(m[3] * xs * scale).astype(np.int64)[None, :]
    x, y = x >> 5, y >> 5  # 1/32 pixel
    pixel = np.stack([np.clip(x >> 5, -32768, 32767), np.clip(y >> 5, -32768, 32767)], -1).astype(np.int16)
    return pixel, ((y & 31) * 32 + (x & 31)).astype(np.uint16)


def brightness_lut(factor: float) -> np.ndarray:
    """uint8 lookup table of the brightness step: ``x -> x * factor``, clipped to [0, 255] and
    truncated (not rounded) to 8 bits."""
    return np.clip(np.arange(256) * factor, 0, 255).astype(np.uint8)


def contrast_lut(factor: float, mean: float) -> np.ndarray:
    """uint8 lookup table of the contrast step for a frame whose grey mean is ``mean``:
    ``x -> x * factor + mean * (1 - factor)``, clipped to [0, 255] and truncated."""
    return np.clip(np.arange(256) * factor + mean * (1 - factor), 0, 255).astype(np.uint8)


def hue_lut(shift: float) -> np.ndarray:
    """uint8 lookup table of the hue step on OpenCV's 8-bit HSV (hue 0..179, 2 degrees a step):
    ``h -> floor((h + 180 * shift) mod 180)``; ``shift`` is in turns."""
    return np.mod(np.arange(256, dtype=np.int16) + 180 * shift, 180).astype(np.uint8)


def _hue_lut3(shift: float) -> np.ndarray:
    """:func:`hue_lut` on channel 0, identity on S and V: one ``cv2.LUT`` call on an HSV image."""
    lut = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    lut[:, 0] = hue_lut(shift)
    return lut.reshape(1, 256, 3)


def _frame_mean(grey: np.ndarray) -> float:
    """Mean of a uint8 grey frame, exactly (integer sum, one correctly rounded division)."""
    return cv2.sumElems(grey)[0] / grey.size


# OpenCV's 8-bit RGB -> grey: 15-bit fixed point, rounded (cv2.COLOR_RGB2GRAY on uint8).
_GREY_WEIGHTS = (9798, 19235, 3735)
# OpenCV's 8-bit HSV -> RGB runs 32 pixels at a time (x86-64 AVX2 build) and truncates there; the
# pixels left at the end of each row (width % 32) go through its scalar code, which rounds.
_HSV_BLOCK = 32
_HSV_SHIFT = 12
_SDIV = torch.tensor([0] + [round((255 << _HSV_SHIFT) / i) for i in range(1, 256)], dtype=torch.int32)
_HDIV = torch.tensor([0] + [round((180 << _HSV_SHIFT) / (6.0 * i)) for i in range(1, 256)], dtype=torch.int32)
# (r, g, b) picked from (v, v(1-s), v(1-s f), v(1-s(1-f))) in each of the six hue sectors
_SECTORS = torch.tensor([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])


def _fused_1_minus(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """float32 ``1 - a * b`` rounded once, as OpenCV's fused multiply-add (exact in float64 first)."""
    return (1.0 - a.double() * b.double()).float()


def _grey_torch(x: torch.Tensor) -> torch.Tensor:
    """int32 ``(..., 3)`` RGB -> int32 grey ``(...)``, OpenCV's 8-bit formula."""
    r, g, b = x.unbind(-1)
    return (r * _GREY_WEIGHTS[0] + g * _GREY_WEIGHTS[1] + b * _GREY_WEIGHTS[2] + (1 << 14)) >> 15


def _rgb_to_hsv_torch(x: torch.Tensor) -> tuple:
    """int32 ``(..., 3)`` RGB -> int32 (h 0..179, s, v): OpenCV's 8-bit integer algorithm."""
    r, g, b = x.unbind(-1)
    v = torch.maximum(torch.maximum(r, g), b)
    diff = v - torch.minimum(torch.minimum(r, g), b)
    half = 1 << (_HSV_SHIFT - 1)
    s = (diff * _SDIV.to(x.device)[v.long()] + half) >> _HSV_SHIFT
    h = torch.where(v == r, g - b, torch.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * _HDIV.to(x.device)[diff.long()] + half) >> _HSV_SHIFT
    return torch.where(h < 0, h + 180, h), s, v


def _hsv_to_rgb_torch(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """int (h 0..179, s, v) ``(..., W)`` -> uint8 RGB ``(..., W, 3)``: OpenCV's 8-bit conversion
    (float32, fused multiply-adds; truncated in whole 32-pixel blocks of a row, rounded after)."""
    f32 = torch.float32
    sf = s.to(f32) * np.float32(1.0 / 255.0)
    vf = v.to(f32) * np.float32(1.0 / 255.0)
    hf = h.to(f32) * np.float32(6.0 / 180.0)
    sector = torch.trunc(hf)
    frac = hf - sector
    sector = (sector - torch.trunc(sector * np.float32(1.0 / 6.0)) * 6).long()
    tabs = torch.stack([vf, vf * (1.0 - sf), vf * _fused_1_minus(sf, frac), vf * _fused_1_minus(sf, 1.0 - frac)], -1)
    rgb = torch.gather(tabs, -1, _SECTORS.to(h.device)[sector]) * np.float32(255.0)
    width = h.shape[-1]
    blocks = (width // _HSV_BLOCK) * _HSV_BLOCK
    out = torch.empty(rgb.shape, dtype=torch.uint8, device=h.device)
    out[..., :blocks, :] = torch.trunc(rgb[..., :blocks, :]).clamp_(0, 255).to(torch.uint8)
    out[..., blocks:, :] = torch.round(rgb[..., blocks:, :]).clamp_(0, 255).to(torch.uint8)
    return out


def _colour_torch(clip: torch.Tensor, params: dict) -> torch.Tensor:
    """The colour steps on a uint8 ``(T, H, W, 3)`` clip in torch, on any device: the same 8-bit
    arithmetic as the OpenCV implementation (lookup tables, OpenCV's fixed-point grey and HSV,
    fused multiply-adds), so the result is the same bytes. Returns a new uint8 clip."""
    x = clip.to(torch.int32)
    t, h, w, _ = x.shape
    jitter = params["jitter"]
    if jitter is not None:
        brightness, contrast, saturation, hue = jitter
        for step in params["jitter_order"]:
            if step == 0 and brightness != 1:
                x = torch.from_numpy(brightness_lut(brightness)).to(x.device, torch.int32)[x.long()]
            elif step == 1 and contrast != 1:
                mean = _grey_torch(x).sum((1, 2)).double() / (h * w)  # (T,): each frame's own grey mean
                if contrast == 0:
                    x = torch.floor(mean + 0.5).to(torch.int32)[:, None, None, None].expand_as(x).clone()
                else:
                    lut = torch.arange(256, dtype=torch.float64, device=x.device) * contrast + mean[:, None] * (1 - contrast)
                    lut = lut.clamp_(0, 255).to(torch.int32)  # (T, 256), truncated
                    x = torch.gather(lut, 1, x.reshape(t, -1).long()).reshape(x.shape)
            elif step == 2 and saturation != 1:
                grey = _grey_torch(x)[..., None].to(torch.float32) * np.float32(1 - saturation)
                # OpenCV's addWeighted on uint8: fma(x, a, grey * b) in float32, rounded half to even
                y = (x.double() * float(np.float32(saturation)) + grey.double()).float()
                x = torch.round(y).clamp_(0, 255).to(torch.int32)
            elif step == 3 and hue != 0:
                hh, s, v = _rgb_to_hsv_torch(x)
                hh = torch.from_numpy(hue_lut(hue)).to(x.device, torch.int32)[hh.long()]
                x = _hsv_to_rgb_torch(hh, s, v).to(torch.int32)
    if params["grey"]:
        x = _grey_torch(x)[..., None].expand_as(x)
    return x.to(torch.uint8)


class TrainClipTransform:
    """Training augmentation of the original recipe, identical for all frames of a clip.

    In order, on the decoded frames at their own size (albumentations 0.5.2's
    operations and arithmetic, on OpenCV):

    * rotation by U(-``max_rotation``, ``max_rotation``) degrees (p ``p_rotate``)
      about ``(width / 2, height / 2)``, bilinear (``cv2.INTER_LINEAR``), borders
      reflected without repeating the edge (``cv2.BORDER_REFLECT_101``);
    * resize to ``resize`` x ``resize``, ``cv2.INTER_LINEAR`` (skipped when the frame
      already has that size);
    * ``crop`` x ``crop`` crop at offsets ``int((resize - crop) * u)``, u ~ U(0, 1):
      0 .. resize - crop - 1 (0..31 for 256 -> 224);
    * horizontal flip (p ``p_flip``);
    * colour jitter (p ``p_jitter``): brightness, contrast, saturation factors
      U(max(0, 1 - ``jitter``), 1 + ``jitter``) and a hue shift U(-``jitter``,
      ``jitter``) turns, applied in a uniformly random order, each on uint8:
      brightness and contrast through truncating lookup tables (contrast blends
      with the frame's own mean grey level), saturation as ``cv2.addWeighted`` with
      the grey image, hue on OpenCV's 8-bit HSV (180 hue steps) through a lookup
      table; a factor of 1 (hue 0) leaves the clip unchanged;
    * grey (p ``p_gray``): ``cv2.COLOR_RGB2GRAY`` copied to the three channels.

    Output: uint8 ``(T, crop, crop, 3)``; :func:`normalize_clip` then gives
    ``x / 255 - 0.5``.

    Parameters come from :meth:`sample_params` (the generator only). Three
    implementations of the same operations; ``backend`` says where the work is
    done:

    * ``"loader"`` (default): :meth:`apply` (OpenCV on uint8) in the loader; the
      device only normalises.
    * ``"device"``: the loader does the geometric steps (rotation, resize, crop,
      flip: they shrink the clip) and hands over ``{"frames": uint8 (T, crop, crop,
      3), "params": float64 (14,)}``; :meth:`device_stage` runs the colour steps on
      the batch, where the network is, in torch with the same 8-bit arithmetic
      (the same bytes as the loader backend's on an x86-64 AVX2 machine, where
      OpenCV's HSV -> RGB conversion has the rounding reproduced; elsewhere at most
      one grey level apart on a few pixels).
    * ``"torchvision"``: :meth:`apply_torchvision`, a float reference
      (``torch.nn.functional.grid_sample`` for the rotation,
      ``torchvision.transforms.v2.functional`` for the rest, on the whole ``(T, C,
      H, W)`` clip) rounded to uint8: the same operations without the 8-bit
      rounding (within a few grey levels of the loader's; hue continuous).

    Every transform has a loader stage (``__call__``, per clip, in DataLoader
    workers) and :meth:`device_stage` (per batch, after the batch is moved to
    the device), which gives the network's float input.
    """

    def __init__(
        self,
        resize: int = 256,
        crop: int = 224,
        *,
        max_rotation: float = 5.0,
        p_rotate: float = 0.4,
        p_flip: float = 0.5,
        jitter: float = 0.2,
        p_jitter: float = 0.3,
        p_gray: float = 0.2,
        backend: str = "loader",
    ):
        if crop > resize:
            raise ValueError(f"crop {crop} is larger than resize {resize}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        if not 0.0 <= jitter <= 0.5:
            raise ValueError(f"jitter must be in [0, 0.5] (the hue shift is at most half a turn), got {jitter}")
        self.resize, self.crop = int(resize), int(crop)
        self.max_rotation, self.p_rotate, self.p_flip = float(max_rotation), float(p_rotate), float(p_flip)
        self.jitter, self.p_jitter, self.p_gray = float(jitter), float(p_jitter), float(p_gray)
        self.backend = backend
        self._scratch: dict = {}

    # The loader stage never returns or keeps a view of its input: a loader may decode
    # every window into the same buffer.
    copies_input = True

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_scratch"] = {}  # working memory is not sent to loader workers
        return state

    def _buffer(self, name: str, shape: tuple) -> np.ndarray:
        """A uint8 working array kept between clips (reused memory, no fresh pages per clip)."""
        buf = self._scratch.get(name)
        if buf is None or buf.shape != shape:
            buf = self._scratch[name] = np.empty(shape, np.uint8)
        return buf

    def __repr__(self) -> str:
        return f"TrainClipTransform(resize={self.resize}, crop={self.crop}, backend={self.backend!r})"

    def sample_params(self, generator: Optional[torch.Generator] = None) -> dict:
        """Draw one clip's parameters. Every number is drawn, in a fixed order, whether
        or not its step fires, so the parameters depend on the generator's seed only.

        The distribution is the recipe's: each step fires with its probability; a
        uniform ``u`` in [0, 1) gives ``low + (high - low) * u`` for the angle and the
        factors and ``int((resize - crop) * u)`` for the crop offsets; the jitter
        order is a uniformly random permutation.
        """
        u = torch.rand(11, generator=generator, dtype=torch.float64).tolist()
        order = torch.randperm(4, generator=generator).tolist()
        j, r = self.jitter, self.max_rotation
        low = max(0.0, 1.0 - j)
        span = self.resize - self.crop
        return {
            "angle": -r + 2.0 * r * u[1] if u[0] < self.p_rotate else 0.0,
            "top": int(span * u[2]),
            "left": int(span * u[3]),
            "flip": u[4] < self.p_flip,
            # (brightness, contrast, saturation, hue) factors and their order, or None
            "jitter": (
                (low + (1.0 + j - low) * u[6], low + (1.0 + j - low) * u[7], low + (1.0 + j - low) * u[8],
                 -j + 2.0 * j * u[9])
                if u[5] < self.p_jitter and j > 0
                else None
            ),
            "jitter_order": order,
            "grey": u[10] < self.p_gray,
        }

    def loader_shape(self, window: int) -> tuple:
        """Shape of the uint8 clip the loader stage writes for a ``window``-frame clip."""
        return (int(window), self.crop, self.crop, 3)

    @property
    def per_frame(self) -> bool:
        """Whether the loader stage can take the clip a frame at a time (:meth:`frame_stage`)."""
        return self.backend != "torchvision"

    def __call__(self, frames: np.ndarray, generator: Optional[torch.Generator] = None,
                 out: Optional[np.ndarray] = None):
        """Loader stage: uint8 ``(T, crop, crop, 3)``, or for the device backend
        ``{"frames", "params"}`` (see the class docstring). ``out``: a contiguous
        uint8 array of :meth:`loader_shape` to write the clip into (e.g. its slot
        in a batch); the tensor returned then shares its memory.

        Equal to :meth:`sample_params`, :meth:`frame_stage` on every frame, :meth:`clip_stage`,
        which a loader may call itself to hand over frames one at a time.
        """
        params = self.sample_params(generator)
        if self.backend == "torchvision":
            x = self.apply_torchvision(frames, params)  # float (T, 3, crop, crop), x / 255 - 0.5
            clip = (x + 0.5).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
            if out is None:
                return clip
            np.copyto(_output(out, tuple(clip.shape)), clip.numpy())
            return torch.from_numpy(out)
        return self.clip_stage(_frame_by_frame(self, frames, params, out), params)

    def frame_stage(self, frame: np.ndarray, params: dict, dst: np.ndarray) -> None:
        """The geometric steps on one ``(H, W, 3)`` frame of any size: rotation (on the frame
        as it is), resize, crop, flip, into ``dst``.

        OpenCV on uint8, one step after the other (fusing rotation and resize into one
        warp would interpolate once instead of twice: other pixels). The rotation is
        ``cv2.remap`` with :func:`rotation_maps`, made once per clip; on a frame that
        needs no resize it computes only the cropped (and flipped) output. Working
        memory is reused.
        """
        h, w = frame.shape[:2]
        size, crop, angle = self.resize, self.crop, params["angle"]
        top, left, flip = params["top"], params["left"], params["flip"]
        if angle != 0.0:
            if (h, w) == (size, size):
                # No resize: crop and flip are a choice of output pixels, so one remap with the
                # maps' crop (mirrored for the flip) writes just the output (the same pixels).
                cv2.remap(frame, *self._maps(h, w, angle, (top, left, flip)), cv2.INTER_LINEAR, dst=dst,
                          borderMode=cv2.BORDER_REFLECT_101)
                return
            frame = cv2.remap(frame, *self._maps(h, w, angle), cv2.INTER_LINEAR, dst=self._buffer("rotated", (h, w, 3)),
                              borderMode=cv2.BORDER_REFLECT_101)
        if (h, w) != (size, size):
            frame = cv2.resize(frame, (size, size), dst=self._buffer("resized", (size, size, 3)),
                               interpolation=cv2.INTER_LINEAR)
        src = frame[top : top + crop, left : left + crop]
        if flip:
            cv2.flip(src, 1, dst=dst)
        else:
            np.copyto(dst, src)

    def _maps(self, h: int, w: int, angle: float, window: Optional[tuple] = None) -> tuple:
        """:func:`rotation_maps`, or their ``(top, left, flip)`` output window, made once per clip."""
        key = (h, w, angle, window)
        if self._scratch.get("maps_key") != key:  # the same maps for every frame of the clip
            pixel, fraction = rotation_maps(h, w, angle)
            if window is not None:
                top, left, flip = window
                rows, cols = slice(top, top + self.crop), slice(left, left + self.crop)
                if flip:
                    cols = slice(left + self.crop - 1, left - 1 if left else None, -1)
                pixel = np.ascontiguousarray(pixel[rows, cols])
                fraction = np.ascontiguousarray(fraction[rows, cols])
            self._scratch["maps"], self._scratch["maps_key"] = (pixel, fraction), key
        return self._scratch["maps"]

    def clip_stage(self, clip: np.ndarray, params: dict):
        """After :meth:`frame_stage` filled ``clip`` (uint8 ``(T, crop, crop, 3)``): the colour
        steps in place (loader backend), or the device backend's hand-over."""
        if self.backend == "device":  # the colour steps wait for the device
            return {"frames": torch.from_numpy(clip), "params": pack_params(params)}
        if _needs_colour(params):
            self._colour(clip, params)
        return torch.from_numpy(clip)

    # -- the loader backend: OpenCV / numpy
    def apply(self, frames: np.ndarray, params: dict, out: Optional[np.ndarray] = None,
              colour: bool = True) -> torch.Tensor:
        """The transform with given parameters (OpenCV implementation): uint8 ``(T, crop, crop, 3)``,
        written into ``out`` when given. ``colour=False``: the geometric steps only."""
        clip = _frame_by_frame(self, frames, params, out)
        if colour and _needs_colour(params):
            self._colour(clip, params)
        return torch.from_numpy(clip)

    def _colour(self, clip: np.ndarray, params: dict) -> None:
        """Colour jitter and grey on a contiguous uint8 clip, in place (OpenCV, 8 bits).

        Lookup tables and colour conversions see the clip as one tall image (one
        OpenCV call per step, the same pixels as frame by frame); the contrast
        (each frame's own mean grey) and the saturation blend (OpenCV's vector and
        scalar code round differently: each frame is one call, as it would be
        alone) go frame by frame.
        """
        t, h, w, _ = clip.shape
        flat = clip.reshape(t * h, w, 3)
        grey = self._buffer("grey", (t * h, w))
        jitter = params["jitter"]
        if jitter is not None:
            brightness, contrast, saturation, hue = jitter
            for step in params["jitter_order"]:
                if step == 0 and brightness != 1:
                    cv2.LUT(flat, brightness_lut(brightness), dst=flat)
                elif step == 1 and contrast != 1:
                    cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY, dst=grey)
                    for frame, frame_grey in zip(clip, grey.reshape(t, h, w)):
                        mean = _frame_mean(frame_grey)
                        if contrast == 0:
                            frame[...] = int(mean + 0.5)
                        else:
                            cv2.LUT(frame, contrast_lut(contrast, mean), dst=frame)
                elif step == 2 and saturation != 1:
                    grey3 = self._buffer("colour", (t, h, w, 3))
                    cv2.cvtColor(cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY, dst=grey), cv2.COLOR_GRAY2RGB,
                                 dst=grey3.reshape(t * h, w, 3))
                    for frame, frame_grey in zip(clip, grey3):
                        cv2.addWeighted(frame, saturation, frame_grey, 1 - saturation, 0.0, dst=frame)
                elif step == 3 and hue != 0:
                    hsv = cv2.cvtColor(flat, cv2.COLOR_RGB2HSV, dst=self._buffer("colour", (t * h, w, 3)))
                    cv2.LUT(hsv, _hue_lut3(hue), dst=hsv)
                    cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB, dst=flat)
        if params["grey"]:
            cv2.cvtColor(cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY, dst=grey), cv2.COLOR_GRAY2RGB, dst=flat)

    # -- reference path: float, torch / torchvision.transforms.v2 on the whole clip
    def apply_torchvision(self, frames: np.ndarray, params: dict) -> torch.Tensor:
        """The transform with given parameters, in float (``grid_sample`` for the rotation,
        ``torchvision.transforms.v2.functional`` for the rest).

        Returns the float ``(T, 3, crop, crop)`` clip ``x / 255 - 0.5`` (the reference, unrounded).
        """
        _check_clip(frames)
        return self._reference(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), params)

    def _reference(self, clip: torch.Tensor, params: dict) -> torch.Tensor:
        """uint8 ``(T, 3, H, W)`` -> float ``(T, 3, crop, crop)``, ``x / 255 - 0.5``."""
        x = F.to_dtype(clip, torch.float32, scale=True)
        if params["angle"] != 0.0:
            x = _rotate_reflect(x, params["angle"])
        if tuple(x.shape[-2:]) != (self.resize, self.resize):
            x = F.resize(x, [self.resize, self.resize], interpolation=InterpolationMode.BILINEAR, antialias=False)
        x = F.crop(x, params["top"], params["left"], self.crop, self.crop)
        if params["flip"]:
            x = F.horizontal_flip(x)
        return (self._reference_colour(x, params) - 0.5).contiguous()

    @staticmethod
    def _reference_colour(x: torch.Tensor, params: dict) -> torch.Tensor:
        """The colour steps on a float ``(T, 3, H, W)`` clip in [0, 1], on any device (torchvision's
        float operations: the recipe's formulas without the 8-bit rounding; the hue turns by the
        8-bit step's whole number of 2-degree steps)."""
        if params["jitter"] is not None:
            brightness, contrast, saturation, hue = params["jitter"]
            for step in params["jitter_order"]:
                if step == 0:
                    x = F.adjust_brightness(x, brightness)
                elif step == 1:
                    x = F.adjust_contrast(x, contrast)
                elif step == 2:
                    x = F.adjust_saturation(x, saturation)
                elif hue != 0:  # the 8-bit step turns hue by whole 2-degree steps: floor(180 * hue)
                    x = F.adjust_hue(x, math.floor(180 * hue) / 180)
        if params["grey"]:
            x = F.rgb_to_grayscale(x, num_output_channels=3)
        return x

    def device_stage(self, clips, device=None) -> torch.Tensor:
        """A collated batch of loader-stage outputs -> float ``(B, T, 3, crop, crop)`` on ``device``.

        For the device backend the colour steps run here (:func:`_colour_torch`, the
        loader's 8-bit arithmetic in torch) on the clips whose parameters call for
        them; otherwise this is :func:`normalize_clip`.
        """
        if not isinstance(clips, dict):
            return normalize_clip(clips.to(device, non_blocking=True))
        frames = clips["frames"].to(device, non_blocking=True)
        out = normalize_clip(frames)  # (B, T, 3, c, c), x / 255 - 0.5
        for i, row in enumerate(clips["params"]):
            params = unpack_params(row)
            if _needs_colour(params):
                out[i] = normalize_clip(_colour_torch(frames[i], params))
        return out


def _rotate_reflect(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Float ``(T, C, H, W)`` rotated as :meth:`TrainClipTransform.frame_stage` rotates (the same
    matrix, bilinear, borders reflected about the edge pixels), with ``grid_sample``."""
    h, w = x.shape[-2:]
    inverse = torch.from_numpy(cv2.invertAffineTransform(rotation_matrix(h, w, angle)))  # output -> input pixel
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    src_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    src_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    # align_corners=True: -1 and 1 are the centres of the edge pixels, about which "reflection" reflects
    grid = torch.stack([src_x * 2 / max(w - 1, 1) - 1, src_y * 2 / max(h - 1, 1) - 1], -1).to(x.dtype)
    return torch.nn.functional.grid_sample(x, grid.expand(len(x), h, w, 2), mode="bilinear",
                                           padding_mode="reflection", align_corners=True)


BACKENDS = ("loader", "torchvision", "device")

# One clip's parameters as numbers, in this order (``pack_params``/``unpack_params``).
PARAM_FIELDS = (
    "angle", "top", "left", "flip", "jitter_on", "brightness", "contrast", "saturation", "hue",
    "order_0", "order_1", "order_2", "order_3", "grey",
)


def pack_params(params: dict) -> torch.Tensor:
    """:meth:`TrainClipTransform.sample_params` output -> float64 ``(14,)`` (collatable)."""
    jitter = params["jitter"]
    values = [float(params["angle"]), params["top"], params["left"], float(params["flip"]),
              float(jitter is not None), *(jitter if jitter is not None else (1.0, 1.0, 1.0, 0.0)),
              *params["jitter_order"], float(params["grey"])]
    return torch.tensor(values, dtype=torch.float64)


def unpack_params(row: torch.Tensor) -> dict:
    """Inverse of :func:`pack_params` (exact: float64 holds every value)."""
    v = row.tolist()
    if len(v) != len(PARAM_FIELDS):
        raise ValueError(f"expected {len(PARAM_FIELDS)} packed parameters, got {len(v)}")
    return {
        "angle": v[0],
        "top": int(v[1]),
        "left": int(v[2]),
        "flip": bool(v[3]),
        "jitter": tuple(v[5:9]) if v[4] else None,
        "jitter_order": [int(x) for x in v[9:13]],
        "grey": bool(v[13]),
    }


class EvalClipTransform:
    """Validation/inference transform: cv2 bilinear resize, centre crop, ``x / 255 - 0.5``."""

    def __init__(self, resize: int = 256, crop: int = 224):
        if crop > resize:
            raise ValueError(f"crop {crop} is larger than resize {resize}")
        self.resize, self.crop = int(resize), int(crop)

    copies_input = True  # never returns or keeps a view of its input

    def __repr__(self) -> str:
        return f"EvalClipTransform(resize={self.resize}, crop={self.crop})"

    per_frame = True  # the loader stage can take the clip a frame at a time

    def loader_shape(self, window: int) -> tuple:
        """Shape of the uint8 clip the loader stage writes for a ``window``-frame clip."""
        return (int(window), self.crop, self.crop, 3)

    def __call__(self, frames: np.ndarray, generator: Optional[torch.Generator] = None,
                 out: Optional[np.ndarray] = None) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` -> uint8 ``(T, crop, crop, 3)`` (written into ``out`` when given)."""
        return self.clip_stage(_frame_by_frame(self, frames, None, out), None)

    def sample_params(self, generator: Optional[torch.Generator] = None) -> None:
        return None  # no random parameters

    def frame_stage(self, frame: np.ndarray, params, dst: np.ndarray) -> None:
        """Bilinear resize (when needed) and centre crop of one frame into ``dst``."""
        if frame.shape[:2] != (self.resize, self.resize):
            frame = cv2.resize(frame, (self.resize, self.resize), interpolation=cv2.INTER_LINEAR)
        # torchvision's CenterCrop offset: round((size - crop) / 2)
        off = int(round((self.resize - self.crop) / 2.0))
        np.copyto(dst, frame[off : off + self.crop, off : off + self.crop])

    def clip_stage(self, clip: np.ndarray, params) -> torch.Tensor:
        return torch.from_numpy(clip)

    def device_stage(self, clips: torch.Tensor, device=None) -> torch.Tensor:
        """A collated uint8 batch -> the network's float input on ``device`` (:func:`normalize_clip`)."""
        return normalize_clip(clips.to(device, non_blocking=True))
