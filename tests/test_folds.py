"""Fold CSVs: split by video, complete, deterministic, class-balanced, and loud on bad ground truth."""

import csv
import json
import pickle

import cv2
import numpy as np
import pytest

from signspot.datasets.folds import FoldError, assign_folds, make_folds
from signspot.datasets.store_writer import create_frame_store
from signspot.formats.timebase import ms_to_frame

NUM_CLASSES = 6
FPS = 30.0


def make_video(path, n, fps=FPS):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (16, 16))
    for _ in range(n):
        writer.write(np.zeros((16, 16, 3), np.uint8))
    writer.release()


def random_gt(rng, names, n_frames, fps):
    gt = {}
    for name in names:
        duration_ms = int(n_frames * 1000 / fps)
        rows = []
        for _ in range(int(rng.integers(1, 6))):
            start = int(rng.integers(0, duration_ms - 400))
            rows.append([int(rng.integers(0, NUM_CLASSES)), start, start + int(rng.integers(40, 390))])
        gt[name] = rows
    return gt


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("folds")
    rng = np.random.default_rng(0)
    train = [f"train_{i:02d}" for i in range(16)]
    val = [f"val_{i:02d}" for i in range(5)]
    for subset, names in (("tr", train), ("va", val)):
        (root / subset).mkdir()
        for name in names:
            make_video(root / subset / f"{name}.avi", 40)
        (root / f"{subset}.json").write_text(json.dumps({n: [0, 0, 16, 16] for n in names}))
        create_frame_store(root / f"store_{subset}", root / subset, root / f"{subset}.json", size=8, workers=0,
                           progress=False)
    train_gt, val_gt = random_gt(rng, train, 40, FPS), random_gt(rng, val, 40, FPS)
    (root / "train_gt.pkl").write_bytes(pickle.dumps(train_gt))
    (root / "val_gt.pkl").write_bytes(pickle.dumps(val_gt))
    return {"root": root, "train_gt": train_gt, "val_gt": val_gt,
            "stores": [str(root / "store_tr"), str(root / "store_va")]}


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(data, out, **kw):
    root = data["root"]
    return make_folds(root / "train_gt.pkl", data["stores"], out, val_gt=root / "val_gt.pkl", **kw)


def test_folds_split_by_video_and_cover_everything(data, tmp_path):
    result = run(data, tmp_path / "out", num_classes=NUM_CLASSES)
    for split, k, gt in (
        ("original_split", 5, data["train_gt"]),
        ("new_split", 7, {**data["train_gt"], **data["val_gt"]}),
    ):
        folder = tmp_path / "out" / split
        valid_sets = []
        for fold in range(k):
            train_rows = read_rows(folder / f"train_{fold}.csv")
            valid_rows = read_rows(folder / f"valid_{fold}.csv")
            assert list(train_rows[0]) == ["video", "label", "start_frame", "end_frame", "fcount"]
            train_videos = {r["video"] for r in train_rows}
            valid_videos = {r["video"] for r in valid_rows}
            assert valid_videos and not train_videos & valid_videos  # split by video
            assert train_videos | valid_videos == set(gt)
            assert len(train_rows) + len(valid_rows) == sum(len(v) for v in gt.values())
            valid_sets.append(valid_videos)
            for r in train_rows + valid_rows:
                signs = [[s[0], ms_to_frame(s[1], FPS), ms_to_frame(s[2], FPS)] for s in gt[r["video"]]]
                assert [int(r["label"]), int(r["start_frame"]), int(r["end_frame"])] in signs
                assert int(r["fcount"]) == 40
        # Validation folds partition the videos.
        assert sum(len(s) for s in valid_sets) == len(gt) and set().union(*valid_sets) == set(gt)
        assert set(result[split]) == set(gt)
        summary = json.loads((folder / "folds.json").read_text())
        assert summary["num_folds"] == k


def test_frames_use_the_store_fps_rounding_half_up():
    assert ms_to_frame(1000, 30.0) == 30
    assert ms_to_frame(50, 30.0) == 2  # 1.5 -> 2
    assert ms_to_frame(40, 25.0) == 1


def test_folds_are_deterministic(data, tmp_path):
    run(data, tmp_path / "a", seed=1, num_classes=NUM_CLASSES)
    run(data, tmp_path / "b", seed=1, num_classes=NUM_CLASSES)
    for split, k in (("original_split", 5), ("new_split", 7)):
        for fold in range(k):
            for kind in ("train", "valid"):
                name = f"{split}/{kind}_{fold}.csv"
                assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_assignment_balances_class_counts():
    rng = np.random.default_rng(3)
    counts = {f"v{i}": rng.poisson(rng.uniform(0.2, 3.0, size=8)) for i in range(60)}
    matrix = np.stack(list(counts.values()))
    k = 5

    def spread(assignment):
        per_fold = np.zeros((k, 8))
        for video, fold in assignment.items():
            per_fold[fold] += counts[video]
        return (per_fold.max(0) - per_fold.min(0)).mean()

    greedy = assign_folds(counts, k, seed=0)
    assert sorted(set(greedy.values())) == list(range(k))
    random_spreads = [spread(dict(zip(counts, rng.integers(0, k, len(counts))))) for _ in range(20)]
    assert spread(greedy) < 0.5 * np.mean(random_spreads)
    # No fold is short of a class by more than the largest count one video holds of it.
    per_fold = np.zeros((k, 8))
    for video, fold in greedy.items():
        per_fold[fold] += counts[video]
    assert ((per_fold.max(0) - per_fold.min(0)) <= matrix.max(0) + 1).all()


def test_fewer_videos_than_folds_is_an_error(data, tmp_path):
    with pytest.raises(FoldError, match="16 videos cannot be split into 20 folds"):
        run(data, tmp_path / "o", folds=20, num_classes=NUM_CLASSES)
    assert not (tmp_path / "o").exists()
    with pytest.raises(FoldError, match="cannot be split"):
        assign_folds({"a": np.ones(2)}, 2)


@pytest.mark.parametrize(
    "row, match",
    [
        ([NUM_CLASSES, 100, 300], "class 6 is outside"),
        ([1, 1000, 1400], "past the video's end"),
    ],
)
def test_malformed_signs_are_named(data, tmp_path, row, match):
    gt = {k: [list(r) for r in v] for k, v in data["train_gt"].items()}
    gt["train_03"].append(row)
    (tmp_path / "gt.pkl").write_bytes(pickle.dumps(gt))
    with pytest.raises(FoldError, match=match) as err:
        make_folds(tmp_path / "gt.pkl", data["stores"], tmp_path / "out", num_classes=NUM_CLASSES)
    assert "'train_03'" in str(err.value) and f"sign {len(gt['train_03']) - 1}" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_unknown_video_and_script_exit(data, tmp_path):
    from signspot.cli.make_folds import run

    gt = dict(data["train_gt"], ghost=[[0, 10, 50]])
    (tmp_path / "gt.pkl").write_bytes(pickle.dumps(gt))
    with pytest.raises(SystemExit) as exit_info:
        run(["--train-gt", str(tmp_path / "gt.pkl"), "--store", str(data["stores"][0]), "--out", str(tmp_path / "out"),
             "--num-classes", str(NUM_CLASSES)])
    assert "'ghost'" in str(exit_info.value.code) and "not in the frame store" in str(exit_info.value.code)
    # A training video also present in the validation ground truth is reported too.
    gt = dict(data["val_gt"])
    (tmp_path / "val.pkl").write_bytes(pickle.dumps(dict(gt, train_00=[[0, 10, 50]])))
    with pytest.raises(FoldError, match="'train_00' is also in"):
        make_folds(data["root"] / "train_gt.pkl", data["stores"], tmp_path / "o2", val_gt=tmp_path / "val.pkl",
                   num_classes=NUM_CLASSES)
