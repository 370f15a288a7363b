"""Decoding per-frame scores into signs: the original rule and each post-processing option."""

import json

import numpy as np
import pytest

from signspot.decode import DecodeSettings, decode_frame_scores, smooth_scores

C = 5  # 4 classes + background (index 4)
BG = C - 1


def onehot(labels, hi=0.9):
    """Scores with ``hi`` on each frame's label, the rest spread evenly."""
    labels = np.asarray(labels)
    s = np.full((len(labels), C), (1 - hi) / (C - 1))
    s[np.arange(len(labels)), labels] = hi
    return s


def original_reference(scores, fps):
    """A direct frame-by-frame transcription of the original rule (no numpy tricks): the scores
    get one all-zero row after the last frame, forced to background, then runs are read off."""
    scores = np.concatenate([scores, np.zeros((1, scores.shape[1]))])
    labels = [int(np.argmax(row)) for row in scores]
    labels[-1] = scores.shape[1] - 1
    out, start = [], None
    for i, lab in enumerate(labels):
        if start is not None and lab != labels[start]:
            if labels[start] != scores.shape[1] - 1:
                s, e = int(start / fps * 1000), int((i - 1) / fps * 1000)
                if s != e:
                    out.append([labels[start], s, e])
            start = i
        elif start is None:
            start = i
    return out


def test_basic_runs_fps25():
    labels = [BG, 1, 1, 1, BG, 2, 2, BG, BG]
    assert decode_frame_scores(onehot(labels), 25.0) == [[1, 40, 120], [2, 200, 240]]


def test_run_ending_at_the_last_frame_is_closed_by_the_padding_row():
    labels = [BG, BG, 3, 3, 3, 3]
    # the padding row after the last frame is background: the run is frames 2..5, all of it
    assert decode_frame_scores(onehot(labels), 25.0) == [[3, 80, 200]]
    assert decode_frame_scores(onehot([BG, 0, 0]), 25.0) == [[0, 40, 80]]  # two frames: kept
    # a run that is only the last frame has equal ms ends and is dropped, as any one-frame run
    assert decode_frame_scores(onehot([BG, BG, 0]), 25.0) == []
    # the last frame is decoded like any other: a different class there is its own run
    assert decode_frame_scores(onehot([1, 1, 1, 2, 2]), 25.0) == [[1, 0, 80], [2, 120, 160]]
    assert decode_frame_scores(onehot([2, 2]), 25.0) == [[2, 0, 40]]  # a whole video of one sign


def test_single_frame_runs_are_dropped_when_ms_equal():
    assert decode_frame_scores(onehot([BG, 2, BG, BG]), 25.0) == []
    # two frames at 25 fps: 40 ms apart -> kept
    assert decode_frame_scores(onehot([BG, 2, 2, BG]), 25.0) == [[2, 40, 80]]


def test_real_fps_30_vs_25():
    labels = [BG, 1, 1, 1, 1, BG]
    assert decode_frame_scores(onehot(labels), 30.0) == [[1, int(1 / 30 * 1000), int(4 / 30 * 1000)]]
    assert decode_frame_scores(onehot(labels), 30.0) == [[1, 33, 133]]
    assert decode_frame_scores(onehot(labels), 25.0) == [[1, 40, 160]]
    # at a very high fps, consecutive frames can map to the same millisecond
    assert decode_frame_scores(onehot([BG, 1, 1, BG]), 3000.0) == []


def test_all_background_and_degenerate_lengths():
    assert decode_frame_scores(onehot([BG] * 50), 25.0) == []
    assert decode_frame_scores(np.zeros((0, C)), 25.0) == []
    assert decode_frame_scores(onehot([1]), 25.0) == []
    with pytest.raises(ValueError):
        decode_frame_scores(np.zeros(10), 25.0)


def test_adjacent_different_classes_and_ties():
    labels = [1, 1, 2, 2, 2, BG]
    assert decode_frame_scores(onehot(labels), 25.0) == [[1, 0, 40], [2, 80, 160]]
    # a tie between a class and background goes to the class (argmax picks the first index)
    s = np.zeros((4, C))
    s[:, BG] = 1.0
    s[1:3, 0] = s[1:3, BG] = 0.5
    assert decode_frame_scores(s, 25.0) == [[0, 40, 80]]


def test_matches_reference_on_random_scores():
    rng = np.random.default_rng(1)
    for fps in (25.0, 29.97, 30.0):
        # sticky random labels so runs of several lengths appear
        labels = np.repeat(rng.integers(0, C, 400), rng.integers(1, 6, 400))
        scores = onehot(labels) + rng.random((len(labels), C)) * 0.05
        assert decode_frame_scores(scores, fps) == original_reference(scores, fps)


def test_output_is_plain_ints():
    rows = decode_frame_scores(onehot([BG, 1, 1, BG]), 25.0)
    assert all(type(v) is int for row in rows for v in row)


def test_smoothing_removes_flicker():
    labels = [BG] * 3 + [1] * 10 + [BG] + [1] * 10 + [BG] * 3
    s = onehot(labels)
    assert len(decode_frame_scores(s, 25.0)) == 2
    # frames 3..23 (the edges of the smoothed run need 3 of 5 sign frames)
    assert decode_frame_scores(s, 25.0, smoothing=5) == [[1, 120, 920]]


def test_smooth_scores_is_a_centred_moving_average():
    x = np.arange(10, dtype=float)[:, None] * np.ones((1, 2))
    y = smooth_scores(x, 3)
    assert y[5, 0] == pytest.approx(5.0)
    assert y[0, 0] == pytest.approx(0.5)  # edge: mean of frames 0 and 1
    assert smooth_scores(x, 1) is x


def test_min_length():
    labels = [BG, 1, 1, BG, 2, 2, 2, 2, BG, BG]
    assert decode_frame_scores(onehot(labels), 25.0, min_length=3) == [[2, 160, 280]]
    assert decode_frame_scores(onehot(labels), 25.0, min_length=2) == [[1, 40, 80], [2, 160, 280]]


def test_merge_gap():
    labels = [1, 1, BG, BG, 1, 1, BG, 2, 2, BG, BG, BG, 2, 2, BG]
    assert decode_frame_scores(onehot(labels), 25.0) == [[1, 0, 40], [1, 160, 200], [2, 280, 320], [2, 480, 520]]
    # gap of 2 background frames merges the class-1 runs; the class-2 gap is 3
    assert decode_frame_scores(onehot(labels), 25.0, merge_gap=2) == [[1, 0, 200], [2, 280, 320], [2, 480, 520]]
    assert decode_frame_scores(onehot(labels), 25.0, merge_gap=3) == [[1, 0, 200], [2, 280, 520]]
    # a run of another class in between prevents merging
    labels = [1, 1, 2, 2, 1, 1, BG]
    assert len(decode_frame_scores(onehot(labels), 25.0, merge_gap=5)) == 3
    # merging happens before the minimum length
    labels = [BG, 1, 1, BG, 1, 1, BG, BG]
    assert decode_frame_scores(onehot(labels), 25.0, merge_gap=1, min_length=4) == [[1, 40, 200]]


def test_background_margin():
    s = np.zeros((6, C))
    s[:, BG] = 0.4
    s[1:5, 2] = [0.45, 0.6, 0.7, 0.49]
    assert decode_frame_scores(s, 25.0) == [[2, 40, 160]]
    assert decode_frame_scores(s, 25.0, background_margin=0.1) == [[2, 80, 120]]
    assert decode_frame_scores(s, 25.0, background_margin=0.5) == []
    # a negative margin favours signs
    s[1:5, 2] = 0.35
    assert decode_frame_scores(s, 25.0, background_margin=-0.1) == [[2, 40, 160]]


def test_settings_json_roundtrip_and_validation(tmp_path):
    st = DecodeSettings(smoothing=5, min_length=3, merge_gap=2, background_margin=0.1)
    st.save_json(tmp_path / "d.json")
    assert DecodeSettings.load_json(tmp_path / "d.json") == st
    assert json.loads((tmp_path / "d.json").read_text()) == st.to_dict()
    # smoothing 5 pulls frames 0 and 5 into the run (each one's window holds two sign frames of three)
    assert decode_frame_scores(onehot([BG, 1, 1, 1, 1, BG]), 25.0, **st.to_dict()) == [[1, 0, 200]]
    assert DecodeSettings().is_original() and not st.is_original()
    with pytest.raises(ValueError, match="unknown decode settings"):
        DecodeSettings.from_dict({"smothing": 3})
    with pytest.raises(ValueError, match="min_length"):
        DecodeSettings(min_length=-1)
    with pytest.raises(ValueError, match="smoothing"):
        DecodeSettings(smoothing=2.5)
