"""The HS-I3D training loss: per-head cross-entropy with max-pooled, "maxfix"ed targets.

Each head predicts ``T_head`` steps (4, 8, 16, 32 for a 32-frame clip). A head's target
is the frame target ``(B, T, C+1)`` max-pooled in time to ``T_head`` steps: a step is
positive for every sign present in any of its frames. Max-pooling also sets the
background column wherever any frame of the step is background, so "maxfix" recomputes
it: background = 1 exactly where no sign is left in the step. The loss of a head is the
cross-entropy with these (multi-hot, unnormalised) probability targets averaged over all
``B * T_head`` steps, as ``F.cross_entropy`` with probability targets computes it; the
total is the weighted mean over heads.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = ["pool_targets", "head_losses", "weighted_total"]


def pool_targets(target: torch.Tensor, steps: int, *, maxfix: bool = True) -> torch.Tensor:
    """Max-pool frame targets ``(B, T, C+1)`` (background last) to ``(B, steps, C+1)``."""
    batch, frames, channels = target.shape
    if steps == frames:
        pooled = target
    elif frames % steps == 0:
        pooled = target.reshape(batch, steps, frames // steps, channels).amax(dim=2)
    else:  # uneven split: same rule as adaptive max pooling
        pooled = F.adaptive_max_pool1d(target.transpose(1, 2), steps).transpose(1, 2)
    if not maxfix:
        return pooled
    signs = pooled[..., :-1]
    background = (signs.amax(dim=-1, keepdim=True) <= 0).to(pooled.dtype)
    return torch.cat([signs, background], dim=-1)


def head_losses(
    outputs: Mapping[str, torch.Tensor], target: torch.Tensor, *, maxfix: bool = True
) -> dict[str, torch.Tensor]:
    """Cross-entropy of every head's logits ``(B, T_head, C+1)`` against pooled frame targets.

    Computed in float32 whatever the autocast dtype of the logits.
    """
    losses = {}
    for name, logits in outputs.items():
        steps = logits.shape[1]
        pooled = pool_targets(target.float(), steps, maxfix=maxfix)
        losses[name] = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), pooled.reshape(-1, pooled.shape[-1])
        )
    return losses


def weighted_total(losses: Mapping[str, torch.Tensor], names: Sequence[str], weights: Sequence[float]) -> torch.Tensor:
    """``sum(w_h * L_h) / sum(w_h)`` over the heads in ``names``."""
    if len(names) != len(weights):
        raise ValueError(f"{len(names)} heads but {len(weights)} head weights")
    total = sum(float(w) * losses[n] for n, w in zip(names, weights))
    return total / float(sum(weights))
