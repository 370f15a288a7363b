"""`make demo` end to end on tiny settings: every stage's script runs and hands its files on."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signspot.formats.gt import load_intervals
from signspot.formats.scores import load_frame_scores
from tests.eaf_schema import schema_problems

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "scripts/demo.py", "--out", str(out), "--tiny", "--stride", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "test F1 (official metric)" in result.stdout

    summary = json.loads((out / "demo_summary.json").read_text())
    assert 0.0 <= summary["test_f1"] <= 1.0
    assert len(summary["checkpoints"]) == 2  # two folds trained
    for needed in ("track1_lmdb_creator.py", "make_folds.py", "main.py", "main_results_creator_v2.py",
                   "solution_test_creator_v2.py", "evaluate.py", "visualize.py", "spot.py"):
        assert any(needed in command for command in summary["commands"]), needed

    # per-frame scores cover every frame of every test video
    test_gt = load_intervals(out / "data" / "TEST" / "MSSL_TEST_SET_GT.pkl")
    for scores_file in (out / "chalearn_results" / "test").rglob("frame_scores.pkl"):
        scores = load_frame_scores(scores_file)
        assert set(scores["videos"]) == set(test_gt)
        for entry in scores["videos"].values():
            assert entry["scores"].shape == (entry["num_frames"], 11)
    predictions = load_intervals(out / "predictions.pkl", num_classes=10)
    assert set(predictions) <= set(test_gt)
    assert list((out / "plots").glob("timeline_*.png"))
    # spot.py on the raw test videos: an ELAN file per video, the same videos as the store path
    assert {p.stem for p in (out / "spotted").glob("*.eaf")} == set(test_gt)
    assert all(schema_problems(p) == [] for p in (out / "spotted").glob("*.eaf"))
    assert set(load_intervals(out / "spotted" / "predictions.pkl")) == set(test_gt)
    assert "ELAN files" in result.stdout and 0.0 <= summary["test_f1_spot"] <= 1.0

    # rerunning skips finished stages and gives the same score
    again = subprocess.run(
        [sys.executable, "scripts/demo.py", "--out", str(out), "--tiny", "--stride", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "make_synthetic_dataset.py" not in again.stdout
    assert json.loads((out / "demo_summary.json").read_text())["test_f1"] == summary["test_f1"]
