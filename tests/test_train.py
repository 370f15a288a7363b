"""Training: losses, schedule, checkpoints, end-to-end runs on a tiny synthetic store, resume, torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from signspot import train as train_mod
from signspot.checkpoint import FORMAT_VERSION, load_checkpoint, load_model_weights, load_training_checkpoint
from signspot.config import ConfigError, load_config
from signspot.datasets.store_writer import create_frame_store
from signspot.losses import head_losses, pool_targets, weighted_total
from signspot.run_dir import LATEST_NAME, RunDir
from signspot.train import TrainingDivergedError, cosine_factor
from signspot.train_data import DataError, augmentation_backend

ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = 3
COLOURS = [(255, 40, 40), (40, 255, 40), (40, 40, 255)]


# ------------------------------------------------------------------ tiny data set
def _write_videos(root: Path, num_videos: int = 4, frames: int = 48, size: int = 24, seed: int = 0) -> dict:
    """Videos where each sign is a full-frame colour block; returns {video: [(label, start, end)]}."""
    rng = np.random.default_rng(seed)
    videos_dir = root / "videos"
    videos_dir.mkdir(parents=True)
    signs = {}
    for v in range(num_videos):
        name = f"video{v}"
        timeline, t = [], 4
        while t + 14 < frames:
            length = int(rng.integers(8, 13))
            timeline.append((int(rng.integers(NUM_CLASSES)), t, t + length - 1))
            t += length + int(rng.integers(4, 9))
        writer = cv2.VideoWriter(str(videos_dir / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (size, size))
        for f in range(frames):
            image = np.full((size, size, 3), 90, np.uint8)
            for label, s, e in timeline:
                if s <= f <= e:
                    image[:] = COLOURS[label]
            writer.write(image)
        writer.release()
        signs[name] = timeline
    return signs


def _write_csv(path: Path, signs: dict, videos, frames: int) -> None:
    lines = ["video,label,start_frame,end_frame,fcount"]
    lines += [f"{v},{label},{s},{e},{frames}" for v in videos for label, s, e in signs[v]]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_data")
    signs = _write_videos(root)
    (root / "boxes.json").write_text(json.dumps({v: [0, 0, 24, 24] for v in signs}))
    create_frame_store(root / "store", root / "videos", root / "boxes.json", size=16, workers=0, progress=False)
    folds = root / "folds"
    folds.mkdir()
    names = sorted(signs)
    _write_csv(folds / "train_0.csv", signs, names[:3], 48)
    _write_csv(folds / "valid_0.csv", signs, names[3:], 48)
    return root


def _overrides(data: Path, run_dir: Path, **extra) -> list:
    values = {
        "data.frame_store": str(data / "store"),
        "data.folds_dir": str(data / "folds"),
        "data.num_classes": NUM_CLASSES,
        "data.window": 16,
        "data.resize": 16,
        "data.crop": 16,
        "data.num_workers": 0,
        "model.name": "hs_i3d_tiny",
        "model.dropout": 0.1,
        "train.batch_size": 4,
        "train.drop_last": False,  # the tiny folds hold few rows
        "train.epochs": 2,
        "train.log_every": 1,
        "train.seed": 3,
        "eval.every_epochs": 1,
        "eval.batch_size": 4,
        "eval.num_workers": 0,
        "io.run_dir": str(run_dir),
    }
    values.update(extra)
    return [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in values.items()]


def _train_rows(data: Path) -> int:
    return len((data / "folds" / "train_0.csv").read_text().splitlines()) - 1


def _run(data, run_dir, **extra):
    return train_mod.run_training(str(ROOT / "config" / "demo_config.py"), _overrides(data, run_dir, **extra))


# ------------------------------------------------------------------ pure pieces
def test_pool_targets_maxfix():
    target = torch.zeros(1, 8, 3)  # 2 classes + background
    target[0, :, 2] = 1
    target[0, 2:4, 0] = 1  # a sign of class 0 on frames 2-3
    target[0, 2:4, 2] = 0
    pooled = pool_targets(target, 4, maxfix=True)
    assert pooled[0, :, 0].tolist() == [0, 1, 0, 0]
    assert pooled[0, :, 2].tolist() == [1, 0, 1, 1]  # background only where no sign is left
    plain = pool_targets(target, 2, maxfix=False)
    assert plain[0, 0].tolist() == [1, 0, 1]  # max-pooling alone keeps background next to the sign
    assert pool_targets(target, 2, maxfix=True)[0, 0].tolist() == [1, 0, 0]


def test_head_losses_are_soft_cross_entropy():
    torch.manual_seed(0)
    target = torch.zeros(2, 8, 4)
    target[..., 3] = 1
    outputs = {"a": torch.randn(2, 2, 4), "b": torch.randn(2, 8, 4)}
    losses = head_losses(outputs, target)
    expected_b = -(torch.log_softmax(outputs["b"], -1)[..., 3]).mean()
    torch.testing.assert_close(losses["b"], expected_b)
    total = weighted_total(losses, ["a", "b"], [1.0, 3.0])
    torch.testing.assert_close(total, (losses["a"] + 3 * losses["b"]) / 4)


def test_cosine_schedule_ends_at_min_factor():
    assert cosine_factor(0, 100, 0.1) == pytest.approx(1.0)
    assert cosine_factor(50, 100, 0.1) == pytest.approx(0.55)
    assert cosine_factor(100, 100, 0.1) == pytest.approx(0.1)
    values = [cosine_factor(i, 100, 0.1) for i in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("stored", [{"compat": "none"}, {"compat": "original"}, {"protocol": "full"},
                                    {"protocol": "original"}])  # protocol: the field's name before
def test_save_if_best_keeps_the_top_k(tmp_path, stored):
    def save(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")

    run, history = RunDir(tmp_path), []
    run.config_path.write_text(json.dumps({"eval": stored}))
    newer = "original" in stored.values()  # the original's checkpoint handler: an equal score replaces a kept one

    def validated(epoch, f1):
        history.append({"epoch": epoch, "val_f1": f1})
        run.write_history(history)
        return run.save_if_best(history, 3, save, newer_first=newer)

    saved = [validated(epoch, f1) is not None
             for epoch, f1 in [(5, 0.3), (10, 0.5), (15, 0.4), (20, 0.2), (25, 0.45), (30, 0.4)]]
    # a tie with the worst kept one (epoch 30: 0.4, like epoch 15) is saved only under the original rule
    assert saved == [True, True, True, False, True, newer]
    kept = [(f1, epoch) for f1, epoch, _ in run.best_checkpoints()]
    assert kept == ([(0.5, 10), (0.45, 25), (0.4, 30)] if newer else [(0.5, 10), (0.45, 25), (0.4, 15)])
    validated(35, 0.5)
    kept = [(f1, epoch) for f1, epoch, _ in run.best_checkpoints()]
    assert kept == ([(0.5, 35), (0.5, 10), (0.45, 25)] if newer else [(0.5, 10), (0.5, 35), (0.45, 25)])
    assert len(list(run.ckpt_dir.iterdir())) == 3
    best = "best_checkpoint_35_0.5000.pt" if newer else "best_checkpoint_10_0.5000.pt"
    assert run.best_checkpoint() == run.ckpt_dir / best  # read from history.jsonl, ties by config.json's rule


# ------------------------------------------------------------------ training runs
def test_loss_decreases_on_a_fixed_batch(tiny_data):
    from signspot.datasets.transforms import EvalClipTransform, normalize_clip
    from signspot.datasets.windows import TrainWindowDataset
    from signspot.models import build_model

    dataset = TrainWindowDataset(
        tiny_data / "folds" / "train_0.csv", str(tiny_data / "store"), NUM_CLASSES, window=16,
        transform=EvalClipTransform(resize=16, crop=16),
    )
    batch = torch.utils.data.default_collate([dataset[i] for i in range(2)])
    torch.manual_seed(0)
    model = build_model("hs_i3d_tiny", num_classes=NUM_CLASSES, dropout=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for _ in range(12):
        losses = head_losses(model(normalize_clip(batch["clip"])), batch["target"])
        loss = weighted_total(losses, list(losses), [0.2] * 5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert np.isfinite(history).all()
    assert np.mean(history[-3:]) < 0.5 * np.mean(history[:3]), history


def test_end_to_end_and_resume_equivalence(tiny_data, tmp_path):
    from signspot.models import build_model

    full = tmp_path / "full"
    summary = _run(tiny_data, full, **{"io.tensorboard": True})
    ckpt_dir = full / "ckpts"
    assert (ckpt_dir / LATEST_NAME).is_file()
    # one or two best checkpoints: epoch 2 replaces nothing when its F1 ties epoch 1's
    assert 1 <= len(summary["best_checkpoints"]) <= 2 and summary["best_f1"] is not None
    history = [json.loads(line) for line in (full / "history.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2]
    for key in ("loss", "loss_x4", "loss_x", "lr", "clips_per_s", "val_f1", "val_precision", "val_recall"):
        assert np.isfinite(history[-1][key]), key
    assert 0.0 <= history[-1]["val_f1"] <= 1.0
    assert history[1]["lr"] < history[0]["lr"]
    assert json.loads((full / "config.json").read_text())["data"]["num_classes"] == NUM_CLASSES
    assert any((full / "tensorboard").iterdir())

    # The released layout: inference loads it like a released checkpoint.
    ckpt = load_checkpoint(ckpt_dir / LATEST_NAME)
    assert ckpt["format_version"] == FORMAT_VERSION and ckpt["epoch"] == 2
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in ckpt["model"])
    assert ckpt["config"]["model"]["name"] == "hs_i3d_tiny"
    for key in ("optimizer", "scheduler", "rng", "metrics", "iteration"):
        assert key in ckpt
    model = build_model("hs_i3d_tiny", num_classes=NUM_CLASSES)
    assert load_model_weights(model, ckpt, source="latest") == len(model.state_dict())

    # Interrupted after epoch 1, then resumed: same weights as the uninterrupted run. The second
    # run also loads its data in a worker process: sampling must not depend on who loads.
    split = tmp_path / "split"
    _run(tiny_data, split, **{"train.stop_after_epoch": 1, "data.num_workers": 1})
    assert load_training_checkpoint(split / "ckpts" / LATEST_NAME)["epoch"] == 1
    resumed = _run(tiny_data, split, **{"data.num_workers": 1})
    assert resumed["epochs_done"] == 2
    a = load_training_checkpoint(ckpt_dir / LATEST_NAME)
    b = load_training_checkpoint(split / "ckpts" / LATEST_NAME)
    assert a["iteration"] == b["iteration"]
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=1e-6, msg=key)
    for state_a, state_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        torch.testing.assert_close(state_b["exp_avg"], state_a["exp_avg"], rtol=0, atol=1e-6)
    split_history = [json.loads(line) for line in (split / "history.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in split_history] == [1, 2]
    assert split_history[1]["loss"] == pytest.approx(history[1]["loss"], abs=1e-6)

    # A finished run resumed again trains nothing and keeps its checkpoint.
    again = _run(tiny_data, split)
    assert again["iteration"] == a["iteration"]


def test_device_augmentation_trains_the_same_whoever_loads(tiny_data, tmp_path):
    """data.augment_on=device: the loader only decodes, the augmentation runs in the training
    process (here the CPU stands in for a GPU); still a function of the seed alone."""
    extra = {"data.augment_on": "device", "data.crop": 12, "train.epochs": 1, "eval.every_epochs": 0}
    in_process = _run(tiny_data, tmp_path / "a", **extra)
    in_worker = _run(tiny_data, tmp_path / "b", **extra, **{"data.num_workers": 1})
    assert in_process["iteration"] == in_worker["iteration"] > 0
    a = load_training_checkpoint(tmp_path / "a" / "ckpts" / LATEST_NAME)
    b = load_training_checkpoint(tmp_path / "b" / "ckpts" / LATEST_NAME)
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=1e-6, msg=key)
    history = [json.loads(line) for line in (tmp_path / "a" / "history.jsonl").read_text().splitlines()]
    assert np.isfinite(history[-1]["loss"])
    assert augmentation_backend("auto", torch.device("cpu")) == "loader"
    assert augmentation_backend("auto", torch.device("cuda", 0)) == "device"
    with pytest.raises(ConfigError, match="data.augment_on"):
        load_config(str(ROOT / "config" / "demo_config.py"), ['data.augment_on="gpu"'])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    real_total = train_mod.weighted_total
    calls = {"n": 0}
    per_epoch = -(-_train_rows(tiny_data) // 4)

    def poisoned(losses, names, weights):
        calls["n"] += 1
        total = real_total(losses, names, weights)
        return total * float("nan") if calls["n"] > per_epoch else total  # poison epoch 2

    monkeypatch.setattr(train_mod, "weighted_total", poisoned)
    run_dir = tmp_path / "nan"
    with pytest.raises(TrainingDivergedError, match=r"epoch 2.*last good checkpoint"):
        _run(tiny_data, run_dir, **{"eval.every_epochs": 0})
    assert load_training_checkpoint(run_dir / "ckpts" / LATEST_NAME)["epoch"] == 1


# ------------------------------------------------------------------ the original recipe's points
def test_the_batch_is_one_step_over_all_processes():
    from signspot.train_data import per_process_batch

    assert per_process_batch(8, 1) == 8 and per_process_batch(8, 4) == 2
    with pytest.raises(ConfigError, match="train.batch_size: 8 clips per step cannot be split evenly between 3"):
        per_process_batch(8, 3)


def test_recipe_defaults_are_the_original():
    from signspot.config import Config

    cfg = Config()
    assert cfg.train.drop_last is True and cfg.eval.compat == "original" and cfg.train.batch_size == 8
    assert cfg.train.sync_batchnorm is False


def test_drop_last_drops_the_last_incomplete_batch(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    _run(tiny_data, run_dir, **{"train.epochs": 1, "eval.every_epochs": 0, "train.drop_last": True})
    rows = _train_rows(tiny_data)
    assert rows % 4 and load_training_checkpoint(run_dir / "ckpts" / LATEST_NAME)["iteration"] == rows // 4


def test_validation_ground_truth_from_the_pkl(tiny_data, tmp_path):
    from signspot.formats.gt import save_intervals_pkl
    from signspot.runtime import setup_runtime
    from signspot.train_data import open_store
    from signspot.validate import build_validation

    cfg = load_config(str(ROOT / "config" / "demo_config.py"), _overrides(tiny_data, tmp_path / "run"))
    store = open_store(cfg)
    rt = setup_runtime("cpu", None, cpu_autocast=False)
    from_csv = build_validation(cfg, store, rt)
    assert from_csv.gt and all(from_csv.gt.values())
    pkl = {video: [[0, 0, 40]] for video in from_csv.videos}
    save_intervals_pkl({**pkl, "other_video": [[1, 0, 80]]}, tmp_path / "gt.pkl")
    cfg.eval.ground_truth = (str(tmp_path / "gt.pkl"),)
    assert build_validation(cfg, store, rt).gt == pkl  # the validation videos' signs, as the pkl has them
    save_intervals_pkl({"other_video": [[1, 0, 80]]}, tmp_path / "gt.pkl")
    with pytest.raises(ConfigError, match="eval.ground_truth: .* validation video"):
        build_validation(cfg, store, rt)


def test_sync_batchnorm_converts_under_torchrun_and_is_refused_on_cpus():
    from types import SimpleNamespace

    from signspot.config import Config
    from signspot.models import build_model

    cfg, model = Config(), build_model("hs_i3d_tiny", num_classes=3)
    cfg.train.sync_batchnorm = True
    single = SimpleNamespace(dist=SimpleNamespace(enabled=False), device=torch.device("cpu"))
    assert train_mod._maybe_sync_batchnorm(model, cfg, single, print) is model  # one process: nothing to sync
    cpus = SimpleNamespace(dist=SimpleNamespace(enabled=True), device=torch.device("cpu"))
    with pytest.raises(ConfigError, match="train.sync_batchnorm: synchronised BatchNorm runs on CUDA devices only"):
        train_mod._maybe_sync_batchnorm(model, cfg, cpus, print)
    gpus = SimpleNamespace(dist=SimpleNamespace(enabled=True), device=torch.device("cuda", 0))
    synced = train_mod._maybe_sync_batchnorm(model, cfg, gpus, lambda message: None)
    kinds = {type(m).__name__ for m in synced.modules()}
    assert "SyncBatchNorm" in kinds and not any(k.startswith("BatchNorm") for k in kinds)
    assert set(synced.state_dict()) == set(build_model("hs_i3d_tiny", num_classes=3).state_dict())  # same keys


def test_bad_inputs_are_named(tiny_data, tmp_path):
    run_dir = tmp_path / "bad"
    with pytest.raises(FileNotFoundError, match="no such frame store"):
        _run(tiny_data, run_dir, **{"data.frame_store": str(tmp_path / "nowhere")})
    with pytest.raises(FileNotFoundError, match="model.init_checkpoint"):
        _run(tiny_data, run_dir, **{"model.init_checkpoint": str(tmp_path / "missing.pt")})
    with pytest.raises(FileNotFoundError, match="train_7.csv"):
        _run(tiny_data, run_dir, **{"data.fold": 7})

    folds = tmp_path / "folds"
    folds.mkdir()
    header = "video,label,start_frame,end_frame,fcount\n"
    (folds / "train_0.csv").write_text(header + "video0,1,4,12,48\nghost,0,3,9,48\n")
    (folds / "valid_0.csv").write_text(header + "video3,0,4,12,48\n")
    with pytest.raises(DataError, match="ghost"):
        _run(tiny_data, run_dir, **{"data.folds_dir": str(folds)})
    (folds / "train_0.csv").write_text(header + "video0,1,4,12,48\nvideo1,3,3,9,48\n")
    with pytest.raises(DataError, match=r"line 3 has label 3, outside \[0, 3\)"):
        _run(tiny_data, run_dir, **{"data.folds_dir": str(folds)})
    (folds / "train_0.csv").write_text(header + "video0,1,4,12,48\n")
    (folds / "valid_0.csv").write_text(header)
    with pytest.raises(DataError, match="no validation videos"):
        _run(tiny_data, run_dir, **{"data.folds_dir": str(folds)})
    with pytest.raises(ConfigError, match="data.folds_dir or data.train_csv"):
        _run(tiny_data, run_dir, **{"data.folds_dir": ""})


def test_main_script_reports_errors_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--config", str(ROOT / "config" / "demo_config.py"),
         "--set", "train.epoch=3"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert result.returncode != 0
    assert "train.epoch" in result.stderr and "Traceback" not in result.stderr


def test_torchrun_two_cpu_processes(tiny_data, tmp_path):
    run_dir = tmp_path / "ddp"
    overrides = _overrides(tiny_data, run_dir, **{"train.epochs": 1, "train.batch_size": 2, "train.device": "cpu"})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "main.py"), "--config", str(ROOT / "config" / "demo_config.py")]
    for item in overrides:
        cmd += ["--set", item]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert len(history) == 1 and 0.0 <= history[0]["val_f1"] <= 1.0
    ckpt = load_training_checkpoint(run_dir / "ckpts" / LATEST_NAME)
    # The balanced draw of len(rows) samples is split between the 2 processes; the step's batch of 2
    # is split too (1 clip per process), so a step sees the samples a one-process step would.
    per_process = -(-_train_rows(tiny_data) // 2)
    assert ckpt["iteration"] == per_process
    assert not any(k.startswith("module.") for k in ckpt["model"])


def test_grid_is_named_like_the_released_runs(tmp_path):
    from signspot.grid import grid_runs, train_grid

    (tmp_path / "folds" / "original_split").mkdir(parents=True)
    for k in range(5):
        (tmp_path / "folds" / "original_split" / f"train_{k}.csv").write_text("")
    runs = grid_runs(tmp_path / "folds", tmp_path / "runs", exclude_folds=[3])
    names = [str(Path(r["run_dir"]).relative_to(tmp_path / "runs")) for r in runs]
    assert len(names) == 3 * 4 + 3 * 6  # the released ensemble: 30 runs without fold 3
    assert "5fold_neg01/maxfix_neg01_fold4" in names and "7fold_neg05/maxfix_neg05_fold6" in names
    assert "5fold_neg0/maxfix_neg0_fold0" in names and not any(n.endswith("fold3") for n in names)
    results = train_grid(str(tmp_path / "folds"), str(tmp_path / "runs"), "config/example_config.py",
                         splits=["original_split"], neg_probs=[0.1], nproc_per_node=2, dry_run=True)
    assert len(results) == 5 and all(r["returncode"] is None for r in results)
    command = results[4]["command"]
    assert "--nproc_per_node=2" in command and "data.fold=4" in command and "data.neg_prob=0.1" in command
    # every run's overrides are valid config overrides
    cfg = load_config(str(ROOT / "config" / "example_config.py"), runs[0]["overrides"])
    assert cfg.io.run_dir == runs[0]["run_dir"] and cfg.data.train_csv.endswith("train_0.csv")
