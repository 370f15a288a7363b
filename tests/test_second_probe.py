"""The second hostile-input probe: each defect and weak spot it found, held by a test that failed before the fix."""

import errno
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from signspot.config import Config, ConfigError, load_config
from signspot.decode import DecodeSettings, DecodeSettingsError
from signspot.formats.elan import EafError, read_eaf_annotations, write_eaf
from signspot.formats.gt import MalformedIntervalsError, load_intervals, save_intervals_pkl, save_intervals_txt
from signspot.formats.safe_io import OutputIsInputError
from signspot.formats.scores import save_frame_scores
from signspot.formats.vocabulary import Vocabulary, VocabularyError, load_vocabulary
from signspot.run_dir import RunDirError
from tests.test_train import _overrides, _run, tiny_data  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _command(tmp_path: Path, script: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=240, env={**os.environ, "SIGNSPOT_DEBUG": ""})


def _one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("error:") and expected in lines[-1], lines


def _scores(path: Path, videos=("v",), frames=40) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    save_frame_scores(path, {v: {"scores": rng.random((frames, 4)).astype(np.float32), "fps": 25.0,
                                 "num_frames": frames} for v in videos},
                      checkpoint="a.pt", head_weights=None, window=32, stride=1)


# ------------------------------------------------------------------ 1, 2 and the config weak spots
@pytest.mark.parametrize("override, key", [
    ("optim.lr=1e999", "optim.lr"),  # inf: trained to NaN weights, exit 0
    ("optim.lr=nan", "optim.lr"),
    ("optim.grad_clip=-1", "optim.grad_clip"),  # gradient ascent, silently
    ("optim.weight_decay=-0.1", "optim.weight_decay"),
    ("optim.betas=(2.0, 0.999)", "optim.betas"),
    ("data.crop=0", "data.crop"),
    ("data.window=12", "data.window"),
    ("train.seed=-5", "train.seed"),
    ("train.head_weights=(0.2, 0.2, 0.2, 0.2, inf)", "train.head_weights"),
    ("model.name=resnet", "model.name"),
])
def test_every_numeric_config_field_is_checked_for_range_and_finiteness(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_json_spellings_of_true_false_and_null_are_accepted():
    cfg = load_config(None, ["train.drop_last=false", "train.compile=true", "optim.grad_clip=null"])
    assert cfg.train.drop_last is False and cfg.train.compile is True and cfg.optim.grad_clip is None
    assert load_config(None, ["model.bsl1k_weights=null"]).model.bsl1k_weights is None


def test_a_config_file_whose_get_config_raises_is_one_line(tmp_path):
    (tmp_path / "bad_config.py").write_text("def get_config():\n    return {}['missing']\n")
    with pytest.raises(ConfigError, match="get_config\\(\\) failed \\(KeyError"):
        load_config(str(tmp_path / "bad_config.py"))


def test_main_py_refuses_an_infinite_learning_rate_and_writes_nothing(tmp_path):
    result = _command(tmp_path, "main.py", "--set", "optim.lr=1e999", "--set", f"io.run_dir={tmp_path / 'run'}")
    _one_line_error(result, "optim.lr")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ 3. NaN decoding
def test_a_nan_background_margin_is_refused_on_the_command_line_and_in_a_decode_config(tmp_path):
    _scores(tmp_path / "res" / "run_a" / "frame_scores.pkl")
    result = _command(tmp_path, "solution_test_creator_v2.py", "--results-dir", tmp_path / "res",
                      "--background-margin", "nan", "--out", tmp_path / "pred.pkl")
    _one_line_error(result, "background_margin")
    (tmp_path / "decode.json").write_text('{"settings": {"background_margin": NaN}}')
    with pytest.raises(DecodeSettingsError, match="finite"):
        DecodeSettings.load_json(tmp_path / "decode.json")
    with pytest.raises(DecodeSettingsError, match="finite"):
        DecodeSettings(background_margin=10**400)
    assert not (tmp_path / "pred.pkl").exists()


# ------------------------------------------------------------------ 4, 5. an output over an input
@pytest.mark.parametrize("flag", ["--evaluate", "--tune-on"])
def test_predictions_are_never_written_over_the_ground_truth(tmp_path, flag):
    _scores(tmp_path / "res" / "run_a" / "frame_scores.pkl")
    save_intervals_pkl({"v": [[0, 40, 400]]}, tmp_path / "gt.pkl")
    before = (tmp_path / "gt.pkl").read_bytes()
    os.symlink(tmp_path / "gt.pkl", tmp_path / "link.pkl")  # another spelling of the same file
    for out in (tmp_path / "gt.pkl", tmp_path / "link.pkl"):
        result = _command(tmp_path, "solution_test_creator_v2.py", "--results-dir", tmp_path / "res", "--out", out,
                          flag, tmp_path / "gt.pkl")
        _one_line_error(result, f"--out is also {flag}")
    assert (tmp_path / "gt.pkl").read_bytes() == before


def test_evaluate_never_writes_its_json_over_the_predictions(tmp_path):
    save_intervals_pkl({"v": [[0, 40, 400]]}, tmp_path / "gt.pkl")
    save_intervals_pkl({"v": [[0, 40, 400]]}, tmp_path / "pred.pkl")
    before = _files(tmp_path)
    _one_line_error(_command(tmp_path, "scripts/evaluate.py", "--gt", "gt.pkl", "--pred", "pred.pkl", "--json",
                             "./pred.pkl"), "--json is also --pred")
    assert _files(tmp_path) == before


def test_every_command_refuses_an_output_that_is_an_input(tmp_path):
    from signspot.cli import convert_annotations, make_folds, visualize

    save_intervals_pkl({"v": [[0, 40, 400]]}, tmp_path / "gt.pkl")
    with pytest.raises(OutputIsInputError):
        convert_annotations.main(str(tmp_path / "gt.pkl"), str(tmp_path / "gt.pkl"))
    with pytest.raises(OutputIsInputError):
        make_folds.main(str(tmp_path / "gt.pkl"), [str(tmp_path)], str(tmp_path / "gt.pkl"))
    with pytest.raises(OutputIsInputError):
        visualize.main(gt=str(tmp_path / "gt.pkl"), out=str(tmp_path / "gt.pkl"))


# ------------------------------------------------------------------ 6. a full disk part-way through
def test_a_conversion_that_fails_part_way_leaves_nothing_and_names_the_file(tmp_path, monkeypatch):
    from signspot.cli.convert_annotations import main as convert

    gt = {f"video_{k}": [[0, 40 * k + 40, 40 * k + 400]] for k in range(5)}
    save_intervals_pkl(gt, tmp_path / "gt.pkl")
    real_fsync, calls = os.fsync, []

    def full_disk(fd):
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match=r"No space left on device while writing.*video_2\.txt"):
        convert(str(tmp_path / "gt.pkl"), str(tmp_path / "txt"), to="txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.pkl"]  # no folder, no temporary leftovers
    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed: the rerun completes
    convert(str(tmp_path / "gt.pkl"), str(tmp_path / "txt"), to="txt")
    assert load_intervals(tmp_path / "txt") == gt


def test_files_added_to_an_existing_folder_all_land_or_none(tmp_path):
    save_intervals_txt({"a": [[0, 0, 40]]}, tmp_path / "txt")
    with pytest.raises(FileExistsError, match="a.txt: exists already"):
        save_intervals_txt({"b": [[0, 0, 40]], "a": [[1, 0, 40]]}, tmp_path / "txt")
    assert sorted(p.name for p in (tmp_path / "txt").iterdir()) == ["a.txt"]
    save_intervals_txt({"b": [[0, 0, 40]]}, tmp_path / "txt")
    assert load_intervals(tmp_path / "txt") == {"a": [[0, 0, 40]], "b": [[0, 0, 40]]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["txt"]


# ------------------------------------------------------------------ 7. a damaged history.jsonl
@pytest.mark.parametrize("damage", [b'{"epoch": 1}\n{not json\n', b'[1, 2]\n', b'\xff\xfe\n'])
def test_a_damaged_history_is_refused_before_config_json_is_replaced(tiny_data, tmp_path, damage):  # noqa: F811
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"the": "earlier config"}\n')
    (run_dir / "history.jsonl").write_bytes(damage)
    before = _files(run_dir)
    with pytest.raises(RunDirError, match="history.jsonl"):
        _run(tiny_data, run_dir, **{"train.epochs": 1, "eval.every_epochs": 0})
    assert _files(run_dir) == before


# ------------------------------------------------------------------ weak spots: values and annotations
@pytest.mark.parametrize("row, message", [
    ([0, 40, 10**30], "past"),
    ([0, int("9" * 400), int("9" * 401)], "past"),
    ([2**40, 0, 40], "class"),
    ([0, 40, 40], "is not before end_ms"),
])
def test_huge_or_zero_length_rows_are_one_line_everywhere(tmp_path, row, message):
    (tmp_path / "gt.pkl").write_bytes(pickle.dumps({"v": [row]}))
    with pytest.raises(MalformedIntervalsError, match=message):
        load_intervals(tmp_path / "gt.pkl")
    save_intervals_pkl({"v": [[0, 40, 400]]}, tmp_path / "ok.pkl")
    _one_line_error(_command(tmp_path, "scripts/evaluate.py", "--gt", "gt.pkl", "--pred", "ok.pkl"), "gt.pkl")
    _one_line_error(_command(tmp_path, "scripts/evaluate.py", "--gt", "ok.pkl", "--pred", "gt.pkl"), "gt.pkl")
    if row[1] < row[2] or row[1] == row[2] and row[1] < 10**6:  # the TXT reader and the ELAN writer: the same rule
        (tmp_path / "txt").mkdir()
        (tmp_path / "txt" / "v.txt").write_text(",".join(map(str, row)) + "\n")
        with pytest.raises(MalformedIntervalsError, match=message):
            load_intervals(tmp_path / "txt")


def test_an_eaf_with_two_tiers_of_one_name_is_refused(tmp_path):
    write_eaf(tmp_path / "v.eaf", [[0, 0, 40]])
    text = (tmp_path / "v.eaf").read_text()
    start, end = text.index("<TIER "), text.index("</TIER>") + len("</TIER>")
    (tmp_path / "v.eaf").write_text(text[:end] + text[start:end] + text[end:])
    with pytest.raises(EafError, match="two tiers are named 'signspot'"):
        read_eaf_annotations(tmp_path / "v.eaf")


def test_a_report_with_a_class_outside_the_vocabulary_is_refused(tmp_path):
    save_intervals_pkl({"v": [[0, 40, 400], [5, 500, 900]]}, tmp_path / "gt.pkl")
    (tmp_path / "vocabulary.txt").write_text("HELLO\nWORLD\n")
    _one_line_error(_command(tmp_path, "scripts/evaluate.py", "--gt", "gt.pkl", "--pred", "gt.pkl", "--vocabulary",
                             "vocabulary.txt", "--report"), "class 5 has no gloss")


@pytest.mark.parametrize("neg_probs", ["0,1.5", "0,nan"])
def test_train_grid_checks_every_run_before_the_first(tmp_path, neg_probs):
    result = _command(tmp_path, "scripts/train_grid.py", "--folds-root", tmp_path, "--out", tmp_path / "runs",
                      "--neg-probs", neg_probs, "--dry-run")
    _one_line_error(result, "data.neg_prob")
    assert "[1/" not in result.stdout and not (tmp_path / "runs").exists()


def test_visualize_refuses_a_max_videos_below_one(tmp_path):
    save_intervals_pkl({"v": [[0, 40, 400]]}, tmp_path / "gt.pkl")
    _one_line_error(_command(tmp_path, "scripts/visualize.py", "--gt", "gt.pkl", "--max-videos", "-1", "--out",
                             "plots"), "--max-videos")
    assert not (tmp_path / "plots").exists()


def test_conversion_refuses_to_mix_txt_and_eaf_files_in_a_folder(tmp_path):
    from signspot.cli.convert_annotations import main as convert
    from signspot.cli.convert_annotations import run

    save_intervals_pkl({"v": [[0, 40, 400]]}, tmp_path / "gt.pkl")
    convert(str(tmp_path / "gt.pkl"), str(tmp_path / "eaf"), to="eaf")
    before = _files(tmp_path)
    with pytest.raises(OutputIsInputError):  # into the input folder itself
        convert(str(tmp_path / "eaf"), str(tmp_path / "eaf"), to="txt")
    with pytest.raises(SystemExit, match=r"holds 1 \.eaf file"):  # into another folder of ELAN files
        run(["--in", str(tmp_path / "gt.pkl"), "--out", str(tmp_path / "eaf"), "--to", "txt"])
    assert _files(tmp_path) == before


def test_store_creator_full_disk_is_one_line_naming_the_store(tmp_path, monkeypatch):
    import lmdb

    from signspot.datasets import store_writer
    from signspot.datasets.frame_store import FrameStoreError
    from tests.test_frame_store import make_dataset

    vids, boxes = make_dataset(tmp_path, {"a": 10, "b": 10})

    class FullDiskTxn:
        def __init__(self, txn):
            self.txn = txn

        def __enter__(self):
            self.txn.__enter__()
            return self

        def __exit__(self, *exc):
            return self.txn.__exit__(*exc)

        def put(self, key, value):
            if key.startswith(b"frame/b/"):
                raise lmdb.DiskError("mdb_txn_commit: No space left on device")
            return self.txn.put(key, value)

        def __getattr__(self, name):
            return getattr(self.txn, name)

    class FullDiskEnv:
        def __init__(self, env):
            self.env = env

        def begin(self, write=False):
            return FullDiskTxn(self.env.begin(write=write)) if write else self.env.begin()

        def __getattr__(self, name):
            return getattr(self.env, name)

    real_init = store_writer._Writer.__init__

    def init(self, path):
        real_init(self, path)
        self.env = FullDiskEnv(self.env)

    monkeypatch.setattr(store_writer._Writer, "__init__", init)
    with pytest.raises(FrameStoreError, match="writing the store failed.*disk full"):
        store_writer.create_frame_store(tmp_path / "store", vids, boxes, size=16, workers=0, progress=False)
    assert not (tmp_path / "store").exists()


# ------------------------------------------------------------------ Ctrl-C and errors from worker processes
def test_ctrl_c_ends_with_one_line_saying_how_to_resume(capsys):
    import argparse

    from signspot.cli._exit import run_main

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_info:
        run_main(interrupted, argparse.Namespace(), on_interrupt="run it again to resume")
    assert exit_info.value.code == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["interrupted: run it again to resume"]


@pytest.mark.parametrize("error", ["typed", "untyped"])
def test_an_error_in_a_loader_worker_is_one_line(error):
    import argparse

    import torch

    from signspot.cli._exit import run_main
    from signspot.datasets.frame_store import FrameStoreError
    from signspot.datasets.store_writer import BadVideoError

    class Refusing(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            if error == "typed":
                raise FrameStoreError("store.lmdb: an original store pickle asks for os.system; refused")
            raise BadVideoError("v", "store.lmdb: an original store pickle asks for os.system; refused")

    def read():
        next(iter(torch.utils.data.DataLoader(Refusing(), num_workers=1)))

    with pytest.raises(SystemExit) as exit_info:
        run_main(read, argparse.Namespace())
    assert "\n" not in str(exit_info.value.code) and "asks for os.system; refused" in str(exit_info.value.code)


# ------------------------------------------------------------------ vocabulary, glosses and tier names
def test_a_byte_order_mark_before_a_comment_shifts_no_class_id(tmp_path):
    (tmp_path / "vocabulary.txt").write_bytes("# my glosses\nHELLO\nWORLD\n".encode("utf-8-sig"))
    assert load_vocabulary(tmp_path / "vocabulary.txt").glosses == ("HELLO", "WORLD")


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c"])
def test_a_gloss_holding_a_line_separator_is_refused_not_split(tmp_path, separator):
    (tmp_path / "vocabulary.txt").write_text(f"HELLO\nGOOD{separator}BYE\nWORLD\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=f"line 2.*U\\+{ord(separator):04X}"):
        load_vocabulary(tmp_path / "vocabulary.txt")
    (tmp_path / "crlf.txt").write_bytes(b"HELLO\r\nWORLD\r\n")
    assert load_vocabulary(tmp_path / "crlf.txt").glosses == ("HELLO", "WORLD")


def test_control_characters_never_reach_an_elan_file(tmp_path):
    with pytest.raises(VocabularyError, match="U\\+0001"):
        Vocabulary(["HELLO", "BAD\x01"])
    with pytest.raises(EafError, match="tier name.*U\\+0007"):
        write_eaf(tmp_path / "v.eaf", [[0, 0, 40]], tier="signs\x07")
    with pytest.raises(EafError, match="tier name is empty"):
        write_eaf(tmp_path / "v.eaf", [[0, 0, 40]], tier="")
    assert list(tmp_path.iterdir()) == []


def test_config_defaults_are_unchanged_by_the_checks():
    assert load_config(None).optim == Config().optim
