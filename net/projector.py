"""Projection heads F_t, F_s, F_g and the encoder-with-projectors used on each MoCo side.

``ProjectedEncoder.forward(x (N, C, T, V, M)) -> (q_t, q_s, q_g)``, each (N, C3), not normalised:

* q_t = F_t(z_t), q_s = F_s(z_s), q_g = F_g([z_t, z_s]); every head is
  ``Linear(in -> proj_hidden) -> ReLU -> Linear(proj_hidden -> C3)`` (SCD-Net), or with
  ``proj_norm=True`` ``Linear -> BatchNorm1d -> ReLU -> Linear`` (MoCo v3 / SimCLR heads) [ours]:
  the batch norm removes the component shared by the whole batch, which keeps short
  small-data runs from collapsing onto one direction.  Off by default (the paper's heads).

Concatenation order of the global head: the paper writes F_g([Z_s, Z_t]); the
official SCD-Net code (whose checkpoints we load) concatenates ``[z_t, z_s]``.
The two differ only by a fixed permutation of the input columns of F_g's first
Linear, i.e. the same model family; we use the code's order so that official
``i_proj`` weights load unchanged and the downstream head sees the same
``[z_t, z_s]`` feature.
"""
from __future__ import annotations

import torch
from torch import nn

from .encoder import DualBranchEncoder

__all__ = ["projection_head", "ProjectedEncoder"]


def projection_head(in_dim: int, hidden_dim: int, out_dim: int, norm: bool = False) -> nn.Sequential:
    """(N, in_dim) -> (N, out_dim): Linear -> [BatchNorm1d ->] ReLU -> Linear."""
    if norm:
        return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                             nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


class ProjectedEncoder(nn.Module):
    """A :class:`DualBranchEncoder` (``encoder``) with its heads ``proj_t``, ``proj_s``, ``proj_g``.

    Args:
        proj_hidden: hidden width of each head.
        proj_dim: C3, output width.
        proj_norm: batch norm after the hidden Linear of each head (see the module docstring).
        **encoder_kwargs: the :class:`DualBranchEncoder` arguments.
    """

    def __init__(self, *, proj_hidden: int, proj_dim: int, proj_norm: bool = False, **encoder_kwargs):
        super().__init__()
        self.encoder = DualBranchEncoder(**encoder_kwargs)
        c2 = self.encoder.hidden_dim
        self.proj_t = projection_head(c2, proj_hidden, proj_dim, proj_norm)
        self.proj_s = projection_head(c2, proj_hidden, proj_dim, proj_norm)
        self.proj_g = projection_head(2 * c2, proj_hidden, proj_dim, proj_norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z_t, z_s = self.encoder(x)
        return self.proj_t(z_t), self.proj_s(z_s), self.proj_g(torch.cat([z_t, z_s], dim=1))
