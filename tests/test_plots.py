"""Figures are written (headless) and are real images."""

import json

import numpy as np
import pytest

from signspot.cli.visualize import main as visualize_main
from signspot.cli.visualize import run as visualize_run
from signspot.formats.gt import save_intervals_pkl
from signspot.formats.scores import SCORES_FILENAME, save_frame_scores
from signspot.metric import score_report
from signspot.plots import load_class_names, plot_class_f1, plot_threshold_curves, plot_video_timeline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=8000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes, f"{path} is suspiciously small ({len(data)} bytes)"


def test_class_names_json_and_csv(tmp_path):
    (tmp_path / "n.json").write_text(json.dumps(["hola", "casa"]))
    assert load_class_names(tmp_path / "n.json") == {0: "hola", 1: "casa"}
    (tmp_path / "m.json").write_text(json.dumps({"3": "tres"}))
    assert load_class_names(tmp_path / "m.json") == {3: "tres"}
    (tmp_path / "n.csv").write_text("id,name\n0,hola\n5,cinco\n")
    assert load_class_names(tmp_path / "n.csv") == {0: "hola", 5: "cinco"}
    with pytest.raises(FileNotFoundError):
        load_class_names(tmp_path / "missing.csv")


def test_individual_plots(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.random((300, 61)).astype(np.float32)
    gt = [[3, 400, 1400], [10, 5000, 6000]]
    pred = [[3, 480, 1300], [11, 5000, 5600], [10, 8000, 8400]]
    assert_png(plot_video_timeline(tmp_path / "t.png", "vid", scores=scores, fps=25.0, gt=gt, pred=pred,
                                   class_names={3: "three"}))
    assert_png(plot_video_timeline(tmp_path / "t_noscores.png", "vid", gt=gt, pred=pred), 3000)
    report = score_report({"vid": gt}, {"vid": pred})
    assert_png(plot_class_f1(tmp_path / "f1.png", report))
    assert_png(plot_threshold_curves(tmp_path / "thr.png", report))


def test_visualize_main_end_to_end(tmp_path):
    rng = np.random.default_rng(1)
    videos = {}
    for name in ("a", "b"):
        s = rng.random((200, 7)).astype(np.float32)
        s[40:80, 2] += 2
        videos[name] = {"scores": s / s.sum(1, keepdims=True), "fps": 25.0, "num_frames": 200}
    save_frame_scores(tmp_path / "res" / "r1" / SCORES_FILENAME, videos, checkpoint="c", head_weights=None,
                      window=32, stride=1)
    save_intervals_pkl({"a": [[2, 1600, 3200]], "b": [[1, 0, 400]]}, tmp_path / "gt.pkl")
    written = visualize_main(scores=str(tmp_path / "res"), gt=str(tmp_path / "gt.pkl"), out=str(tmp_path / "out"),
                             videos=["a"])
    names = sorted(p.name for p in written)
    assert names == ["class_f1.png", "iou_thresholds.png", "timeline_a.png"]
    for p in written:
        assert_png(p)
    with pytest.raises(SystemExit, match="not found"):
        visualize_run(["--scores", str(tmp_path / "res"), "--out", str(tmp_path / "out2"), "--videos", "zzz"])
