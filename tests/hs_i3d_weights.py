"""Deterministic HS-I3D weights for the compatibility fixture in tests/data/hs_i3d.

``manifest.json`` lists the original model's state-dict keys and shapes in order;
``expected.npz`` holds two input clips and the original code's logits for them
(eval mode) when its weights are built with this recipe. For the key at position
``i`` of the manifest, with ``rng = numpy.random.default_rng(1000 + i)`` (PCG64):

- ``*.num_batches_tracked``: int64 zeros;
- ``*.running_mean``: ``0.1 * standard_normal``;
- ``*.running_var``: ``0.5 + uniform[0, 1)``;
- 1-D batch-norm weights (entries flagged ``"norm"``): ``1 + 0.1 * standard_normal``;
- other 1-D (or 0-D) tensors, i.e. biases: ``0.1 * standard_normal``;
- tensors with two or more dimensions: ``standard_normal * sqrt(1 / fan_in)``
  with ``fan_in`` the product of all but the first dimension.

Float tensors are float32.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

FIXTURE_DIR = Path(__file__).resolve().parent / "data" / "hs_i3d"

__all__ = ["FIXTURE_DIR", "fixture_state_dict", "manifest_entries"]


def manifest_entries(path: Path = FIXTURE_DIR / "manifest.json") -> list[dict]:
    """The manifest's ``state_dict`` entries: dicts with key, shape, dtype (and norm)."""
    return json.loads(Path(path).read_text())["state_dict"]


def _draw(entry: dict, index: int) -> np.ndarray:
    key, shape = entry["key"], tuple(entry["shape"])
    rng = np.random.default_rng(1000 + index)
    if key.endswith(".num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    if key.endswith(".running_mean"):
        values = 0.1 * rng.standard_normal(shape)
    elif key.endswith(".running_var"):
        values = 0.5 + rng.random(shape)
    elif len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        values = rng.standard_normal(shape) * math.sqrt(1.0 / fan_in)
    elif entry.get("norm", False):
        values = 1.0 + 0.1 * rng.standard_normal(shape)
    else:
        values = 0.1 * rng.standard_normal(shape)
    return values.astype(np.float32)


def fixture_state_dict() -> dict[str, torch.Tensor]:
    """The fixture's state dict, in manifest order."""
    return {
        entry["key"]: torch.from_numpy(_draw(entry, i))
        for i, entry in enumerate(manifest_entries())
    }


def tiny_model(num_classes: int = 60, seed: int = 0, **kwargs):
    """A seeded ``hs_i3d_tiny`` (the CPU-sized variant)."""
    from signspot.models import build_model

    torch.manual_seed(seed)
    return build_model("hs_i3d_tiny", num_classes=num_classes, **kwargs)
