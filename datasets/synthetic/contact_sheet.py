"""Contact sheet: a PNG grid of frames of a written dataset (rows = classes, columns = signers)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from signspot.datasets.video_reader import crop_box, probe_video, read_frames
from signspot.formats.gt import load_intervals
from signspot.formats.safe_io import atomic_write

from .config import MS_PER_FRAME, SPLITS, _split_paths


def _read_frame(path: Path, index: int) -> Optional[np.ndarray]:
    frame = next(read_frames(path, probe_video(path), [int(index)]), (index, None))[1]
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame is not None else None


def make_contact_sheet(dataset: str | os.PathLike, path: str | os.PathLike, *, max_classes: int = 10,
                       per_class: int = 6, cell: int = 128) -> Path:
    """A PNG grid: one row per class, the middle frame of signs by different signers (signer box crops).

    Each cell shows the signer box (enlarged by 10 %, as the frame store crops
    it), the class id and the video; the three frames before and after the
    middle are blended faintly in, so the hand's path shows as a trail.
    """
    dataset = Path(dataset)
    entries: List[Tuple[int, str, Path, int, int, List[int]]] = []
    for folder, prefix, bbox_prefix in SPLITS:
        videos_dir, gt_pkl, _ = _split_paths(dataset, folder, prefix)
        boxes = json.loads((dataset / f"{bbox_prefix}_bboxes.json").read_text())
        for video, rows in load_intervals(gt_pkl).items():
            for cls, s, e in rows:
                entries.append((cls, video, videos_dir / f"{video}.mp4", s // MS_PER_FRAME, e // MS_PER_FRAME,
                                boxes[video]))
    classes = sorted({e[0] for e in entries})[:max_classes]
    rows_img = []
    for cls in classes:
        mine = [e for e in entries if e[0] == cls]
        picked, signers_seen = [], set()
        for e in mine:  # one sign per signer first, then any
            signer = e[1].split("_")[0]
            if signer not in signers_seen:
                picked.append(e)
                signers_seen.add(signer)
        picked += [e for e in mine if e not in picked]
        cells = []
        for _, video, mp4, s, e, box in picked[:per_class]:
            frames = [_read_frame(mp4, f) for f in np.linspace(s, e - 1, 5).round().astype(int)]
            frames = [f for f in frames if f is not None]
            if not frames:
                continue
            mid = frames[len(frames) // 2].astype(np.float32)
            trail = np.mean([f.astype(np.float32) for f in frames], 0)
            img = np.clip(0.65 * mid + 0.35 * trail, 0, 255).astype(np.uint8)
            x1, y1, x2, y2 = crop_box(box, img.shape[1], img.shape[0])
            crop = img[y1:y2, x1:x2]
            crop = cv2.resize(crop, (cell, cell), interpolation=cv2.INTER_AREA)
            cv2.putText(crop, f"class {cls}", (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 0), 1, cv2.LINE_AA)
            cv2.putText(crop, f"{video} {e - s}f", (3, cell - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 255), 1,
                        cv2.LINE_AA)
            cells.append(crop)
        cells += [np.zeros((cell, cell, 3), np.uint8)] * (per_class - len(cells))
        rows_img.append(np.concatenate(cells, 1))
    if not rows_img:
        raise ValueError(f"{dataset}: no query signs found to draw")
    sheet = np.concatenate(rows_img, 0)
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"{path}: PNG encoding failed")
    path = Path(path)
    with atomic_write(path, "wb") as f:
        f.write(png.tobytes())
    return path
