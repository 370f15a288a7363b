"""Writing the dataset, in the exact layout of ChaLearn 2022 MSSL::

    <out>/TRAIN/MSSL_TRAIN_SET_VIDEOS/<video>.mp4      25 fps, mp4v
    <out>/TRAIN/MSSL_TRAIN_SET_GT.pkl                  {video: [[class, start_ms, end_ms], ...]}
    <out>/TRAIN/MSSL_TRAIN_SET_GT_TXT/<video>.txt      one "class,start_ms,end_ms" line per sign
    <out>/VALIDATION/MSSL_VAL_SET_{VIDEOS,GT.pkl,GT_TXT}
    <out>/TEST/MSSL_TEST_SET_{VIDEOS,GT.pkl,GT_TXT}
    <out>/{train,valid,test}_bboxes.json               {video: [x1, y1, x2, y2]} signer boxes
    <out>/stats.json                                   statistics, class definitions, per-video signer
    <out>/vocabulary.txt                               one made-up gloss per class (line k = class k)

Determinism: the same configuration and seed give byte-identical ground truth,
boxes and statistics (apart from the recorded generation time) and identical
video frames, whatever ``workers`` is.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, Optional, Tuple

from signspot.datasets.video_reader import save_boxes
from signspot.formats.gt import save_intervals_pkl, save_intervals_txt
from signspot.formats.safe_io import atomic_write

from .config import SPLITS, VOCABULARY_FILENAME, SynthConfig, SyntheticConfigError, _split_paths
from .plan import plan_dataset
from .render import write_video
from .stats import _statistics, _summary_table


def _write_video_job(args) -> Tuple[str, int]:
    plan, repertoire, path = args
    return plan.name, write_video(plan, repertoire, path)


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def generate_dataset(
    out: str | os.PathLike,
    *,
    classes: int = 60,
    videos_per_split: Tuple[int, int, int] | int = (24, 8, 8),
    seconds: float = 60.0,
    size: Tuple[int, int] = (256, 192),
    seed: int = 0,
    workers: Optional[int] = None,
    signers: int = 8,
    test_only_signers: int = 3,
    mean_sign_frames: float = 12.0,
    coverage: float = 0.15,
    imbalance: float = 20.0,
    overwrite: bool = False,
    progress: bool = True,
) -> Dict[str, object]:
    """Write the dataset to ``out`` and return its statistics (also in ``<out>/stats.json``).

    The dataset is built in a temporary folder beside ``out`` and moved into
    place at the end, so an interrupted run leaves nothing that looks complete.
    ``out`` must not exist (or be empty) unless ``overwrite`` is set.
    """
    if isinstance(videos_per_split, int):
        videos_per_split = (videos_per_split,) * 3
    cfg = SynthConfig(classes=classes, videos_per_split=tuple(videos_per_split), seconds=float(seconds),
                      size=tuple(size), seed=seed, signers=signers, test_only_signers=test_only_signers,
                      mean_sign_frames=float(mean_sign_frames), coverage=float(coverage),
                      imbalance=float(imbalance)).validate()
    workers = _default_workers() if workers is None else workers
    if workers < 1:
        raise SyntheticConfigError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out}: already exists and is not empty (pass overwrite=True / --overwrite to replace it)")

    started = time.perf_counter()
    plan = plan_dataset(cfg)
    repertoire = plan.repertoire
    with dataset_folder(out) as tmp_root:
        jobs = []
        for folder, prefix, bbox_prefix in SPLITS:
            videos_dir, gt_pkl, gt_txt = _split_paths(tmp_root, folder, prefix)
            videos_dir.mkdir(parents=True)
            split = plan.split_videos(folder)
            gt = {v.name: v.gt for v in split}
            save_intervals_pkl(gt, gt_pkl)
            save_intervals_txt(gt, gt_txt)
            save_boxes(tmp_root / f"{bbox_prefix}_bboxes.json", {v.name: v.bbox for v in split})
            jobs += [(v, repertoire, videos_dir / f"{v.name}.mp4") for v in split]
        draw_videos(jobs, workers, progress)
        stats = _statistics(plan)
        stats["generation_seconds"] = round(time.perf_counter() - started, 2)
        stats["workers"] = workers
        with atomic_write(tmp_root / "stats.json", "w") as f:
            json.dump(stats, f, indent=1)
        with atomic_write(tmp_root / VOCABULARY_FILENAME, "w") as f:
            f.write(_vocabulary_text(repertoire[: cfg.classes]))
    if progress:
        print(_summary_table(stats))
        print(f"wrote {out} in {stats['generation_seconds']:.1f} s ({workers} workers)")
    return stats


@contextlib.contextmanager
def dataset_folder(out: Path):
    """A temporary folder beside ``out`` to write a data set into; on success it replaces ``out`` whole,
    on any failure it goes (an interrupted run leaves nothing that looks complete)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    tmp_root.chmod(0o755)  # mkdtemp makes it private; the dataset is ordinary data
    try:
        yield tmp_root
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp_root, out)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise


def draw_videos(jobs: list, workers: int, progress: bool) -> None:
    """Draw and encode ``(plan, repertoire, path)`` jobs, longest first (keeps the workers busy to the end)."""
    jobs = sorted(jobs, key=lambda j: -j[0].num_frames)
    bar = _progress(len(jobs), progress)
    if workers <= 1:
        for job in jobs:
            _write_video_job(job)
            bar.update(1)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
            for _ in pool.map(_write_video_job, jobs, chunksize=1):
                bar.update(1)
    bar.close()


def _vocabulary_text(classes) -> str:
    """The vocabulary file (:mod:`signspot.formats.vocabulary`) of the query classes, in class order."""
    header = "# synthetic sign classes: PATH-PLACE-HANDSHAPE-HANDS; gloss line k is class k\n"
    return header + "".join(f"{sign.gloss}\n" for sign in classes)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="videos", unit="video", disable=not enabled, leave=False)
