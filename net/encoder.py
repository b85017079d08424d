"""SCD-Net's dual-branch (spatio-temporal decoupled) skeleton encoder.

``DualBranchEncoder.forward(x (N, C, T, V, M)) -> (z_t (N, C2), z_s (N, C2))``

Each branch has its own CTR-GCN stem on the same input (SCD-Net code):

* temporal branch: stem -> (N*M, C1, T, V) -> tokens (T, N, M*V*C1), one per frame;
* spatial branch:  stem -> (N*M, C1, T, V) -> tokens (M*V, N, T*C1), one per joint and person;

then per branch a token MLP ``Linear(in -> C2) -> LayerNorm -> ReLU -> Linear(C2 -> C2)``,
``num_layers`` post-norm Transformer encoder layers (no positional embedding)
and a max over the tokens.  C1 = ``stem_channels[-1]``, C2 = ``hidden_dim``.
Token sizes follow from the arguments: the spatial token width needs
``num_frame`` (T) at construction, and the input must match (C, T, V, M).
"""
from __future__ import annotations

from typing import Sequence

import torch
from einops import rearrange
from torch import nn

from .ctrgcn import CTRGCNStem
from .graph import get_layout

__all__ = ["token_mlp", "transformer", "DualBranchEncoder", "ENCODER_KWARGS"]

#: the constructor arguments of :class:`DualBranchEncoder` (shared by ACSAR and the classifier)
ENCODER_KWARGS = ("layout", "in_channels", "num_person", "num_frame", "stem_channels", "hidden_dim",
                  "num_heads", "num_layers", "ff_dim", "dropout", "tcn_kernel_size", "tcn_dilations")


def token_mlp(in_dim: int, hidden_dim: int) -> nn.Sequential:
    """(..., in_dim) -> (..., hidden_dim): Linear -> LayerNorm -> ReLU -> Linear."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, hidden_dim))


def transformer(hidden_dim: int, num_heads: int, num_layers: int, ff_dim: int, dropout: float) -> nn.TransformerEncoder:
    """(L, N, C2) -> (L, N, C2): post-norm ReLU Transformer encoder, sequence first.

    Sequence first because a batch-first ``nn.MultiheadAttention`` transposes its input to
    (L, N, C2) as a view, and its in-projection on that non-contiguous view runs as a batched
    matmul against an expanded weight (on CPU about a third of the GEMM rate); fed contiguous
    (L, N, C2) tokens, every projection is one GEMM.  Same parameters and results (the dropout
    masks are drawn in the sequence-first layout, so a seeded run's masks differ from batch-first's).
    """
    layer = nn.TransformerEncoderLayer(hidden_dim, num_heads, dim_feedforward=ff_dim, dropout=dropout,
                                       activation="relu", batch_first=False, norm_first=False)
    return nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)


class DualBranchEncoder(nn.Module):
    """Two CTR-GCN stems + token MLPs + Transformers + max pooling (SCD-Net ``Encoder``).

    Args:
        layout: skeleton layout name (``net.graph.get_layout``), gives V and the adjacency.
        in_channels: C (3 for xyz).
        num_person: M.
        num_frame: T of the input clips.
        stem_channels: per-block widths of each CTR-GCN stem, e.g. ``[64, 256, 64]``.
        hidden_dim: C2, token width and output width.
        num_heads, num_layers, ff_dim, dropout: the Transformer layers.
        tcn_kernel_size, tcn_dilations: multi-scale TCN (CTR-GCN convention 5, (1, 2)).
    """

    def __init__(self, *, layout: str, in_channels: int, num_person: int, num_frame: int,
                 stem_channels: Sequence[int], hidden_dim: int, num_heads: int, num_layers: int, ff_dim: int,
                 dropout: float, tcn_kernel_size: int = 5, tcn_dilations: Sequence[int] = (1, 2)):
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f"model.num_heads={num_heads} does not divide model.hidden_dim={hidden_dim}: each "
                             f"Transformer head takes hidden_dim / num_heads channels")
        adjacency = get_layout(layout).adjacency()
        self.in_channels, self.num_person, self.num_frame = in_channels, num_person, num_frame
        self.num_joints = adjacency.shape[-1]
        self.hidden_dim = hidden_dim
        c1 = int(stem_channels[-1])

        def stem() -> CTRGCNStem:
            return CTRGCNStem(in_channels, num_person, adjacency, stem_channels, tcn_kernel_size, tcn_dilations)

        self.stem_t, self.stem_s = stem(), stem()
        self.embed_t = token_mlp(num_person * self.num_joints * c1, hidden_dim)
        self.embed_s = token_mlp(num_frame * c1, hidden_dim)
        self.transformer_t = transformer(hidden_dim, num_heads, num_layers, ff_dim, dropout)
        self.transformer_s = transformer(hidden_dim, num_heads, num_layers, ff_dim, dropout)

    @property
    def feature_dim(self) -> int:
        """Width of ``[z_t, z_s]`` (2 * C2)."""
        return 2 * self.hidden_dim

    def _check(self, x: torch.Tensor) -> None:
        expected = (self.in_channels, self.num_frame, self.num_joints, self.num_person)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"DualBranchEncoder expects (N, C, T, V, M) = (N, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x)
        m = self.num_person
        tokens_t = rearrange(self.stem_t(x), "(n m) c t v -> t n (m v c)", m=m)      # sequence first
        tokens_s = rearrange(self.stem_s(x), "(n m) c t v -> (m v) n (t c)", m=m)
        z_t = self.transformer_t(self.embed_t(tokens_t)).amax(dim=0)
        z_s = self.transformer_s(self.embed_s(tokens_s)).amax(dim=0)
        return z_t, z_s
