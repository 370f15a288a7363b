"""Frames and milliseconds, and the constants the stages share.

The challenge writes times in milliseconds; everything inside counts frames.
Both directions are defined once, here:

* frame -> ms: ``int(frame / fps * 1000)`` (float64, truncated), the original's
  decoding arithmetic; a run of frames ``s ..= e`` becomes ``[s_ms, e_ms]``.
* ms -> frame: round half up of ``ms * fps / 1000``, so that an interval written
  by the decoder maps back onto the frames it came from.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ORIGINAL_FPS", "HEAD_NAMES", "frame_to_ms", "ms_to_frame"]

ORIGINAL_FPS = 25.0  # LSE_UVIGO's frame rate; the original hard-coded it
HEAD_NAMES = ("x4", "x8", "x16", "x32", "x")  # HS-I3D's heads, coarsest first; "x" is the fused head


def frame_to_ms(frames, fps: float):
    """Milliseconds of frame indices: ``int(frame / fps * 1000)`` (an int for an int, else int64 array)."""
    ms = (np.asarray(frames, dtype=np.float64) / float(fps) * 1000).astype(np.int64)
    return int(ms) if ms.ndim == 0 else ms


def ms_to_frame(ms, fps: float):
    """Frame index of a time in milliseconds: round half up of ``ms * fps / 1000``."""
    frames = np.floor(np.asarray(ms, dtype=np.float64) * float(fps) / 1000.0 + 0.5).astype(np.int64)
    return int(frames) if frames.ndim == 0 else frames
