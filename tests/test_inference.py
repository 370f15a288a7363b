"""Per-checkpoint inference: windows, streaming reads, aggregation, output layout, errors, torchrun."""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from signspot.config import Config, config_to_dict
from signspot.datasets.frame_store import FrameStore
from signspot.datasets.store_writer import create_frame_store
from signspot.datasets.transforms import EvalClipTransform, normalize_clip
from signspot.datasets.video_windows import StreamingWindowDataset, gather_windows
from signspot.datasets.windows import window_starts
from signspot.formats.scores import SCORES_FILENAME, load_frame_scores
from signspot.inference import (
    RELEASED_SPEC,
    InferenceError,
    infer_store,
    load_inference_model,
    output_path,
    spec_from_checkpoint,
    split_name,
)
from signspot.models import HEAD_NAMES, build_model
from signspot.run_dir import run_name

ROOT = Path(__file__).resolve().parents[1]
WINDOW, RESIZE, CROP, NUM_CLASSES = 16, 40, 32, 4
LENGTHS = {"long_video": 29, "mid_video": 19, "short_video": 7}  # short_video < WINDOW
RUN, CKPT_NAME = "maxfix_neg01_fold4", "best_checkpoint_5_0.5000.pt"


def _write_video(path, n, rng):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (48, 48))
    assert writer.isOpened()
    base = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
    for i in range(n):  # a moving bright square so frames differ and the model sees motion
        frame = base.copy()
        x = (3 * i) % 36
        frame[10:22, x : x + 12] = 255
        writer.write(frame)
    writer.release()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("inference")
    videos = root / "videos"
    videos.mkdir()
    rng = np.random.default_rng(0)
    for name, n in LENGTHS.items():
        _write_video(videos / f"{name}.mp4", n, rng)
    boxes = root / "boxes.json"
    boxes.write_text(json.dumps({name: [4, 4, 44, 44] for name in LENGTHS}))
    dest = root / "MSSL_TEST_lmdb"
    create_frame_store(dest, videos, boxes, size=RESIZE, workers=0, progress=False)
    return dest


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("hs_i3d_tiny", num_classes=NUM_CLASSES)
    # A freshly initialised network gives the same output for every input; BatchNorm
    # statistics measured on clips make its scores depend on the frames.
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None
            module.reset_running_stats()
    with torch.no_grad():
        model.train()(torch.rand(4, WINDOW, 3, CROP, CROP) - 0.5)
    cfg = Config()
    cfg.model.name = "hs_i3d_tiny"
    cfg.data.num_classes = NUM_CLASSES
    cfg.data.window, cfg.data.resize, cfg.data.crop = WINDOW, RESIZE, CROP
    path = tmp_path_factory.mktemp("runs") / RUN / "ckpts" / CKPT_NAME
    path.parent.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "config": config_to_dict(cfg), "epoch": 5}, path)
    return path


_DIRECT_CACHE = {}


def direct_frame_scores(model, store, video, stride, flip=False):
    """Reference: every window run on its own, softmax, nearest upsample, mean over heads and windows."""
    key = (video, stride, flip)
    if key not in _DIRECT_CACHE:
        _DIRECT_CACHE[key] = _direct_frame_scores(model, store, video, stride, flip)
    return _DIRECT_CACHE[key]


def _direct_frame_scores(model, store, video, stride, flip):
    n = store.num_frames(video)
    transform = EvalClipTransform(RESIZE, CROP)
    sums = np.zeros((n + WINDOW, NUM_CLASSES + 1))
    counts = np.zeros(n + WINDOW)
    for start in window_starts(n, WINDOW, stride):
        indices = [min(i, n - 1) for i in range(start, start + WINDOW)]
        clip = normalize_clip(transform(store.read_frames(video, indices)))
        for view in [clip, clip.flip(-1)] if flip else [clip]:
            with torch.no_grad():
                out = model(view[None])
            probs = [
                F.interpolate(out[h].softmax(-1).transpose(1, 2), size=WINDOW, mode="nearest").transpose(1, 2)[0]
                for h in HEAD_NAMES
            ]
            sums[start : start + WINDOW] += torch.stack(probs).mean(0).double().numpy()
            counts[start : start + WINDOW] += 1
    return sums[:n] / counts[:n, None]


def test_window_starts_cover_every_frame():
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert window_starts(11, 4, 3).tolist() == [0, 3, 6, 7]  # last window moved back onto the tail
    assert window_starts(40, 32, 1).tolist() == list(range(9))
    assert window_starts(5, 32, 4).tolist() == [0] and window_starts(32, 32, 1).tolist() == [0]
    for n, w, s in [(100, 32, 8), (33, 32, 32), (57, 16, 5), (7, 16, 1)]:
        starts = window_starts(n, w, s)
        covered = np.zeros(n, bool)
        for st in starts:
            covered[st : st + w] = True
        assert covered.all() and starts.max() + w >= n and starts.min() == 0
    with pytest.raises(ValueError):
        window_starts(0, 32, 1)


def test_gather_windows_views_and_stacks():
    frames = torch.arange(20 * 2 * 3 * 3, dtype=torch.float32).view(20, 2, 3, 3)
    for offsets in ([0, 4, 8], [3], [0, 1, 2, 3], [0, 4, 6], [2, 9]):
        windows = gather_windows(frames, offsets, 8)
        assert windows.shape == (len(offsets), 8, 2, 3, 3)
        for b, o in enumerate(offsets):
            assert torch.equal(windows[b], frames[o : o + 8])
    assert gather_windows(frames, [0, 4, 8], 8).data_ptr() == frames.data_ptr()  # evenly spaced: a view
    with pytest.raises(ValueError):
        gather_windows(frames, [0, 13], 8)


class CountingStore:
    """Frame store proxy counting which frames were decoded."""

    def __init__(self, store):
        self.store, self.reads = store, {}

    def num_frames(self, video):
        return self.store.num_frames(video)

    def read_frames(self, video, indices):
        for i in indices:
            self.reads.setdefault(video, []).append(int(i))
        return self.store.read_frames(video, indices)


@pytest.mark.parametrize("stride,batch_size", [(1, 3), (4, 2), (16, 8)])
def test_stream_reads_each_frame_once_and_rebuilds_windows(store_dir, stride, batch_size):
    store = CountingStore(FrameStore(store_dir))
    transform = EvalClipTransform(RESIZE, CROP)
    videos = sorted(LENGTHS)
    dataset = StreamingWindowDataset(
        store, videos, window=WINDOW, stride=stride, batch_size=batch_size, transform=transform
    )
    seen = {}
    for batch in dataset:
        video = videos[batch["video_index"]]
        n = batch["num_frames"]
        assert len(batch["offsets"]) <= batch_size
        for offset, start in zip(batch["offsets"].tolist(), batch["starts"].tolist()):
            window = batch["frames"][offset : offset + WINDOW]
            expected = transform(store.store.read_frames(video, [min(i, n - 1) for i in range(start, start + WINDOW)]))
            assert torch.equal(window, expected)
            seen.setdefault(video, []).append(start)
    for video in videos:
        n = LENGTHS[video]
        assert seen[video] == window_starts(n, WINDOW, stride).tolist()
        assert sorted(store.reads[video]) == list(range(n))  # every frame decoded exactly once


def test_stream_through_worker_process_with_large_batches(store_dir):
    """Batches of several MB leave a worker through shared memory; the worker must not reuse them."""
    transform = EvalClipTransform(resize=200, crop=192)  # ~4 MB of uint8 frames per batch
    dataset = StreamingWindowDataset(
        FrameStore(store_dir), ["long_video"], window=WINDOW, stride=1, batch_size=8, transform=transform
    )
    expected = list(dataset)
    loader = DataLoader(dataset, batch_size=None, num_workers=1, multiprocessing_context="spawn")
    received = list(loader)
    assert len(received) == len(expected) == 2
    for got, want in zip(received, expected):
        assert torch.equal(got["frames"], want["frames"]) and torch.equal(got["starts"], want["starts"])


@pytest.mark.parametrize("stride,workers", [(1, 0), (4, 2)])
def test_scores_match_direct_computation(store_dir, checkpoint_path, tmp_path, stride, workers):
    (out,) = infer_store(
        str(store_dir), [str(checkpoint_path)], str(tmp_path / "results"),
        stride=stride, batch_size=5, device="cpu", workers=workers, progress=False,
    )
    assert out == tmp_path / "results" / "test" / f"{RUN}_{Path(CKPT_NAME).stem}" / SCORES_FILENAME
    saved = load_frame_scores(out)
    assert saved["window"] == WINDOW and saved["stride"] == stride
    assert saved["checkpoint"] == str(checkpoint_path.resolve())
    assert saved["head_weights"] == pytest.approx({h: 0.2 for h in HEAD_NAMES})
    assert list(saved["videos"]) == sorted(LENGTHS)
    model, _ = load_inference_model(checkpoint_path)
    store = FrameStore(store_dir)
    for video, n in LENGTHS.items():
        entry = saved["videos"][video]
        assert entry["num_frames"] == n and entry["scores"].shape == (n, NUM_CLASSES + 1)
        assert entry["fps"] == pytest.approx(25.0)
        scores = entry["scores"].astype(np.float64)
        np.testing.assert_allclose(scores.sum(1), 1.0, atol=5e-3)
        np.testing.assert_allclose(scores, direct_frame_scores(model, store, video, stride), atol=2e-3)


def test_flip_tta_and_video_subset(store_dir, checkpoint_path, tmp_path):
    (out,) = infer_store(
        str(store_dir), [str(checkpoint_path)], str(tmp_path), split="val_subset", stride=8,
        device="cpu", workers=0, videos=["short_video,mid_video"], flip_tta=True, progress=False,
    )
    assert out.parent.parent.name == "val_subset"
    saved = load_frame_scores(out)
    assert sorted(saved["videos"]) == ["mid_video", "short_video"] and saved["extra"]["flip_tta"] is True
    model, _ = load_inference_model(checkpoint_path)
    store = FrameStore(store_dir)
    for video in saved["videos"]:
        with_flip = direct_frame_scores(model, store, video, 8, flip=True)
        np.testing.assert_allclose(saved["videos"][video]["scores"], with_flip, atol=2e-3)
        # mirrored windows really count: differs from the plain run
        assert np.abs(with_flip - direct_frame_scores(model, store, video, 8)).max() > 1e-4


def test_naming_rules(tmp_path):
    assert split_name(tmp_path / "MSSL_TEST_lmdb") == "test"
    assert split_name(tmp_path / "valid_lmdb") == "valid"
    assert split_name(tmp_path / "Train") == "train"
    assert split_name(tmp_path / "my_store") == "my_store"
    assert run_name("runs/exp_fold2/ckpts/latest_checkpoint.pt") == "exp_fold2"
    assert run_name("downloads/released/model.pt") == "released"
    path = output_path("res", "data/test_lmdb", "runs/exp_fold2/ckpts/best_checkpoint_10_0.4000.pt")
    assert path == Path("res/test/exp_fold2_best_checkpoint_10_0.4000") / SCORES_FILENAME
    assert output_path("res", "x_test", "a/b.pt", split="other").parts[:2] == ("res", "other")


def test_configless_checkpoint_gets_original_architecture(checkpoint_path, tmp_path):
    released_like = tmp_path / "released.pt"
    torch.save({"model": torch.load(checkpoint_path, weights_only=True)["model"], "epoch": 3}, released_like)
    model, spec = load_inference_model(released_like)
    # original architecture and transform; class count and width read off the weights
    assert (spec.model_name, spec.window, spec.resize, spec.crop) == ("hs_i3d", 32, 256, 224)
    assert (spec.num_classes, spec.width) == (NUM_CLASSES, 0.25)
    assert not model.training


def test_spec_from_checkpoint_configs():
    assert spec_from_checkpoint({"model": {}}) == RELEASED_SPEC  # released checkpoints: the original model
    assert (RELEASED_SPEC.model_name, RELEASED_SPEC.num_classes, RELEASED_SPEC.window) == ("hs_i3d", 60, 32)
    assert (RELEASED_SPEC.resize, RELEASED_SPEC.crop, RELEASED_SPEC.width) == (256, 224, 1.0)
    spec = spec_from_checkpoint({"config": {"model": {"name": "hs_i3d_tiny", "width": 0.5},
                                            "data": {"window": 64, "crop": 112, "num_classes": 9}}})
    assert (spec.model_name, spec.width, spec.window, spec.crop, spec.num_classes) == ("hs_i3d_tiny", 0.5, 64, 112, 9)
    assert spec.resize == 256  # absent fields keep the original's value
    with pytest.raises(InferenceError, match="window"):
        spec_from_checkpoint({"config": {"data": {"window": "long"}}}, source="x.pt")


def test_bad_input_is_reported(store_dir, checkpoint_path, tmp_path):
    common = dict(save_dir=str(tmp_path / "r"), device="cpu", workers=0, progress=False)
    with pytest.raises(InferenceError, match="no such checkpoint"):
        infer_store(str(store_dir), [str(tmp_path / "missing.pt")], **common)
    with pytest.raises(TypeError, match="a list of checkpoint files and folders"):
        infer_store(str(store_dir), str(checkpoint_path), **common)
    with pytest.raises(InferenceError, match="a folder with no checkpoint"):
        infer_store(str(store_dir), [str(tmp_path)], **common)
    with pytest.raises(InferenceError, match="frame store not found"):
        infer_store(str(tmp_path / "no_store"), [str(checkpoint_path)], **common)
    with pytest.raises(InferenceError, match="unknown video.*nope"):
        infer_store(str(store_dir), [str(checkpoint_path)], videos=["nope"], **common)
    with pytest.raises(InferenceError, match="stride"):
        infer_store(str(store_dir), [str(checkpoint_path)], stride=WINDOW + 1, **common)
    not_a_ckpt = tmp_path / "junk.pt"
    not_a_ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(InferenceError, match="junk.pt"):
        infer_store(str(store_dir), [str(not_a_ckpt)], **common)
    # Weights of another architecture than the config announces: a clear mismatch error.
    other = tmp_path / "other" / "ckpts" / "wrong.pt"
    other.parent.mkdir(parents=True)
    ckpt = torch.load(checkpoint_path, weights_only=True)
    ckpt["config"]["data"]["num_classes"] = NUM_CLASSES + 3
    torch.save(ckpt, other)
    with pytest.raises(InferenceError, match="wrong.pt.*does not fit"):
        infer_store(str(store_dir), [str(other)], **common)
    assert not (tmp_path / "r").exists()  # nothing written on failure


def test_script_error_exit(tmp_path, store_dir, monkeypatch):
    argv = ["main_results_creator_v2.py", "--lmdb_dir", str(store_dir), "--checkpoint_dir",
            str(tmp_path / "none.pt"), "--save_dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "main_results_creator_v2.py"), run_name="__main__")
    assert "none.pt" in str(exit_info.value.code) and str(exit_info.value.code).startswith("error:")


def test_torchrun_two_processes_match_single(store_dir, checkpoint_path, tmp_path):
    (single,) = infer_store(str(store_dir), [str(checkpoint_path)], str(tmp_path / "single"), stride=4,
                  device="cpu", workers=0, progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(ROOT / "main_results_creator_v2.py"), "--lmdb_dir", str(store_dir), "--checkpoint_dir",
         str(checkpoint_path), "--save_dir", str(tmp_path / "multi"), "--stride", "4", "--device", "cpu",
         "--workers", "0", "--no-progress"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    multi = tmp_path / "multi" / single.relative_to(tmp_path / "single")
    a, b = load_frame_scores(single), load_frame_scores(multi)
    assert list(a["videos"]) == list(b["videos"]) == sorted(LENGTHS)
    for video in LENGTHS:
        np.testing.assert_allclose(
            a["videos"][video]["scores"].astype(np.float32), b["videos"][video]["scores"].astype(np.float32),
            atol=2e-3,
        )
    assert [p.name for p in multi.parent.iterdir()] == [SCORES_FILENAME]  # rank parts cleaned up


# ------------------------------------------------------------------ the original's windows (--compat original)
@pytest.mark.parametrize("n,expected", [
    (32 + 17, list(range(16))),  # range(0, 17): 17 starts, two whole batches of 8; the 17th is dropped
    (32 + 8, list(range(8))),    # range(0, 8): one whole batch (the last possible start, 8, is never run)
    (32 + 7, []),                # 7 starts: no whole batch
    (32, []), (5, []),           # at most one window long: no window (range(0, 0))
])
def test_original_window_rule_and_dropped_batch(n, expected):
    dataset = StreamingWindowDataset(None, [], window=32, stride=1, batch_size=8, transform=None, compat="original",
                                     drop_last_batch=True)
    assert dataset.starts(n).tolist() == expected
    assert window_starts(n, 32, 1, compat="original").tolist() == list(range(max(n - 32, 0)))
    assert window_starts(n, 32, 32, compat="original").tolist() == list(range(0, max(n - 32, 0), 32))


def test_compat_original_inference_scores_the_original_windows(store_dir, checkpoint_path, tmp_path):
    common = dict(save_dir=str(tmp_path), device="cpu", workers=0, progress=False)
    full = load_frame_scores(infer_store(str(store_dir), [str(checkpoint_path)], **common)[0])
    (compat_path,) = infer_store(str(store_dir), [str(checkpoint_path)], split="compat", compat="original", **common)
    compat = load_frame_scores(compat_path)
    assert compat["extra"]["compat"] == "original" and "coverage" not in compat["extra"]
    # long_video, 29 frames, window 16: starts range(0, 13) -> one whole batch of 8 -> frames 0..22 covered;
    # mid_video (3 starts) and short_video (none) get no whole batch: no scores, as in the original
    assert set(compat["videos"]) == {"long_video"}
    long = compat["videos"]["long_video"]
    assert long["num_frames"] == 8 + WINDOW - 1 == len(long["scores"])
    # frames 0..7 have the same windows in both runs: the same scores
    np.testing.assert_allclose(long["scores"][:8], full["videos"]["long_video"]["scores"][:8], atol=1e-6)
    assert not np.allclose(long["scores"][8:], full["videos"]["long_video"]["scores"][8:23], atol=1e-6)
    with pytest.raises(InferenceError, match="--compat original runs the original's windows in fp32.*drop --amp"):
        infer_store(str(store_dir), [str(checkpoint_path)], split="c2", compat="original", amp="bf16", **common)


def test_one_pass_over_several_checkpoints_equals_one_run_each(store_dir, checkpoint_path, tmp_path):
    # a second checkpoint of another run with the same file name, and one of other weights
    other_run = tmp_path / "runs" / RUN / "ckpts" / CKPT_NAME  # same run and file name: a distinct output
    other_run.parent.mkdir(parents=True)
    state = torch.load(checkpoint_path, weights_only=True)
    torch.manual_seed(5)
    state["model"] = {k: (v + 0.05 * torch.randn_like(v)) if v.is_floating_point() and "running" not in k else v
                      for k, v in state["model"].items()}
    torch.save(state, other_run)
    common = dict(device="cpu", workers=0, progress=False, stride=4)
    together = infer_store(str(store_dir), [str(checkpoint_path), str(tmp_path / "runs")],
                           save_dir=str(tmp_path / "one_pass"), **common)
    assert len(together) == 2 and together[0] != together[1]
    for i, (checkpoint, path) in enumerate(zip([checkpoint_path, other_run], together)):
        (alone,) = infer_store(str(store_dir), [str(checkpoint)], save_dir=str(tmp_path / f"alone_{i}"), **common)
        a, b = load_frame_scores(path), load_frame_scores(alone)
        assert a["checkpoint"] == b["checkpoint"] == str(checkpoint.resolve())
        for video in LENGTHS:
            np.testing.assert_allclose(a["videos"][video]["scores"], b["videos"][video]["scores"], atol=1e-6)
    first, second = (load_frame_scores(p)["videos"]["long_video"]["scores"] for p in together)
    assert np.abs(first - second).max() > 1e-3  # the two models differ



def test_inference_says_what_it_will_score_and_projects_the_time(store_dir, checkpoint_path, tmp_path, capsys):
    infer_store(str(store_dir), [str(checkpoint_path)], str(tmp_path), device="cpu", workers=0, progress=True)
    err = capsys.readouterr().err
    frames = sum(LENGTHS.values())
    assert f"to score: {frames} frames," in err
    assert "projected:" in err and "windows/s over the first" in err


def test_the_openvino_engine_gives_the_scores_of_torch(store_dir, checkpoint_path, tmp_path):
    """--engine openvino: every frame's argmax and its scores (within 1e-5) as torch gives them; the file says so."""
    common = dict(device="cpu", workers=0, progress=False, stride=2)
    (torch_path,) = infer_store(str(store_dir), [str(checkpoint_path)], save_dir=str(tmp_path / "torch"), **common)
    (ov_path,) = infer_store(str(store_dir), [str(checkpoint_path)], save_dir=str(tmp_path / "ov"), engine="openvino",
                             flip_tta=True, batch_size=3, **common)  # batches of every size, mirrored views
    (flip_path,) = infer_store(str(store_dir), [str(checkpoint_path)], save_dir=str(tmp_path / "flip"), flip_tta=True,
                               batch_size=3, **common)
    ov = load_frame_scores(ov_path)
    assert ov["extra"]["engine"] == "openvino" and load_frame_scores(torch_path)["extra"]["engine"] == "torch"
    reference = load_frame_scores(flip_path)
    for video in LENGTHS:
        a, b = ov["videos"][video]["scores"], reference["videos"][video]["scores"]
        np.testing.assert_allclose(a, b, atol=1e-5)
        assert (a.argmax(1) == b.argmax(1)).all()
    assert np.abs(ov["videos"]["long_video"]["scores"] - load_frame_scores(torch_path)["videos"]["long_video"][
        "scores"]).max() > 1e-4  # the flipped views count: the comparison is not with itself


@pytest.mark.parametrize("options, message", [
    (dict(compat="original"), "--compat original runs the original's windows in fp32.*drop --engine"),
    (dict(amp="bf16"), "--engine openvino runs in f32.*drop --amp bf16"),
    (dict(device="cuda"), "--engine openvino runs on the CPU, not --device cuda: use --device cpu"),
    (dict(engine="tensorrt"), "--engine must be one of torch, openvino, got 'tensorrt'"),
])
def test_the_openvino_engine_refuses_what_it_cannot_run(store_dir, checkpoint_path, tmp_path, options, message):
    options = {"engine": "openvino", "device": "cpu", **options}
    with pytest.raises(InferenceError, match=message):
        infer_store(str(store_dir), [str(checkpoint_path)], save_dir=str(tmp_path), workers=0, progress=False,
                    **options)
    assert not list(tmp_path.rglob("*.pkl"))


def test_the_openvino_engine_names_the_package_when_it_is_missing(monkeypatch):
    import signspot.openvino_engine as engine
    from signspot.scoring import ScoringError, ScoringOptions

    monkeypatch.setattr(engine, "openvino_missing", lambda: True)
    with pytest.raises(ScoringError, match=r"needs the openvino package: pip install openvino==\d"):
        ScoringOptions(engine="openvino")


def test_the_openvino_engine_runs_on_the_cpu_when_no_device_is_named(monkeypatch):
    """No --device with --engine openvino is the CPU, even where CUDA would be the default."""
    from signspot.scoring import ScoringOptions

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ScoringOptions(engine="openvino").device == "cpu"
    assert ScoringOptions().device is None  # torch's default is left to the runtime
