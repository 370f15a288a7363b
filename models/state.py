"""State helpers: the plain module and keys inside compile / DataParallel / DDP wrappers, and
BatchNorm statistics measured on given clips (for untrained weights in tests and benchmarks)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["recalibrate_batchnorm", "strip_prefixes", "unwrap_model"]

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


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, clips: torch.Tensor) -> nn.Module:
    """Replace every BatchNorm's running statistics by those of ``clips`` (one forward pass).

    Untrained (random or seeded) weights give nearly the same output for every input:
    unnormalised activations collapse to a constant feature and the heads' biases decide
    every argmax. Statistics measured on real clips normalise each layer on that data,
    so the scores depend on the frames, as a trained network's do. ``clips`` go through
    ``model`` once in training mode (dropout included, without effect on the statistics);
    the model is returned in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for module in norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative average: one batch gives exactly its statistics
    try:
        model.train()(clips)
    finally:
        for module, momentum in zip(norms, momenta):
            module.momentum = momentum
    return model.eval()
