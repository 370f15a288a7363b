"""Careless and hostile input: each defect found by trying every command with bad input."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from signspot import train as train_mod
from signspot.run_dir import RunDir, RunDirError
from tests.test_train import _overrides, _run, tiny_data  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ 1. --no-resume on a finished run
def test_fresh_run_never_replaces_a_run(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    _run(tiny_data, run_dir, **{"train.epochs": 1})
    before = _files(run_dir)
    with pytest.raises(RunDirError, match="holds a training run.*--move-aside"):
        _run(tiny_data, run_dir, **{"train.epochs": 1, "train.resume": False, "train.seed": 4})
    assert _files(run_dir) == before  # not a byte changed
    # the explicit flag moves the old run aside, whole, and starts afresh
    train_mod.run_training(str(ROOT / "config" / "demo_config.py"),
                           _overrides(tiny_data, run_dir, **{"train.epochs": 1, "train.seed": 4}),
                           resume=False, move_aside=True)
    assert _files(tmp_path / "run.old-1") == before
    assert RunDir(run_dir).read_history()[0]["epoch"] == 1


def test_main_script_refuses_a_fresh_run_over_an_old_one(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    _run(tiny_data, run_dir, **{"train.epochs": 1, "eval.every_epochs": 0})
    cmd = [sys.executable, str(ROOT / "main.py"), "--config", str(ROOT / "config" / "demo_config.py"), "--no-resume"]
    for item in _overrides(tiny_data, run_dir, **{"train.epochs": 1, "eval.every_epochs": 0}):
        cmd += ["--set", item]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert result.returncode == 1
    assert "holds a training run" in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------ 3. a failed call writes nothing
def test_failed_call_leaves_the_run_folder_alone(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    _run(tiny_data, run_dir, **{"train.epochs": 1, "eval.every_epochs": 0})
    config_before = (run_dir / "config.json").read_bytes()
    with pytest.raises(FileNotFoundError, match="no such frame store"):
        _run(tiny_data, run_dir, **{"train.epochs": 2, "data.frame_store": str(tmp_path / "nowhere")})
    assert (run_dir / "config.json").read_bytes() == config_before
    with pytest.raises(FileNotFoundError):
        _run(tiny_data, tmp_path / "new", **{"data.frame_store": str(tmp_path / "nowhere")})
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------ 7. an epoch's saves are one unit
def test_crash_while_saving_the_best_checkpoint_is_completed_on_resume(tiny_data, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    real_save = train_mod.save_checkpoint

    def full_disk_at_epoch_2(path, **kwargs):
        if kwargs["epoch"] == 2 and Path(path).name.startswith("best_"):
            raise OSError(28, "No space left on device", str(path))
        return real_save(path, **kwargs)

    monkeypatch.setattr(train_mod, "save_checkpoint", full_disk_at_epoch_2)
    with pytest.raises(OSError, match="No space left"):
        _run(tiny_data, run_dir)
    monkeypatch.setattr(train_mod, "save_checkpoint", real_save)
    _run(tiny_data, run_dir)
    history = RunDir(run_dir).read_history()
    assert [row["epoch"] for row in history] == [1, 2]
    best = {epoch for _, epoch, _ in RunDir(run_dir).best_checkpoints()}
    assert best == {1, 2}  # keep_best 3: both validated epochs have their checkpoint
    # the completed run equals an uninterrupted one
    _run(tiny_data, tmp_path / "straight")
    a = torch.load(run_dir / "ckpts" / "latest_checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "straight" / "ckpts" / "latest_checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ 2. inference outputs never collide
def test_inference_outputs_of_distinct_checkpoints_never_collide(tmp_path):
    from signspot.formats.scores import save_frame_scores
    from signspot.inference import output_path

    a = tmp_path / "runs" / "2fold_neg0" / "maxfix_neg0_fold0" / "ckpts" / "best_checkpoint_5_0.5000.pt"
    b = tmp_path / "runs" / "3fold_neg0" / "maxfix_neg0_fold0" / "ckpts" / "best_checkpoint_5_0.5000.pt"
    first = output_path(tmp_path / "res", "data/test_lmdb", a)
    videos = {"v": {"scores": np.full((3, 2), 0.5), "fps": 25.0, "num_frames": 3}}
    save_frame_scores(first, videos, checkpoint=str(a.resolve()), head_weights=None, window=32, stride=1)
    second = output_path(tmp_path / "res", "data/test_lmdb", b)
    assert second != first and second.parent.parent == first.parent.parent
    assert second.parent.name.startswith("maxfix_neg0_fold0_best_checkpoint_5_0.5000-")
    assert output_path(tmp_path / "res", "data/test_lmdb", a) == first  # a rerun of the same checkpoint
    save_frame_scores(second, videos, checkpoint=str(b.resolve()), head_weights=None, window=32, stride=1)
    assert output_path(tmp_path / "res", "data/test_lmdb", b) == second


# ------------------------------------------------------------------ 4. no stale folds
def _fold_rows(n_videos: int) -> dict:
    return {f"v{i}": [{"video": f"v{i}", "label": i % 3, "start_frame": 2, "end_frame": 9, "fcount": 40}]
            for i in range(n_videos)}


def test_a_split_with_fewer_folds_replaces_the_old_one_whole(tmp_path):
    from signspot.datasets.folds import FoldError, write_split

    out = tmp_path / "folds" / "original_split"
    write_split(out, _fold_rows(8), 4, num_classes=3)
    assert len(list(out.glob("train_*.csv"))) == 4
    write_split(out, _fold_rows(8), 2, num_classes=3)
    assert sorted(p.name for p in out.iterdir()) == ["folds.json", "train_0.csv", "train_1.csv",
                                                     "valid_0.csv", "valid_1.csv"]
    assert [p.name for p in out.parent.iterdir()] == ["original_split"]  # no temporary folder left
    (out / "notes.txt").write_text("mine")
    before = _files(out)
    with pytest.raises(FoldError, match="notes.txt"):
        write_split(out, _fold_rows(8), 3, num_classes=3)
    assert _files(out) == before


# ------------------------------------------------------------------ 5. file names from data stay inside --out
def test_visualize_names_from_data_stay_inside_out(tmp_path):
    from signspot.cli.visualize import main as visualize_main
    from signspot.formats.gt import save_intervals_pkl

    names = ["/../../../escape", "a/b", "a_b", "..", "ok"]
    save_intervals_pkl({name: [[0, 40, 400]] for name in names}, tmp_path / "gt.pkl")
    out = tmp_path / "deep" / "out"
    written = visualize_main(gt=str(tmp_path / "gt.pkl"), out=str(out))
    timelines = [Path(p) for p in written if Path(p).name.startswith("timeline_")]
    assert len(timelines) == len(names) == len({p.name for p in timelines})  # a_b and a/b do not collide
    assert all(p.resolve().parent == out.resolve() for p in timelines)
    assert not (tmp_path / "escape.png").exists() and not list(tmp_path.glob("timeline_*"))


def test_txt_ground_truth_refuses_a_video_name_that_is_a_path(tmp_path):
    from signspot.formats.gt import MalformedIntervalsError, save_intervals_txt

    with pytest.raises(MalformedIntervalsError, match="cannot be a file name"):
        save_intervals_txt({"../../x": [[0, 0, 40]]}, tmp_path / "txt")
    assert not (tmp_path / "x.txt").exists()


# ------------------------------------------------------------------ 8. a box outside the frame
@pytest.mark.parametrize("box", [[97, 0, 300, 72], [1e300, 0, 1e308, 10], [0, 80, 50, 90], [-50, 0, -1, 10]])
def test_a_box_wholly_outside_the_frame_is_refused(box):
    from signspot.datasets.video_reader import crop_box, parse_box

    with pytest.raises(ValueError, match="outside the 96x72 frame"):
        crop_box(parse_box(box), 96, 72)


# ------------------------------------------------------------------ 10. torch.save'd original results
def test_original_results_written_with_torch_save_are_read(tmp_path):
    from signspot.original_results import load_any_scores

    logits = {"x": torch.randn(5, 32, 7), "x4": torch.randn(5, 4, 7)}
    torch.save({"video": logits}, tmp_path / "dict_results.pkl")
    data = load_any_scores(tmp_path / "dict_results.pkl")
    scores = data["videos"]["video"]["scores"]
    assert scores.shape == (36, 7) and np.allclose(scores.sum(1), 1.0, atol=1e-5)


# ------------------------------------------------------------------ 9. a truncated data.mdb
def test_a_truncated_store_is_named_not_a_sigbus(tmp_path):
    from signspot.datasets.frame_store import FrameStore, FrameStoreError
    from signspot.datasets.store_writer import create_frame_store
    from tests.test_frame_store import make_dataset

    vids, bbox = make_dataset(tmp_path, {"a": 40, "b": 40})
    create_frame_store(tmp_path / "store", vids, bbox, size=32, workers=0, progress=False)
    data = tmp_path / "store" / "data.mdb"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from datasets.frame_store import FrameStore\n"
            "s = FrameStore(%r)\n"
            "[s.read_frames(v, range(s.num_frames(v))) for v in s.videos]\n") % (str(ROOT), str(tmp_path / "store"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "damaged" in result.stderr and "data.mdb" in result.stderr  # not -7 (SIGBUS)
    with pytest.raises(FrameStoreError, match="incomplete copy"):
        store = FrameStore(tmp_path / "store")
        store.read_frames(store.videos[0], [0])


# ------------------------------------------------------------------ 6. a video replaced before a resume
def test_resume_encodes_a_replaced_video_again(tmp_path, monkeypatch):
    import signspot.datasets.store_writer as writer
    from signspot.datasets.frame_store import FrameStore
    from tests.test_frame_store import make_dataset, make_video

    vids, bbox = make_dataset(tmp_path, {"a": 40, "b": 50})
    real_encode = writer._encode_video

    def interrupted(task):
        for i, message in enumerate(real_encode(task)):
            if task.video == "b" and i == 1:
                raise KeyboardInterrupt
            yield message

    monkeypatch.setattr(writer, "_encode_video", interrupted)
    with pytest.raises(KeyboardInterrupt):
        writer.create_frame_store(tmp_path / "store", vids, bbox, size=24, workers=0, progress=False)
    monkeypatch.setattr(writer, "_encode_video", real_encode)
    make_video(vids / "a.mp4", 24)  # "a" was finished, then the user replaced the file
    report = writer.create_frame_store(tmp_path / "store", vids, bbox, size=24, workers=0, progress=False)
    assert report["resumed"] == [] and sorted(report["stored"]) == ["a", "b"]
    assert FrameStore(tmp_path / "store").num_frames("a") == 24


# ------------------------------------------------------------------ weak spots: silent acceptances
def test_a_fold_csv_reaching_past_the_video_is_refused(tmp_path, small_store):
    from signspot.datasets.frame_store import FrameStore
    from signspot.train_data import DataError, read_fold_csv

    store = FrameStore(small_store)  # video "v": 40 frames
    csv = tmp_path / "train_0.csv"
    csv.write_text("video,label,start_frame,end_frame,fcount\nv,1,10,40,40\n")
    assert read_fold_csv(csv, store, 3, role="train")[0]["end_frame"] == 40  # the frame just past the end: rounding
    csv.write_text("video,label,start_frame,end_frame,fcount\nv,1,10,40,40\nv,2,30,75,75\n")
    with pytest.raises(DataError, match=r"train_0.csv: line 3: end_frame 75 lies past the end of video 'v', which has 40"):
        read_fold_csv(csv, store, 3, role="train")


def _scores_file(path: Path, frames: int, checkpoint: str) -> Path:
    from signspot.formats.scores import save_frame_scores

    scores = np.full((frames, 4), 0.25, np.float32)
    save_frame_scores(path, {"v": {"scores": scores, "fps": 25.0, "num_frames": frames}}, checkpoint=checkpoint,
                      head_weights=None, window=32, stride=1)
    return path


def test_score_files_disagreeing_on_a_video_frame_count_are_refused(tmp_path):
    from signspot.ensemble import ensemble_frame_scores
    from signspot.formats.scores import ScoresFormatError

    a = _scores_file(tmp_path / "a" / "frame_scores.pkl", 40, "a.pt")
    same = _scores_file(tmp_path / "b" / "frame_scores.pkl", 40, "b.pt")
    other = _scores_file(tmp_path / "c" / "frame_scores.pkl", 41, "c.pt")
    assert ensemble_frame_scores([a, same], progress=False)["v"]["num_files"] == 2
    with pytest.raises(ScoresFormatError, match=r"c/frame_scores.pkl: video 'v' has 41 frames, but .*a/frame_scores.pkl"):
        ensemble_frame_scores([a, other], progress=False)
    # an original result covers a prefix of the video: shorter is fine, longer than the video is not
    logits = {"x": torch.zeros(20, 32, 4)}  # 20 windows: 51 frames, longer than 40
    torch.save({"v": logits}, tmp_path / "dict_results.pkl")
    with pytest.raises(ScoresFormatError, match="dict_results.pkl: video 'v' has scores for 51 frames"):
        ensemble_frame_scores([tmp_path / "dict_results.pkl", a], progress=False)
    torch.save({"v": {"x": torch.zeros(5, 32, 4)}}, tmp_path / "dict_results.pkl")  # 36 frames
    assert ensemble_frame_scores([a, tmp_path / "dict_results.pkl"], progress=False)["v"]["num_frames"] == 40


def test_numpy_ints_in_a_prediction_file_are_read(tmp_path):
    import pickle

    from signspot.formats.gt import load_intervals

    (tmp_path / "pred.pkl").write_bytes(pickle.dumps(
        {"v": [[np.int64(1), np.int32(40), np.int64(400)]], "w": np.array([[2, 10, 20]])}))
    loaded = load_intervals(tmp_path / "pred.pkl")
    assert loaded == {"v": [[1, 40, 400]], "w": [[2, 10, 20]]}
    assert all(type(v) is int for rows in loaded.values() for row in rows for v in row)


def test_an_empty_ground_truth_is_warned_about(tmp_path):
    from signspot.formats.gt import save_intervals_pkl

    save_intervals_pkl({"v": []}, tmp_path / "gt.pkl")
    save_intervals_pkl({"v": [[0, 40, 400]]}, tmp_path / "pred.pkl")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--gt", str(tmp_path / "gt.pkl"),
                             "--pred", str(tmp_path / "pred.pkl")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "gt.pkl: the ground truth holds 1 video(s) but no signs" in result.stderr


def _variable_rate_mp4(path: Path, frames: int = 30, slow_from: int = 10) -> Path:
    """An mp4 whose frames are 40 ms apart, then 120 ms from frame ``slow_from`` on.

    OpenCV writes constant-rate files only, so its file's time-to-sample table (``stts``,
    one ``(count, delta)`` entry) is rewritten to two entries; the index follows the media
    data, so only the sizes of the boxes holding the table change.
    """
    import struct

    from tests.test_frame_store import make_video

    make_video(path, frames)
    data = bytearray(path.read_bytes())

    def find(lo, hi, name):
        while lo < hi:
            size, kind = struct.unpack(">I4s", data[lo:lo + 8])
            if kind == name:
                return lo, size
            lo += size
        raise AssertionError(f"no {name} box")

    chain, lo, hi = [], 0, len(data)
    for name in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stts"):
        offset, size = find(lo, hi, name)
        chain.append((offset, size))
        lo, hi = offset + 8, offset + size
    offset, size = chain[-1]
    count, delta = struct.unpack(">II", data[offset + 16:offset + 24])
    assert count == frames
    table = struct.pack(">IIIIII", 0, 2, slow_from, delta, frames - slow_from, 3 * delta)
    grow = len(table) - (size - 8)
    data[offset + 8:offset + size] = table
    for box_offset, box_size in chain:
        data[box_offset:box_offset + 4] = struct.pack(">I", box_size + grow)
    path.write_bytes(bytes(data))
    return path


def test_a_variable_frame_rate_video_is_refused_with_how_to_convert_it(tmp_path):
    import json

    from signspot.datasets.store_writer import BadVideoError, create_frame_store
    from tests.test_frame_store import make_video

    (tmp_path / "videos").mkdir()
    _variable_rate_mp4(tmp_path / "videos" / "vfr.mp4")
    (tmp_path / "boxes.json").write_text(json.dumps({"vfr": [0, 0, 24, 24], "cfr": [0, 0, 24, 24]}))
    with pytest.raises(BadVideoError, match=r"vfr.mp4: variable frame rate: frame \d+ is at .*ffmpeg .*-fps_mode cfr"):
        create_frame_store(tmp_path / "store", tmp_path / "videos", tmp_path / "boxes.json", size=16, workers=0,
                           progress=False)
    (tmp_path / "videos" / "vfr.mp4").unlink()
    make_video(tmp_path / "videos" / "cfr.mp4", 30)  # the same file at a constant rate is stored
    report = create_frame_store(tmp_path / "store2", tmp_path / "videos", tmp_path / "boxes.json", size=16,
                                workers=0, progress=False)
    assert report["stored"] == ["cfr"]


def _children(pid: int) -> list:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process tables from /proc")
def test_creator_workers_exit_when_their_parent_is_killed(tmp_path):
    import signal
    import time

    from tests.test_frame_store import make_dataset

    vids, bbox = make_dataset(tmp_path, {f"v{i}": 400 for i in range(4)})
    # The parent stops reading results at the first message, so the workers fill the bounded
    # result queue and block in put(): the state a SIGKILLed parent leaves them in.
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "import signspot.datasets.store_writer as writer\n"
            "pool = writer._run_pool\n"
            "def stuck(message):\n"
            "    print('stuck', flush=True); time.sleep(600)\n"
            "writer._run_pool = lambda tasks, workers, handle: pool(tasks, workers, stuck)\n"
            "writer.create_frame_store(%r, %r, %r, size=32, workers=2, progress=False)\n"
            ) % (str(ROOT), str(tmp_path / "store"), str(vids), str(bbox))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "stuck"
        time.sleep(2.0)  # the workers fill the queue and block
        workers = [p for p in _children(parent.pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) >= 2 and all(_running(p) for p in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_running(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_running(p) for p in workers), "orphaned workers are still running"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_leftover_temporary_files_of_a_killed_run_are_removed_on_the_next_start(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    _run(tiny_data, run_dir, **{"train.epochs": 1, "eval.every_epochs": 0})
    leftovers = [run_dir / "ckpts" / ".latest_checkpoint.pt.k1l2x.tmp", run_dir / "ckpts" / ".best_checkpoint_1_0.5000.pt.q.tmp",
                 run_dir / ".history.jsonl.abc.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a checkpoint")
    unrelated = run_dir / "ckpts" / ".notes.txt.tmp"
    unrelated.write_text("not ours")
    _run(tiny_data, run_dir, **{"train.epochs": 2, "eval.every_epochs": 0})
    assert not any(path.exists() for path in leftovers)
    assert unrelated.read_text() == "not ours"
    assert RunDir(run_dir).read_history()[-1]["epoch"] == 2


def test_a_checkpoint_without_config_says_which_settings_it_assumes(tmp_path, fixture_weights):
    from signspot.inference import load_inference_model
    from signspot.models import build_model

    torch.save(build_model("hs_i3d_tiny", num_classes=3).state_dict(), tmp_path / "bare.pt")
    with pytest.warns(UserWarning, match=r"bare.pt: the checkpoint stores no config.*window 32, resize 256, crop 224"):
        _, spec = load_inference_model(tmp_path / "bare.pt")
    assert spec.num_classes == 3
    # the released architecture (60 classes, width 1) is what those settings are for: no warning
    torch.save({"model": fixture_weights}, tmp_path / "released.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_inference_model(tmp_path / "released.pt")


# ------------------------------------------------------------------ one line, exit status 1, nothing written
class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    from signspot.datasets.store_writer import create_frame_store
    from tests.test_frame_store import make_dataset

    root = tmp_path_factory.mktemp("small_store")
    vids, bbox = make_dataset(root, {"v": 40})
    create_frame_store(root / "test_store", vids, bbox, size=32, workers=0, progress=False)
    return root / "test_store"


def _bad_inputs(root: Path, store: Path) -> dict:
    """name -> (command line, text the one-line error must hold)."""
    import pickle

    from signspot.formats.gt import save_intervals_pkl

    save_intervals_pkl({"v": [[0, 40, 400]]}, root / "gt.pkl")
    (root / "evil.pkl").write_bytes(pickle.dumps({"v": _Evil()}))
    (root / "junk.pt").write_bytes(b"not a checkpoint")
    from signspot.models import build_model

    torch.save({"model": build_model("hs_i3d_tiny", num_classes=3).state_dict()}, root / "ckpt.pt")
    (root / "boxes.json").write_text("{not json")
    (root / "names.csv").write_bytes(bytes(range(256)))
    (root / "a_file").write_text("x")
    (root / "videos").mkdir()
    _scores_file(root / "res" / "run_a" / "frame_scores.pkl", 40, "a.pt")  # scores of video "v" only
    save_intervals_pkl({"other": [[0, 40, 400]]}, root / "other_gt.pkl")
    ev, vis = "scripts/evaluate.py", "scripts/visualize.py"
    return {
        "malicious prediction pickle": ([ev, "--gt", root / "gt.pkl", "--pred", root / "evil.pkl"], "evil.pkl"),
        "missing ground truth": ([ev, "--gt", root / "none.pkl", "--pred", root / "gt.pkl"], "none.pkl"),
        "no score files": (["solution_test_creator_v2.py", "--results-dir", root / "nothing", "--out",
                            root / "pred.pkl"], "nothing"),
        "junk checkpoint": (["main_results_creator_v2.py", "--lmdb_dir", store, "--checkpoint", root / "junk.pt",
                             "--save_dir", root / "res"], "junk.pt"),
        "unknown device": (["main_results_creator_v2.py", "--lmdb_dir", store, "--checkpoint", root / "ckpt.pt",
                            "--device", "gpu7", "--save_dir", root / "res"], "gpu7"),
        "box file not JSON": (["scripts/track1_lmdb_creator.py", "--dest_dir", root / "store", "--dataset_dir",
                               root / "videos", "--bbox_dir", root / "boxes.json"], "videos"),
        "malicious ground truth for folds": (["scripts/make_folds.py", "--train-gt", root / "evil.pkl", "--store",
                                              store, "--out", root / "folds"], "evil.pkl"),
        "store that is a file": (["scripts/make_folds.py", "--train-gt", root / "gt.pkl", "--store", root / "a_file",
                                  "--out", root / "folds"], "a_file"),
        "binary class names": ([vis, "--gt", root / "gt.pkl", "--class-names", root / "names.csv", "--out",
                                root / "plots"], "names.csv"),
        "--out is a file": ([vis, "--gt", root / "gt.pkl", "--out", root / "a_file"], "a_file"),
        "negative worker count": (["scripts/track1_lmdb_creator.py", "--dest_dir", root / "store", "--dataset_dir",
                                   root / "videos", "--bbox_dir", root / "boxes.json", "--workers", "-1"], "--workers"),
        "unknown config key": (["main.py", "--set", "train.epoch=3", "--set", f"io.run_dir={root / 'run'}"],
                               "train.epoch"),
        "tuning on videos never scored": (["solution_test_creator_v2.py", "--results-dir", root / "res", "--tune-on",
                                           root / "other_gt.pkl", "--out", root / "pred.pkl"], "other_gt.pkl"),
    }


@pytest.mark.parametrize("case", [
    "malicious prediction pickle", "missing ground truth", "no score files", "junk checkpoint", "unknown device",
    "box file not JSON", "malicious ground truth for folds", "store that is a file", "binary class names",
    "--out is a file", "negative worker count", "unknown config key", "tuning on videos never scored",
])
def test_bad_input_gives_one_line_and_exit_status_1(tmp_path, small_store, case):
    command, expected = _bad_inputs(tmp_path, small_store)[case]
    before = _files(tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / command[0]), *map(str, command[1:])], capture_output=True, text=True, cwd=tmp_path,
                            timeout=240, env={**os.environ, "SIGNSPOT_DEBUG": ""})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "unpickled!" not in result.stdout
    assert lines[-1].startswith("error:") and expected in lines[-1], lines
    assert _files(tmp_path) == before  # nothing written, nothing changed
