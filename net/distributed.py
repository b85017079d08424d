"""Gather helpers that make the losses DDP-ready; identities when torch.distributed is not initialised.

* :func:`concat_all_gather` (B, ...) -> (W*B, ...), no gradient: the momentum keys
  of every rank, before they enter the queues (every rank then holds the same
  queues, as in MoCo).
* :func:`gather_with_grad` (B, ...) -> (W*B, ...), autograd-aware
  (``torch.distributed.nn.functional.all_gather``): its backward sums the
  gradients that all ranks send to each rank's rows, so a loss that every rank
  computes over its own anchors against the gathered batch, averaged by DDP,
  has exactly the gradient of the single-process loss over the global batch.

All ranks must pass the same B (use ``drop_last=True`` in the training sampler).
"""
from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_distributed", "world_size", "rank", "concat_all_gather", "gather_with_grad"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


@torch.no_grad()
def concat_all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (world_size * B, ...) in rank order, detached."""
    if not is_distributed() or world_size() == 1:
        return tensor.detach()
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (world_size * B, ...) in rank order; gradients flow back to every rank's rows."""
    if not is_distributed() or world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)
