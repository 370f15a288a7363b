"""The LMDB frame store: creator output, resumption, bad input, and the reader on both layouts."""

import json
import pickle

import cv2
import lmdb
import numpy as np
import pytest

import signspot.datasets.frame_store as frame_store_module
import signspot.datasets.store_writer as fs
from signspot.datasets.frame_store import FrameStore, FrameStoreError, IncompleteStoreError
from signspot.datasets.store_writer import BadVideoError, create_frame_store

W, H = 64, 48
BOX = [16, 8, 46, 38]  # 30 x 30 -> enlarged by 3 px per side -> crop [13, 5, 49, 41]
CROP = (13, 5, 49, 41)


def frame_value(i):
    return (i * 4) % 250


def make_video(path, n, fps=25.0, size=(W, H)):
    """Solid frames: blue = 4 * index (encodes the frame number), red = 200."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[..., 0] = frame_value(i)  # OpenCV frames are BGR
        frame[..., 2] = 200
        writer.write(frame)
    writer.release()
    return path


def make_dataset(tmp_path, lengths, boxes=None):
    vids = tmp_path / "videos"
    vids.mkdir()
    for name, n in lengths.items():
        make_video(vids / f"{name}.mp4", n)
    boxes = {name: BOX for name in lengths} if boxes is None else boxes
    bbox = tmp_path / "boxes.json"
    bbox.write_text(json.dumps(boxes))
    return vids, bbox


def assert_frame_order(frames, indices, red_value=200):
    blue = frames[:, frames.shape[1] // 2, frames.shape[2] // 2, 2].astype(int)
    red = frames[:, frames.shape[1] // 2, frames.shape[2] // 2, 0].astype(int)
    expected = np.array([frame_value(i) for i in indices])
    assert np.abs(blue - expected).max() <= 4, (blue, expected)
    assert np.abs(red - red_value).max() <= 4  # red where it was written: RGB order


def test_creator_output_and_metadata(tmp_path):
    vids, bbox = make_dataset(tmp_path, {"alpha": 30, "beta.cropped": 45})
    dest = tmp_path / "store"
    report = create_frame_store(dest, vids, bbox, size=32, workers=0, progress=False)
    assert sorted(report["stored"]) == ["alpha", "beta"] and report["bad"] == {} and report["resumed"] == []
    assert not (tmp_path / "store.partial").exists()

    store = FrameStore(dest)
    assert store.layout == "signspot"
    assert store.videos == ["alpha", "beta"]
    assert store.num_frames("alpha") == 30 and store.num_frames("beta") == 45
    assert store.fps("beta") == pytest.approx(25.0)
    meta = store.meta("beta")
    assert meta["width"] == W and meta["height"] == H
    assert meta["box"] == BOX and meta["crop"] == list(CROP)
    assert meta["source"].endswith("beta.cropped.mp4")
    assert (meta["frame_height"], meta["frame_width"]) == (32, 32)

    idx = [0, 7, 7, 44, 3]
    frames = store.read_frames("beta", idx)
    assert frames.shape == (5, 32, 32, 3) and frames.dtype == np.uint8
    assert_frame_order(frames, idx)
    assert np.array_equal(frames[1], frames[2])
    with pytest.raises(IndexError, match="beta"):
        store.read_frames("beta", [45])
    with pytest.raises(KeyError, match="gamma"):
        store.num_frames("gamma")

    # The store is picklable and reopens itself after unpickling (DataLoader workers).
    clone = pickle.loads(pickle.dumps(store))
    assert np.array_equal(clone.read_frames("beta", idx), frames)


def test_size_zero_keeps_crop_and_pool_matches_in_process(tmp_path):
    vids, bbox = make_dataset(tmp_path, {"a": 20, "b": 25, "c": 12})
    create_frame_store(tmp_path / "s0", vids, bbox, size=0, workers=0, progress=False)
    create_frame_store(tmp_path / "s2", vids, bbox, size=0, workers=2, progress=False)
    s0, s2 = FrameStore(tmp_path / "s0"), FrameStore(tmp_path / "s2")
    assert s0.videos == s2.videos == ["a", "b", "c"]
    for video in s0.videos:
        n = s0.num_frames(video)
        assert s2.num_frames(video) == n
        a, b = s0.read_frames(video, range(n)), s2.read_frames(video, range(n))
        assert a.shape == (n, CROP[3] - CROP[1], CROP[2] - CROP[0], 3)
        assert np.array_equal(a, b)


def test_crop_box_enlarges_and_clips():
    assert fs.crop_box([10, 10, 30, 50], 100, 100) == (8, 6, 32, 54)
    assert fs.crop_box([0, 0, 64, 48], 64, 48) == (0, 0, 64, 48)  # clipped to the frame
    with pytest.raises(ValueError, match="zero size"):
        fs.crop_box([5, 5, 5, 20], 64, 48)
    with pytest.raises(ValueError, match="outside"):
        fs.crop_box([100, 100, 120, 130], 64, 48)


def test_resume_after_interruption(tmp_path, monkeypatch):
    vids, bbox = make_dataset(tmp_path, {"a": 40, "b": 50, "c": 30})
    dest = tmp_path / "store"
    real_encode = fs._encode_video

    def interrupted(task):
        for i, message in enumerate(real_encode(task)):
            if task.video == "b" and i == 1:  # one chunk of "b" written, then the run dies
                raise KeyboardInterrupt
            yield message

    monkeypatch.setattr(fs, "_encode_video", interrupted)
    with pytest.raises(KeyboardInterrupt):
        create_frame_store(dest, vids, bbox, size=24, workers=0, progress=False)
    assert not dest.exists()
    partial = tmp_path / "store.partial"
    assert partial.exists()
    with pytest.raises(IncompleteStoreError, match="interrupted"):
        FrameStore(partial)

    encoded = []

    def recording(task):
        encoded.append(task.video)
        return real_encode(task)

    monkeypatch.setattr(fs, "_encode_video", recording)
    report = create_frame_store(dest, vids, bbox, size=24, workers=0, progress=False)
    assert encoded == ["b", "c"]  # "a" was finished before the interruption
    assert report["resumed"] == ["a"] and sorted(report["stored"]) == ["b", "c"]
    assert not partial.exists()
    store = FrameStore(dest)
    assert store.videos == ["a", "b", "c"]
    for video, n in {"a": 40, "b": 50, "c": 30}.items():
        assert store.num_frames(video) == n
        assert_frame_order(store.read_frames(video, range(n)), range(n))


def test_resume_refuses_other_settings_and_existing_dest(tmp_path, monkeypatch):
    vids, bbox = make_dataset(tmp_path, {"a": 10, "b": 10})

    def broken(task):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(fs, "_encode_video", broken)
    with pytest.raises(KeyboardInterrupt):
        create_frame_store(tmp_path / "store", vids, bbox, size=24, workers=0, progress=False)
    monkeypatch.undo()
    with pytest.raises(FrameStoreError, match="different settings"):
        create_frame_store(tmp_path / "store", vids, bbox, size=32, workers=0, progress=False)
    create_frame_store(tmp_path / "store", vids, bbox, size=24, workers=0, progress=False)
    with pytest.raises(FrameStoreError, match="already exists"):
        create_frame_store(tmp_path / "store", vids, bbox, size=24, workers=0, progress=False)


@pytest.mark.parametrize(
    "problem, match",
    [
        ("corrupt", "cannot be opened"),
        ("no_box", "no signer box"),
        ("zero_box", "zero size"),
        ("outside_box", "outside"),
        ("malformed_box", "not \\[x1, y1, x2, y2\\]"),
    ],
)
def test_bad_video_is_named(tmp_path, problem, match):
    vids, bbox = make_dataset(tmp_path, {"good": 12, "bad": 12})
    boxes = {"good": BOX, "bad": BOX}
    if problem == "corrupt":
        (vids / "bad.mp4").write_bytes(b"\x00not a video" * 300)
    elif problem == "no_box":
        del boxes["bad"]
    elif problem == "zero_box":
        boxes["bad"] = [20, 10, 20, 30]
    elif problem == "outside_box":
        boxes["bad"] = [200, 100, 260, 180]
    else:
        boxes["bad"] = [1, 2, "x", 4]
    bbox.write_text(json.dumps(boxes))

    with pytest.raises(BadVideoError, match=match) as err:
        create_frame_store(tmp_path / "store", vids, bbox, size=16, workers=0, progress=False)
    assert err.value.video == "bad" and "'bad'" in str(err.value)
    assert not (tmp_path / "store").exists()

    report = create_frame_store(tmp_path / "store", vids, bbox, size=16, workers=0, skip_bad=True, progress=False)
    assert list(report["bad"]) == ["bad"] and report["stored"] == ["good"]
    store = FrameStore(tmp_path / "store")
    assert store.videos == ["good"] and list(store.skipped) == ["bad"]


def test_video_failing_while_encoding_is_skipped_and_script_exits_nonzero(tmp_path, monkeypatch, capsys):
    from signspot.cli.create_store import run

    vids, bbox = make_dataset(tmp_path, {"good": 12, "bad": 40})
    real_encode = fs._encode_video

    def failing(task):
        for i, message in enumerate(real_encode(task)):
            if task.video == "bad" and i == 1:
                raise BadVideoError("bad", "decoder gave up at frame 32")
            yield message

    monkeypatch.setattr(fs, "_encode_video", failing)
    with pytest.raises(SystemExit) as exit_info:
        run(["--dest_dir", str(tmp_path / "store"), "--dataset_dir", str(vids), "--bbox_dir", str(bbox), "--workers", "0",
             "--size", "16", "--skip-bad"])
    assert "bad" in str(exit_info.value.code) and "decoder gave up" in str(exit_info.value.code)
    store = FrameStore(tmp_path / "store")
    assert store.videos == ["good"] and "bad" in store.skipped
    with frame_store_module._shared_env(str(tmp_path / "store"), True).begin() as txn:  # the failed video's frames were removed
        assert txn.get(b"frame/bad/0000000") is None
        assert txn.get(b"frame/good/0000000") is not None


def test_full_frame_if_missing(tmp_path):
    vids, bbox = make_dataset(tmp_path, {"a": 8, "b": 8}, boxes={"a": BOX})
    create_frame_store(tmp_path / "store", vids, bbox, size=0, workers=0, full_frame_if_missing=True, progress=False)
    store = FrameStore(tmp_path / "store")
    assert store.meta("b")["box"] is None and store.meta("b")["crop"] == [0, 0, W, H]
    assert store.read_frames("b", [0]).shape == (1, H, W, 3)
    assert store.read_frames("a", [0]).shape == (1, CROP[3] - CROP[1], CROP[2] - CROP[0], 3)


def _jpeg_rgb(value):
    rgb = np.zeros((20, 24, 3), np.uint8)
    rgb[..., 0] = 180
    rgb[..., 2] = value
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def make_original_store(path, videos, protocol=4):
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for name, n in videos.items():
            txn.put(name.encode(), pickle.dumps([_jpeg_rgb(frame_value(i)) for i in range(n)], protocol=protocol))
        details = {name: {"sequence_length": n} for name, n in videos.items()}
        txn.put(b"details", pickle.dumps(details, protocol=protocol))
    env.close()


@pytest.mark.parametrize("protocol", [2, 4])
def test_reader_original_layout(tmp_path, protocol):
    make_original_store(tmp_path / "orig", {"v1": 12, "v2": 20}, protocol=protocol)
    store = FrameStore(tmp_path / "orig")
    assert store.layout == "original" and store.videos == ["v1", "v2"]
    assert store.num_frames("v2") == 20 and store.fps("v2") == 25.0
    idx = [19, 0, 5]
    frames = store.read_frames("v2", idx)
    assert frames.shape == (3, 20, 24, 3)
    assert_frame_order(frames, idx, red_value=180)
    assert store.read_frames("v1", [3]).shape == (1, 20, 24, 3)
    clone = pickle.loads(pickle.dumps(store))
    assert np.array_equal(clone.read_frames("v2", idx), frames)


def _frames_one_at_a_time(store, video, idx):
    out, calls = {}, []

    def take(frame, positions):
        calls.append(list(positions))
        for pos in positions:
            out[pos] = frame.copy()  # the buffer is reused: copy while valid

    store.for_each_frame(video, idx, take)
    return np.stack([out[i] for i in range(len(idx))]), calls


@pytest.mark.parametrize("layout", ["signspot", "original"])
def test_decoding_into_buffers_and_one_frame_at_a_time(tmp_path, layout):
    if layout == "original":
        make_original_store(tmp_path / "s", {"v": 12})
    else:
        vids, bbox = make_dataset(tmp_path, {"v": 12})
        create_frame_store(tmp_path / "s", vids, bbox, size=32, workers=0, progress=False)
    store = FrameStore(tmp_path / "s")
    idx = [3, 3, 11, 0, 11]
    want = store.read_frames("v", idx)
    # read_frames(out=): decodes into a buffer of the right shape, else makes a new array
    buffer = np.zeros_like(want)
    got = store.read_frames("v", idx, out=buffer)
    assert got is buffer and np.array_equal(got, want)
    wrong = np.zeros((4,) + want.shape[1:], np.uint8)
    got = store.read_frames("v", idx[:3], out=wrong)
    assert got is not wrong and not wrong.any() and np.array_equal(got, want[:3])
    # for_each_frame: every distinct frame once, with the positions it fills
    frames, calls = _frames_one_at_a_time(store, "v", idx)
    assert np.array_equal(frames, want)
    assert calls == [[0, 1], [2, 4], [3]]
    with pytest.raises(IndexError, match="frame 12"):
        store.for_each_frame("v", [12], lambda frame, positions: None)


class Evil:
    def __reduce__(self):
        return (print, ("executed",))


def test_reader_refuses_unsafe_and_unknown_stores(tmp_path):
    env = lmdb.open(str(tmp_path / "evil"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"details", pickle.dumps({"v": {"sequence_length": 1}}))
        txn.put(b"v", pickle.dumps([Evil()]))
    env.close()
    store = FrameStore(tmp_path / "evil")
    with pytest.raises(FrameStoreError, match="refusing to unpickle"):
        store.read_frames("v", [0])

    env = lmdb.open(str(tmp_path / "other"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"something", b"else")
    env.close()
    with pytest.raises(FrameStoreError, match="unknown LMDB layout"):
        FrameStore(tmp_path / "other")
    with pytest.raises(FileNotFoundError):
        FrameStore(tmp_path / "missing")


def test_missing_parent_folders_of_dest_are_created(tmp_path):
    vids, bbox = make_dataset(tmp_path, {"a": 6})
    dest = tmp_path / "not" / "yet" / "store"
    create_frame_store(dest, vids, bbox, size=16, workers=0, progress=False)
    assert FrameStore(dest).videos == ["a"]
    assert not (tmp_path / "not" / "yet" / "store.partial").exists()


def make_folder(tmp_path, folder, lengths, box):
    vids = tmp_path / folder
    vids.mkdir()
    for name, n in lengths.items():
        make_video(vids / f"{name}.mp4", n)
    bbox = tmp_path / f"{folder}.json"
    bbox.write_text(json.dumps({name: box for name in lengths}))
    return vids, bbox


def test_several_video_folders_in_one_store(tmp_path):
    from signspot.cli.create_store import main, parse_args

    box_b = [4, 4, 24, 34]  # 20 x 30 -> crop [2, 1, 26, 37]
    train, train_boxes = make_folder(tmp_path, "train", {"t1": 10, "t2": 14}, BOX)
    val, val_boxes = make_folder(tmp_path, "val", {"v1": 12}, box_b)
    args = parse_args(["--dest_dir", str(tmp_path / "out" / "store"), "--dataset_dir", str(train), str(val),
                       "--bbox_dir", str(train_boxes), str(val_boxes), "--workers", "0", "--size", "0"])
    report = main(**vars(args))
    assert sorted(report["stored"]) == ["t1", "t2", "v1"]
    store = FrameStore(tmp_path / "out" / "store")
    assert store.videos == ["t1", "t2", "v1"]
    for video, n, box, crop, folder in [("t1", 10, BOX, list(CROP), train), ("v1", 12, box_b, [2, 1, 26, 37], val)]:
        meta = store.meta(video)
        assert meta["box"] == box and meta["crop"] == crop and meta["num_frames"] == n
        assert meta["source"] == str(folder / f"{video}.mp4")
        frames = store.read_frames(video, range(n))
        assert frames.shape == (n, crop[3] - crop[1], crop[2] - crop[0], 3)
        assert_frame_order(frames, range(n))

    # Single-folder use is unchanged: one folder, one box file.
    args = parse_args(["--dest_dir", str(tmp_path / "single"), "--dataset_dir", str(val),
                       "--bbox_dir", str(val_boxes), "--workers", "0", "--size", "16"])
    assert main(**vars(args))["stored"] == ["v1"] and FrameStore(tmp_path / "single").videos == ["v1"]


def test_several_folders_bad_pairing_and_duplicate_names(tmp_path):
    from signspot.cli.create_store import run

    train, train_boxes = make_folder(tmp_path, "train", {"t1": 6, "same": 6}, BOX)
    val, val_boxes = make_folder(tmp_path, "val", {"same": 6}, BOX)
    with pytest.raises(FrameStoreError, match="2 video folder\\(s\\) but 1 box file"):
        create_frame_store(tmp_path / "s", [train, val], [train_boxes], workers=0, progress=False)
    with pytest.raises(SystemExit, match="2 video folder\\(s\\) but 3 box file"):
        run(["--dest_dir", str(tmp_path / "s"), "--dataset_dir", str(train), str(val),
             "--bbox_dir", str(train_boxes), str(val_boxes), str(val_boxes), "--workers", "0"])
    with pytest.raises(FrameStoreError, match="'same'") as err:
        create_frame_store(tmp_path / "s", [train, val], [train_boxes, val_boxes], workers=0, progress=False)
    assert str(train / "same.mp4") in str(err.value) and str(val / "same.mp4") in str(err.value)
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()
    # A box missing from a folder's own box file names that file, even if another file has it.
    (val / "same.mp4").rename(val / "other.mp4")
    train_boxes.write_text(json.dumps({"t1": BOX, "same": BOX, "other": BOX}))
    with pytest.raises(BadVideoError, match="no signer box in .*val.json") as err:
        create_frame_store(tmp_path / "s", [train, val], [train_boxes, val_boxes], workers=0, progress=False)
    assert err.value.video == "other"


# ------------------------------------------------------------------ the original creator's encoding (the default)
def _textured_video(path, n, fourcc="mp4v"):
    """Frames with texture (a JPEG of flat colour would hide encoder differences)."""
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (W, H))
    base = cv2.GaussianBlur((rng.random((H, W, 3)) * 255).astype(np.uint8), (5, 5), 1.5)
    for i in range(n):
        writer.write(np.roll(base, 2 * i, axis=1))
    writer.release()
    return path


def test_original_encoding_is_pil_quality_75_of_the_native_crop(tmp_path):
    import io

    from PIL import Image

    vids = tmp_path / "videos"
    vids.mkdir()
    _textured_video(vids / "a.mp4", 12)
    box = [11, 7, 44, 40]  # 33 x 33: a margin of int(3.3) = 3 px (rounding would not change it; 0.1 * 35 would)
    (tmp_path / "boxes.json").write_text(json.dumps({"a": box}))
    create_frame_store(tmp_path / "store", vids, tmp_path / "boxes.json", workers=0, progress=False)
    store = FrameStore(tmp_path / "store")
    assert store.meta("a")["frame_width"] == 39 and store.meta("a")["frame_height"] == 39  # native size
    cap = cv2.VideoCapture(str(vids / "a.mp4"))
    expected = []
    for _ in range(12):
        ok, frame = cap.read()
        assert ok
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)[7 - 3:40 + 3, 11 - 3:44 + 3]
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG")  # PIL's defaults: quality 75, 4:2:0
        expected.append(buf.getvalue())
    assert store.read_jpegs("a", range(12)) == expected  # byte for byte


def test_truncated_margin_as_the_original():
    # a 35-px box: 0.1 * 35 = 3.5 -> int 3 (rounding gave 4)
    assert fs.crop_box([10, 10, 45, 45], 100, 100) == (7, 7, 48, 48)
    assert fs.crop_box([10, 10, 29, 29], 100, 100) == (9, 9, 30, 30)  # int(1.9) = 1


def test_original_encoding_keeps_the_header_frame_count_with_black_frames(tmp_path):
    vids = tmp_path / "videos"
    vids.mkdir()
    _textured_video(vids / "cut.avi", 30, fourcc="MJPG")
    data = (vids / "cut.avi").read_bytes()
    (vids / "cut.avi").write_bytes(data[: int(len(data) * 0.7)])  # the header still says 30 frames
    (tmp_path / "boxes.json").write_text(json.dumps({"cut": BOX}))
    with pytest.warns(UserWarning, match=r"video 'cut': .*cut.avi: \d+ of its 30 frames could not be decoded and are "
                                         r"stored black, as the original creator did: frames \d+-29"):
        create_frame_store(tmp_path / "store", vids, tmp_path / "boxes.json", workers=0, progress=False)
    store = FrameStore(tmp_path / "store")
    assert store.num_frames("cut") == 30
    black = store.meta("cut")["black_frames"]
    assert 0 < black < 30
    frames = store.read_frames("cut", range(30))
    assert frames[-black:].max() == 0 and frames[: 30 - black].max() > 0
    # one rule for such a video everywhere (datasets.video_reader.read_frames): the resized store and the
    # video source of spot.py give the same 30 frames, the same ones black
    with pytest.warns(UserWarning, match="could not be decoded"):
        create_frame_store(tmp_path / "store2", vids, tmp_path / "boxes.json", size=32, workers=0, progress=False)
    resized = FrameStore(tmp_path / "store2")
    assert resized.num_frames("cut") == 30 and resized.meta("cut")["black_frames"] == black
    assert resized.read_frames("cut", range(30))[-black:].max() == 0
    from signspot.datasets.video_source import VideoSource

    source = VideoSource({"cut": vids / "cut.avi"}, {"cut": BOX})
    with pytest.warns(UserWarning, match=f"{black} of its 30 frames could not be decoded and are black"):
        direct = source.read_frames("cut", range(30))
    assert direct.shape[0] == 30 and direct[-black:].max() == 0 and (direct[:30 - black].max(axis=(1, 2, 3)) > 0).all()
    assert np.abs(direct[:30 - black].astype(int) - frames[:30 - black].astype(int)).mean() < 8  # JPEG apart


def test_original_encoding_refuses_a_size_or_quality(tmp_path):
    vids, bbox = make_dataset(tmp_path, {"a": 5})
    with pytest.raises(FrameStoreError, match="--compat original stores native-size frames at JPEG quality 75"):
        create_frame_store(tmp_path / "store", vids, bbox, compat="original", size=256, workers=0, progress=False)
