"""Training configuration: every field, its default and its meaning, in one place.

The defaults are the original HS-I3D recipe. An experiment is a plain Python file
in ``config/`` whose ``get_config()`` starts from :class:`Config` and changes only
what differs (saying why)::

    python main.py --config config/example_config.py --set data.fold=2 --set data.neg_prob=0.1

``--set section.field=value`` values are parsed with :func:`ast.literal_eval`
(bare words are taken as strings for string fields); an unknown key or a value
of the wrong type raises :class:`ConfigError` naming the key and the expected
type. After the overrides, :func:`finalize` computes the derived values once
(fold CSV paths, the run's output paths); code reads them from the config
instead of recomputing them. The resolved config is a plain dict
(:func:`config_to_dict`), written as ``config.json`` in the run folder and
stored in every checkpoint; :func:`config_from_dict` reads it back.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from signspot.models.hs_i3d import HSI3D
from signspot.models.registry import MODEL_VARIANTS

from .formats.errors import SignspotError
from .run_dir import RunDir

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "EvalConfig",
    "IOConfig",
    "Config",
    "SECTIONS",
    "load_config",
    "apply_overrides",
    "finalize",
    "config_to_dict",
    "config_from_dict",
    "config_to_json",
    "fold_csv_paths",
]


class ConfigError(SignspotError, ValueError):
    """A config file, override or stored config that does not fit the schema."""


@dataclass
class DataConfig:
    frame_store: str = ""  # LMDB frame store (scripts/track1_lmdb_creator.py output, or the original layout)
    folds_dir: str = ""  # folder holding the fold CSVs of one split (original_split or new_split)
    fold: int = 0  # fold index: train on this fold's training CSV, validate on its validation CSV
    train_csv_name: str = "train_{fold}.csv"  # training CSV inside folds_dir ({fold} is filled in)
    val_csv_name: str = "valid_{fold}.csv"  # validation CSV inside folds_dir ({fold} is filled in)
    train_csv: Optional[str] = None  # explicit training CSV; None: derived from folds_dir/train_csv_name
    val_csv: Optional[str] = None  # explicit validation CSV; None: derived from folds_dir/val_csv_name
    num_classes: int = 60  # query sign classes (the background class is added on top)
    window: int = 32  # frames per training/validation clip
    context: int = 16  # frames of context allowed on each side of a sign when placing its window
    neg_prob: float = 0.0  # probability that a sample is a uniformly random window of the video instead
    resize: int = 256  # frames are resized to resize x resize before cropping
    crop: int = 224  # spatial crop fed to the network (random in training, centre in validation)
    balanced_sampling: bool = True  # draw samples with weight 1/count(label), with replacement
    num_workers: int = 4  # DataLoader worker processes per training process
    augment_on: str = "auto"  # training augmentation in the "loader" workers, on the "device", or "auto" (GPU: device)


@dataclass
class ModelConfig:
    name: str = "hs_i3d"  # registered model name (models.build_model)
    width: float = 1.0  # channel width multiplier (1.0 = the released architecture)
    dropout: float = 0.5  # dropout before every classification head
    bsl1k_weights: Optional[str] = None  # BSL-1K I3D checkpoint loaded into the backbone at the start
    init_checkpoint: Optional[str] = None  # one of our (or a released) checkpoints to start from instead


@dataclass
class OptimConfig:
    lr: float = 3e-4  # AdamW learning rate at the start of the cosine schedule
    weight_decay: float = 0.0  # AdamW weight decay
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    min_lr_factor: float = 0.1  # cosine schedule ends at min_lr_factor * lr (stepped every iteration)
    grad_clip: Optional[float] = None  # clip the gradient norm to this value; None: no clipping


@dataclass
class TrainConfig:
    epochs: int = 200  # training epochs (one epoch = len(training CSV) samples over all processes)
    batch_size: int = 8  # clips per optimizer step, over all processes (torchrun: split evenly between them)
    sync_batchnorm: bool = False  # torchrun on GPUs: BatchNorm statistics over the whole batch, not each process's share
    mixup_alpha: float = 1.0  # Beta(alpha, alpha) mixup of clips and losses; 0 disables mixup
    maxfix: bool = True  # after max-pooling targets to a head's steps, background = 1 only where no sign is left
    head_weights: tuple[float, float, float, float, float] = (0.2, 0.2, 0.2, 0.2, 0.2)  # loss weights of x4, x8, x16, x32, x
    seed: int = 0  # seeds sampling, augmentation, mixup and dropout (each derived per epoch and process)
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"
    amp: str = "auto"  # mixed precision: "auto" (bf16 if supported, else fp16, on CUDA; off on CPU), "bf16", "fp16", "off"
    compile: bool = False  # wrap the model in torch.compile
    resume: bool = True  # continue from <run_dir>/ckpts/latest_checkpoint.pt when it exists
    stop_after_epoch: Optional[int] = None  # end this invocation after this epoch (resume later); None: run to the end
    log_every: int = 20  # iterations between progress-bar updates (each one syncs the device)
    drop_last: bool = True  # drop the last incomplete batch of each epoch (the original does)


@dataclass
class EvalConfig:
    every_epochs: int = 5  # validate every N epochs (and after the last one); 0 disables validation
    batch_size: int = 8  # validation clips per forward pass
    num_workers: int = 2  # DataLoader workers for validation
    keep_best: int = 3  # keep this many best_checkpoint_{epoch}_{f1:.4f}.pt files (by official F1)
    head_weights: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 1.0)  # per-frame scores of validation: weights of x4, x8, x16, x32, x (the original scores head "x" alone)
    # "original": the original's windows, range(0, n - window, window), the tail left unscored, and an equal F1
    # replaces a kept checkpoint; "none": every frame scored (the last window moved back onto the tail), an equal
    # F1 keeps the older (as --compat of inference and the store creator)
    compat: str = "original"
    ground_truth: tuple[str, ...] = ()  # ground-truth pkl(s) of the validation videos; empty: built from the fold CSV


@dataclass
class IOConfig:
    run_dir: str = "runs/example"  # output folder of the run: config.json, history.jsonl, ckpts/, tensorboard/
    tensorboard: bool = False  # also write TensorBoard event files to <run_dir>/tensorboard
    ckpt_dir: Optional[str] = None  # derived: <run_dir>/ckpts
    history_path: Optional[str] = None  # derived: <run_dir>/history.jsonl
    config_path: Optional[str] = None  # derived: <run_dir>/config.json


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    io: IOConfig = field(default_factory=IOConfig)


SECTIONS = tuple(f.name for f in dataclasses.fields(Config))


# ---------------------------------------------------------------- typing helpers
def _field_types(section_obj) -> dict[str, Any]:
    return typing.get_type_hints(type(section_obj))


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        inner = [a for a in args if a is not type(None)]
        names = " | ".join(_type_name(a) for a in inner)
        return f"{names} or None" if len(inner) < len(args) else names
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"tuple of {_type_name(args[0])}"
        return "tuple(" + ", ".join(_type_name(a) for a in args) + ")"
    return getattr(tp, "__name__", str(tp))


def _coerce(value, tp, key: str):
    """Return ``value`` converted to ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {_type_name(tp)} ({len(args)} values), got {len(value)} values: {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - the schema only uses the types above
        raise ConfigError(f"{key}: unsupported field type {tp!r}")
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _section(cfg: Config, name: str, key: str):
    if name not in SECTIONS:
        raise ConfigError(f"{key}: unknown section {name!r}; sections are {', '.join(SECTIONS)}")
    return getattr(cfg, name)


# (section, old field) -> (new field, {old value: new value}): read from stored configs, refused in overrides
RENAMED = {("eval", "protocol"): ("compat", {"full": "none"})}


def _set(cfg: Config, key: str, value, *, from_text: bool) -> None:
    parts = key.split(".")
    if tuple(parts) in RENAMED:
        new, values = RENAMED[tuple(parts)]
        raise ConfigError(f"{key}: renamed {parts[0]}.{new} (values {', '.join(f'{a} -> {b}' for a, b in values.items())})")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"{key}: keys look like section.field (e.g. train.epochs)")
    section_name, field_name = parts
    section = _section(cfg, section_name, key)
    types_ = _field_types(section)
    if field_name not in types_:
        raise ConfigError(
            f"{key}: unknown field {field_name!r} in section {section_name!r}; fields are {', '.join(types_)}"
        )
    tp = types_[field_name]
    if from_text:
        value = _parse_text(value, tp, key)
    setattr(section, field_name, _coerce(value, tp, key))


_JSON_WORDS = {"true": True, "false": False, "null": None}


def _parse_text(text: str, tp, key: str):
    """Turn an override's text into a Python value for a field of type ``tp``."""
    string_only = tp is str or (set(typing.get_args(tp)) == {str, type(None)})
    if string_only:
        # Paths and names: anything but a literal None is the string itself (quotes optional).
        if text in ("None", "null") and tp is not str:
            return None
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        return value if isinstance(value, str) else text
    if text in _JSON_WORDS:  # true / false / null as JSON spells them (error messages use them too)
        return _JSON_WORDS[text]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ConfigError(f"{key}: cannot parse {text!r} as {_type_name(tp)}") from None


def apply_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """Apply ``section.field=value`` strings in order (mutates and returns ``cfg``)."""
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.field=value")
        key, text = item.split("=", 1)
        _set(cfg, key.strip(), text.strip(), from_text=True)
    return cfg


def _validate(cfg: Config) -> None:
    """Type-check every field (config files may assign anything) and check value ranges."""
    if not isinstance(cfg, Config):
        raise ConfigError(f"get_config() must return signspot.config.Config, got {type(cfg).__name__}")
    for section_name in SECTIONS:
        section = getattr(cfg, section_name)
        for name, tp in _field_types(section).items():
            setattr(section, name, _coerce(getattr(section, name), tp, f"{section_name}.{name}"))
    for section_name in SECTIONS:  # every float, alone or in a tuple: no nan, no inf
        for name, value in vars(getattr(cfg, section_name)).items():
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise ConfigError(f"{section_name}.{name}: must be a finite number (got {value!r})")
    checks = [
        (cfg.data.num_classes >= 1, "data.num_classes", "must be >= 1"),
        (cfg.data.fold >= 0, "data.fold", "must be >= 0"),
        (cfg.data.window >= 1 and cfg.data.window % HSI3D.TEMPORAL_STRIDE == 0, "data.window",
         f"must be a positive multiple of {HSI3D.TEMPORAL_STRIDE} (the model's temporal stride)"),
        (cfg.data.context >= 0, "data.context", "must be >= 0"),
        (0.0 <= cfg.data.neg_prob <= 1.0, "data.neg_prob", "must be in [0, 1]"),
        (cfg.data.resize >= 1, "data.resize", "must be >= 1"),
        (1 <= cfg.data.crop <= cfg.data.resize, "data.crop", f"must be in [1, data.resize ({cfg.data.resize})]"),
        (cfg.data.num_workers >= 0, "data.num_workers", "must be >= 0"),
        (cfg.data.augment_on in ("auto", "loader", "device"), "data.augment_on", "must be one of auto, loader, device"),
        (cfg.model.name in MODEL_VARIANTS, "model.name", f"must be one of {', '.join(sorted(MODEL_VARIANTS))}"),
        (cfg.model.width > 0, "model.width", "must be > 0"),
        (0.0 <= cfg.model.dropout < 1.0, "model.dropout", "must be in [0, 1)"),
        (0 < cfg.optim.lr <= 1, "optim.lr", "must be in (0, 1]"),
        (cfg.optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0"),
        (all(0.0 <= b < 1.0 for b in cfg.optim.betas), "optim.betas", "must both be in [0, 1)"),
        (cfg.optim.grad_clip is None or cfg.optim.grad_clip > 0, "optim.grad_clip",
         "must be > 0 or None (a negative clip would turn the gradient around)"),
        (0.0 <= cfg.optim.min_lr_factor <= 1.0, "optim.min_lr_factor", "must be in [0, 1]"),
        (cfg.train.epochs >= 1, "train.epochs", "must be >= 1"),
        (cfg.train.batch_size >= 1, "train.batch_size", "must be >= 1"),
        (cfg.train.mixup_alpha >= 0, "train.mixup_alpha", "must be >= 0"),
        (all(w >= 0 for w in cfg.train.head_weights) and sum(cfg.train.head_weights) > 0,
         "train.head_weights", "must be >= 0 with a positive sum"),
        (cfg.train.amp in ("auto", "bf16", "fp16", "off"), "train.amp", "must be one of auto, bf16, fp16, off"),
        (cfg.train.device == "auto" or cfg.train.device == "cpu" or cfg.train.device.startswith("cuda"),
         "train.device", "must be auto, cpu, cuda or cuda:N"),
        (cfg.train.seed >= 0, "train.seed", "must be >= 0"),
        (cfg.train.log_every >= 1, "train.log_every", "must be >= 1"),
        (cfg.train.stop_after_epoch is None or cfg.train.stop_after_epoch >= 1, "train.stop_after_epoch", "must be >= 1 or None"),
        (cfg.eval.every_epochs >= 0, "eval.every_epochs", "must be >= 0"),
        (cfg.eval.batch_size >= 1, "eval.batch_size", "must be >= 1"),
        (cfg.eval.num_workers >= 0, "eval.num_workers", "must be >= 0"),
        (cfg.eval.keep_best >= 0, "eval.keep_best", "must be >= 0"),
        (cfg.eval.compat in ("original", "none"), "eval.compat", "must be original or none"),
        (all(w >= 0 for w in cfg.eval.head_weights) and sum(cfg.eval.head_weights) > 0,
         "eval.head_weights", "must be >= 0 with a positive sum"),
        (bool(cfg.io.run_dir), "io.run_dir", "must be set"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise ConfigError(f"{key}: {message} (got {getattr(getattr(cfg, key.split('.')[0]), key.split('.')[1])!r})")
    if cfg.model.bsl1k_weights and cfg.model.init_checkpoint:
        raise ConfigError("model.bsl1k_weights and model.init_checkpoint: set at most one of the two")


def fold_csv_paths(cfg: Config) -> tuple[Optional[str], Optional[str]]:
    """The (train, val) CSVs the config points at, before :func:`finalize` stores them."""
    def pick(explicit: Optional[str], pattern: str) -> Optional[str]:
        if explicit:
            return explicit
        if not cfg.data.folds_dir:
            return None
        return str(Path(cfg.data.folds_dir) / pattern.format(fold=cfg.data.fold))

    return pick(cfg.data.train_csv, cfg.data.train_csv_name), pick(cfg.data.val_csv, cfg.data.val_csv_name)


def finalize(cfg: Config) -> Config:
    """Validate every field and fill in the derived values (once, right after resolution)."""
    _validate(cfg)
    cfg.data.train_csv, cfg.data.val_csv = fold_csv_paths(cfg)
    run = RunDir(cfg.io.run_dir)
    cfg.io.ckpt_dir = str(run.ckpt_dir)
    cfg.io.history_path = str(run.history_path)
    cfg.io.config_path = str(run.config_path)
    return cfg


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> Config:
    """Run ``get_config()`` of the Python file ``path`` (or take the defaults), apply overrides, finalize."""
    if path is None:
        cfg = Config()
    else:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"{path}: no such config file")
        spec = importlib.util.spec_from_file_location(f"_signspot_config_{file.stem}", file)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigError(f"{path}: the config file failed to run ({type(exc).__name__}: {exc})") from exc
        if not callable(getattr(module, "get_config", None)):
            raise ConfigError(f"{path}: a config file must define get_config() returning a signspot.config.Config")
        try:
            cfg = module.get_config()
        except Exception as exc:
            raise ConfigError(f"{path}: get_config() failed ({type(exc).__name__}: {exc})") from exc
        if not isinstance(cfg, Config):
            raise ConfigError(f"{path}: get_config() returned {type(cfg).__name__}, expected signspot.config.Config")
        try:
            _validate(cfg)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    apply_overrides(cfg, overrides)
    return finalize(cfg)


def config_to_dict(cfg: Config) -> dict:
    """Plain nested dict (tuples stay tuples; ``torch.load(weights_only=True)`` reads them back)."""
    return {name: {f.name: getattr(getattr(cfg, name), f.name) for f in dataclasses.fields(getattr(cfg, name))}
            for name in SECTIONS}


def config_to_json(cfg: Config) -> str:
    return json.dumps(config_to_dict(cfg), indent=2, sort_keys=False)


def config_from_dict(data: dict, *, source: str = "config") -> Config:
    """Rebuild a Config from :func:`config_to_dict` output (JSON lists become tuples), checking every key.

    Keys this version does not know are an error; fields missing from ``data`` keep their defaults,
    so configs stored by an older version of the project still load.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a dict of sections, got {type(data).__name__}")
    cfg = Config()
    for section_name, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section_name!r} must be a dict")
        for name, value in values.items():
            if (section_name, name) in RENAMED:  # a config stored before the field was renamed
                name, value = RENAMED[section_name, name][0], RENAMED[section_name, name][1].get(value, value)
            try:
                _set(cfg, f"{section_name}.{name}", value, from_text=False)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None
    _validate(cfg)
    return cfg
