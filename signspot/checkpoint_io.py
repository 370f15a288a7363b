"""Training checkpoints: self-describing, atomic, loadable with ``weights_only=True``.

Layout of every file (``FORMAT_VERSION`` 1)::

    {"format_version": 1,
     "model": state dict of the unwrapped model (no "module." / "_orig_mod." prefixes),
     "optimizer": ..., "scheduler": ..., "scaler": ... or None,
     "epoch": completed epochs, "iteration": optimizer steps so far,
     "trainer": {"epoch": ..., "iteration": ...},      # the released checkpoints' key
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor], "numpy": {...}, "python": {...}},
     "config": the resolved config as a plain dict,
     "metrics": {"val_f1": ..., ...}}

Only tensors, plain containers and numbers are stored, so ``torch.load(weights_only=True)``
reads it back; the inference side loads ``["model"]`` exactly as it loads a released
checkpoint. Files are written through :func:`signspot.io.atomic_write`: an interrupted
save never replaces a good checkpoint with a partial one.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from models.checkpoint import CheckpointError, load_checkpoint, strip_prefixes, unwrap_model

from .io import atomic_write

__all__ = [
    "FORMAT_VERSION",
    "LATEST_NAME",
    "CheckpointError",
    "capture_rng_state",
    "restore_rng_state",
    "save_checkpoint",
    "load_training_checkpoint",
    "best_checkpoint_name",
    "list_best_checkpoints",
    "save_if_best",
]

FORMAT_VERSION = 1
LATEST_NAME = "latest_checkpoint.pt"
_BEST_RE = re.compile(r"^best_checkpoint_(\d+)_(\d+(?:\.\d+)?)\.pt$")


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
    ckpt = load_checkpoint(path)  # the one weights-only reader of the project
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a training checkpoint (no 'model' entry)")
    version = ckpt.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r}; this version of the project resumes "
            f"only from format {FORMAT_VERSION} (its weights can still initialise a run via model.init_checkpoint)"
        )
    return ckpt


def best_checkpoint_name(epoch: int, f1: float) -> str:
    return f"best_checkpoint_{epoch}_{f1:.4f}.pt"


def list_best_checkpoints(ckpt_dir: str | Path) -> list[tuple[float, int, Path]]:
    """``(f1, epoch, path)`` of the best checkpoints in ``ckpt_dir``, best first (older first on ties)."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = []
    for path in ckpt_dir.iterdir():
        match = _BEST_RE.match(path.name)
        if match:
            found.append((float(match.group(2)), int(match.group(1)), path))
    found.sort(key=lambda item: (-item[0], item[1]))
    return found


def save_if_best(ckpt_dir: str | Path, epoch: int, f1: float, keep: int, save) -> Optional[Path]:
    """Keep the ``keep`` best checkpoints by F1 (rounded as in the file name).

    ``save(path)`` writes the checkpoint; it is called only when this epoch enters the
    top ``keep``. Checkpoints pushed out are deleted after the new one is on disk.
    """
    if keep <= 0:
        return None
    existing = list_best_checkpoints(ckpt_dir)
    score = float(f"{f1:.4f}")
    if len(existing) >= keep and score <= existing[keep - 1][0]:
        return None
    path = Path(ckpt_dir) / best_checkpoint_name(epoch, f1)
    save(path)
    for _, _, old in list_best_checkpoints(ckpt_dir)[keep:]:
        if old != path:
            old.unlink(missing_ok=True)
    return path
