"""Creation of LMDB frame stores: the ``signspot`` layout read by :class:`datasets.frame_store.FrameStore`.

Creation streams frames (one decoded frame per worker in memory at a time) and
writes into ``<dest>.partial``; finished videos are recorded by their ``meta``
key, so a rerun after an interruption skips them; the directory is renamed to
``<dest>`` only after the manifest is written.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import lmdb

from signspot.datasets.frame_store import (
    _FRAME_PREFIX,
    _META_PREFIX,
    MANIFEST_KEY,
    SETTINGS_KEY,
    STORE_FORMAT,
    STORE_VERSION,
    FrameStoreError,
    _frame_key,
    _meta_key,
)
from signspot.datasets.video_reader import (
    BOX_MARGIN,
    VIDEO_EXTENSIONS,
    ReadStats,
    VideoHeader,
    as_path_list,
    black_frame,
    box_for,
    crop_box,
    load_boxes,
    pair_sources,
    parse_box,
    probe_video,
    read_frames,
    spans,
)

__all__ = [
    "BadVideoError",
    "create_frame_store",
    "crop_box",
    "VIDEO_EXTENSIONS",
]

_CHUNK_FRAMES = 32  # frames per message from a worker / per write transaction
# The released store's encoding: native-size crops, PIL's default JPEG quality.
ORIGINAL_ENCODING = {"size": 0, "quality": 75}
_INITIAL_MAP_SIZE = 1 << 36  # 64 GiB of address space; grown on MapFullError


class BadVideoError(FrameStoreError):
    """One input video cannot be stored (unreadable, no box, bad box)."""

    def __init__(self, video: str, message: str):
        super().__init__(f"video {video!r}: {message}")
        self.video = video
        self.reason = message


@dataclass(frozen=True)
class _Task:
    video: str
    source: str
    box: Optional[Tuple[int, int, int, int]]  # None: full frame (no box given)
    crop: Tuple[int, int, int, int]
    width: int
    height: int
    fps: float
    header_frames: int
    size: int
    quality: int
    original: bool = False  # the original creator's encoding (native-size crops, JPEG quality 75)
    source_size: int = 0  # bytes: with the modification time and header_frames, what identifies the file
    source_mtime_ns: int = 0

    def identity(self) -> dict:
        """What a finished video's metadata must match for a resume to keep it."""
        return {"crop": list(self.crop), "source": self.source, "source_size": self.source_size,
                "source_mtime_ns": self.source_mtime_ns, "header_frames": self.header_frames}


def _encode_video(task: _Task) -> Iterator[tuple]:
    """Yield ``("frames", video, first_index, [jpeg, ...])`` chunks, maybe ``("warning", video, text)``,
    then ``("done", video, meta)``.

    Holds one decoded frame and one chunk of JPEG bytes at a time. The frames are what
    :func:`~signspot.datasets.video_reader.read_frames` gives: the header's frame count, a
    frame that cannot be decoded stored black (the original creator's rule, and what the
    video source of spot.py gives too).
    """
    header = VideoHeader(task.width, task.height, task.fps, max(task.header_frames, 0))
    x1, y1, x2, y2 = task.crop
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(task.quality)]
    chunk: List[bytes] = []
    first = 0
    count = 0
    stats = ReadStats()
    stored_hw = None
    try:
        for index, frame in read_frames(task.source, header, stats=stats):
            crop = (frame if frame is not None else black_frame(header))[y1:y2, x1:x2]
            if task.size > 0:
                crop = cv2.resize(crop, (task.size, task.size), interpolation=cv2.INTER_LINEAR)
            stored_hw = crop.shape[:2]
            ok, jpeg = cv2.imencode(".jpg", crop, params)
            if not ok:
                raise BadVideoError(task.video, f"{task.source}: JPEG encoding of frame {index} failed")
            chunk.append(jpeg.tobytes())
            count = index + 1
            if len(chunk) == _CHUNK_FRAMES:
                yield ("frames", task.video, first, chunk)
                first, chunk = count, []
    except ValueError as exc:  # unopenable, a variable frame rate, a frame of another size
        raise BadVideoError(task.video, str(exc)) from None
    if chunk:
        yield ("frames", task.video, first, chunk)
    if stats.decoded == 0:
        raise BadVideoError(task.video, f"{task.source}: no frame could be decoded (corrupt or unreadable video)")
    black = stats.undecodable
    if black:
        yield ("warning", task.video, f"{task.source}: {len(black)} of its {count} frames could not be decoded and "
                                      f"are stored black, as the original creator did: frames {spans(black)}")
    meta = {
        "num_frames": count,
        "fps": task.fps,
        "width": task.width,
        "height": task.height,
        "box": list(task.box) if task.box is not None else None,
        "frame_height": int(stored_hw[0]),
        "frame_width": int(stored_hw[1]),
        "black_frames": len(black),
        **task.identity(),
    }
    yield ("done", task.video, meta)


def _exit_with_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    """End this worker soon after the process that started it is gone (even after a SIGKILL).

    A worker of a killed parent would otherwise block for ever on a full result queue
    or an empty task queue: a daemon thread watches the parent's pid and exits the
    process when it changes (the orphan is adopted by another process).
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker_main(tasks, results, parent_pid: Optional[int] = None) -> None:
    """Worker process: encode videos from ``tasks`` and send chunks to ``results``."""
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    cv2.setNumThreads(1)
    while True:
        task = tasks.get()
        if task is None:
            return
        results.put(("start", task.video, os.getpid()))
        try:
            for message in _encode_video(task):
                results.put(message)
        except BadVideoError as exc:
            results.put(("error", task.video, exc.reason))
        except Exception as exc:  # anything unexpected still names the video
            results.put(("error", task.video, f"{task.source}: {type(exc).__name__}: {exc}"))


class _Writer:
    """The only writer of the partial LMDB (LMDB allows a single writer)."""

    def __init__(self, path: Path):
        self.path = path
        self.env = lmdb.open(str(path), map_size=_INITIAL_MAP_SIZE, subdir=True, sync=False, metasync=False,
                             readahead=False, meminit=False, max_dbs=0)

    @contextlib.contextmanager
    def _named_errors(self):
        """LMDB's own errors (a full disk: ``lmdb.DiskError``) as one line naming the store."""
        try:
            yield
        except lmdb.MapFullError:
            raise
        except lmdb.Error as exc:
            raise FrameStoreError(f"{self.path}: writing the store failed ({type(exc).__name__}: {exc}); is the "
                                  "disk full? Free space and run the same command again: finished videos are kept") from None

    def put_many(self, items: Sequence[Tuple[bytes, bytes]]) -> None:
        while True:
            try:
                with self._named_errors(), self.env.begin(write=True) as txn:
                    for key, value in items:
                        txn.put(key, value)
                return
            except lmdb.MapFullError:
                with self._named_errors():
                    self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def get(self, key: bytes) -> Optional[bytes]:
        with self.env.begin() as txn:
            return txn.get(key)

    def _delete_frames_from(self, video: str, first: int) -> None:
        prefix = f"{_FRAME_PREFIX}{video}/".encode()
        with self._named_errors(), self.env.begin(write=True) as txn:
            cursor = txn.cursor()
            if cursor.set_range(_frame_key(video, first)):
                while cursor.key().startswith(prefix):
                    if not cursor.delete():
                        break

    def drop_video(self, video: str) -> None:
        """Remove the frames a failed video left behind."""
        self._delete_frames_from(video, 0)

    def finish_video(self, video: str, meta: dict) -> None:
        # Frames beyond the count (left from an older interrupted attempt) are removed,
        # then the data is flushed before the meta key marks the video complete.
        self._delete_frames_from(video, int(meta["num_frames"]))
        with self._named_errors():
            self.env.sync(True)
        self.put_many([(_meta_key(video), json.dumps(meta).encode())])
        with self._named_errors():
            self.env.sync(True)

    def completed(self) -> Dict[str, dict]:
        done = {}
        with self.env.begin() as txn:
            cursor = txn.cursor()
            prefix = _META_PREFIX.encode()
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    done[key[len(prefix):].decode()] = json.loads(value)
        return done

    def close(self) -> None:
        try:
            with self._named_errors():
                self.env.sync(True)
        finally:
            self.env.close()


def _default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def create_frame_store(
    dest_dir: str | os.PathLike,
    dataset_dir: str | os.PathLike | Sequence[str | os.PathLike],
    bbox_path: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    compat: Optional[str] = None,
    size: Optional[int] = None,
    quality: Optional[int] = None,
    workers: Optional[int] = None,
    skip_bad: bool = False,
    full_frame_if_missing: bool = False,
    progress: bool = True,
) -> dict:
    """Crop (and maybe resize) and JPEG-encode every frame of every video into an LMDB store at ``dest_dir``.

    Two encodings (``compat``):

    - ``"original"``, the default when neither ``size`` nor ``quality`` is given: the
      released store's frames, byte for byte. The crop at its native size, JPEG quality 75
      with 4:2:0 chroma (libjpeg-turbo, the bytes PIL's defaults give), the header's frame
      count with undecodable frames stored black (a warning names them). The network's
      resize to 256 happens after decoding, in the transforms.
    - ``"none"`` (implied by ``size`` or ``quality``): ``size`` x ``size`` frames
      (``cv2.INTER_LINEAR``; default 256, 0 keeps the crop's size) at ``quality`` (default
      90), as many frames as decode; a video short of its header's count by more than 1%
      is refused. Smaller JPEGs: the training loader decodes faster.

    ``workers`` processes encode videos in parallel (0: in this
    process); this process is the only LMDB writer. Work goes to ``<dest_dir>.partial``
    and is renamed to ``dest_dir`` when every video is stored; rerunning after an
    interruption skips the videos already stored there.

    A bad video raises :class:`BadVideoError` naming it (the partial store is kept
    for a rerun); with ``skip_bad`` the other videos are still stored, the store is
    finished with the bad ones listed in its manifest (``FrameStore.skipped``) and
    the returned ``bad`` dict names them.

    ``dataset_dir`` and ``bbox_path`` may each be a list (same length, paired in
    order: the videos of ``dataset_dir[i]`` take their boxes from ``bbox_path[i]``),
    to hold several folders (e.g. training and validation videos) in one store; a
    video name found in two folders is an error naming both files. Missing parent
    folders of ``dest_dir`` are created.

    Returns ``{"path", "stored", "resumed", "bad"}``: videos encoded in this run,
    videos found already complete, and ``{video: reason}`` for the skipped ones.
    """
    dest = Path(dest_dir)
    partial = dest.with_name(dest.name + ".partial")
    dataset_dirs = as_path_list(dataset_dir, "video folder")
    bbox_paths = as_path_list(bbox_path, "box file")
    if compat is None:
        compat = "original" if size is None and quality is None else "none"
    if compat == "original":
        if (size or 0) != ORIGINAL_ENCODING["size"] or (quality or 75) != ORIGINAL_ENCODING["quality"]:
            raise FrameStoreError(
                f"--compat original stores native-size frames at JPEG quality 75; --size {size} / --quality "
                f"{quality} make a different store: give them without --compat original"
            )
        size, quality = ORIGINAL_ENCODING["size"], ORIGINAL_ENCODING["quality"]
    elif compat == "none":
        size = 256 if size is None else size
        quality = 90 if quality is None else quality
    else:
        raise FrameStoreError(f"compat must be 'original' or 'none', got {compat!r}")
    if int(size) < 0:
        raise FrameStoreError(f"size must be >= 0 (0 keeps the crop's size), got {size}")
    if not 1 <= int(quality) <= 100:
        raise FrameStoreError(f"JPEG quality must be in [1, 100], got {quality}")
    size, quality = int(size), int(quality)
    if workers is not None and int(workers) < 0:
        raise FrameStoreError(f"--workers must be >= 0 (0 encodes in this process), got {workers}")
    workers = _default_workers() if workers is None else int(workers)
    if dest.exists():
        raise FrameStoreError(f"{dest}: already exists; remove it (or choose another --dest_dir) to build a new store")

    videos = pair_sources(dataset_dirs, bbox_paths)
    boxes = {path: load_boxes(path) for path in dict.fromkeys(bbox_paths)}

    # Check every video's header and box before any encoding, so that bad input is
    # reported at once and (without skip_bad) before hours of work.
    bad: Dict[str, str] = {}
    tasks: List[_Task] = []
    for video, (path, video_bbox_path) in videos.items():
        try:
            width, height, fps, count = probe_video(path)
        except ValueError as exc:
            bad[video] = f"{path}: {exc}"
            continue
        video_boxes = boxes[video_bbox_path]
        raw_box = box_for(video_boxes, video, path)
        try:
            if raw_box is None:
                if not full_frame_if_missing:
                    raise ValueError(
                        f"no signer box in {video_bbox_path} (use --full-frame-if-missing to store whole frames)"
                    )
                box, crop = None, (0, 0, width, height)
            else:
                box = parse_box(raw_box)
                crop = crop_box(box, width, height)
        except ValueError as exc:
            bad[video] = f"{path}: {exc}"
            continue
        stat = path.stat()
        tasks.append(_Task(video, str(path), box, crop, width, height, fps, count, size, quality,
                           compat == "original", stat.st_size, stat.st_mtime_ns))
    if bad and not skip_bad:
        first = next(iter(bad))
        if len(bad) == 1:
            raise BadVideoError(first, bad[first])
        listing = "\n".join(f"  {v}: {r}" for v, r in bad.items())
        raise BadVideoError(first, f"{bad[first]}\n{len(bad)} bad videos in all:\n{listing}")

    settings = {"size": size, "quality": quality, "box_margin": BOX_MARGIN, "compat": compat}
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FrameStoreError(f"{dest.parent}: cannot create the store's parent folder ({exc})") from None
    writer = _Writer(partial)
    try:
        previous = writer.get(SETTINGS_KEY)
        if previous is not None and json.loads(previous) != settings:
            raise FrameStoreError(
                f"{partial}: an unfinished run with different settings {json.loads(previous)} is in the way "
                f"(now {settings}); remove it or rerun with its settings"
            )
        writer.put_many([(SETTINGS_KEY, json.dumps(settings).encode())])
        done = writer.completed()
        resumed = []
        todo = []
        for task in tasks:
            old = done.get(task.video)
            # a video file replaced since (size, time, frame count) is encoded again
            if old is not None and all(old.get(key) == value for key, value in task.identity().items()):
                resumed.append(task.video)
            else:
                todo.append(task)
        stored = _run_tasks(writer, todo, workers, skip_bad, bad, progress)
        all_videos = sorted(set(stored) | set(resumed))
        if not all_videos:
            raise FrameStoreError(f"{', '.join(map(str, dataset_dirs))}: no video could be stored:\n" +
                                  "\n".join(f"  {v}: {r}" for v, r in bad.items()))
        manifest = {
            "format": STORE_FORMAT,
            "version": STORE_VERSION,
            "videos": all_videos,
            "skipped": dict(sorted(bad.items())),
            "settings": settings,
            # one str each for a single folder, lists (paired in order) for several
            "source_dir": str(dataset_dirs[0]) if len(dataset_dirs) == 1 else [str(d) for d in dataset_dirs],
            "bbox_path": str(bbox_paths[0]) if len(bbox_paths) == 1 else [str(b) for b in bbox_paths],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        writer.put_many([(MANIFEST_KEY, json.dumps(manifest).encode())])
    finally:
        writer.close()
    os.replace(partial, dest)
    return {"path": str(dest), "stored": stored, "resumed": resumed, "bad": dict(bad)}


def _progress_bar(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, unit="frame", desc="frames", disable=not enabled, file=sys.stderr)


def _run_tasks(writer: _Writer, tasks: List[_Task], workers: int, skip_bad: bool, bad: dict, progress: bool) -> list:
    stored: List[str] = []
    bar = _progress_bar(sum(max(t.header_frames, 0) for t in tasks), progress)

    def handle(message) -> None:
        kind, video = message[0], message[1]
        if kind == "frames":
            first, chunk = message[2], message[3]
            writer.put_many([(_frame_key(video, first + i), jpeg) for i, jpeg in enumerate(chunk)])
            if bar is not None:
                bar.update(len(chunk))
        elif kind == "warning":
            warnings.warn(f"video {video!r}: {message[2]}", stacklevel=2)
        elif kind == "done":
            writer.finish_video(video, message[2])
            stored.append(video)
        elif kind == "error":
            writer.drop_video(video)
            if not skip_bad:
                raise BadVideoError(video, message[2])
            bad[video] = message[2]

    try:
        if workers == 0:
            for task in tasks:
                try:
                    for message in _encode_video(task):
                        handle(message)
                except BadVideoError as exc:
                    handle(("error", exc.video, exc.reason))
        elif tasks:
            _run_pool(tasks, min(workers, len(tasks)), handle)
    finally:
        if bar is not None:
            bar.close()
    return stored


def _run_pool(tasks: List[_Task], workers: int, handle) -> None:
    ctx = mp.get_context("spawn")  # OpenCV/FFmpeg threads do not survive fork safely
    task_queue = ctx.Queue()
    results = ctx.Queue(maxsize=4 * workers)  # bounds memory: a few chunks in flight per worker
    for task in tasks:
        task_queue.put(task)
    for _ in range(workers):
        task_queue.put(None)
    procs = [ctx.Process(target=_worker_main, args=(task_queue, results, os.getpid()), daemon=True)
             for _ in range(workers)]
    for proc in procs:
        proc.start()
    current: Dict[int, str] = {}  # worker pid -> video it is encoding
    finished = 0
    try:
        while finished < len(tasks):
            try:
                message = results.get(timeout=1.0)
            except queue.Empty:
                for proc in procs:
                    if proc.exitcode not in (None, 0) and proc.pid in current:
                        video = current.pop(proc.pid)
                        finished += 1
                        handle(("error", video, f"worker process died (exit code {proc.exitcode}) while encoding it"))
                if all(proc.exitcode is not None for proc in procs) and results.empty():
                    if finished < len(tasks):
                        raise FrameStoreError("worker processes exited before every video was encoded") from None
                continue
            if message[0] == "start":
                current[message[2]] = message[1]
                continue
            if message[0] in ("done", "error"):
                finished += 1
                for pid, video in list(current.items()):
                    if video == message[1]:
                        del current[pid]
            handle(message)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
        results.close()
        task_queue.close()
        results.cancel_join_thread()
        task_queue.cancel_join_thread()
