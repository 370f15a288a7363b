"""scripts/spot.py: videos in, signs out, against the frame-store path on the same videos."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import cv2
import numpy as np
import pytest

from signspot.datasets.frame_store import FrameStore
from signspot.datasets.store_writer import create_frame_store
from signspot.datasets.video_source import VideoSource, VideoSourceError
from signspot.decode import decode_all
from signspot.ensemble import ensemble_frame_scores
from signspot.formats.elan import read_eaf_annotations, score_tier_name
from signspot.formats.gt import load_intervals
from signspot.formats.vocabulary import Vocabulary
from signspot.inference import infer_store
from signspot.spot import spot_videos
from tests.test_elan import elan_problems
from tests.test_inference import LENGTHS, checkpoint_path  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]
BOX = [4, 4, 44, 44]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("spot")
    (root / "videos").mkdir()
    rng = np.random.default_rng(0)
    for name, n in LENGTHS.items():
        _smooth_video(root / "videos" / f"{name}.mp4", n, rng)
    (root / "boxes.json").write_text(json.dumps({name: BOX for name in LENGTHS}))
    return root


def _smooth_video(path, n, rng):
    """A textured background (smooth, as camera pictures are) with a bright square moving across it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (48, 48))
    base = cv2.GaussianBlur(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8), (7, 7), 2.0)
    for i in range(n):
        frame = base.copy()
        x = (3 * i) % 36
        frame[10:22, x : x + 12] = 255
        writer.write(frame)
    writer.release()


def _pil_jpeg(rgb):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG")
    return buf.getvalue()


def _quiet(*_):
    pass


def test_video_source_gives_the_crops_the_original_store_holds(videos):
    store_path = videos / "store_original"
    if not store_path.exists():
        create_frame_store(store_path, videos / "videos", videos / "boxes.json", workers=0, progress=False)
    store = FrameStore(store_path)
    source = VideoSource({v: videos / "videos" / f"{v}.mp4" for v in LENGTHS}, {v: BOX for v in LENGTHS})
    for video, n in LENGTHS.items():
        assert source.num_frames(video) == store.num_frames(video) == n
        direct, stored = source.read_frames(video, range(n)), store.read_frames(video, range(n))
        assert direct.shape == stored.shape == (n, 48, 48, 3)  # native crop: box + int(10%) margin, clipped
        # the store holds exactly these crops, JPEG-encoded as PIL does by default
        assert [_pil_jpeg(frame) for frame in direct] == store.read_jpegs(video, range(n))
        again = source.read_frames(video, [n - 1, 0, 1])  # going back reopens the video
        np.testing.assert_array_equal(again, direct[[n - 1, 0, 1]])


def test_spot_equals_the_store_path_up_to_jpeg(videos, checkpoint_path, tmp_path):  # noqa: F811
    out = tmp_path / "spotted"
    summary = spot_videos([videos / "videos"], [checkpoint_path], out, boxes=str(videos / "boxes.json"), workers=0,
                          progress=False, save_scores=True, log=_quiet, stride=1)  # the store path's stride
    assert summary["videos"] == sorted(LENGTHS)
    # the store path on the same videos: the original encoding, inference, ensemble, decoding
    store_path = videos / "store_original"
    if not store_path.exists():
        create_frame_store(store_path, videos / "videos", videos / "boxes.json", workers=0, progress=False)
    (scores_file,) = infer_store(str(store_path), [str(checkpoint_path)], save_dir=str(tmp_path / "res"),
                                 device="cpu", workers=0, progress=False)
    via_store = ensemble_frame_scores([scores_file], progress=False)
    agree, total, max_diff = 0, 0, 0.0
    for video in LENGTHS:
        direct = load_intervals_scores(out, video)
        stored = via_store[video]["scores"]
        max_diff = max(max_diff, float(np.abs(direct - stored).max()))
        agree += int((direct.argmax(1) == stored.argmax(1)).sum())
        total += len(stored)
    # JPEG (quality 75) of 48-px crops moves the probabilities by up to 0.05 here; the labels agree on 55/55 frames
    assert max_diff < 0.1
    assert agree / total >= 0.9, f"frame labels agree on {agree}/{total}"
    spotted = load_intervals(out / "predictions.pkl")
    assert set(spotted) == set(LENGTHS)
    if agree == total:
        assert spotted == decode_all(via_store)


def load_intervals_scores(out: Path, video: str) -> np.ndarray:
    from signspot.formats.scores import load_frame_scores

    return load_frame_scores(out / "scores" / video / "frame_scores.pkl")["videos"][video]["scores"]


def test_spot_outputs_agree_and_a_rerun_skips_done_videos(videos, checkpoint_path, tmp_path):  # noqa: F811
    out = tmp_path / "spotted"
    glosses = Vocabulary(["HELLO", "WORLD", "SIGN", "SPOT"])
    (tmp_path / "vocabulary.txt").write_text("\n".join(glosses.glosses) + "\n")
    common = dict(boxes=str(videos / "boxes.json"), vocabulary=str(tmp_path / "vocabulary.txt"), workers=0,
                  progress=False)
    spot_videos([str(videos / "videos" / "*.mp4")], [checkpoint_path.parent], out, log=_quiet, **common)
    predictions = load_intervals(out / "predictions.pkl")
    rows = list(csv.DictReader((out / "spotted.csv").open()))
    assert sum(map(len, predictions.values())) == len(rows) > 0
    for video, signs in predictions.items():
        eaf = out / f"{video}.eaf"
        assert elan_problems(eaf, media=True) == []
        assert [(glosses.gloss(c), s, e) for c, s, e in signs] == read_eaf_annotations(eaf)
        score_tier = ElementTree.parse(eaf).getroot().find(f"TIER[@TIER_ID='{score_tier_name('signspot')}']")
        scores = [float(v.text) for v in score_tier.iter("ANNOTATION_VALUE")]
        mine = [r for r in rows if r["video"] == video]
        assert [[int(r["class"]), int(r["start_ms"]), int(r["end_ms"])] for r in mine] == signs
        assert [r["gloss"] for r in mine] == [glosses.gloss(c) for c, _, _ in signs]
        assert np.allclose([float(r["score"]) for r in mine], scores, atol=1e-4)
        assert all(0 < s <= 1 for s in scores)
    assert json.loads((out / "boxes.json").read_text()) == {v: BOX for v in LENGTHS}
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.eaf")}
    lines = []
    spot_videos([videos / "videos"], [checkpoint_path], out, log=lines.append, **common)
    assert sum("done before, kept" in line for line in lines) == len(LENGTHS)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.eaf")} == before
    assert load_intervals(out / "predictions.pkl") == predictions
    lines = []  # another tier name: the ELAN files are written again
    spot_videos([videos / "videos"], [checkpoint_path], out, log=lines.append, tier="glosses", **common)
    assert not any("done before" in line for line in lines)
    assert [(glosses.gloss(c), s, e) for c, s, e in predictions["long_video"]] == read_eaf_annotations(
        out / "long_video.eaf", tier="glosses")


def test_spot_runs_the_openvino_engine_with_the_predictions_of_torch(videos, checkpoint_path, tmp_path):  # noqa: F811
    common = dict(boxes=str(videos / "boxes.json"), workers=0, progress=False, log=_quiet, save_scores=True)
    spot_videos([videos / "videos"], [checkpoint_path], tmp_path / "torch", **common)
    predictions = load_intervals(tmp_path / "torch" / "predictions.pkl")
    lines = []
    spot_videos([videos / "videos"], [checkpoint_path], tmp_path / "torch", engine="openvino",
                **{**common, "log": lines.append})
    assert not any("done before" in line for line in lines)  # another engine: the videos are spotted again
    assert load_intervals(tmp_path / "torch" / "predictions.pkl") == predictions
    spot_videos([videos / "videos"], [checkpoint_path], tmp_path / "ov", engine="openvino", **common)
    for video in LENGTHS:
        np.testing.assert_allclose(load_intervals_scores(tmp_path / "ov", video),
                                   load_intervals_scores(tmp_path / "torch", video), atol=1e-5)


def test_spot_without_boxes_estimates_them(videos, checkpoint_path, tmp_path):  # noqa: F811
    lines = []
    spot_videos([videos / "videos" / "long_video.mp4"], [checkpoint_path], tmp_path / "auto", workers=0,
                progress=False, log=lines.append)
    box = json.loads((tmp_path / "auto" / "boxes.json").read_text())["long_video"]
    assert len(box) == 4 and any("long_video: signer box" in line for line in lines)
    spot_videos([videos / "videos" / "long_video.mp4"], [checkpoint_path], tmp_path / "full", box="full", workers=0,
                progress=False, log=_quiet)
    assert json.loads((tmp_path / "full" / "boxes.json").read_text())["long_video"] == [0, 0, 48, 48]


def test_spot_bad_input_is_one_line(videos, checkpoint_path, tmp_path):  # noqa: F811
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    with pytest.raises(VideoSourceError):
        VideoSource({"broken": tmp_path / "broken.mp4"}, {})
    cases = {
        "broken.mp4": ["--videos", tmp_path / "broken.mp4", "--box", "full"],
        "no box": ["--videos", videos / "videos", "--boxes", tmp_path / "partial.json"],
        "vocabulary": ["--videos", videos / "videos" / "long_video.mp4", "--box", "full", "--vocabulary",
                       tmp_path / "short_vocabulary.txt"],
    }
    (tmp_path / "partial.json").write_text(json.dumps({"long_video": BOX}))
    (tmp_path / "short_vocabulary.txt").write_text("ONLY\nTWO\n")
    for expected, args in cases.items():
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / "spot.py"), *map(str, args), "--checkpoints",
                                 str(checkpoint_path), "--out", str(tmp_path / "out"), "--workers", "0",
                                 "--device", "cpu"],
                                capture_output=True, text=True, timeout=240, env={**os.environ, "SIGNSPOT_DEBUG": ""})
        last = [line for line in result.stderr.splitlines() if line.strip()][-1]
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert last.startswith("error:") and (expected in last or expected == "no box" and "no box for video" in last), last
    assert not (tmp_path / "out" / "predictions.pkl").exists()


# ------------------------------------------------------------------ the second probe: reruns into one folder
def test_a_later_run_never_takes_an_earlier_runs_file_names(videos, checkpoint_path, tmp_path):  # noqa: F811
    import shutil

    out, clips = tmp_path / "spotted", tmp_path / "clips"
    clips.mkdir()
    shutil.copy(videos / "videos" / "mid_video.mp4", clips / "a b.mp4")
    shutil.copy(videos / "videos" / "short_video.mp4", clips / "a_b.mp4")
    common = dict(box="full", workers=0, progress=False, log=_quiet)
    first = spot_videos([clips / "a b.mp4"], [checkpoint_path], out, **common)
    eaf_of_first = Path(first["eaf"][0]).read_bytes()
    second = spot_videos([clips / "a_b.mp4"], [checkpoint_path], out, **common)
    assert first["eaf"] != second["eaf"]
    assert Path(first["eaf"][0]).read_bytes() == eaf_of_first  # not overwritten
    assert set(load_intervals(out / "predictions.pkl")) == {"a b", "a_b"}
    assert [elan_problems(Path(eaf), media=True) for eaf in first["eaf"] + second["eaf"]] == [[], []]


def test_rerunning_one_video_keeps_every_other_videos_results(videos, checkpoint_path, tmp_path):  # noqa: F811
    out = tmp_path / "spotted"
    common = dict(workers=0, progress=False, log=_quiet)
    spot_videos([videos / "videos"], [checkpoint_path], out, boxes=str(videos / "boxes.json"), **common)
    predictions = load_intervals(out / "predictions.pkl")
    rows = (out / "spotted.csv").read_text().splitlines()
    boxes = json.loads((out / "boxes.json").read_text())
    boxes["mid_video"] = [2, 2, 40, 40]  # a hand correction of one video, then a rerun of that video alone
    (tmp_path / "corrected.json").write_text(json.dumps(boxes))
    spot_videos([videos / "videos" / "mid_video.mp4"], [checkpoint_path], out, boxes=str(tmp_path / "corrected.json"),
                **common)
    assert json.loads((out / "boxes.json").read_text()) == boxes
    after = load_intervals(out / "predictions.pkl")
    assert set(after) == set(predictions) and after["long_video"] == predictions["long_video"]
    kept = [row for row in rows if not row.startswith("mid_video,")]
    assert [row for row in (out / "spotted.csv").read_text().splitlines() if not row.startswith("mid_video,")] == kept


def test_spot_refuses_a_folder_holding_files_it_did_not_write(videos, checkpoint_path, tmp_path):  # noqa: F811
    from signspot.spot import SpotError

    out = tmp_path / "results"
    out.mkdir()
    (out / "predictions.pkl").write_bytes(b"the user's own predictions")
    with pytest.raises(SpotError, match="predictions.pkl.*did not write"):
        spot_videos([videos / "videos" / "mid_video.mp4"], [checkpoint_path], out, box="full", workers=0,
                    progress=False, log=_quiet)
    assert (out / "predictions.pkl").read_bytes() == b"the user's own predictions"


def test_spot_checks_the_tier_before_reading_anything(tmp_path, checkpoint_path):  # noqa: F811
    from signspot.formats.vocabulary import VocabularyError

    with pytest.raises(VocabularyError, match="--tier is empty"):
        spot_videos([tmp_path / "not_read_yet.mp4"], [checkpoint_path], tmp_path / "out", tier="", log=_quiet)
    assert not (tmp_path / "out").exists()


def test_a_glob_through_folder_links_to_itself_ends(videos, tmp_path):
    from signspot.datasets.video_source import find_video_files

    folder = tmp_path / "loop"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes((videos / "videos" / "mid_video.mp4").read_bytes())
    os.symlink(folder, folder / "again")
    os.symlink(folder, folder / "and_again")
    script = (f"from datasets.video_source import find_video_files; "
              f"print(sorted(find_video_files([{str(folder / '**' / '*.mp4')!r}], ('.mp4',))))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "['clip']", result.stderr
    assert find_video_files([str(folder / "*.mp4")], (".mp4",)) == {"clip": folder / "clip.mp4"}
