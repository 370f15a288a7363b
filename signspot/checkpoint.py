"""Checkpoints: saving ours, loading ours and the released ones, strictly and safely.

Our training checkpoints (``FORMAT_VERSION`` 1)::

    {"format_version": 1,
     "model": state dict of the unwrapped model (no "module." / "_orig_mod." prefixes),
     "optimizer": ..., "scheduler": ..., "scaler": ... or None,
     "epoch": completed epochs, "iteration": optimizer steps so far,
     "trainer": {"epoch": ..., "iteration": ...},      # the released checkpoints' key
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor], "numpy": {...}, "python": {...}},
     "config": the resolved config as a plain dict (signspot.config.config_to_dict),
     "metrics": {"val_f1": ..., ...}}

The released checkpoints of the original training code hold ``{"model": state_dict,
"optimizer": ..., "trainer": ..., "scheduler": ...}`` and no config; the BSL-1K I3D
checkpoint used to initialise the backbone holds ``{"state_dict": ...}`` with keys
prefixed ``module.``. Everything is read with ``torch.load(weights_only=True)``; the
only non-tensor types admitted besides PyTorch's defaults are the numpy scalars,
dtypes and arrays of the formats layer's allow-list
(:data:`signspot.formats.safe_io.NUMPY_GLOBALS`), which training loops commonly store
as metrics. Files are written through :func:`signspot.formats.safe_io.atomic_write`:
an interrupted save never replaces a good checkpoint with a partial one.
"""

from __future__ import annotations

import importlib
import pickle
import random
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from signspot.models.registry import MODEL_VARIANTS
from signspot.models.state import strip_prefixes, unwrap_model

from .formats.errors import SignspotError
from .formats.safe_io import NUMPY_DTYPE_CLASSES, NUMPY_GLOBALS, atomic_write

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "capture_rng_state",
    "infer_model_config",
    "load_bsl1k_backbone",
    "load_checkpoint",
    "load_model_weights",
    "load_training_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

FORMAT_VERSION = 1
_SHOWN = 8  # keys listed in an error message before "..."
_TORCH_SAFE_NAMES = NUMPY_GLOBALS | NUMPY_DTYPE_CLASSES


class CheckpointError(SignspotError, ValueError):
    """A checkpoint cannot be read or does not fit the model."""


def _numpy_safe_globals() -> list:
    """The allow-list as a weights-only load wants it: objects, with the name they are pickled under."""
    here, other = ("numpy._core", "numpy.core") if hasattr(np, "_core") else ("numpy.core", "numpy._core")
    allowed = []
    for module, name in sorted(_TORCH_SAFE_NAMES):
        obj = getattr(importlib.import_module(module.replace(other, here)), name)
        own_name = f"{obj.__module__}.{obj.__qualname__}"
        allowed.append(obj if own_name == f"{module}.{name}" else (obj, f"{module}.{name}"))
    return allowed


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is not a torch checkpoint, is not a dict, or holds
            objects outside the weights-only allow-list (they are named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            allowed = {
                entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"
                for entry in _numpy_safe_globals()
            }
            found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            blocked = [name for name in found if name not in allowed]
        except Exception:  # noqa: BLE001 - only used to enrich the message
            blocked = []
        detail = f"it holds objects of types {blocked}" if blocked else str(err).splitlines()[0]
        raise CheckpointError(
            f"{path}: refusing to unpickle arbitrary objects (weights-only load failed: {detail}); "
            "re-save the checkpoint with tensors and plain Python containers only"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({err})") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj


def infer_model_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, float | int]:
    """``{"num_classes", "width"}`` of the HS-I3D model that wrote ``state_dict``.

    The width is the effective channel multiplier (1.0 for the released model).
    """
    state_dict = strip_prefixes(state_dict)
    try:
        fused = state_dict["head_all.time_lin.weight"]
        coarse = state_dict["head_4.time_lin.weight"]
    except KeyError as err:
        raise CheckpointError(f"not an HS-I3D state dict: no {err.args[0]!r}") from None
    return {"num_classes": int(fused.shape[0]) - 1, "width": round(coarse.shape[1] / 1024, 4)}


def _format_keys(keys: list[str]) -> str:
    lines = [f"\n    {key}" for key in keys[:_SHOWN]]
    if len(keys) > _SHOWN:
        lines.append(f"\n    ... ({len(keys) - _SHOWN} more)")
    return "".join(lines)


def _width_advice(width: float) -> str:
    names = [name for name, base in MODEL_VARIANTS.items() if abs(base - width) < 1e-6]
    if names:
        return f"build it with name={names[0]!r} and width=1.0"
    return f"build it with name='hs_i3d' and width={width}"


def _extract_state_dict(checkpoint: Mapping, source: str) -> dict[str, torch.Tensor]:
    where = f"{source}: " if source else ""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{where}expected a checkpoint dict, got {type(checkpoint).__name__}")
    if "model" in checkpoint:
        state = checkpoint["model"]
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{where}'model' entry is a {type(state).__name__}, not a state dict")
        return dict(state)
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return dict(checkpoint)  # already a bare state dict
    hint = ""
    if "state_dict" in checkpoint:
        hint = "; a 'state_dict' entry suggests an I3D (BSL-1K) checkpoint: use load_bsl1k_backbone"
    raise CheckpointError(
        f"{where}checkpoint has no 'model' entry; it holds {sorted(map(str, checkpoint))}{hint}"
    )


def load_model_weights(
    model: nn.Module, checkpoint: Mapping, source: str = ""
) -> int:
    """Load an HS-I3D checkpoint (or bare state dict) strictly into ``model``.

    ``checkpoint`` is what :func:`load_checkpoint` returns (its ``"model"`` entry is
    used) or a state dict. ``module.`` / ``_orig_mod.`` prefixes are ignored, and
    ``model`` may itself be wrapped. ``source`` (e.g. the file name) prefixes errors.

    Returns the number of tensors loaded.

    Raises:
        CheckpointError: no ``"model"`` entry (the message lists what the checkpoint
            holds), or keys/shapes that differ from the model's; the message names the
            mismatching keys and the ``num_classes`` / ``width`` the checkpoint needs.
    """
    state = strip_prefixes(_extract_state_dict(checkpoint, source))
    target = unwrap_model(model)
    expected = target.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        raise CheckpointError(_describe_mismatch(target, state, expected, missing, unexpected, mismatched, source))
    target.load_state_dict(state, strict=True)
    return len(state)


def _describe_mismatch(
    target: nn.Module,
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    missing: list[str],
    unexpected: list[str],
    mismatched: list[str],
    source: str,
) -> str:
    model_classes = getattr(target, "num_classes", None)
    model_width = getattr(target, "width", None)
    lines = [
        f"{source or 'checkpoint'} does not fit the model "
        f"({type(target).__name__}, num_classes={model_classes}, width={model_width}):"
    ]
    try:
        found = infer_model_config(state)
    except CheckpointError:
        found = None
    if found is not None:
        if model_classes is not None and found["num_classes"] != model_classes:
            lines.append(
                f"  the checkpoint has num_classes={found['num_classes']} "
                f"(the model {model_classes}): set num_classes={found['num_classes']}"
            )
        if model_width is not None and abs(found["width"] - model_width) > 1e-6:
            lines.append(
                f"  the checkpoint has width {found['width']} (the model {model_width}): "
                + _width_advice(found["width"])
            )
    else:
        lines.append("  it does not look like an HS-I3D state dict (no head_4/head_all weights)")
    if mismatched:
        details = [
            f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
            for k in mismatched
        ]
        lines.append(f"  {len(mismatched)} tensors with other shapes:" + _format_keys(details))
    if missing:
        lines.append(f"  {len(missing)} keys missing from the checkpoint:" + _format_keys(missing))
    if unexpected:
        lines.append(f"  {len(unexpected)} keys the model does not have:" + _format_keys(unexpected))
    return "\n".join(lines)


def load_bsl1k_backbone(model: nn.Module, path: str | Path) -> int:
    """Initialise the I3D backbone of ``model`` from a BSL-1K I3D checkpoint.

    The file (``model_bsl1k_wlasl.pth.tar``) holds ``{"state_dict": {...}}`` with keys
    prefixed ``module.``; its ``logits.*`` classifier is skipped. Every backbone tensor
    (convolutions, batch-norm parameters and statistics of ``Conv3d_*``/``Mixed_*``)
    must be present with the right shape; the hierarchical head is left untouched.
    Keys that are neither backbone nor classifier are ignored with a warning.

    ``model`` is an :class:`~models.hs_i3d.HSI3D` (possibly wrapped) or a bare
    :class:`~models.i3d.InceptionI3d`. Returns the number of tensors loaded.

    Raises:
        CheckpointError: no ``"state_dict"`` entry, or missing / mis-shaped tensors.
    """
    checkpoint = load_checkpoint(path)
    if "state_dict" not in checkpoint or not isinstance(checkpoint["state_dict"], Mapping):
        raise CheckpointError(
            f"{path}: no 'state_dict' entry (a BSL-1K I3D checkpoint has one); "
            f"it holds {sorted(map(str, checkpoint))}"
        )
    source = strip_prefixes(checkpoint["state_dict"])
    target = unwrap_model(model)
    backbone = getattr(target, "backbone_model", target)
    if not hasattr(backbone, "backbone_state_keys"):
        raise TypeError(f"{type(target).__name__} has no I3D backbone to initialise")
    keys = backbone.backbone_state_keys()
    expected = backbone.state_dict()
    missing = [k for k in keys if k not in source]
    mismatched = [
        f"{k}: checkpoint {tuple(source[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in keys
        if k in source and source[k].shape != expected[k].shape
    ]
    if missing or mismatched:
        lines = [f"{path}: cannot initialise the I3D backbone ({len(keys)} tensors)"]
        if missing:
            lines.append(f"  {len(missing)} backbone tensors missing:" + _format_keys(missing))
        if mismatched:
            lines.append(f"  {len(mismatched)} backbone tensors with other shapes:" + _format_keys(mismatched))
            width = getattr(target, "width", None)
            if width is not None and width != 1.0:
                lines.append(f"  BSL-1K weights need width 1.0; the model has width {width}")
        raise CheckpointError("\n".join(lines))
    wanted = set(keys)
    ignored = [k for k in source if k not in wanted and not k.startswith("logits.")]
    if ignored:
        warnings.warn(
            f"{path}: ignoring {len(ignored)} keys that are not part of the I3D backbone:"
            + _format_keys(ignored),
            stacklevel=2,
        )
    result = backbone.load_state_dict({k: source[k] for k in keys}, strict=False)
    if result.unexpected_keys:  # cannot happen: every key was taken from the backbone
        raise CheckpointError(f"{path}: unexpected keys {result.unexpected_keys}")
    return len(keys)


def capture_rng_state() -> dict:
    """Every global RNG as tensors and plain numbers (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss_next": py_state[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        ("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"],
         np_state["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    scheduler=None,
    scaler=None,
    epoch: int,
    iteration: int,
    config: dict,
    metrics: Optional[dict] = None,
) -> Path:
    """Write a full training checkpoint atomically; returns its path."""
    path = Path(path)
    payload = {
        "format_version": FORMAT_VERSION,
        "model": strip_prefixes(unwrap_model(model).state_dict()),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "epoch": int(epoch),
        "iteration": int(iteration),
        "trainer": {"epoch": int(epoch), "iteration": int(iteration)},
        "rng": capture_rng_state(),
        "config": config,
        "metrics": dict(metrics or {}),
    }
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)
    return path


def load_training_checkpoint(path: str | Path) -> dict:
    """Read one of our checkpoints (``weights_only=True``, on CPU) and check its layout."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a training checkpoint (no 'model' entry)")
    version = ckpt.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r}; this version of the project resumes "
            f"only from format {FORMAT_VERSION} (its weights can still initialise a run via model.init_checkpoint)"
        )
    return ckpt
