"""Score files, window aggregation, original results, ensembling, tuning and unsafe pickles."""

import os
import pickle

import numpy as np
import pytest
import torch

from signspot.cli.ensemble import main as ensemble_main
from signspot.cli.ensemble import run as ensemble_run
from signspot.decode import DecodeSettings, decode_all
from signspot.ensemble import ensemble_frame_scores, find_score_files
from signspot.formats.gt import load_intervals, save_intervals_pkl
from signspot.formats.safe_io import UnsafePickleError
from signspot.formats.scores import SCORES_FILENAME, ScoresFormatError, load_frame_scores, save_frame_scores
from signspot.metric import official_score
from signspot.original_results import load_original_results
from signspot.scoring import FrameScoreAccumulator
from signspot.tuning import tune_decode_settings

HEADS = {"x4": 4, "x8": 8, "x16": 16, "x32": 32, "x": 32}
C1 = 7  # 6 classes + background


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def aggregate_window_logits(starts, logits, num_frames, window):
    """The accumulator fed one batch: (num_frames, C+1) frame scores."""
    acc = FrameScoreAccumulator(num_frames, C1, window)
    acc.add(starts, logits)
    return acc.result()


def random_logits(n_windows, seed=0, window=32):
    g = torch.Generator().manual_seed(seed)
    return {h: torch.randn(n_windows, t * window // 32, C1, generator=g) * 3 for h, t in HEADS.items()}


def direct_frame_scores(starts, logits, num_frames, window=32, weights=None):
    """The SPEC's aggregation written out frame by frame with torch ops."""
    weights = weights or {h: 1 / len(logits) for h in logits}
    total = torch.zeros(num_frames, C1, dtype=torch.float64)
    count = torch.zeros(num_frames, dtype=torch.float64)
    for i, s in enumerate(starts):
        window_scores = torch.zeros(window, C1, dtype=torch.float64)
        for h, w in weights.items():
            prob = torch.softmax(logits[h][i].double(), dim=-1)  # (T_h, C1)
            up = torch.nn.functional.interpolate(prob.T[None], size=window, mode="nearest")[0].T
            window_scores += w * up
        for j in range(window):
            if s + j < num_frames:
                total[s + j] += window_scores[j]
                count[s + j] += sum(weights.values())
    return (total / count[:, None]).numpy()


# --------------------------------------------------------------------------- aggregation


def test_aggregation_equals_direct_computation_stride1():
    num_frames = 50
    starts = np.arange(num_frames - 32 + 1)
    logits = random_logits(len(starts))
    got = aggregate_window_logits(starts, logits, num_frames, 32)
    assert got.shape == (num_frames, C1) and got.dtype == np.float32
    np.testing.assert_allclose(got, direct_frame_scores(starts, logits, num_frames), atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_accumulator_in_batches_with_stride_weights_and_padding():
    num_frames = 45  # stride 4: starts 0..12 cover frames 0..44 with the last window padded
    starts = np.arange(0, num_frames, 4)
    starts = starts[starts + 32 - 4 < num_frames + 4]
    logits = random_logits(len(starts), seed=3)
    weights = {"x4": 0.1, "x8": 0.2, "x16": 0.3, "x32": 0.0, "x": 0.4}
    acc = FrameScoreAccumulator(num_frames, C1, 32, weights)
    for lo in range(0, len(starts), 3):  # uneven batches
        acc.add(torch.as_tensor(starts[lo:lo + 3]), {h: v[lo:lo + 3] for h, v in logits.items()})
    np.testing.assert_allclose(acc.result(), direct_frame_scores(starts, logits, num_frames, weights=weights), atol=1e-6)
    assert acc.num_windows == len(starts)


def test_duplicate_and_unordered_starts_in_one_batch():
    # e.g. a flip-TTA pass adding the same windows twice: every copy counts
    starts = np.array([5, 0, 8, 5, 2, 0])
    logits = random_logits(len(starts), seed=4)
    got = aggregate_window_logits(starts, logits, 40, 32)
    np.testing.assert_allclose(got, direct_frame_scores(starts, logits, 40), atol=1e-6)


def test_short_video_single_padded_window():
    logits = random_logits(1, seed=5)
    got = aggregate_window_logits([0], logits, 10, 32)
    np.testing.assert_allclose(got, direct_frame_scores([0], logits, 10), atol=1e-6)


def test_uncovered_frames_and_bad_shapes_are_errors():
    acc = FrameScoreAccumulator(40, C1, 32)
    acc.add([0], random_logits(1))
    with pytest.raises(ValueError, match="covered by no window"):
        acc.result()
    with pytest.raises(ValueError, match="expected logits"):
        acc.add([1, 2], random_logits(1))
    with pytest.raises(ValueError, match="window starts"):
        acc.add([40], random_logits(1))


# --------------------------------------------------------------------------- score files


def _videos(rng, names=("a", "b"), frames=(60, 80), fps=25.0):
    out = {}
    for name, n in zip(names, frames):
        s = rng.random((n, C1)).astype(np.float32)
        out[name] = {"scores": s / s.sum(1, keepdims=True), "fps": fps, "num_frames": n}
    return out


def test_save_load_roundtrip(tmp_path):
    videos = _videos(np.random.default_rng(0))
    path = tmp_path / "run" / SCORES_FILENAME
    save_frame_scores(path, videos, checkpoint="ck.pt", head_weights={"x": 1.0}, window=32, stride=1,
                      extra={"flip_tta": False})
    data = load_frame_scores(path)
    assert data["checkpoint"] == "ck.pt" and data["window"] == 32 and data["stride"] == 1
    assert data["head_weights"] == {"x": 1.0} and data["extra"] == {"flip_tta": False}
    for name, v in videos.items():
        got = data["videos"][name]
        assert got["scores"].dtype == np.float32 and got["num_frames"] == v["num_frames"] and got["fps"] == 25.0
        np.testing.assert_array_equal(got["scores"], v["scores"].astype(np.float32))  # stored exactly


def test_save_rejects_inconsistent_data_and_leaves_nothing(tmp_path):
    videos = _videos(np.random.default_rng(0))
    videos["b"]["num_frames"] = 3
    with pytest.raises(ScoresFormatError, match="'b'.*num_frames is 3"):
        save_frame_scores(tmp_path / "s.pkl", videos, checkpoint="c", head_weights=None, window=32, stride=1)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ScoresFormatError, match="extra"):
        save_frame_scores(tmp_path / "s.pkl", _videos(np.random.default_rng(0)), checkpoint="c", head_weights=None,
                          window=32, stride=1, extra={"store": tmp_path})
    assert not list(tmp_path.iterdir())


def test_load_rejects_other_pickles(tmp_path):
    save_intervals_pkl({"a": [[1, 0, 10]]}, tmp_path / "gt.pkl")
    with pytest.raises(ScoresFormatError, match="not a per-frame score file"):
        load_frame_scores(tmp_path / "gt.pkl")
    bad = {"format": "signspot-frame-scores", "version": 1, "checkpoint": "c", "window": 32, "stride": 1,
           "videos": {"a": {"scores": np.zeros((5, 3), np.float16), "fps": 0.0, "num_frames": 5}}}
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump(bad, f)
    with pytest.raises(ScoresFormatError, match="'a': fps must be positive"):
        load_frame_scores(tmp_path / "bad.pkl")


def test_malicious_pickles_are_refused_by_every_loader(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"a": _Evil()}))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|nt.system"):
        load_intervals(evil)
    with pytest.raises(UnsafePickleError):
        load_frame_scores(evil)
    with pytest.raises(UnsafePickleError):
        load_original_results(evil)
    # a tensor whose storage bytes hide a code-running pickle: torch.load(weights_only=True) refuses it
    inner = pickle.dumps(_Evil(), protocol=2)  # the protocol torch's own storage pickles use
    import torch.storage

    class EvilStorage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (inner,))

    (tmp_path / "dict_results.pkl").write_bytes(pickle.dumps({"v": {"x": EvilStorage()}}))
    with pytest.raises(UnsafePickleError, match="posix.system|nt.system"):
        load_original_results(tmp_path / "dict_results.pkl")
    # the same through torch.save (zip format): torch.load(weights_only=True) refuses it too
    (tmp_path / "zip").mkdir()
    torch.save({"v": {"x": _Evil()}}, tmp_path / "zip" / "dict_results.pkl")
    with pytest.raises(UnsafePickleError, match="system"):
        load_original_results(tmp_path / "zip" / "dict_results.pkl")


# --------------------------------------------------------------------------- original results


def write_original_results(path, videos_logits):
    """What the original wrote: a plain pickle of {video: {head: tensor (N, T_head, C+1)}}."""
    with open(path, "wb") as f:
        pickle.dump(videos_logits, f)


def test_reading_original_dict_results(tmp_path):
    logits_a = random_logits(20, seed=1)
    # one video as whole tensors, one as a list of per-batch tensors (batch 8 -> 8, 8, 4)
    logits_b = {h: list(torch.split(v, 8)) for h, v in random_logits(20, seed=2).items()}
    write_original_results(tmp_path / "dict_results.pkl", {"a": logits_a, "b": logits_b})
    data = load_original_results(tmp_path / "dict_results.pkl")
    a = data["videos"]["a"]
    assert a["fps"] == 25.0 and a["num_frames"] == 20 + 32 - 1
    np.testing.assert_allclose(a["scores"], direct_frame_scores(np.arange(20), logits_a, 51), atol=1e-6)
    whole_b = {h: torch.cat(v) for h, v in logits_b.items()}
    np.testing.assert_allclose(data["videos"]["b"]["scores"], direct_frame_scores(np.arange(20), whole_b, 51), atol=1e-6)
    # the same dict written with torch.save is read through torch.load(weights_only=True)
    torch.save({"a": logits_a}, tmp_path / "saved.pkl")
    np.testing.assert_array_equal(load_original_results(tmp_path / "saved.pkl")["videos"]["a"]["scores"], a["scores"])


# --------------------------------------------------------------------------- ensembling


def test_ensemble_averages_two_files_and_mixes_formats(tmp_path):
    rng = np.random.default_rng(4)
    v1, v2 = _videos(rng, fps=30.0), _videos(rng, fps=30.0)
    for i, v in enumerate((v1, v2)):
        save_frame_scores(tmp_path / "test" / f"run{i}_fold{i}_" / SCORES_FILENAME, v, checkpoint=f"c{i}",
                          head_weights=None, window=32, stride=1)
    paths = find_score_files(tmp_path / "test")
    assert len(paths) == 2
    ens = ensemble_frame_scores(paths, progress=False)
    for name in ("a", "b"):
        expected = (v1[name]["scores"].astype(np.float32).astype(np.float64)
                    + v2[name]["scores"].astype(np.float32).astype(np.float64)) / 2
        np.testing.assert_allclose(ens[name]["scores"], expected, atol=1e-6)
        assert ens[name]["fps"] == 30.0 and ens[name]["num_files"] == 2
    # exclusion by substring and by glob
    assert len(find_score_files(tmp_path / "test", ["_fold1_"])) == 1
    assert len(find_score_files(tmp_path / "test", ["run0*"])) == 1

    # an original dict_results.pkl (fewer frames: 51) joins: frames past 51 average the others only
    logits = random_logits(20, seed=9)
    (tmp_path / "test" / "old").mkdir()
    write_original_results(tmp_path / "test" / "old" / "dict_results.pkl", {"a": logits})
    with pytest.warns(UserWarning, match="1 videos are missing from some score files"):  # 'b' is not in the old file
        mixed = ensemble_frame_scores(find_score_files(tmp_path / "test"), progress=False)
    old = direct_frame_scores(np.arange(20), logits, 51)
    s1, s2 = (v["a"]["scores"].astype(np.float32).astype(np.float64) for v in (v1, v2))
    np.testing.assert_allclose(mixed["a"]["scores"][:51], (s1[:51] + s2[:51] + old) / 3, atol=1e-6)
    np.testing.assert_allclose(mixed["a"]["scores"][51:], (s1[51:] + s2[51:]) / 2, atol=1e-6)
    assert mixed["a"]["fps"] == 30.0  # the new files' fps wins over the original's assumed 25


def synthetic_val(rng, n_videos=6, frames=400, noise=0.6):
    """Noisy per-frame scores around a known ground truth (flickery, so post-processing helps)."""
    gt, videos = {}, {}
    for v in range(n_videos):
        labels = np.full(frames, C1 - 1)
        rows = []
        t = 10
        while t < frames - 40:
            length = int(rng.integers(12, 30))
            cls = int(rng.integers(0, C1 - 1))
            labels[t:t + length] = cls
            rows.append([cls, int(t / 25 * 1000), int((t + length - 1) / 25 * 1000)])
            t += length + int(rng.integers(8, 30))
        scores = np.eye(C1)[labels] + rng.random((frames, C1)) * noise * 2
        videos[f"v{v}"] = {"scores": (scores / scores.sum(1, keepdims=True)).astype(np.float32), "fps": 25.0,
                           "num_frames": frames}
        gt[f"v{v}"] = rows
    return gt, videos


def test_tuning_never_lowers_validation_f1():
    rng = np.random.default_rng(7)
    gt, videos = synthetic_val(rng)
    original = official_score(gt, decode_all(videos, DecodeSettings()))["f1"]
    grid = {"smoothing": [3, 7], "background_margin": [0.05], "merge_gap": [2], "min_length": [4]}
    best, rows = tune_decode_settings(videos, gt, grid, progress=False)
    tuned = official_score(gt, decode_all(videos, best))["f1"]
    assert tuned >= original
    assert tuned > original  # noisy flickering scores: smoothing must help here
    assert any(DecodeSettings(**{k: r[k] for k in DecodeSettings().to_dict()}).is_original() for r in rows)
    assert len(rows) == 3 * 2 * 2 * 2  # the original value of each setting was added to the grid
    # with a grid that only makes things worse, the original setting is kept
    best_bad, _ = tune_decode_settings(videos, gt, {"min_length": [200]}, progress=False)
    assert best_bad.is_original()


def test_ensemble_main_tune_then_apply_and_evaluate(tmp_path, capsys):
    rng = np.random.default_rng(8)
    gt, videos = synthetic_val(rng, n_videos=4)
    save_intervals_pkl(gt, tmp_path / "gt.pkl")
    save_frame_scores(tmp_path / "val" / "r1" / SCORES_FILENAME, videos, checkpoint="c", head_weights=None,
                      window=32, stride=1)
    summary = ensemble_main(results_dir=str(tmp_path / "val"), out=str(tmp_path / "val_pred.pkl"),
                            tune_on=str(tmp_path / "gt.pkl"), save_decode_config=str(tmp_path / "dc.json"),
                            evaluate=str(tmp_path / "gt.pkl"), save_scores=str(tmp_path / "ens.pkl"), quiet=True)
    assert summary["tuned_f1"] >= summary["original_f1"]
    assert summary["score"]["f1"] == pytest.approx(summary["tuned_f1"])
    settings = DecodeSettings.load_json(tmp_path / "dc.json")
    assert settings.to_dict() == summary["tuned"]
    pred = load_intervals(tmp_path / "val_pred.pkl")
    assert official_score(gt, pred)["f1"] == pytest.approx(summary["tuned_f1"])
    assert set(load_frame_scores(tmp_path / "ens.pkl")["videos"]) == set(videos)
    # apply the saved settings, overriding one of them from the command line
    again = ensemble_main(results_dir=str(tmp_path / "val"), out=str(tmp_path / "p2.pkl"),
                          decode_config=str(tmp_path / "dc.json"), min_length=1, quiet=True)
    assert again["settings"] == {**settings.to_dict(), "min_length": 1}
    with pytest.raises(SystemExit, match="no frame_scores.pkl"):
        ensemble_run(["--results-dir", str(tmp_path / "val"), "--out", str(tmp_path / "p3.pkl"), "--exclude", "r1",
                      "--quiet"])
    assert not (tmp_path / "p3.pkl").exists()
