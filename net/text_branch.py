"""Skeleton-modulated text branch of AC-SAR (acsar_facts.md §4; paper eq. 5-8).

``TextBranch.forward(text (N, L, D) | (N, D), q_g (N, C3)) -> q*_text (N, C3)``, i.e.
``modulate(*embed(text), q_g)``: ``embed`` is steps 1-2 (skeleton-independent, row-wise), ``modulate`` step 3.

1. token projection ``Linear(D -> 1)`` on every token: (N, L, D) -> (N, L);
2. ``MLP = Linear(L -> hidden) -> ReLU -> Linear(hidden -> C3)``: q'_text (N, C3);
3. interaction with the query's global feature q_g (the F_g output, not normalised),
   chosen by ``mode``:

   ============== ===========================================================================
   ``plain``      q* = q'                            (no modulation: plain contrast)
   ``film``       q* = gamma(q_g) * q' + beta(q_g),  gamma, beta = Linear(C3 -> C3) (paper)
   ``linear``     q* = Linear(2 C3 -> C3)([q', q_g])  (linear fusion)
   ``gated``      g = sigmoid(Linear(2 C3 -> C3)([q', q_g])); q* = g * q' + (1 - g) * q_g
   ``cross_attention``  the skeleton attends over the text tokens:
                  a = MultiheadAttention(query = q_g (N, 1, C3), keys = values = text tokens
                  (N, L, D), kdim = vdim = D, ``attention_heads`` heads); q* = q' + a
   ============== ===========================================================================

   ``none`` (text off, pure SCD-Net) builds no branch at all: see :class:`net.acsar.ACSAR`.

``level``: ``token`` takes the L = ``num_tokens`` token features (N, L, D);
``sentence`` takes one sentence embedding per sample, (N, D) or (N, 1, D), so
the token projection runs over 1 token and the MLP input is 1 (not with
``cross_attention``: attention over a single token ignores its query).  A token-level
array is refused at sentence level (CLIP's sentence embedding is the projected
end-of-text token, not a pooling we could redo here).

Text features may arrive as float16 (the on-disk format): they are cast to the
branch's parameter dtype.  Linear layers keep PyTorch's default init (the paper
gives none).
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

__all__ = ["TEXT_MODES", "TEXT_LEVELS", "TextBranch"]

TEXT_MODES = ("none", "plain", "film", "linear", "gated", "cross_attention")
TEXT_LEVELS = ("token", "sentence")


class TextBranch(nn.Module):
    """Token projection + MLP + skeleton modulation.

    Args:
        mode: one of :data:`TEXT_MODES` except ``none``.
        feature_dim: D of the text encoder features.
        num_tokens: L at token level (CLIP: 77); ignored (1) at sentence level.
        level: ``token`` or ``sentence``.
        hidden_dim: hidden width of the MLP.
        out_dim: C3 (the skeleton projection width).
        attention_heads: heads of the ``cross_attention`` mode (must divide C3).
    """

    def __init__(self, *, mode: str, feature_dim: int, num_tokens: int, level: str, hidden_dim: int, out_dim: int,
                 attention_heads: int = 1):
        super().__init__()
        if mode not in TEXT_MODES or mode == "none":
            raise ValueError(f"text mode {mode!r}: expected one of {TEXT_MODES[1:]} (mode 'none' builds no branch)")
        if level not in TEXT_LEVELS:
            raise ValueError(f"text level {level!r}: expected one of {TEXT_LEVELS}")
        if mode == "cross_attention" and level == "sentence":
            raise ValueError("text.mode=cross_attention at text.level=sentence: attention over one token weighs it 1 "
                             "whatever the skeleton asks, so q_g would not reach the output (its query projection "
                             "gets no gradient); use text.level=token or another text.mode")
        if mode == "cross_attention" and out_dim % attention_heads:
            raise ValueError(f"text.attention_heads={attention_heads} does not divide the projection width {out_dim} "
                             f"(model.proj_dim): each attention head takes proj_dim / attention_heads channels")
        self.mode, self.level = mode, level
        self.feature_dim = feature_dim
        self.num_tokens = num_tokens if level == "token" else 1
        self.token_proj = nn.Linear(feature_dim, 1)
        self.mlp = nn.Sequential(nn.Linear(self.num_tokens, hidden_dim), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_dim, out_dim))
        if mode == "film":
            self.gamma = nn.Linear(out_dim, out_dim)
            self.beta = nn.Linear(out_dim, out_dim)
        elif mode in ("linear", "gated"):
            self.fuse = nn.Linear(2 * out_dim, out_dim)
        elif mode == "cross_attention":
            self.attention = nn.MultiheadAttention(out_dim, attention_heads, kdim=feature_dim, vdim=feature_dim,
                                                   batch_first=True)

    def tokens(self, text: torch.Tensor) -> torch.Tensor:
        """Validate and shape the features: -> (N, L, D) in the parameters' dtype."""
        if self.level == "sentence" and text.dim() == 2:
            text = rearrange(text, "n d -> n 1 d")
        if text.dim() != 3 or text.shape[1] != self.num_tokens or text.shape[2] != self.feature_dim:
            raise ValueError(f"text branch ({self.level} level) expects features (N, {self.num_tokens}, "
                             f"{self.feature_dim}), got {tuple(text.shape)}")
        return text.to(self.token_proj.weight.dtype)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L, D) -> q'_text (N, C3)."""
        return self.mlp(rearrange(self.token_proj(tokens), "n l 1 -> n l"))

    def embed(self, text: torch.Tensor):
        """Text features -> (tokens (N, L, D), q'_text (N, C3)): the skeleton-independent half, row-wise
        (sample i's outputs depend on sample i's text only)."""
        tokens = self.tokens(text)
        return tokens, self.encode(tokens)

    def modulate(self, tokens: torch.Tensor, q_text: torch.Tensor, q_g: torch.Tensor) -> torch.Tensor:
        """(tokens (N, L, D), q'_text (N, C3), q_g (N, C3)) -> q*_text (N, C3), by ``mode``."""
        if self.mode == "plain":
            return q_text
        if self.mode == "film":
            return self.gamma(q_g) * q_text + self.beta(q_g)
        if self.mode == "linear":
            return self.fuse(torch.cat([q_text, q_g], dim=1))
        if self.mode == "gated":
            gate = torch.sigmoid(self.fuse(torch.cat([q_text, q_g], dim=1)))
            return gate * q_text + (1.0 - gate) * q_g
        attended, _ = self.attention(rearrange(q_g, "n c -> n 1 c"), tokens, tokens, need_weights=False)
        return q_text + rearrange(attended, "n 1 c -> n c")

    def forward(self, text: torch.Tensor, q_g: torch.Tensor) -> torch.Tensor:
        return self.modulate(*self.embed(text), q_g)
