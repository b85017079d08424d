"""A seeded, resumable, rank-aware batch order.

The order of epoch ``e`` is a permutation drawn from ``(seed, e)`` alone, so a
run resumed in the middle of an epoch sees exactly the batches it would have
seen, and ``W`` processes see the same global batches as one process: global
batch ``b`` is ``perm[b·B·W : (b+1)·B·W]`` and rank ``r`` takes the ``r``-th
slice of ``B`` samples of it.
"""
from __future__ import annotations

import math
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["ResumableSampler"]


class ResumableSampler(Sampler[int]):
    def __init__(self, num_samples: int, batch_size: int, seed: int, shuffle: bool = True,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1,
                 indices: Optional[Sequence[int]] = None) -> None:
        if indices is not None:
            self.indices = np.asarray(indices, dtype=np.int64)
        else:
            self.indices = np.arange(num_samples, dtype=np.int64)
        if len(self.indices) == 0:
            raise ValueError("ResumableSampler: no samples to draw from")
        if int(batch_size) < 1 or int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
            raise ValueError(f"ResumableSampler: needs batch_size >= 1 and 0 <= rank < world_size, got batch_size "
                             f"{batch_size}, rank {rank}, world_size {world_size}")
        self.batch_size, self.seed, self.shuffle, self.drop_last = batch_size, seed, shuffle, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def num_batches(self) -> int:
        n = len(self.indices)
        if self.drop_last:
            return n // self.global_batch
        return math.ceil(n / self.global_batch)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return self.indices
        g = torch.Generator()
        g.manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]))
        return self.indices[torch.randperm(len(self.indices), generator=g).numpy()]

    def __iter__(self) -> Iterator[int]:
        order = self._order()
        total = self.num_batches() * self.global_batch
        if total > len(order):  # pad by wrapping (only without drop_last), more than once if the pad exceeds n
            order = np.resize(order, total)
        for b in range(self.start_batch, self.num_batches()):
            chunk = order[b * self.global_batch:(b + 1) * self.global_batch]
            yield from chunk[self.rank * self.batch_size:(self.rank + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        return (self.num_batches() - self.start_batch) * self.batch_size
