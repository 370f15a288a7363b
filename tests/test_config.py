"""Config loading, overrides and their errors, serialisation round trips."""

import json
from pathlib import Path

import pytest

from signspot.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    config_to_json,
    finalize,
    load_config,
)

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_is_the_original_recipe():
    cfg = load_config(str(ROOT / "config" / "example_config.py"))
    assert (cfg.data.num_classes, cfg.data.window, cfg.data.resize, cfg.data.crop) == (60, 32, 256, 224)
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.train.mixup_alpha) == (8, 200, 1.0)
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.min_lr_factor) == (3e-4, 0.0, 0.1)
    assert cfg.train.maxfix and cfg.data.balanced_sampling
    assert cfg.train.head_weights == (0.2,) * 5
    assert (cfg.eval.every_epochs, cfg.eval.keep_best) == (5, 3)
    # derived once, from the fields a user changes
    assert cfg.data.train_csv == str(Path(cfg.data.folds_dir) / "train_0.csv")
    assert cfg.io.ckpt_dir == str(Path(cfg.io.run_dir) / "ckpts")


def test_demo_config_loads_and_differs_only_where_it_says():
    cfg = load_config(str(ROOT / "config" / "demo_config.py"))
    assert cfg.model.name == "hs_i3d_tiny"
    assert cfg.data.crop < 224 and cfg.train.epochs < 200
    assert cfg.optim.weight_decay == Config().optim.weight_decay


def test_overrides_are_typed():
    cfg = load_config(
        None,
        [
            "train.epochs=7",
            "optim.lr=1",  # an int is accepted for a float field and stored as float
            "data.neg_prob=0.5",
            "io.run_dir=runs/5fold_neg05/maxfix_neg05_fold1",  # bare words are strings
            "data.frame_store='/data/store dir'",
            "model.bsl1k_weights=None",
            "model.init_checkpoint=ckpt.pt",
            "optim.grad_clip=1.5",
            "optim.betas=(0.8, 0.99)",
            "train.head_weights=[1, 1, 1, 1, 2]",
            "train.resume=False",
            "data.fold=3",
            "data.folds_dir=folds",
        ],
    )
    assert cfg.train.epochs == 7 and isinstance(cfg.optim.lr, float) and cfg.optim.lr == 1.0
    assert cfg.io.run_dir == "runs/5fold_neg05/maxfix_neg05_fold1"
    assert cfg.data.frame_store == "/data/store dir"
    assert cfg.model.bsl1k_weights is None and cfg.model.init_checkpoint == "ckpt.pt"
    assert cfg.optim.grad_clip == 1.5 and cfg.optim.betas == (0.8, 0.99)
    assert cfg.train.head_weights == (1.0, 1.0, 1.0, 1.0, 2.0)
    assert cfg.train.resume is False
    assert cfg.data.val_csv == str(Path("folds") / "valid_3.csv")
    assert cfg.io.history_path == str(Path(cfg.io.run_dir) / "history.jsonl")


@pytest.mark.parametrize(
    "override, words",
    [
        ("train.epoch=3", ["train.epoch", "unknown field", "epochs"]),
        ("trian.epochs=3", ["trian.epochs", "unknown section"]),
        ("epochs=3", ["epochs", "section.field"]),
        ("train.epochs=3.5", ["train.epochs", "expected int"]),
        ("train.epochs=many", ["train.epochs", "int"]),
        ("train.resume=1", ["train.resume", "expected bool"]),
        ("optim.lr='fast'", ["optim.lr", "expected float"]),
        ("optim.betas=(0.9,)", ["optim.betas", "2 values"]),
        ("optim.grad_clip=[1]", ["optim.grad_clip", "float or None"]),
        ("train.epochs", ["train.epochs", "section.field=value"]),
        ("train.amp=bf32", ["train.amp", "bf16"]),
        ("data.neg_prob=1.5", ["data.neg_prob", "[0, 1]"]),
        ("train.epochs=None", ["train.epochs", "expected int"]),
    ],
)
def test_bad_override_names_key_and_type(override, words):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    for word in words:
        assert word in str(info.value)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(str(tmp_path / "missing.py"))
    no_fn = tmp_path / "no_fn.py"
    no_fn.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="get_config"):
        load_config(str(no_fn))
    wrong_type = tmp_path / "wrong_type.py"
    wrong_type.write_text(
        "from signspot.config import Config\n"
        "def get_config():\n    cfg = Config()\n    cfg.train.batch_size = '8'\n    return cfg\n"
    )
    with pytest.raises(ConfigError, match=r"wrong_type.py: train.batch_size: expected int"):
        load_config(str(wrong_type))
    experiment = tmp_path / "experiment.py"
    experiment.write_text(
        "from signspot.config import Config\n"
        "def get_config():\n    cfg = Config()\n    cfg.data.neg_prob = 0.1\n    return cfg\n"
    )
    cfg = load_config(str(experiment), ["data.neg_prob=0.5"])  # command line wins over the file
    assert cfg.data.neg_prob == 0.5


def test_round_trip_through_json_and_checkpoint_dict():
    cfg = load_config(str(ROOT / "config" / "example_config.py"), ["data.fold=2", "optim.grad_clip=2.0"])
    as_dict = config_to_dict(cfg)
    assert config_from_dict(as_dict) == cfg
    assert config_from_dict(json.loads(config_to_json(cfg))) == cfg  # JSON lists back to tuples
    with pytest.raises(ConfigError, match="train.bogus"):
        config_from_dict({"train": {"bogus": 1}}, source="ckpt.pt")
    # a field stored by an older version that no longer exists is reported, one missing keeps its default
    partial = {"train": {"epochs": 3}}
    assert config_from_dict(partial).train.epochs == 3


def test_apply_overrides_then_finalize_recomputes_derived():
    cfg = finalize(apply_overrides(Config(), ["io.run_dir=a"]))
    assert cfg.io.ckpt_dir == str(Path("a") / "ckpts")
    cfg.io.run_dir = "b"
    assert finalize(cfg).io.ckpt_dir == str(Path("b") / "ckpts")


def test_both_initialisations_is_an_error():
    with pytest.raises(ConfigError, match="at most one"):
        load_config(None, ["model.bsl1k_weights=a.pth", "model.init_checkpoint=b.pt"])


def test_a_config_stored_with_eval_protocol_reads_as_eval_compat():
    from signspot.config import config_from_dict, config_to_dict

    stored = config_to_dict(Config())
    stored["eval"] = {k: v for k, v in stored["eval"].items() if k != "compat"} | {"protocol": "full"}
    assert config_from_dict(stored).eval.compat == "none"
    with pytest.raises(ConfigError, match="eval.protocol: renamed eval.compat"):
        load_config(None, ["eval.protocol=full"])
