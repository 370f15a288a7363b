"""The official metric against hand-worked cases, one quirk at a time, and the CLI."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from signspot.cli.evaluate import main as evaluate_main
from signspot.cli.evaluate import run as evaluate_run
from signspot.formats.gt import save_intervals_pkl, save_intervals_txt
from signspot.metric import (
    IOU_THRESHOLDS,
    filter_overlapping_predictions,
    official_score,
    score_report,
    strict_score,
)

ROOT = Path(__file__).resolve().parents[1]
N = len(IOU_THRESHOLDS)  # 13


def counts(score):
    return score["tp"], score["fp"], score["fn"]


def test_thresholds_are_the_organisers():
    assert N == 13
    assert IOU_THRESHOLDS[0] == pytest.approx(0.2) and IOU_THRESHOLDS[-1] == pytest.approx(0.8)


def test_perfect_prediction():
    gt = {"v": [[3, 0, 1000], [5, 2000, 2600]]}
    s = official_score(gt, gt)
    assert counts(s) == (2 * N, 0, 0)
    assert s["f1"] == s["precision"] == s["recall"] == 1.0
    assert all(type(s[k]) is int for k in ("tp", "fp", "fn"))
    assert all(type(s[k]) is float for k in ("f1", "precision", "recall"))


def test_iou_threshold_boundaries():
    # IoU exactly 0.8 (GT 0-1000, pred 0-800) passes every threshold (the last is 0.7999999999999998)
    assert official_score({"v": [[1, 0, 1000]]}, {"v": [[1, 0, 800]]})["tp"] == N
    # IoU 0.79 fails only 0.8
    assert official_score({"v": [[1, 0, 1000]]}, {"v": [[1, 0, 790]]})["tp"] == N - 1
    # IoU exactly 0.5: passes 0.2..0.5 (7 thresholds; 0.5 is stored as 0.49999999999999994)
    assert official_score({"v": [[1, 0, 1000]]}, {"v": [[1, 0, 500]]})["tp"] == 7
    # IoU 0.2 exactly: only the first threshold; just under 0.2: none
    assert official_score({"v": [[1, 0, 1000]]}, {"v": [[1, 0, 200]]})["tp"] == 1
    assert official_score({"v": [[1, 0, 1000]]}, {"v": [[1, 0, 199]]})["tp"] == 0
    # IoU 0.3 = 3/10 exactly equals the threshold float 0.3 (and 0.30000000000000004 is not used)
    assert official_score({"v": [[1, 0, 1000]]}, {"v": [[1, 0, 300]]})["tp"] == 3


def test_wrong_class_never_matches():
    s = official_score({"v": [[1, 0, 1000]]}, {"v": [[2, 0, 1000]]})
    assert counts(s) == (0, N, N)
    assert s["f1"] == s["precision"] == s["recall"] == 0.0


def test_overlap_filter_drops_earlier_same_class_prediction():
    # sorted by start: [1,0,1000] then [1,500,2000]: same class and 1000 > 500 -> the first is dropped.
    gt = {"v": [[1, 0, 1000]]}
    pred = {"v": [[1, 500, 2000], [1, 0, 1000]]}  # given out of order on purpose
    s = official_score(gt, pred)
    # only [1,500,2000] is left for matching: IoU 500/2000 = 0.25 -> thresholds 0.2, 0.25
    assert s["tp"] == 2
    # fp counts the unfiltered predictions: 2 per threshold
    assert s["fp"] == 2 * N - 2
    assert s["fn"] == N - 2


def test_overlap_filter_details():
    rows = [[1, 0, 1000], [1, 1000, 2000], [2, 1500, 1800], [2, 1700, 1900], [1, 1950, 3000]]
    kept = filter_overlapping_predictions(rows).tolist()
    # touching (end == next.start) is not overlap; other-class neighbour shields; last is kept
    assert kept == [[1, 0, 1000], [1, 1000, 2000], [2, 1700, 1900], [1, 1950, 3000]]
    # the comparison is with the next prediction in start order, even if it has another class
    assert filter_overlapping_predictions([[1, 0, 1000], [2, 100, 200], [1, 300, 900]]).tolist() == [
        [1, 0, 1000], [2, 100, 200], [1, 300, 900]]
    assert filter_overlapping_predictions([]).shape == (0, 3)


def test_one_prediction_matches_two_gt_signs_fp_negative():
    gt = {"v": [[1, 0, 1000], [1, 100, 1000]]}
    pred = {"v": [[1, 0, 1000]]}
    s = official_score(gt, pred)
    # both GT signs match at every threshold (IoU 1.0 and 0.9): tp = 2 per threshold, 1 prediction
    assert s["tp"] == 2 * N
    assert s["fp"] == -N
    assert s["fn"] == 0
    assert s["precision"] == pytest.approx(2.0)  # the official quirk
    strict = strict_score(gt, pred)
    assert counts(strict) == (N, 0, N)


def test_missing_and_extra_videos():
    gt = {"a": [[1, 0, 1000]], "b": [[2, 0, 500], [3, 600, 900]], "c": []}
    pred = {"a": [[1, 0, 1000]], "zzz": [[1, 0, 1000]] * 5}
    s = official_score(gt, pred)
    # b missing: 2 fn per threshold; zzz ignored (no fp); c empty on both sides
    assert counts(s) == (N, 0, 2 * N)


def test_empty_cases():
    assert counts(official_score({}, {})) == (0, 0, 0)
    assert official_score({}, {})["f1"] == 0.0
    assert counts(official_score({"v": []}, {"v": [[1, 0, 10], [2, 5, 20]]})) == (0, 2 * N, 0)
    assert counts(official_score({"v": [[1, 0, 10]]}, {"v": []})) == (0, 0, N)
    assert counts(official_score({"v": [[1, 0, 10]]}, {})) == (0, 0, N)


def test_zero_length_intervals_do_not_crash():
    s = official_score({"v": [[1, 100, 100]]}, {"v": [[1, 100, 100]]})
    assert counts(s) == (0, N, N)


def test_hand_worked_mixture():
    gt = {"a": [[1, 0, 1000], [1, 2000, 3000]], "b": [[2, 0, 500]]}
    pred = {"a": [[1, 0, 3000], [1, 0, 1000], [1, 1900, 3000], [3, 1, 2]], "c": [[1, 1, 2]]}
    # a: [1,0,3000] dropped (next in stable start order is [1,0,1000], same class, overlapping);
    # GT1 IoU 1, GT2 IoU 1000/1100 -> both tp everywhere; 4 predictions. b: fn.
    assert counts(official_score(gt, pred)) == (2 * N, 2 * N, N)


def test_matches_a_plain_python_reference_on_random_data():
    rng = np.random.default_rng(0)
    gt, pred = {}, {}
    for v in range(30):
        n = rng.integers(0, 8)
        starts = rng.integers(0, 20000, n)
        gt[f"v{v}"] = [[int(rng.integers(0, 4)), int(s), int(s + rng.integers(1, 2000))] for s in starts]
        m = rng.integers(0, 10)
        starts = rng.integers(0, 20000, m)
        pred[f"v{v}"] = [[int(rng.integers(0, 4)), int(s), int(s + rng.integers(1, 2000))] for s in starts]

    def reference(gt, pred):
        tp = fp = fn = 0
        for t in np.arange(0.2, 0.8 + 0.05 - 0.0001, 0.05):
            for video, g in gt.items():
                p = sorted(pred.get(video, []), key=lambda r: r[1])
                filt = [r for i, r in enumerate(p) if i == len(p) - 1 or not (r[0] == p[i + 1][0] and r[2] > p[i + 1][1])]
                hit = 0
                for c, s, e in g:
                    for pc, ps, pe in filt:
                        if pc == c and max(0, min(e, pe) - max(s, ps)) / (max(e, pe) - min(s, ps)) >= t:
                            hit += 1
                            break
                tp += hit
                fp += len(p) - hit
                fn += len(g) - hit
        return tp, fp, fn

    assert counts(official_score(gt, pred)) == reference(gt, pred)


def test_strict_is_one_to_one_and_greedy_by_iou():
    gt = {"v": [[1, 0, 1000], [1, 900, 2000]]}
    pred = {"v": [[1, 0, 1000], [1, 0, 1900]]}
    # pairs by IoU: (g0,p0)=1.0, (g1,p1)=1000/2000=0.5, (g0,p1)=0.526, (g1,p0)=100/2000
    # greedy: g0-p0, then g0-p1 is blocked, then g1-p1 (0.5) -> 7 thresholds
    s = strict_score(gt, pred)
    assert counts(s) == (N + 7, 2 * N - N - 7, 2 * N - N - 7)
    assert s["fp"] >= 0


def test_score_report_adds_up():
    gt = {"a": [[1, 0, 1000], [2, 2000, 3000]], "b": [[2, 0, 500]]}
    pred = {"a": [[1, 0, 900], [2, 2100, 3000], [4, 0, 100]], "b": [[2, 250, 500]]}
    rep = score_report(gt, pred)
    total = official_score(gt, pred)
    assert rep["total"] == total
    for key in ("tp", "fp", "fn"):
        assert sum(r[key] for r in rep["per_class"]) == total[key]
        assert sum(r[key] for r in rep["per_threshold"]) == total[key]
    assert len(rep["per_threshold"]) == N
    by_class = {r["class"]: r for r in rep["per_class"]}
    assert by_class[4]["tp"] == 0 and by_class[4]["fp"] == N and by_class[4]["n_gt"] == 0
    # class 2 in b: IoU 0.5 -> hit at 7 thresholds; in a: IoU 0.9 -> 13
    assert by_class[2]["tp"] == 13 + 7
    # precision is non-increasing with the threshold here
    precisions = [r["precision"] for r in rep["per_threshold"]]
    assert precisions == sorted(precisions, reverse=True)


def _write_case(tmp_path):
    gt = {"a": [[1, 0, 1000], [1, 100, 1000]], "b": [[2, 0, 500]]}
    pred = {"a": [[1, 0, 1000]], "b": [[2, 0, 250]], "x": [[0, 0, 10]]}
    save_intervals_pkl(gt, tmp_path / "gt.pkl")
    save_intervals_pkl(pred, tmp_path / "pred.pkl")
    return gt, pred


def test_evaluate_main_pkl_txt_and_json(tmp_path, capsys):
    gt, pred = _write_case(tmp_path)
    save_intervals_txt(gt, tmp_path / "gt_txt")
    expected = official_score(gt, pred)
    s = evaluate_main(gt=str(tmp_path / "gt_txt"), pred=str(tmp_path / "pred.pkl"), json_path=str(tmp_path / "s.json"),
                      report=True)
    assert s == expected
    written = json.loads((tmp_path / "s.json").read_text())
    assert written == expected and set(written) == {"f1", "precision", "recall", "tp", "fp", "fn"}
    out = capsys.readouterr().out
    assert f"tp {expected['tp']}" in out and "class" in out
    strict = evaluate_main(gt=str(tmp_path / "gt.pkl"), pred=str(tmp_path / "pred.pkl"), strict=True)
    assert strict == strict_score(gt, pred) and strict["fp"] >= 0 > expected["fp"]


def test_evaluate_malformed_prediction_names_video_and_row(tmp_path):
    save_intervals_pkl({"a": [[1, 0, 1000]]}, tmp_path / "gt.pkl")
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump({"a": [[1, 0, 100], [1, 500, 200]]}, f)
    with pytest.raises(SystemExit, match=r"'a', row 1.*start_ms 500"):
        evaluate_run(["--gt", str(tmp_path / "gt.pkl"), "--pred", str(tmp_path / "bad.pkl")])


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_evaluate_refuses_malicious_pickle(tmp_path):
    save_intervals_pkl({"a": [[1, 0, 1000]]}, tmp_path / "gt.pkl")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"a": _Evil()}))
    with pytest.raises(SystemExit, match="refusing to unpickle"):
        evaluate_run(["--gt", str(tmp_path / "gt.pkl"), "--pred", str(tmp_path / "evil.pkl")])


def test_codalab_layout_end_to_end_via_script(tmp_path):
    gt, pred = _write_case(tmp_path)
    (tmp_path / "in" / "ref").mkdir(parents=True)
    (tmp_path / "in" / "res").mkdir(parents=True)
    save_intervals_pkl(gt, tmp_path / "in" / "ref" / "ground_truth.pkl")
    save_intervals_pkl(pred, tmp_path / "in" / "res" / "predictions.pkl")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--input", str(tmp_path / "in"),
         "--output", str(tmp_path / "out"), "--json", str(tmp_path / "s.json")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "out" / "scores.txt").read_text()
    assert text.startswith("avg_f1: ")
    assert float(text.split(":")[1]) == pytest.approx(official_score(gt, pred)["f1"])
    # strict flag through the script, and a missing file gives a clean non-zero exit
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--gt", str(tmp_path / "gt.pkl"),
         "--pred", str(tmp_path / "nope.pkl")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "nope.pkl" in proc.stderr and "Traceback" not in proc.stderr
