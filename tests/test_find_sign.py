"""Find a sign from one example (scripts/find_sign.py): the synthetic OSLWL set, the matchers, bad input."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from signspot.datasets.synthetic import generate_oslwl, oslwl_signs, resolve_config
from signspot.datasets.synthetic.repertoire import class_repertoire
from signspot.datasets.video_reader import probe_video, read_frames
from signspot.find_sign import find_signs
from signspot.formats.gt import load_intervals
from signspot.oneshot import (
    MatchSettings,
    OneShotError,
    active_span,
    dtw_curve,
    dtw_intervals,
    intervals_from_curve,
    query_sign_id,
)
from tests.eaf_schema import schema_problems
from tests.test_inference import checkpoint_path  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def oslwl(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("oslwl") / "data"
    settings = resolve_config("demo", size=(96, 72))
    generate_oslwl(out, signs=2, clips_per_sign=2, progress=False, **settings)
    return out


def _quiet(*_):
    pass


def _iou(a, b) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


# ------------------------------------------------------------------ the synthetic one-shot set
def test_the_synthetic_set_has_the_challenge_layout(oslwl):
    stats = json.loads((oslwl / "oslwl_stats.json").read_text())
    for split, ids in (("VAL", {0, 1}), ("TEST", {2, 3})):
        queries = sorted(p.stem for p in (oslwl / f"OSLWL_QUERY_{split}_SET").glob("*.mp4"))
        assert {query_sign_id(q, 0) for q in queries} == ids
        assert {q.split("_")[0] for q in queries} == {"p00", "p03"}  # a stranger and a signer of MSSL training
        gt = load_intervals(oslwl / f"OSLWL_{split}_SET_GT.pkl")
        assert sorted(gt) == sorted(p.stem for p in (oslwl / f"OSLWL_{split}_SET_VIDEOS").glob("*.mp4"))
        for clip, rows in gt.items():
            assert len(rows) == 1 and rows[0][0] == query_sign_id(clip, -1)  # the weak label is the sign held
            cap = cv2.VideoCapture(str(oslwl / f"OSLWL_{split}_SET_VIDEOS" / f"{clip}.mp4"))
            assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 100  # 4 s at 25 fps
            cap.release()
        boxes = json.loads((oslwl / f"oslwl_{'valid' if split == 'VAL' else 'test'}_bboxes.json").read_text())
        assert set(boxes) == set(gt)
    assert [q["signer_in_mssl_training"] for q in stats["queries"].values()].count(True) == 2


def test_one_shot_signs_are_none_the_mssl_model_has_seen():
    queries, distractors = class_repertoire(10)
    seen = {d.key for d in queries + distractors}
    signs = oslwl_signs(10, 20)
    assert len({s.key for s in signs}) == 40 and not seen & {s.key for s in signs}
    assert oslwl_signs(10, 20) == signs  # a function of the settings only


# ------------------------------------------------------------------ the matching pieces
def test_dtw_finds_a_query_inside_a_sequence_at_another_speed():
    rng = np.random.default_rng(0)
    video = rng.normal(size=(120, 16))
    query = video[40:70:2] + 0.05 * rng.normal(size=(15, 16))  # signed twice as slowly in the video
    similarity = (query / np.linalg.norm(query, axis=1, keepdims=True)) @ (
        video / np.linalg.norm(video, axis=1, keepdims=True)).T
    curve, starts = dtw_curve(similarity)
    ((first, last, score),) = dtw_intervals(curve, starts, top1=True, threshold=0)
    assert abs(first - 40) <= 2 and abs(last - 68) <= 2 and score > 0.9
    assert dtw_intervals(curve, starts, top1=False, threshold=1.01) == []


def test_the_active_span_of_a_query_skips_its_rest():
    rest, sign = np.ones((10, 8)), np.eye(8)[None].repeat(20, 0).reshape(-1, 8)[:20]
    embedding = np.concatenate([rest, sign + 0.5, rest])
    assert active_span(embedding) == (10, 30)


def test_the_baselines_decision_marks_windows_near_the_best():
    scores = np.full(30, 0.1)
    scores[[2, 3, 4]] = 0.95, 1.0, 0.93  # frames 2-11 marked
    scores[23] = 0.96  # frames 23-30: 11 frames after, a run of its own
    runs = intervals_from_curve(scores, 40, window=8, relative=0.9, close_gap=10)
    assert [(a, b) for a, b, _ in runs] == [(2, 11), (23, 30)]
    scores[22] = 0.96  # 10 frames after: the gap is closed
    assert [(a, b) for a, b, _ in intervals_from_curve(scores, 40, window=8, relative=0.9, close_gap=10)] == [(2, 30)]


def test_where_matches_of_several_queries_overlap_the_most_similar_stays():
    from signspot.oneshot import one_sign_at_a_time

    found = [("a", 0, 10, 30, 0.6), ("b", 1, 25, 40, 0.8), ("a", 0, 50, 60, 0.5), ("c", 2, 41, 49, 0.4)]
    assert one_sign_at_a_time(found) == [("b", 1, 25, 40, 0.8), ("c", 2, 41, 49, 0.4), ("a", 0, 50, 60, 0.5)]


def test_match_settings_are_checked_and_round_trip(tmp_path):
    MatchSettings(threshold=0.42).save_json(tmp_path / "m.json", tuned_on="gt.pkl")
    assert MatchSettings.load_json(tmp_path / "m.json").threshold == 0.42
    with pytest.raises(OneShotError, match="finite"):
        MatchSettings(threshold=float("nan"))
    (tmp_path / "bad.json").write_text('{"settings": {"threshold": 1, "colour": "red"}}')
    with pytest.raises(OneShotError, match="bad.json"):
        MatchSettings.load_json(tmp_path / "bad.json")


# ------------------------------------------------------------------ find_sign.py end to end
def _paste(query: Path, clip: Path, out: Path, at: int) -> tuple:
    """``clip`` with the query's frames written over frames ``at`` ...; returns the pasted frames' span."""
    def frames(path):
        return [frame for _, frame in read_frames(path, probe_video(path))]

    q, c = frames(query), frames(clip)
    q = [cv2.resize(f, (c[0].shape[1], c[0].shape[0])) for f in q]
    c[at:at + len(q)] = q
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (c[0].shape[1], c[0].shape[0]))
    for frame in c[:100]:
        writer.write(frame)
    writer.release()
    return at, min(at + len(q), 100) - 1


def test_a_query_pasted_into_a_clip_is_found_there(oslwl, checkpoint_path, tmp_path):  # noqa: F811
    query = oslwl / "OSLWL_QUERY_TEST_SET" / "p00_s02.mp4"
    clips = tmp_path / "clips"
    clips.mkdir()
    first, last = _paste(query, oslwl / "OSLWL_TEST_SET_VIDEOS" / sorted(
        p.name for p in (oslwl / "OSLWL_TEST_SET_VIDEOS").glob("*_s03_*"))[0], clips / "p09_s02_n900.mp4", at=35)
    result = find_signs([query], [clips], [checkpoint_path], tmp_path / "found", weak_labels=True, box="full",
                        device="cpu", progress=False, log=_quiet)
    ((sign, start_ms, end_ms),) = result["predictions"]["p09_s02_n900"]
    assert sign == 2
    assert _iou((start_ms, end_ms), (first * 40, (last + 1) * 40)) >= 0.5, (start_ms, end_ms, first, last)
    out = tmp_path / "found"
    assert {p.name for p in out.iterdir()} == {"predictions.pkl", "spotted.csv", "p09_s02_n900.eaf", "plots"}
    assert schema_problems(out / "p09_s02_n900.eaf") == [] and (out / "plots" / "p09_s02_n900.png").is_file()
    assert pickle.loads((out / "predictions.pkl").read_bytes()) == result["predictions"]


def test_open_search_leaves_a_clip_without_the_sign_alone(oslwl, checkpoint_path, tmp_path):  # noqa: F811
    query = oslwl / "OSLWL_QUERY_TEST_SET" / "p00_s02.mp4"
    clips = tmp_path / "clips"
    clips.mkdir()
    other = sorted((oslwl / "OSLWL_TEST_SET_VIDEOS").glob("*_s03_*"))
    first, last = _paste(query, other[0], clips / "with_sign.mp4", at=30)
    (clips / "without_sign.mp4").write_bytes(other[1].read_bytes())
    gt = tmp_path / "gt.pkl"
    gt.write_bytes(pickle.dumps({"with_sign": [[2, first * 40, (last + 1) * 40]], "without_sign": []}))
    common = dict(box="full", device="cpu", progress=False, log=_quiet)
    tuned = find_signs([query], [clips], [checkpoint_path], tmp_path / "tuned", tune_on=str(gt), **common)
    assert (tmp_path / "tuned" / "match_config.json").is_file()
    assert tuned["predictions"]["without_sign"] == [] and len(tuned["predictions"]["with_sign"]) == 1
    again = find_signs([query], [clips], [checkpoint_path], tmp_path / "again", plots=False,
                       match_config=str(tmp_path / "tuned" / "match_config.json"), **common)
    assert again["predictions"] == tuned["predictions"]


def test_the_baseline_runs_the_same_way(oslwl, checkpoint_path, tmp_path):  # noqa: F811
    result = find_signs([oslwl / "OSLWL_QUERY_TEST_SET"], [oslwl / "OSLWL_TEST_SET_VIDEOS"], [checkpoint_path],
                        tmp_path / "found", weak_labels=True, matcher="baseline", box="full", device="cpu",
                        plots=False, progress=False, log=_quiet)
    gt = load_intervals(oslwl / "OSLWL_TEST_SET_GT.pkl")
    assert set(result["predictions"]) == set(gt)
    assert all(rows and all(r[0] == gt[clip][0][0] for r in rows) for clip, rows in result["predictions"].items())


def _bad_inputs(root: Path, oslwl: Path) -> dict:
    (root / "broken.mp4").write_bytes(b"not a video")
    (root / "empty").mkdir()
    short = root / "short"
    short.mkdir()
    writer = cv2.VideoWriter(str(short / "p00_s02.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 48))
    for _ in range(5):
        writer.write(np.full((48, 64, 3), 128, np.uint8))
    writer.release()
    return {
        "a query OpenCV cannot open": (root / "broken.mp4", "broken.mp4"),
        "a query shorter than the temporal stride": (short, "shorter than the model's temporal stride"),
        "an empty queries folder": (root / "empty", "empty"),
    }


@pytest.mark.parametrize("case", ["a query OpenCV cannot open", "a query shorter than the temporal stride",
                                  "an empty queries folder"])
def test_bad_input_is_one_line_and_writes_nothing(oslwl, checkpoint_path, tmp_path, case):  # noqa: F811
    queries, expected = _bad_inputs(tmp_path, oslwl)[case]
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "find_sign.py"), "--queries", str(queries),
                             "--videos", str(oslwl / "OSLWL_TEST_SET_VIDEOS"), "--checkpoints", str(checkpoint_path),
                             "--out", str(tmp_path / "out"), "--box", "full", "--device", "cpu"],
                            capture_output=True, text=True, timeout=240, env={**os.environ, "SIGNSPOT_DEBUG": ""})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith("error:") and expected in lines[-1], lines[-1]
    assert not (tmp_path / "out").exists()


def test_released_and_bsl1k_checkpoints_are_feature_extractors(tmp_path, fixture_weights):
    import torch

    from signspot.find_sign import feature_extractor
    from tests.test_checkpoint import _bsl1k_file

    torch.save(fixture_weights, tmp_path / "released.pt")  # a bare state dict, as the released files
    model, spec, layer = feature_extractor(tmp_path / "released.pt")
    assert layer == "all" and spec.window == 32 and spec.crop == 224
    model, spec, layer = feature_extractor(_bsl1k_file(tmp_path)[0])
    assert layer == "backbone" and spec.crop == 224
    clips = torch.rand(1, 8, 3, 32, 32) - 0.5
    assert model.embed(clips, layer).shape == (1, 8, 1024)
