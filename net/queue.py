"""A FIFO memory bank of L2-normalised keys (MoCo), used for the t, s and g queues.

Buffers (they travel with ``state_dict`` and ``.to(device)``):

* ``keys`` (C3, K) float: initialised with L2-normalised random vectors (column-wise);
* ``ptr`` (1,) int64: the column the next key is written to.

``enqueue(new_keys (B, C3))`` writes the batch at ``ptr, ptr+1, ... (mod K)``
and advances ``ptr`` by B (mod K).  K need not be a multiple of B: writes wrap
around the end.  When B > K only the last K keys of the batch are kept (they
land where a sequential write would leave them).  Everything stays on the
device: no ``.item()``, no host synchronisation.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FeatureQueue"]


class FeatureQueue(nn.Module):
    """(C3, K) FIFO of keys with a write pointer."""

    def __init__(self, dim: int, size: int):
        super().__init__()
        if dim < 1 or size < 1:
            raise ValueError(f"queue needs dim >= 1 and size >= 1, got dim={dim}, size={size}")
        self.dim, self.size = dim, size
        self.register_buffer("keys", nn.functional.normalize(torch.randn(dim, size), dim=0))
        self.register_buffer("ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, new_keys: torch.Tensor) -> None:
        """Write ``new_keys`` (B, C3) (already normalised, no grad) and advance the pointer."""
        if new_keys.dim() != 2 or new_keys.shape[1] != self.dim:
            raise ValueError(f"enqueue expects (B, {self.dim}) keys, got {tuple(new_keys.shape)}")
        batch = new_keys.shape[0]
        offsets = torch.arange(batch, device=self.keys.device)
        if batch > self.size:  # only the last K survive a sequential write
            offsets, new_keys = offsets[-self.size:], new_keys[-self.size:]
        columns = (self.ptr + offsets) % self.size
        self.keys[:, columns] = new_keys.detach().to(self.keys.dtype).T
        self.ptr.copy_((self.ptr + batch) % self.size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, size={self.size}"
