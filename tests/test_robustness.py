"""Careless and hostile input: each defect found by trying every command with bad input."""

import subprocess
import sys
from pathlib import Path

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
