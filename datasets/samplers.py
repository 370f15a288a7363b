"""Class-balanced sampling of training rows (the original recipe), resumable and distributable."""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["ClassBalancedSampler"]


class ClassBalancedSampler(Sampler[int]):
    """Draw row indices with replacement, each with weight ``1 / count(its label)``.

    Every class is then drawn about equally often. One epoch is ``num_samples``
    draws in all (default: ``len(labels)``), made by a generator seeded from
    ``(seed, epoch)`` only, so an epoch's order is reproducible after a restart.
    With ``world_size > 1`` every rank makes the same global draw (rounded up to a
    multiple of ``world_size``) and takes the disjoint slice ``rank::world_size``;
    all ranks get the same number of indices, ``len(self)``.
    """

    def __init__(
        self,
        labels: Sequence[int],
        *,
        num_samples: Optional[int] = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels.size == 0:
            raise ValueError("ClassBalancedSampler needs at least one label")
        if labels.min() < 0:
            raise ValueError(f"labels must be >= 0, got {int(labels.min())}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        counts = np.bincount(labels)
        self.weights = torch.from_numpy(1.0 / counts[labels]).to(torch.float64)
        self.num_samples = int(len(labels) if num_samples is None else num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.per_rank = -(-self.num_samples // self.world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def global_draw(self) -> torch.Tensor:
        """This epoch's draws for all ranks together, ``per_rank * world_size`` indices."""
        state = np.random.SeedSequence([self.seed & 0xFFFFFFFF, self.epoch]).generate_state(1, np.uint64)[0]
        generator = torch.Generator().manual_seed(int(state >> np.uint64(1)))
        total = self.per_rank * self.world_size
        return torch.multinomial(self.weights, total, replacement=True, generator=generator)

    def __iter__(self) -> Iterator[int]:
        return iter(self.global_draw()[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return self.per_rank
