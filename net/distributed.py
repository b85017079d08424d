"""Gather helpers that make the losses DDP-ready; identities when torch.distributed is not initialised.

* :func:`concat_all_gather` (B, ...) -> (W*B, ...), no gradient: the momentum keys
  of every rank, before they enter the queues (every rank then holds the same
  queues, as in MoCo).
* :func:`gather_with_grad` (B, ...) -> (W*B, ...), autograd-aware: its backward sums the
  gradients that all ranks send to each rank's rows, so a loss that every rank
  computes over its own anchors against the gathered batch, averaged by DDP,
  has exactly the gradient of the single-process loss over the global batch.
* :func:`all_reduce_with_grad`: the sum over ranks, autograd-aware (its backward sums the
  gradients the same way), for the synchronised batch norm's statistics.

Both are small :class:`torch.autograd.Function` s over the public ``dist.all_gather`` /
``dist.all_reduce``, as ``torch.distributed.nn.functional`` was: that module is deprecated (a
``FutureWarning`` at every call) in favour of ``torch.distributed._functional_collectives``,
a private module whose API and autograd support change between the torch versions
requirements.txt allows.

All ranks must pass the same B (use ``drop_last=True`` in the training sampler).
"""
from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_distributed", "world_size", "rank", "concat_all_gather", "gather_with_grad",
           "all_reduce_with_grad"]


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
    return _GatherWithGrad.apply(tensor)


def all_reduce_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over the ranks (a new tensor); gradients are summed back the same way."""
    if not is_distributed():
        return tensor
    return _AllReduceSum.apply(tensor)


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor):
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rows = tensor.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()     # every rank's gradient for every row, summed (gloo has no
        dist.all_reduce(grad)                # reduce_scatter): then this rank keeps its own rows
        start = rank() * ctx.rows
        return grad[start:start + ctx.rows]


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor):
        out = tensor.contiguous().clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad
