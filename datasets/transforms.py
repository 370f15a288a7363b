"""Clip transforms: one set of random parameters for every frame of a clip.

Both take a uint8 RGB clip ``(T, H, W, 3)`` (as read from the frame store) and
return a float32 tensor ``(T, 3, crop, crop)`` scaled as ``x / 255 - 0.5``.

:class:`TrainClipTransform` is the original recipe's augmentation. Its parameters
are drawn from the ``torch.Generator`` passed in (never the global RNG), so a
sample is a function of the generator's seed alone: training resumes exactly and
does not depend on the number of loader workers. It has two implementations of
the same operations: the reference, ``torchvision.transforms.v2.functional`` on
the whole clip ``(T, C, H, W)``, and the default fast one (OpenCV/numpy on uint8
frames: rotation and crop fused into one warp, colour steps after the crop, then
one table lookup to float), which the tests hold to the reference. With torchvision a 32-frame
256x256 clip costs ~0.2-0.5 s of one CPU core when it is rotated or
colour-jittered (grid_sample; RGB->HSV on tensors), far from the loader's
target of 80 windows/s per core.

:class:`EvalClipTransform` reproduces the original inference path: OpenCV
bilinear resize (``cv2.INTER_LINEAR``, no antialiasing) on uint8 frames, centre
crop, ``x / 255 - 0.5``.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

__all__ = ["TrainClipTransform", "EvalClipTransform", "to_float_clip"]


def to_float_clip(clip_tchw: torch.Tensor) -> torch.Tensor:
    """uint8 ``(T, C, H, W)`` -> contiguous float32 ``x / 255 - 0.5``."""
    out = torch.empty(clip_tchw.shape, dtype=torch.float32)
    out.copy_(clip_tchw)
    return out.div_(255.0).sub_(0.5)


# uint8 -> float32 tables: one lookup per element gives bit for bit what the float
# arithmetic of each path gives (the ops are elementwise, so a table of all 256 inputs
# is exact), in one pass instead of a cast and two arithmetic passes.
_TRAIN_LUT = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0) - np.float32(0.5)
_EVAL_LUT = to_float_clip(torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256)).reshape(256).numpy().copy()


def _float_planes(clip: np.ndarray, lut: np.ndarray, flip: bool = False) -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` (any strides) -> float32 tensor ``(T, 3, H, W)`` = ``lut[clip]``.

    Channels are split on uint8 (a quarter of the bytes of float; ``cv2.split``
    is several times faster than a numpy transposing copy), a horizontal flip is
    one ``cv2.flip`` of every plane row, then one table lookup writes the float
    output.
    """
    t, h, w, _ = clip.shape
    planes = np.empty((t, 3, h, w), np.uint8)
    for frame, dst in zip(clip, planes):
        parts = [dst[0], dst[1], dst[2]]
        got = cv2.split(frame, parts)
        if any(a is not b for a, b in zip(got, parts)):  # OpenCV made new arrays: copy with numpy
            np.copyto(planes, clip.transpose(0, 3, 1, 2))
            break
    rows = planes.reshape(t * 3 * h, w)
    if flip:
        rows = cv2.flip(rows, 1, dst=rows)
    out = np.empty((t * 3 * h, w), np.float32)
    out = cv2.LUT(rows, lut, dst=out)
    return torch.from_numpy(out.reshape(t, 3, h, w))


def _check_clip(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected a uint8 clip (T, H, W, 3), got {frames.dtype} {frames.shape}")


def _as_tchw(frames: np.ndarray) -> torch.Tensor:
    _check_clip(frames)
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)


class TrainClipTransform:
    """Training augmentation of the original recipe, identical for all frames of a clip.

    In order: rotation by U(-5, 5) degrees about the centre (p 0.4, nearest
    neighbour as torchvision's RandomRotation, zero fill), resize to ``resize`` x
    ``resize`` (skipped when already that size), random ``crop`` x ``crop`` crop,
    horizontal flip (p 0.5), colour jitter with brightness/contrast/saturation
    factors U(0.8, 1.2) and hue shift U(-0.2, 0.2) in random order (p 0.3), to
    grey (p 0.2), then ``x / 255 - 0.5``.

    Parameters come from :meth:`sample_params` (the generator only). Two
    implementations of the same operations: :meth:`apply` (the default, OpenCV
    and numpy on uint8: rotation and crop fused into one warp, colour steps
    rounding to 8 bits as torchvision does on uint8 and PIL on images) and
    :meth:`apply_torchvision` (``torchvision.transforms.v2.functional`` on the
    whole ``(T, C, H, W)`` clip, in float: the reference the fast path is tested
    against, several times slower on a CPU core). ``backend`` picks one.
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
        backend: str = "fast",
    ):
        if crop > resize:
            raise ValueError(f"crop {crop} is larger than resize {resize}")
        if backend not in ("fast", "torchvision"):
            raise ValueError(f"backend must be 'fast' or 'torchvision', got {backend!r}")
        self.resize, self.crop = int(resize), int(crop)
        self.max_rotation, self.p_rotate, self.p_flip = float(max_rotation), float(p_rotate), float(p_flip)
        self.jitter, self.p_jitter, self.p_gray = float(jitter), float(p_jitter), float(p_gray)
        self.backend = backend

    def __repr__(self) -> str:
        return f"TrainClipTransform(resize={self.resize}, crop={self.crop}, backend={self.backend!r})"

    def sample_params(self, generator: Optional[torch.Generator] = None) -> dict:
        """Draw one clip's parameters. Every number is drawn, in a fixed order, whether
        or not its step fires, so the parameters depend on the generator's seed only."""
        u = torch.rand(11, generator=generator, dtype=torch.float64).tolist()
        order = torch.randperm(4, generator=generator).tolist()
        j = self.jitter
        margin = self.resize - self.crop + 1
        return {
            "angle": (2.0 * u[1] - 1.0) * self.max_rotation if u[0] < self.p_rotate else 0.0,
            "top": int(u[2] * margin),
            "left": int(u[3] * margin),
            "flip": u[4] < self.p_flip,
            # (brightness, contrast, saturation, hue) factors and their order, or None
            "jitter": (
                (1 - j + 2 * j * u[6], 1 - j + 2 * j * u[7], 1 - j + 2 * j * u[8], (2 * u[9] - 1) * j)
                if u[5] < self.p_jitter and j > 0
                else None
            ),
            "jitter_order": order,
            "grey": u[10] < self.p_gray,
        }

    def __call__(self, frames: np.ndarray, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        params = self.sample_params(generator)
        if self.backend == "torchvision":
            return self.apply_torchvision(frames, params)
        return self.apply(frames, params)

    # -- fast path: OpenCV / numpy
    def _geometry(self, frames: np.ndarray, angle: float, top: int, left: int) -> np.ndarray:
        """Rotation, resize and crop: uint8 ``(T, crop, crop, 3)``, a view of ``frames`` when not rotated."""
        _, h, w, _ = frames.shape
        size, crop = self.resize, self.crop
        if angle != 0.0:
            # Rotation about the frame centre, counter-clockwise for positive angles (as torchvision).
            matrix = cv2.getRotationMatrix2D(((w - 1) * 0.5, (h - 1) * 0.5), angle, 1.0)
            cropped = (h, w) == (size, size)
            if cropped:
                # The crop is a translation: fuse it into the warp and compute only the crop.
                matrix[0, 2] -= left
                matrix[1, 2] -= top
                out_h, out_w = crop, crop
            else:
                out_h, out_w = h, w
            rotated = np.empty((len(frames), out_h, out_w, 3), np.uint8)
            for i, frame in enumerate(frames):
                cv2.warpAffine(frame, matrix, (out_w, out_h), dst=rotated[i], flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            if cropped:
                return rotated
            frames = rotated
        if frames.shape[1:3] != (size, size):
            resized = np.empty((len(frames), size, size, 3), np.uint8)
            for i, frame in enumerate(frames):
                cv2.resize(frame, (size, size), dst=resized[i], interpolation=cv2.INTER_LINEAR)
            frames = resized
        return frames[:, top : top + crop, left : left + crop]

    def apply(self, frames: np.ndarray, params: dict) -> torch.Tensor:
        """The transform with given parameters (OpenCV/numpy implementation)."""
        _check_clip(frames)
        clip = self._geometry(frames, params["angle"], params["top"], params["left"])  # uint8 (T, c, c, 3)
        flip = bool(params["flip"])
        if params["jitter"] is not None or params["grey"]:
            # The colour steps work in place on a dense clip: the rotated one is ours
            # already; a view of the caller's frames is copied (and flipped while
            # copied: no colour step depends on pixel positions, so the order is free).
            if clip.base is not None or not clip.flags.c_contiguous:
                dense = np.empty(clip.shape, np.uint8)
                if flip:
                    for i, frame in enumerate(clip):
                        cv2.flip(frame, 1, dst=dense[i])
                    flip = False
                else:
                    np.copyto(dense, clip)
                clip = dense
            clip = self._colour(clip, params)
        return _float_planes(clip, _TRAIN_LUT, flip)

    @staticmethod
    def _colour(clip: np.ndarray, params: dict) -> np.ndarray:
        """Colour jitter and grey on a contiguous uint8 clip, in place.

        Every step rounds and saturates to 8 bits, as torchvision does on uint8
        tensors (and PIL on images); hue is shifted on 8-bit HSV with 256 hue steps
        per turn, as PIL does. The per-pixel steps see the clip as one tall image
        (one OpenCV call per step); only contrast (each frame's own mean grey) goes
        frame by frame.
        """
        t, h, w, _ = clip.shape
        flat = clip.reshape(t * h, w, 3)
        jitter = params["jitter"]
        if jitter is not None:
            brightness, contrast, saturation, hue = jitter
            for step in params["jitter_order"]:
                if step == 0:  # blend with black
                    cv2.addWeighted(flat, brightness, flat, 0.0, 0.0, dst=flat)
                elif step == 1:  # blend with the frame's mean grey level
                    grey = cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY).reshape(t, h, w)
                    for frame, frame_grey in zip(clip, grey):
                        mean = cv2.mean(frame_grey)[0]
                        cv2.addWeighted(frame, contrast, frame, 0.0, (1.0 - contrast) * mean, dst=frame)
                elif step == 2:  # blend with the frame's grey version
                    grey = cv2.cvtColor(cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
                    cv2.addWeighted(flat, saturation, grey, 1.0 - saturation, 0.0, dst=flat)
                else:
                    hsv = cv2.cvtColor(flat, cv2.COLOR_RGB2HSV_FULL)
                    hsv[..., 0] += np.uint8(int(round(hue * 256.0)) % 256)  # wraps modulo 256
                    cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL, dst=flat)
        if params["grey"]:
            cv2.cvtColor(cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB, dst=flat)
        return clip

    # -- reference path: torchvision.transforms.v2 on the whole clip
    def apply_torchvision(self, frames: np.ndarray, params: dict) -> torch.Tensor:
        """The transform with given parameters, with ``torchvision.transforms.v2.functional``."""
        clip = _as_tchw(frames)  # (T, 3, H, W) uint8
        if params["angle"] != 0.0:
            clip = F.rotate(clip, params["angle"], interpolation=InterpolationMode.NEAREST, fill=0)
        if tuple(clip.shape[-2:]) != (self.resize, self.resize):
            clip = F.resize(clip, [self.resize, self.resize], antialias=False)
        clip = F.crop(clip, params["top"], params["left"], self.crop, self.crop)
        if params["flip"]:
            clip = F.horizontal_flip(clip)
        x = F.to_dtype(clip, torch.float32, scale=True)
        if params["jitter"] is not None:
            brightness, contrast, saturation, hue = params["jitter"]
            for step in params["jitter_order"]:
                if step == 0:
                    x = F.adjust_brightness(x, brightness)
                elif step == 1:
                    x = F.adjust_contrast(x, contrast)
                elif step == 2:
                    x = F.adjust_saturation(x, saturation)
                else:
                    x = F.adjust_hue(x, hue)
        if params["grey"]:
            x = F.rgb_to_grayscale(x, num_output_channels=3)
        return (x - 0.5).contiguous()


class EvalClipTransform:
    """Validation/inference transform: cv2 bilinear resize, centre crop, ``x / 255 - 0.5``."""

    def __init__(self, resize: int = 256, crop: int = 224):
        if crop > resize:
            raise ValueError(f"crop {crop} is larger than resize {resize}")
        self.resize, self.crop = int(resize), int(crop)

    def __repr__(self) -> str:
        return f"EvalClipTransform(resize={self.resize}, crop={self.crop})"

    def __call__(self, frames: np.ndarray, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        _check_clip(frames)
        if frames.shape[1:3] != (self.resize, self.resize):
            resized = np.empty((frames.shape[0], self.resize, self.resize, 3), np.uint8)
            for i, frame in enumerate(frames):
                cv2.resize(frame, (self.resize, self.resize), dst=resized[i], interpolation=cv2.INTER_LINEAR)
            frames = resized
        # torchvision's CenterCrop offset: round((size - crop) / 2)
        off = int(round((self.resize - self.crop) / 2.0))
        # = to_float_clip of the crop, bit for bit (table of that function's 256 outputs)
        return _float_planes(frames[:, off : off + self.crop, off : off + self.crop], _EVAL_LUT)
