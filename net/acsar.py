"""AC-SAR pretraining model: SCD-Net's MoCo v2 with cross-domain loss + the skeleton-modulated text branch.

Model configuration (``ACSAR(**cfg)``; every key is required unless marked optional; the values
shown are the paper's, or the SCD-Net / CTR-GCN code's where the comment says so (acsar_facts.md
§3-4); [ours] marks our own choices)::

    layout: ntu25              # net.graph layout: V and the adjacency
    in_channels: 3             # C
    num_person: 2              # M
    num_frame: 64              # T of the clips
    stem_channels: [64, 256, 64]   # CTR-GCN stem widths, C1 = last
    hidden_dim: 2048           # C2 (token MLP, Transformer d_model, z_t / z_s width)
    num_heads: 8
    num_layers: 1
    ff_dim: 2048               # Transformer feed-forward width
    dropout: 0.1               # Transformer dropout
    proj_hidden: 2048          # hidden width of F_t, F_s, F_g
    proj_dim: 128              # C3
    proj_norm: false           # optional: BatchNorm1d in the projector heads [ours; off = SCD-Net]
    queue_size: 8192           # K of each queue [PKU-MMD II: 2048]
    momentum: 0.999            # alpha of the key encoder
    tau_domain: 0.2
    tcn_kernel_size: 5         # optional, CTR-GCN convention
    tcn_dilations: [1, 2]      # optional, CTR-GCN convention
    text:                      # optional; null or mode 'none' = pure SCD-Net
      mode: film               # none | plain | film | linear | gated | cross_attention
      feature_dim: 512         # D
      num_tokens: 77           # L (token level)
      level: token             # token | sentence
      hidden_dim: 256          # MLP hidden width [ours]
      tau_cross: 0.15
      weight: 0.5              # lambda
      attention_heads: 1       # optional, cross_attention only
      pairwise: false          # optional [ours], film only: score every text modulated by every
                               # skeleton (net.losses.pairwise_film_loss), so L_cross needs the text

``forward(x1, x2, text=None) -> dict`` with x1, x2 (N, C, T, V, M) the two views
(query, key) and ``text`` (N, L, D) (or (N, D) at sentence level) the text
features of the samples (required when the text branch exists, ignored
otherwise).  Returned 0-dim tensors: ``loss`` (with gradient) = loss_domain +
weight * loss_cross; detached: ``loss_domain``, ``loss_cross`` (0 when text is
off), ``acc_domain`` (mean top-1 of the positive over the four terms),
``acc_cross`` (0 when off), ``acc_cross_rolled`` (0 when off; see below),
``loss_<q>_<k>`` / ``acc_<q>_<k>`` per domain term.

``acc_cross_rolled`` is a diagnostic without gradient: ``acc_cross`` scored again with every
skeleton given its batch neighbour's text (``text.roll(1, 0)``).  It equals ``acc_cross`` when the
branch ignores the text, which eq. 8-10 allow: the shift beta(q_g) alone can reproduce q_g, so the
contrast with q_g is won without reading q'_text.  A branch that uses the text scores lower.

In training mode a forward also (before the keys) moves the key encoder by
momentum and (after the loss) enqueues the normalised keys k_t, k_s, k_g,
gathered over DDP ranks; in eval mode neither happens.  No ``.item()`` inside.
The momentum step sits at the start of the next forward (as MoCo's builder) where the paper's
Algorithm 1 puts it after the optimiser step (3.7-3.8): the same key encoder meets every batch,
since the first call finds theta_k = theta_q (a copy) and leaves it unchanged.

DDP: wrap the whole ACSAR; every rank must see the same batch size
(``drop_last=True``).  Keys enter the queues through ``concat_all_gather``
(all ranks hold identical queues); L_cross scores each rank's anchors against
the batch gathered with gradient (:mod:`net.distributed`), which with DDP's
gradient averaging equals the loss over the global batch.  L_domain is per
rank (own positives, shared queue negatives), as in MoCo / SCD-Net.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import concat_all_gather
from .losses import cross_domain_loss, cross_modal_loss, pairwise_film_loss
from .projector import ProjectedEncoder
from .queue import FeatureQueue
from .text_branch import TextBranch

__all__ = ["ACSAR", "xavier_init_2d", "momentum_update", "count_parameters"]

KINDS = ("t", "s", "g")


@torch.no_grad()
def xavier_init_2d(module: nn.Module) -> None:
    """xavier_uniform on every 2-D parameter (Linear and attention projection weights), as SCD-Net."""
    for param in module.parameters():
        if param.dim() == 2:
            nn.init.xavier_uniform_(param)


@torch.no_grad()
def momentum_update(query: nn.Module, key: nn.Module, momentum: float) -> None:
    """theta_k <- momentum * theta_k + (1 - momentum) * theta_q over matching parameters."""
    key_params = list(key.parameters())
    query_params = [p.detach() for p in query.parameters()]
    torch._foreach_lerp_(key_params, query_params, 1.0 - momentum)


def count_parameters(*modules: Optional[nn.Module]) -> int:
    return sum(p.numel() for m in modules if m is not None for p in m.parameters())


class ACSAR(nn.Module):
    """Query/key :class:`ProjectedEncoder` pair, three :class:`FeatureQueue` and an optional :class:`TextBranch`.

    Attribute names (checkpoint keys): ``encoder_q``, ``encoder_k`` (each ``encoder``,
    ``proj_t``, ``proj_s``, ``proj_g``), ``queue_t``, ``queue_s``, ``queue_g``, ``text``.
    """

    def __init__(self, *, layout: str, in_channels: int, num_person: int, num_frame: int,
                 stem_channels: Sequence[int], hidden_dim: int, num_heads: int, num_layers: int, ff_dim: int,
                 dropout: float, proj_hidden: int, proj_dim: int, queue_size: int, momentum: float,
                 proj_norm: bool = False,
                 tau_domain: float, text: Optional[dict] = None, tcn_kernel_size: int = 5,
                 tcn_dilations: Sequence[int] = (1, 2)):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
        self.momentum, self.tau_domain = momentum, tau_domain
        self.encoder_q = ProjectedEncoder(
            proj_hidden=proj_hidden, proj_dim=proj_dim, proj_norm=proj_norm, layout=layout, in_channels=in_channels,
            num_person=num_person, num_frame=num_frame, stem_channels=list(stem_channels), hidden_dim=hidden_dim,
            num_heads=num_heads, num_layers=num_layers, ff_dim=ff_dim, dropout=dropout,
            tcn_kernel_size=tcn_kernel_size, tcn_dilations=tuple(tcn_dilations))
        xavier_init_2d(self.encoder_q)
        self.encoder_k = copy.deepcopy(self.encoder_q)
        self.encoder_k.requires_grad_(False)
        self.queue_t = FeatureQueue(proj_dim, queue_size)
        self.queue_s = FeatureQueue(proj_dim, queue_size)
        self.queue_g = FeatureQueue(proj_dim, queue_size)

        text = dict(text or {})
        mode = text.pop("mode", "none")
        self.pairwise = bool(text.pop("pairwise", False))
        if self.pairwise and mode != "film":
            raise ValueError(f"text.pairwise scores FiLM-modulated texts: it needs text mode 'film', got {mode!r}")
        self.tau_cross: Optional[float] = None
        self.text_weight = 0.0
        self.text: Optional[TextBranch] = None
        if mode != "none":
            missing = {"tau_cross", "weight"} - set(text)
            if missing:
                raise ValueError(f"text config (mode {mode!r}) lacks {sorted(missing)}")
            self.tau_cross, self.text_weight = float(text.pop("tau_cross")), float(text.pop("weight"))
            self.text = TextBranch(mode=mode, out_dim=proj_dim, **text)

    # ------------------------------------------------------------------ parts
    def queues(self) -> Dict[str, torch.Tensor]:
        """Snapshots of the three queues (clones: the loss must not see the enqueue that follows it)."""
        return {"t": self.queue_t.keys.clone(), "s": self.queue_s.keys.clone(), "g": self.queue_g.keys.clone()}

    @torch.no_grad()
    def momentum_update(self) -> None:
        momentum_update(self.encoder_q, self.encoder_k, self.momentum)

    @torch.no_grad()
    def keys(self, x2: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Normalised key features {t, s, g}, each (N, C3), without gradient."""
        return {kind: F.normalize(k, dim=1) for kind, k in zip(KINDS, self.encoder_k(x2))}

    @torch.no_grad()
    def enqueue(self, keys: Dict[str, torch.Tensor]) -> None:
        for kind, queue in zip(KINDS, (self.queue_t, self.queue_s, self.queue_g)):
            queue.enqueue(concat_all_gather(keys[kind]))

    def cross_modal(self, tokens: torch.Tensor, q_text: torch.Tensor, q_g: torch.Tensor):
        """(L_cross, acc_cross) of the embedded texts (:meth:`TextBranch.embed`) against q_g (N, C3):
        eq. 8-12, or pairwise."""
        if self.pairwise:
            return pairwise_film_loss(q_text, self.text.gamma(q_g), self.text.beta(q_g), q_g, self.tau_cross)
        return cross_modal_loss(self.text.modulate(tokens, q_text, q_g), q_g, self.tau_cross)

    # ---------------------------------------------------------------- forward
    def forward(self, x1: torch.Tensor, x2: torch.Tensor,
                text: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        if self.text is not None and text is None:
            raise ValueError(f"ACSAR was built with text mode {self.text.mode!r}: forward needs the text features")
        q_t, q_s, q_g = self.encoder_q(x1)
        queries = {kind: F.normalize(q, dim=1) for kind, q in zip(KINDS, (q_t, q_s, q_g))}
        if self.training:
            self.momentum_update()
        keys = self.keys(x2)

        domain = cross_domain_loss(queries, keys, self.queues(), self.tau_domain)
        if self.text is not None:
            tokens, q_text = self.text.embed(text)
            loss_cross, acc_cross = self.cross_modal(tokens, q_text, q_g)
            with torch.no_grad():     # the embedding is row-wise: rolling it = embedding the rolled text
                _, acc_rolled = self.cross_modal(tokens.roll(1, 0), q_text.roll(1, 0), q_g)
        else:
            loss_cross = acc_cross = acc_rolled = domain["loss"].new_zeros(())
        loss = domain["loss"] + self.text_weight * loss_cross

        if self.training:
            self.enqueue(keys)
        out = {"loss": loss, "loss_domain": domain["loss"].detach(), "loss_cross": loss_cross.detach(),
               "acc_domain": domain["acc"].detach(), "acc_cross": acc_cross.detach(),
               "acc_cross_rolled": acc_rolled.detach()}
        out.update({name: value.detach() for name, value in domain.items() if name not in ("loss", "acc")})
        return out

    # ---------------------------------------------------------------- summary
    def summary(self) -> "OrderedDict[str, int]":
        """Parameter counts per part (for ``--summary``); queues as buffer elements."""
        q, k = self.encoder_q, self.encoder_k
        return OrderedDict([
            ("query encoder", count_parameters(q.encoder)),
            ("query projectors", count_parameters(q.proj_t, q.proj_s, q.proj_g)),
            ("key encoder", count_parameters(k.encoder)),
            ("key projectors", count_parameters(k.proj_t, k.proj_s, k.proj_g)),
            ("text branch", count_parameters(self.text)),
            ("queues (buffer elements)", sum(b.numel() for m in (self.queue_t, self.queue_s, self.queue_g)
                                             for b in m.buffers())),
            ("trainable", sum(p.numel() for p in self.parameters() if p.requires_grad)),
            ("total parameters", count_parameters(self)),
        ])
