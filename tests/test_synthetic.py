"""The synthetic MSSL dataset: layout and formats, determinism, drawing vs ground truth, flags."""

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from signspot.datasets.synthetic import (
    FPS,
    MS_PER_FRAME,
    SPLITS,
    SynthConfig,
    SyntheticConfigError,
    class_repertoire,
    generate_dataset,
    make_contact_sheet,
    plan_dataset,
    render_video,
)
from signspot.formats.gt import load_intervals
from signspot.formats.safe_io import safe_pickle_load

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_synthetic_dataset.py"
TINY = dict(classes=4, videos_per_split=(3, 1, 2), seconds=8, size=(128, 96), signers=2, test_only_signers=1)
DOM, OTHER = (255, 0, 255), (0, 255, 255)  # marker colours of the two hands


def decode(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return np.stack(frames), fps


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "data"
    stats = generate_dataset(out, seed=0, workers=1, progress=False, **TINY)
    return out, stats


def test_layout_and_formats(tiny):
    out, stats = tiny
    expected_top = {"TRAIN", "VALIDATION", "TEST", "train_bboxes.json", "valid_bboxes.json", "test_bboxes.json",
                    "stats.json", "vocabulary.txt"}
    assert {p.name for p in out.iterdir()} == expected_top
    n_frames = TINY["seconds"] * FPS
    width, height = TINY["size"]
    for (folder, prefix, bbox_prefix), n_videos in zip(SPLITS, TINY["videos_per_split"]):
        split = out / folder
        assert {p.name for p in split.iterdir()} == {f"{prefix}_VIDEOS", f"{prefix}_GT.pkl", f"{prefix}_GT_TXT"}
        videos = sorted(p.stem for p in (split / f"{prefix}_VIDEOS").iterdir())
        assert len(videos) == n_videos and all((split / f"{prefix}_VIDEOS" / f"{v}.mp4").is_file() for v in videos)
        gt = safe_pickle_load(split / f"{prefix}_GT.pkl")
        assert type(gt) is dict and sorted(gt) == videos
        txt_dir = split / f"{prefix}_GT_TXT"
        assert sorted(p.name for p in txt_dir.iterdir()) == [f"{v}.txt" for v in videos]
        boxes = json.loads((out / f"{bbox_prefix}_bboxes.json").read_text())
        assert sorted(boxes) == videos
        for video, rows in gt.items():
            assert type(rows) is list
            for row in rows:
                assert type(row) is list and len(row) == 3 and all(type(v) is int for v in row)
                cls, start, end = row
                assert 0 <= cls < TINY["classes"]
                assert start % MS_PER_FRAME == 0 and end % MS_PER_FRAME == 0
                assert 5 <= (end - start) // MS_PER_FRAME <= 40
                assert 0 <= start < end <= n_frames * MS_PER_FRAME
            lines = (txt_dir / f"{video}.txt").read_text().splitlines()
            assert all(re.fullmatch(r"\d+,\d+,\d+", line) for line in lines)
            assert [[int(x) for x in line.split(",")] for line in lines] == rows
            box = boxes[video]
            assert len(box) == 4 and all(type(v) is int for v in box)
            x1, y1, x2, y2 = box
            assert 0 <= x1 < x2 < width and 0 <= y1 < y2 < height
            assert (x2 - x1) * (y2 - y1) < 0.9 * width * height  # the signer box is not the frame
            frames, fps = decode(split / f"{prefix}_VIDEOS" / f"{video}.mp4")
            assert frames.shape == (n_frames, height, width, 3) and fps == FPS
        assert load_intervals(txt_dir) == gt
    assert sum(s["query_signs"] for s in stats["splits"].values()) > 0
    assert json.loads((out / "stats.json").read_text())["splits"] == stats["splits"]


def test_same_seed_same_dataset_other_seed_differs(tiny, tmp_path):
    out, _ = tiny
    again = tmp_path / "again"
    generate_dataset(again, seed=0, workers=2, progress=False, **TINY)  # other worker count: same output
    other = tmp_path / "other"
    generate_dataset(other, seed=1, workers=1, progress=False, **TINY)
    for folder, prefix, bbox_prefix in SPLITS:
        for rel in (f"{folder}/{prefix}_GT.pkl", f"{bbox_prefix}_bboxes.json"):
            assert (out / rel).read_bytes() == (again / rel).read_bytes(), rel
        for txt in (out / folder / f"{prefix}_GT_TXT").iterdir():
            assert txt.read_bytes() == (again / folder / f"{prefix}_GT_TXT" / txt.name).read_bytes()
        for mp4 in (out / folder / f"{prefix}_VIDEOS").iterdir():
            assert np.array_equal(decode(mp4)[0], decode(again / folder / f"{prefix}_VIDEOS" / mp4.name)[0])
    gt_a = safe_pickle_load(out / "TRAIN/MSSL_TRAIN_SET_GT.pkl")
    gt_b = safe_pickle_load(other / "TRAIN/MSSL_TRAIN_SET_GT.pkl")
    assert list(gt_a.values()) != list(gt_b.values())
    first = sorted((out / "TRAIN/MSSL_TRAIN_SET_VIDEOS").iterdir())[0]
    first_other = sorted((other / "TRAIN/MSSL_TRAIN_SET_VIDEOS").iterdir())[0]
    assert not np.array_equal(decode(first)[0], decode(first_other)[0])


def test_mp4_holds_the_rendered_frames(tiny):
    out, _ = tiny
    plan = plan_dataset(SynthConfig(seed=0, **TINY))
    video = plan.videos[0]
    rendered = np.stack(list(render_video(video, plan.repertoire))).astype(np.float32)
    decoded, _ = decode(out / "TRAIN/MSSL_TRAIN_SET_VIDEOS" / f"{video.name}.mp4")
    assert decoded.shape == rendered.shape
    per_frame = np.abs(decoded.astype(np.float32) - rendered).mean(axis=(1, 2, 3))
    assert per_frame.max() < 8.0, per_frame.max()  # codec loss only, frame for frame
    # a frame shifted by one would differ more during motion
    shifted = np.abs(decoded[1:].astype(np.float32) - rendered[:-1]).mean(axis=(1, 2, 3))
    assert per_frame.mean() < shifted.mean()


def _hand_tracks(frames, colour):
    """Centroid (x, y) and pixel count of the pixels of exactly ``colour``, per frame."""
    mask = np.all(frames == np.array(colour, np.uint8), axis=-1)
    ys, xs = np.mgrid[: frames.shape[1], : frames.shape[2]]
    count = mask.sum((1, 2))
    safe = np.maximum(count, 1)
    cx = (mask * xs).sum((1, 2)) / safe
    cy = (mask * ys).sum((1, 2)) / safe
    return np.stack([cx, cy], 1), count


def test_ground_truth_matches_what_is_drawn():
    cfg = SynthConfig(classes=6, videos_per_split=(5, 1, 1), seconds=24, size=(128, 96), signers=4,
                      test_only_signers=0, coverage=0.25, imbalance=1.0, seed=3)
    plan = plan_dataset(cfg)
    queries, _ = class_repertoire(cfg.classes)
    features, labels, owners = [], [], []
    for video in plan.split_videos("TRAIN"):
        frames = np.stack(list(render_video(video, plan.repertoire, hand_colours=(DOM, OTHER), camera=False)))
        dom, dom_px = _hand_tracks(frames, DOM)
        other, _ = _hand_tracks(frames, OTHER)
        x1, y1, x2, y2 = video.bbox
        scale = np.array([x2 - x1, y2 - y1], np.float64)
        flip = -1.0 if video.signer.dominant == "R" else 1.0  # classes are defined for the dominant hand
        crop_px = 64.0 / (1.2 * max(scale))
        for _rep, s, e, q in video.signs:
            if q < 0:
                continue
            assert (dom_px[s:e] > 0).all()
            # a hand of at least ~6 px across in the 64x64 crop the model sees
            assert np.sqrt(np.median(dom_px[s:e])) * crop_px >= 5.0
            path = dom[s:e]
            travel = np.linalg.norm(np.diff(path, axis=0), axis=1).sum() / video.unit
            if queries[q].path == "hold":
                assert travel < 0.6
            elif queries[q].path == "tap":  # toward the camera: the hand grows and shrinks
                assert dom_px[s:e].max() > 1.5 * dom_px[s:e].min()
            else:
                assert travel > 0.5, (queries[q], travel)  # the hand moves during the sign
            idx = np.linspace(s, e - 1, 6).round().astype(int)
            rel_dom = (dom[idx] - [x1, y1]) / scale
            rel_other = (other[idx] - [x1, y1]) / scale
            for rel in (rel_dom, rel_other):
                rel[:, 0] = 0.5 + flip * (rel[:, 0] - 0.5)
            size = np.log(np.maximum(dom_px[idx], 1) / video.unit**2)[:, None] / 10
            features.append(np.concatenate([rel_dom, rel_other, size], 1).ravel())
            labels.append(q)
            owners.append(video.name)
    features, labels = np.array(features), np.array(labels)
    assert len(set(labels)) == cfg.classes and len(set(owners)) >= 4
    # leave-one-video-out nearest neighbour on the measured trajectories recognises the class
    correct = total = 0
    for i in range(len(labels)):
        others = [j for j in range(len(labels)) if owners[j] != owners[i]]
        dist = np.linalg.norm(features[others] - features[i], axis=1)
        correct += labels[others][np.argmin(dist)] == labels[i]
        total += 1
    assert correct / total >= 0.85, correct / total


def test_statistics_follow_the_settings():
    base = SynthConfig(classes=20, videos_per_split=(30, 4, 4), seconds=120, size=(128, 96), seed=5)
    plan = plan_dataset(base)
    train = plan.split_videos("TRAIN")
    lengths = np.array([e - s for v in train for _, s, e, q in v.signs if q >= 0])
    frames = sum(v.num_frames for v in train)
    assert abs(lengths.sum() / frames - 0.15) < 0.025
    assert 10.5 <= lengths.mean() <= 13.5 and lengths.min() >= 5 and lengths.max() <= 40
    counts = np.bincount([q for v in train for _, _, _, q in v.signs if q >= 0], minlength=20)
    assert counts.min() >= 1 and 12 <= counts.max() / counts.min() <= 30
    # the time between query signs holds distractor signs
    for v in train:
        kinds = [q >= 0 for _, _, _, q in v.signs]
        assert not any(a and b for a, b in zip(kinds, kinds[1:]))
        assert all(e <= v.num_frames for _, _, e, _ in v.signs)
    seen = {v.signer.index for v in plan.videos if v.split != "TEST"}
    test_signers = {v.signer.index for v in plan.split_videos("TEST")}
    assert test_signers - seen and test_signers & seen  # unseen and seen signers in TEST

    other = plan_dataset(SynthConfig(classes=7, videos_per_split=(2, 3, 4), seconds=30, size=(128, 96),
                                     mean_sign_frames=20, coverage=0.3, seed=5))
    assert [len(other.split_videos(f)) for f, _, _ in SPLITS] == [2, 3, 4]
    assert all(v.num_frames == 30 * FPS for v in other.videos)
    classes = {q for v in other.videos for _, _, _, q in v.signs if q >= 0}
    assert classes == set(range(7))
    lengths = np.array([e - s for v in other.videos for _, s, e, q in v.signs if q >= 0])
    assert 17 <= lengths.mean() <= 23
    assert abs(lengths.sum() / (9 * 30 * FPS) - 0.3) < 0.05


def test_cli_flags_and_contact_sheet(tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--classes", "3", "--videos-per-split", "2,1,1",
         "--seconds", "6", "--size", "96x64", "--signers", "2", "--test-only-signers", "1", "--workers", "1",
         "--quiet", "--contact-sheet", str(tmp_path / "sheet.png")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert [stats["splits"][f]["videos"] for f, _, _ in SPLITS] == [2, 1, 1]
    assert len(stats["classes"]) == 3
    frames, _ = decode(next((out / "TEST/MSSL_TEST_SET_VIDEOS").iterdir()))
    assert frames.shape == (6 * FPS, 64, 96, 3)
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    assert sheet is not None and sheet.shape[0] >= 128


@pytest.mark.parametrize(
    "args, message",
    [
        (["--classes", "1"], "--classes must be an integer >= 2"),
        (["--size", "48x32"], "too small"),
        (["--size", "big"], "WIDTHxHEIGHT"),
        (["--seconds", "1"], "--seconds must be between"),
        (["--videos-per-split", "2,0,1"], "at least 1 video"),
        (["--seconds", "5", "--coverage", "0.02"], "too short"),
    ],
)
def test_bad_flags_are_refused(tmp_path, args, message):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "x"), "--quiet", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert not (tmp_path / "x").exists()


def test_existing_output_is_not_overwritten(tiny, tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        generate_dataset(target, progress=False, workers=1, **TINY)
    assert (target / "keep.txt").read_text() == "mine"
    with pytest.raises(SyntheticConfigError, match="test-only"):
        generate_dataset(tmp_path / "y", progress=False, **{**TINY, "test_only_signers": 5})


def test_contact_sheet_function(tiny, tmp_path):
    out, _ = tiny
    png = make_contact_sheet(out, tmp_path / "s.png", per_class=2, cell=64)
    sheet = cv2.imread(str(png))
    n_classes = len({r[0] for f, p, _ in SPLITS for rows in load_intervals(out / f / f"{p}_GT.pkl").values()
                     for r in rows})
    assert sheet.shape == (64 * n_classes, 128, 3)
