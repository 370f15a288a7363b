"""Clip transforms: one set of random parameters for every frame of a clip.

Both take a uint8 RGB clip ``(T, H, W, 3)`` (as read from the frame store) and
return a uint8 tensor ``(T, crop, crop, 3)``: the loader ships bytes, a quarter
of the float clip's size, and :func:`normalize_clip` turns a batch into the
network's float input ``x / 255 - 0.5``, ``(..., 3, crop, crop)``, on the
device the network runs on (one elementwise pass there; on a CPU-only run it
is the same pass the loader would otherwise have made).

:class:`TrainClipTransform` is the original recipe's augmentation. Its parameters
are drawn from the ``torch.Generator`` passed in (never the global RNG), so a
sample is a function of the generator's seed alone: training resumes exactly and
does not depend on the number of loader workers. It has two implementations of
the same operations: the reference, ``torchvision.transforms.v2.functional`` on
the whole clip ``(T, C, H, W)`` in float, and the default fast one (OpenCV on
uint8 frames: rotation, crop and flip in one warp per frame, colour steps after
the crop on the clip seen as one tall image), which the tests hold to the
reference. With torchvision a 32-frame 256x256 clip costs ~0.2-0.5 s of one CPU
core when it is rotated or colour-jittered (grid_sample; RGB->HSV on tensors),
far from the loader's target of 80 windows/s per core; on a GPU it is
negligible, so with a GPU the colour steps run there (backend ``"device"``).

Loaders may hand the frames over one at a time as they are decoded
(``sample_params`` / ``frame_stage`` / ``clip_stage``): each frame is cropped or warped
while it is still in the CPU cache.

:class:`EvalClipTransform` reproduces the original inference path: OpenCV
bilinear resize (``cv2.INTER_LINEAR``, no antialiasing) on uint8 frames, centre
crop; with :func:`normalize_clip` it gives the original's ``x / 255 - 0.5``.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

__all__ = ["TrainClipTransform", "EvalClipTransform", "normalize_clip", "pack_params", "unpack_params", "BACKENDS"]


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


class TrainClipTransform:
    """Training augmentation of the original recipe, identical for all frames of a clip.

    In order: rotation by U(-5, 5) degrees about the centre (p 0.4, nearest
    neighbour as torchvision's RandomRotation, zero fill), resize to ``resize`` x
    ``resize`` (skipped when already that size), random ``crop`` x ``crop`` crop,
    horizontal flip (p 0.5), colour jitter with brightness/contrast/saturation
    factors U(0.8, 1.2) and hue shift U(-0.2, 0.2) in random order (p 0.3), to
    grey (p 0.2). Output: uint8 ``(T, crop, crop, 3)``; :func:`normalize_clip`
    then gives ``x / 255 - 0.5``.

    Parameters come from :meth:`sample_params` (the generator only). Two
    implementations of the same operations: :meth:`apply` (OpenCV on uint8:
    rotation and crop fused into one warp, colour steps rounding to 8 bits as
    torchvision does on uint8 and PIL on images) and :meth:`apply_torchvision`
    (``torchvision.transforms.v2.functional`` on the whole ``(T, C, H, W)``
    clip, in float: the reference the fast path is tested against, several
    times slower on a CPU core, negligible on a GPU). ``backend`` says where
    the work is done:

    * ``"loader"`` (default): :meth:`apply` in the loader; the device only normalises.
    * ``"torchvision"``: the reference in the loader, rounded to uint8.
    * ``"device"``: the loader does the geometric steps (rotation, crop, flip:
      they shrink the clip) and hands over ``{"frames": uint8 (T, crop, crop, 3),
      "params": float64 (14,)}``; :meth:`device_stage` runs the colour steps
      (on a CPU the costliest part: ~14 ms per jittered 32-frame clip) with
      torchvision's float reference on the batch, where the network is. Same
      parameters, same operations.

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
        """The geometric steps on one ``(H, W, 3)`` frame: rotation, resize, crop, flip into ``dst``.

        OpenCV on uint8: the crop is fused into the rotation's warp when the frame
        is already ``resize`` x ``resize`` (only the crop is computed).
        """
        h, w = frame.shape[:2]
        size, crop, angle = self.resize, self.crop, params["angle"]
        top, left, flip = params["top"], params["left"], params["flip"]
        if angle != 0.0:
            # Rotation about the frame centre, counter-clockwise for positive angles (as torchvision).
            matrix = cv2.getRotationMatrix2D(((w - 1) * 0.5, (h - 1) * 0.5), angle, 1.0)
            if (h, w) == (size, size):
                # Crop and flip are affine too: one warp computes just the output.
                matrix[0, 2] -= left
                matrix[1, 2] -= top
                if flip:  # x -> crop - 1 - x
                    matrix[0] = -matrix[0]
                    matrix[0, 2] += crop - 1
                cv2.warpAffine(frame, matrix, (crop, crop), dst=dst, flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                return
            frame = cv2.warpAffine(frame, matrix, (w, h), flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if (h, w) != (size, size):
            frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_LINEAR)
        src = frame[top : top + crop, left : left + crop]
        if flip:
            cv2.flip(src, 1, dst=dst)
        else:
            np.copyto(dst, src)

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
        """Colour jitter and grey on a contiguous uint8 clip, in place.

        Every step rounds and saturates to 8 bits, as torchvision does on uint8
        tensors (and PIL on images); hue is shifted on 8-bit HSV with 256 hue steps
        per turn, as PIL does. The per-pixel steps see the clip as one tall image
        (one OpenCV call per step); only contrast (each frame's own mean grey) goes
        frame by frame.
        """
        t, h, w, _ = clip.shape
        flat = clip.reshape(t * h, w, 3)
        grey = self._buffer("grey", (t * h, w))
        jitter = params["jitter"]
        if jitter is not None:
            brightness, contrast, saturation, hue = jitter
            for step in params["jitter_order"]:
                if step == 0:  # blend with black
                    cv2.addWeighted(flat, brightness, flat, 0.0, 0.0, dst=flat)
                elif step == 1:  # blend with the frame's mean grey level
                    cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY, dst=grey)
                    for frame, frame_grey in zip(clip, grey.reshape(t, h, w)):
                        mean = cv2.mean(frame_grey)[0]
                        cv2.addWeighted(frame, contrast, frame, 0.0, (1.0 - contrast) * mean, dst=frame)
                elif step == 2:  # blend with the frame's grey version
                    grey3 = self._buffer("colour", (t * h, w, 3))
                    cv2.cvtColor(cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY, dst=grey), cv2.COLOR_GRAY2RGB, dst=grey3)
                    cv2.addWeighted(flat, saturation, grey3, 1.0 - saturation, 0.0, dst=flat)
                else:
                    hsv = cv2.cvtColor(flat, cv2.COLOR_RGB2HSV_FULL, dst=self._buffer("colour", (t * h, w, 3)))
                    hsv[..., 0] += np.uint8(int(round(hue * 256.0)) % 256)  # wraps modulo 256
                    cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL, dst=flat)
        if params["grey"]:
            cv2.cvtColor(cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY, dst=grey), cv2.COLOR_GRAY2RGB, dst=flat)

    # -- reference path: torchvision.transforms.v2 on the whole clip
    def apply_torchvision(self, frames: np.ndarray, params: dict) -> torch.Tensor:
        """The transform with given parameters, with ``torchvision.transforms.v2.functional``.

        Returns the float ``(T, 3, crop, crop)`` clip ``x / 255 - 0.5`` (the reference, unrounded).
        """
        _check_clip(frames)
        return self._reference(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), params)

    def _reference(self, clip: torch.Tensor, params: dict) -> torch.Tensor:
        """uint8 ``(T, 3, H, W)`` -> float ``(T, 3, crop, crop)``, ``x / 255 - 0.5``."""
        if params["angle"] != 0.0:
            clip = F.rotate(clip, params["angle"], interpolation=InterpolationMode.NEAREST, fill=0)
        if tuple(clip.shape[-2:]) != (self.resize, self.resize):
            clip = F.resize(clip, [self.resize, self.resize], antialias=False)
        clip = F.crop(clip, params["top"], params["left"], self.crop, self.crop)
        if params["flip"]:
            clip = F.horizontal_flip(clip)
        return (self._reference_colour(F.to_dtype(clip, torch.float32, scale=True), params) - 0.5).contiguous()

    @staticmethod
    def _reference_colour(x: torch.Tensor, params: dict) -> torch.Tensor:
        """The colour steps on a float ``(T, 3, H, W)`` clip in [0, 1], on any device."""
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
        return x

    def device_stage(self, clips, device=None) -> torch.Tensor:
        """A collated batch of loader-stage outputs -> float ``(B, T, 3, crop, crop)`` on ``device``.

        For the device backend the colour steps run here, in float (torchvision's
        reference), on the clips whose parameters call for them; otherwise this is
        :func:`normalize_clip`.
        """
        if not isinstance(clips, dict):
            return normalize_clip(clips.to(device, non_blocking=True))
        out = normalize_clip(clips["frames"].to(device, non_blocking=True))  # (B, T, 3, c, c), x / 255 - 0.5
        for i, row in enumerate(clips["params"]):
            params = unpack_params(row)
            if _needs_colour(params):
                out[i] = self._reference_colour(out[i] + 0.5, params) - 0.5
        return out


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
