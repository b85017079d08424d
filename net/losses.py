"""Contrastive losses of AC-SAR (acsar_facts.md §3, §4; paper eq. 3-4, 9-12).

* :func:`queue_info_nce` -- L(u, v): InfoNCE of query u against its positive key v
  and a queue of negatives, ``CE([u.v, u.Q] / tau, 0)``.
* :func:`cross_domain_loss` -- L_domain = L(q_g, k_s) + L(q_g, k_t) + L(q_s, k_g) + L(q_t, k_g),
  each term with the queue of its key's kind (s, t, g, g).
* :func:`cross_modal_loss` -- L_cross = 1/2 [CE(S / tau, I) + CE(S^T / tau, I)],
  S = normalise(text) normalise(skeleton)^T over the (gathered) batch.
* :func:`pairwise_film_loss` -- the same loss with every text modulated by every skeleton,
  S_ij = cos(gamma_j * q'_i + beta_j, q_g_j) [ours; ``text.pairwise``]: the shift beta_j is then
  shared by all the texts a skeleton is compared with, so the loss cannot be won without the text.

All inputs are (B, C3) rows; queues are (C3, K) columns.  Accuracies are the
fraction of anchors whose positive has the largest logit, as 0-dim tensors (no
host synchronisation).
"""
from __future__ import annotations

from typing import Dict, Mapping, Tuple

import torch
import torch.nn.functional as F

from .distributed import gather_with_grad, rank

__all__ = ["DOMAIN_TERMS", "queue_info_nce", "cross_domain_loss", "cross_modal_loss", "pairwise_film_loss"]

#: (query kind, key kind) of the four cross-domain terms; the negatives come from the key kind's queue
DOMAIN_TERMS: Tuple[Tuple[str, str], ...] = (("g", "s"), ("g", "t"), ("s", "g"), ("t", "g"))


def queue_info_nce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor,
                   tau: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE with one positive per row and shared queue negatives.

    Args:
        query: (B, C) L2-normalised, carries gradient.
        key: (B, C) L2-normalised positives (no gradient expected).
        queue: (C, K) L2-normalised negatives.
        tau: temperature.

    Returns:
        (mean loss, accuracy of the positive at index 0), both 0-dim tensors.
    """
    positive = (query * key).sum(dim=1, keepdim=True)          # (B, 1)
    negative = query @ queue.detach()                            # (B, K)
    logits = torch.cat([positive, negative], dim=1) / tau        # (B, 1 + K)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(logits, target)
    acc = (logits.argmax(dim=1) == 0).float().mean()
    return loss, acc


def cross_domain_loss(queries: Mapping[str, torch.Tensor], keys: Mapping[str, torch.Tensor],
                      queues: Mapping[str, torch.Tensor], tau: float) -> Dict[str, torch.Tensor]:
    """L_domain of eq. (3) from normalised queries/keys/queues indexed by kind ``t``, ``s``, ``g``.

    Returns a dict: ``loss`` (the sum of the four terms), ``acc`` (mean accuracy
    of the four terms) and ``loss_<q>_<k>`` / ``acc_<q>_<k>`` per term.
    """
    out: Dict[str, torch.Tensor] = {}
    losses, accs = [], []
    for q_kind, k_kind in DOMAIN_TERMS:
        loss, acc = queue_info_nce(queries[q_kind], keys[k_kind], queues[k_kind], tau)
        out[f"loss_{q_kind}_{k_kind}"], out[f"acc_{q_kind}_{k_kind}"] = loss, acc
        losses.append(loss)
        accs.append(acc)
    out["loss"] = torch.stack(losses).sum()
    out["acc"] = torch.stack(accs).mean()
    return out


def cross_modal_loss(text: torch.Tensor, skeleton: torch.Tensor, tau: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE between matching rows of ``text`` and ``skeleton`` (both (B, C), any norm).

    Single process: S = t_hat s_hat^T (B x B), loss = (CE(S / tau, I) + CE(S^T / tau, I)) / 2.
    Under DDP each rank scores its own B anchors against the gathered W*B rows of
    the other modality (:func:`gather_with_grad`), target column ``rank*B + i``;
    DDP's gradient averaging then reproduces the global-batch loss exactly.

    Returns (loss, accuracy averaged over both directions).
    """
    text = F.normalize(text, dim=1)
    skeleton = F.normalize(skeleton, dim=1)
    all_text, all_skeleton = gather_with_grad(text), gather_with_grad(skeleton)
    logits_ts = text @ all_skeleton.T / tau        # text anchors     (B, W*B)  rows of S
    logits_st = skeleton @ all_text.T / tau        # skeleton anchors (B, W*B)  rows of S^T
    return _symmetric_cross_entropy(logits_ts, logits_st)


def _symmetric_cross_entropy(logits_ts: torch.Tensor, logits_st: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(CE(text anchors) + CE(skeleton anchors)) / 2 and the mean top-1; both (B, W*B), positive at
    column ``rank*B + i``."""
    target = torch.arange(logits_ts.shape[0], device=logits_ts.device) + rank() * logits_ts.shape[0]
    loss = 0.5 * (F.cross_entropy(logits_ts, target) + F.cross_entropy(logits_st, target))
    acc = 0.5 * ((logits_ts.argmax(1) == target).float().mean() + (logits_st.argmax(1) == target).float().mean())
    return loss, acc


def pairwise_film_loss(text: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, skeleton: torch.Tensor,
                       tau: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """L_cross over all (text i, skeleton j) pairs, each text modulated by the skeleton it is scored with.

    ``text`` q'_text (B, C3); ``gamma``, ``beta`` = gamma(q_g), beta(q_g) (B, C3); ``skeleton`` q_g (B, C3).
    S_ij = cos(gamma_j * text_i + beta_j, skeleton_j); loss = (CE(S / tau, I) + CE(S^T / tau, I)) / 2,
    whose diagonal is the paper's S_ii (eq. 8-10).  A branch that ignores the text gives every
    entry of a column the same value: the skeleton-anchored term is then ln B (chance) and the
    text-anchored one at least ln B, so the loss cannot fall below chance without the text.  Under DDP
    each rank's texts are scored against the gathered skeletons and its skeletons against the
    gathered texts, target column ``rank*B + i``, as :func:`cross_modal_loss`.

    Returns (loss, accuracy averaged over both directions).
    """
    def scores(t: torch.Tensor, g: torch.Tensor, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """(Bt, C3) texts x (Bs, C3) skeletons -> (Bt, Bs) cosines of the modulated texts with the skeletons."""
        modulated = F.normalize(t[:, None, :] * g[None] + b[None], dim=2)
        return (modulated * F.normalize(s, dim=1)[None]).sum(dim=2)

    all_gamma, all_beta, all_skeleton = gather_with_grad(gamma), gather_with_grad(beta), gather_with_grad(skeleton)
    logits_ts = scores(text, all_gamma, all_beta, all_skeleton) / tau            # text anchors (B, W*B)
    logits_st = scores(gather_with_grad(text), gamma, beta, skeleton).T / tau    # skeleton anchors (B, W*B)
    return _symmetric_cross_entropy(logits_ts, logits_st)
