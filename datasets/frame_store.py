"""LMDB frame store: signer crops of every video frame, JPEG-encoded, one key per frame.

This module reads stores (:class:`FrameStore`) and holds the key names and layout
constants shared with the writer, :mod:`datasets.store_writer`.

Two layouts are read, detected automatically by :class:`FrameStore`:

``signspot`` (written by :func:`datasets.store_writer.create_frame_store`)
    * ``frame/<video>/<index:07d>``: JPEG bytes of one frame (BGR in, so
      ``cv2.imdecode`` + BGR->RGB gives the RGB frame back);
    * ``meta/<video>``: JSON metadata of the video (frame count, fps, original
      size, the box used and the crop taken, the source file, stored size);
    * ``__settings__``: JSON creation settings (written first, used on resume);
    * ``__manifest__``: JSON list of the videos (and any skipped ones), written
      last: a store without it is incomplete and is refused by the reader.

``original`` (the released download's stores)
    * ``<video>``: a pickled list of JPEG bytes, one per frame;
    * ``details``: a pickled ``{video: {"sequence_length": n}}``.
    Pickles are read with the restricted unpickler (bytes/ints/strs in lists and
    dicts only). The whole video has to be unpickled to read any frame, so the
    reader keeps the last video's list.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import lmdb
import numpy as np
import simplejpeg

from signspot.formats.errors import SignspotError
from signspot.formats.safe_io import safe_pickle_loads
from signspot.formats.timebase import ORIGINAL_FPS  # the original layout records no fps

__all__ = [
    "FrameStore",
    "FrameStoreError",
    "IncompleteStoreError",
    "STORE_FORMAT",
    "ORIGINAL_FPS",
]

STORE_FORMAT = "signspot-frame-store"
STORE_VERSION = 1

MANIFEST_KEY = b"__manifest__"
SETTINGS_KEY = b"__settings__"
ORIGINAL_DETAILS_KEY = b"details"
_META_PREFIX = "meta/"
_FRAME_PREFIX = "frame/"

# Pickles of the original layout written with protocol 2 encode bytes through _codecs.encode.
_ORIGINAL_PICKLE_GLOBALS = (("_codecs", "encode"),)


class FrameStoreError(SignspotError):
    """A frame store that cannot be created or read."""


class IncompleteStoreError(FrameStoreError):
    """A store whose creation never finished (no manifest)."""


def _frame_key(video: str, index: int) -> bytes:
    return f"{_FRAME_PREFIX}{video}/{index:07d}".encode()


def _meta_key(video: str) -> bytes:
    return f"{_META_PREFIX}{video}".encode()

def _decode_jpeg_rgb(buf, source: str = "", out: Optional[np.ndarray] = None) -> np.ndarray:
    """One stored frame as RGB, decoded into ``out`` when given (it must have the frame's size).

    libjpeg-turbo through ``simplejpeg`` (accurate integer IDCT, smooth chroma
    upsampling: the same pixels as ``cv2.imdecode``, ~20% faster on 256x256
    frames, and written straight into the clip). Anything it cannot read goes to
    OpenCV, which also reads other image formats.
    """
    try:
        img = simplejpeg.decode_jpeg(buf, "RGB", buffer=out)
    except ValueError:
        img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR_RGB)
        if img is None:
            raise FrameStoreError(f"{source}: stored frame is not a decodable JPEG") from None
        if out is not None and img.shape == out.shape:
            out[...] = img
            img = out
    if out is not None and img.shape != out.shape:
        raise FrameStoreError(f"{source}: frame size {img.shape[:2]} differs from the video's {out.shape[:2]}")
    return img


def _frame_size(buf, source: str) -> Tuple[int, int]:
    """(height, width) of a stored frame, from its JPEG header when it has one."""
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(buf)
    except ValueError:
        height, width = _decode_jpeg_rgb(buf, source=source).shape[:2]  # raises when nothing can read it
    return int(height), int(width)


def _decode_frames(
    bufs: Sequence,
    positions: Sequence[Sequence[int]],
    num: int,
    sources: Sequence[str],
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Decode ``bufs`` (distinct frames) into an ``(num, H, W, 3)`` RGB array at ``positions``.

    ``positions[i]`` lists where frame ``i`` goes (a frame asked for twice is decoded
    once). ``out`` is decoded into when it has exactly that shape, else a new array is made.
    """
    height, width = _frame_size(bufs[0], sources[0])
    shape = (num, height, width, 3)
    if out is None or out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        out = np.empty(shape, np.uint8)
    for buf, where, src in zip(bufs, positions, sources):
        _decode_jpeg_rgb(buf, source=src, out=out[where[0]])
        for pos in where[1:]:
            out[pos] = out[where[0]]
    return out


def _unique_positions(idx: np.ndarray) -> Tuple[List[int], List[List[int]]]:
    """Distinct frames of ``idx`` in order of appearance, and the positions of each."""
    where: Dict[int, List[int]] = {}
    for pos, frame in enumerate(idx.tolist()):
        where.setdefault(frame, []).append(pos)
    return list(where), list(where.values())


# --------------------------------------------------------------------------- reader

# LMDB forbids opening one environment twice in a process, so every FrameStore of
# a process shares one read-only handle per database file (keyed by pid, so a
# forked DataLoader worker opens its own).
_ENVS: Dict[tuple, "lmdb.Environment"] = {}


def _env_key(path: str, subdir: bool) -> tuple:
    st = os.stat(os.path.join(path, "data.mdb") if subdir else path)
    return (os.getpid(), st.st_dev, st.st_ino)


def _shared_env(path: str, subdir: bool):
    key = _env_key(path, subdir)
    env = _ENVS.get(key)
    if env is None:
        try:
            env = lmdb.open(path, subdir=subdir, readonly=True, lock=False, readahead=False, meminit=False,
                            max_readers=2048)
        except lmdb.Error as exc:
            raise FrameStoreError(f"{path}: not a readable LMDB frame store ({exc})") from None
        _check_not_truncated(env, path, subdir)
        _ENVS[key] = env
    return env


def _check_not_truncated(env, path: str, subdir: bool) -> None:
    """Refuse a data file shorter than the pages its own header says are in use.

    LMDB maps the file; reading a page past a truncated end (an incomplete copy) kills
    the process with SIGBUS, so the size is checked before any page is read.
    """
    data_file = Path(path) / "data.mdb" if subdir else Path(path)
    needed = (int(env.info()["last_pgno"]) + 1) * int(env.stat()["psize"])
    size = data_file.stat().st_size
    if size < needed:
        env.close()
        raise FrameStoreError(
            f"{data_file}: the frame store is damaged: the file has {size} bytes but its pages need {needed} "
            "(an incomplete copy?); copy the store again or rebuild it with scripts/track1_lmdb_creator.py"
        )


def _release_env(path: str, subdir: bool) -> None:
    env = _ENVS.pop(_env_key(path, subdir), None)
    if env is not None:
        env.close()


class FrameStore:
    """Random access to the frames of an LMDB frame store (either layout).

    Picklable: the LMDB environment is opened lazily, once per process, so a
    store can be handed to DataLoader workers. Opened read-only without locks.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        p = Path(self.path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such frame store")
        self._subdir = p.is_dir()
        if self._subdir and not (p / "data.mdb").exists():
            partial = p.name.endswith(".partial")
            raise FrameStoreError(
                f"{p}: not an LMDB frame store (no data.mdb)"
                + (" - this looks like an unfinished creator run; rerun the creator to finish it" if partial else "")
            )
        self._env = None
        self._cache_video: Optional[str] = None
        self._cache_frames: Optional[list] = None
        self._frame_buffer: Optional[np.ndarray] = None  # for_each_frame's decode target
        self._meta: Dict[str, dict] = {}
        self.skipped: Dict[str, str] = {}
        env = self._open()
        ok = False
        try:
            with env.begin(buffers=False) as txn:
                manifest = txn.get(MANIFEST_KEY)
                if manifest is not None:
                    self.layout = "signspot"
                    self._load_signspot(txn, manifest)
                elif txn.get(SETTINGS_KEY) is not None:
                    raise IncompleteStoreError(
                        f"{p}: incomplete frame store (no manifest): its creation was interrupted; "
                        "rerun the creator with the same arguments to finish it"
                    )
                elif txn.get(ORIGINAL_DETAILS_KEY) is not None:
                    self.layout = "original"
                    self._load_original(txn.get(ORIGINAL_DETAILS_KEY))
                else:
                    raise FrameStoreError(
                        f"{p}: unknown LMDB layout: neither a '{MANIFEST_KEY.decode()}' key (signspot layout) "
                        f"nor a '{ORIGINAL_DETAILS_KEY.decode()}' key (original layout)"
                    )
            ok = True
        finally:
            if not ok:  # release it: the creator may need to open it for writing next
                _release_env(self.path, self._subdir)
            self._env = None
        self.videos: List[str] = sorted(self._meta)

    # -- loading
    def _load_signspot(self, txn, manifest: bytes) -> None:
        try:
            info = json.loads(manifest)
            if info.get("format") != STORE_FORMAT:
                raise ValueError(f"format {info.get('format')!r}")
            if int(info.get("version", 0)) > STORE_VERSION:
                raise ValueError(f"version {info.get('version')} is newer than this reader ({STORE_VERSION})")
            videos = list(info["videos"])
        except (ValueError, KeyError, TypeError) as exc:
            raise FrameStoreError(f"{self.path}: unreadable manifest ({exc})") from None
        self.settings = info.get("settings", {})
        self.skipped = dict(info.get("skipped", {}))
        for video in videos:
            raw = txn.get(_meta_key(video))
            if raw is None:
                raise FrameStoreError(f"{self.path}: manifest lists video {video!r} but its metadata is missing")
            self._meta[video] = json.loads(raw)

    def _load_original(self, raw: bytes) -> None:
        source = f"{self.path}:details"
        try:
            details = safe_pickle_loads(raw, extra_globals=_ORIGINAL_PICKLE_GLOBALS, source=source)
        except Exception as exc:
            raise FrameStoreError(f"{source}: unreadable ({type(exc).__name__}: {exc})") from None
        if not isinstance(details, dict):
            raise FrameStoreError(f"{source}: expected a dict {{video: {{'sequence_length': n}}}}")
        self.settings = {}
        for video, info in details.items():
            if not isinstance(video, str) or not isinstance(info, dict) or not isinstance(
                info.get("sequence_length"), int
            ):
                raise FrameStoreError(f"{source}: entry {video!r} is not {{'sequence_length': int}}")
            self._meta[video] = {"num_frames": int(info["sequence_length"]), "fps": ORIGINAL_FPS}

    # -- environment handling (lazy, per process)
    def _open(self):
        if self._env is None:
            self._env = _shared_env(self.path, self._subdir)
        return self._env

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_env"] = None
        state["_cache_video"] = None
        state["_cache_frames"] = None
        state["_frame_buffer"] = None
        return state

    def __repr__(self) -> str:
        return f"FrameStore({self.path!r}, layout={self.layout!r}, videos={len(self.videos)})"

    # -- public API
    def _info(self, video: str) -> dict:
        try:
            return self._meta[video]
        except KeyError:
            raise KeyError(f"{self.path}: video {video!r} is not in this frame store") from None

    def __contains__(self, video: str) -> bool:
        return video in self._meta

    def num_frames(self, video: str) -> int:
        return int(self._info(video)["num_frames"])

    def fps(self, video: str) -> float:
        return float(self._info(video)["fps"])

    def meta(self, video: str) -> dict:
        return dict(self._info(video))

    def read_frames(self, video: str, indices, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Frames ``indices`` of ``video`` as an ``(N, H, W, 3)`` uint8 RGB array.

        Repeated indices (padding) are decoded once. ``out``: an array to decode
        into when its shape is that of the result (a loader reusing one buffer
        saves allocating, and the kernel zeroing, a window's frames each time);
        otherwise, or when None, a new array is returned.
        """
        idx = self._checked_indices(video, indices)
        if not idx.size:
            return np.empty((0, 0, 0, 3), np.uint8)
        return self._with_jpegs(video, idx, lambda bufs, where, src: _decode_frames(bufs, where, len(idx), src, out))

    def for_each_frame(self, video: str, indices, fn) -> None:
        """Decode frames ``indices`` of ``video`` one at a time, calling ``fn(frame, positions)``.

        ``positions`` lists where the frame appears in ``indices`` (a repeated index
        is decoded once). ``frame`` is an ``(H, W, 3)`` RGB buffer reused for every
        frame: valid during the call only. A consumer that reduces each frame at
        once (a crop, a warp) reads it while it is still in the CPU cache, instead of
        from a decoded clip that has left it (``bench/bench_data.py`` measures the loader).
        """
        idx = self._checked_indices(video, indices)
        if not idx.size:
            return

        def run(bufs, positions, sources):
            shape = _frame_size(bufs[0], sources[0]) + (3,)
            if self._frame_buffer is None or self._frame_buffer.shape != shape:
                self._frame_buffer = np.empty(shape, np.uint8)
            for buf, where, src in zip(bufs, positions, sources):
                fn(_decode_jpeg_rgb(buf, source=src, out=self._frame_buffer), where)

        self._with_jpegs(video, idx, run)

    def _checked_indices(self, video: str, indices) -> np.ndarray:
        n = self.num_frames(video)
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx[(idx < 0) | (idx >= n)][0])
            raise IndexError(f"{self.path}: video {video!r} has {n} frames; frame {bad} does not exist")
        return idx

    def read_jpegs(self, video: str, indices) -> List[bytes]:
        """The stored JPEG bytes of frames ``indices`` (e.g. to compare two stores byte for byte)."""
        idx = self._checked_indices(video, indices)

        def copy(bufs, positions, _sources) -> List[bytes]:
            out: List[bytes] = [b""] * len(idx)
            for buf, where in zip(bufs, positions):
                for pos in where:
                    out[pos] = bytes(buf)
            return out

        return self._with_jpegs(video, idx, copy)

    def _with_jpegs(self, video: str, idx: np.ndarray, fn):
        """``fn(bufs, positions, sources)`` on the JPEG bytes of the distinct frames of ``idx``."""
        wanted, positions = _unique_positions(idx)
        sources = [f"{self.path}: {video} frame {f}" for f in wanted]
        if self.layout == "original":
            frames = self._original_frames(video)
            if idx.max() >= len(frames):
                raise FrameStoreError(
                    f"{self.path}: video {video!r} holds {len(frames)} frames but 'details' says "
                    f"{self.num_frames(video)}"
                )
            return fn([frames[f] for f in wanted], positions, sources)
        bufs = []
        with self._open().begin(buffers=True) as txn:
            for frame in wanted:
                buf = txn.get(_frame_key(video, frame))
                if buf is None:
                    raise FrameStoreError(f"{self.path}: frame {frame} of video {video!r} is missing")
                bufs.append(buf)
            # decoded inside the transaction: the buffers point into the memory map
            return fn(bufs, positions, sources)

    def _original_frames(self, video: str) -> list:
        if self._cache_video != video:
            env = self._open()
            with env.begin() as txn:
                raw = txn.get(video.encode())
            if raw is None:
                raise FrameStoreError(f"{self.path}: video {video!r} listed in 'details' has no frames key")
            source = f"{self.path}:{video}"
            try:
                frames = safe_pickle_loads(raw, extra_globals=_ORIGINAL_PICKLE_GLOBALS, source=source)
            except Exception as exc:
                raise FrameStoreError(f"{source}: unreadable ({type(exc).__name__}: {exc})") from None
            if not isinstance(frames, list) or not all(isinstance(f, (bytes, bytearray)) for f in frames):
                raise FrameStoreError(f"{source}: expected a pickled list of JPEG bytes")
            self._cache_video, self._cache_frames = video, frames
        return self._cache_frames
