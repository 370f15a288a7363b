"""State-dict helpers: the plain module and keys inside compile / DataParallel / DDP wrappers."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["strip_prefixes", "unwrap_model"]

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) key prefixes."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key = key[len(prefix):]
                    stripped = True
        out[key] = value
    return out


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` / DataParallel / DDP wrappers."""
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model
