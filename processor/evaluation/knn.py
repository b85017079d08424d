"""Cosine k-nearest-neighbour classification on frozen features (C²VL / SCD-Net kNN protocol).

``knn_classify(train (Ntr, D), train_labels (Ntr,), test (Nte, D), k) -> KnnResult`` with
``pred (Nte,)``, ``neighbours (Nte, k)`` (train positions, nearest first) and
``similarity (Nte, k)``.  Features are L2-normalised; similarity = cosine.  Vote: the
class with the most of the k neighbours; a tie goes to the tied class whose member
comes first in the neighbour list (i.e. the nearest).  The similarity matrix is built
in blocks of ``test_chunk x train_chunk`` with a running top-k, so memory stays
``O(test_chunk * (train_chunk + k))`` whatever the split sizes (NTU-120: 63k x 51k).  Exact ties
are broken the same way at every chunk size; similarities within float32 rounding of each other
(duplicated clips) may rank differently with other chunk sizes, since the products' shapes differ.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["KnnResult", "knn_classify", "vote"]


@dataclass
class KnnResult:
    pred: np.ndarray
    neighbours: np.ndarray
    similarity: np.ndarray


def vote(neighbour_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, k) labels of the neighbours, nearest first -> (N,) majority class, ties -> the nearest tied class."""
    n, k = neighbour_labels.shape
    counts = torch.zeros(n, num_classes, dtype=torch.long, device=neighbour_labels.device)
    counts.scatter_add_(1, neighbour_labels, torch.ones_like(neighbour_labels))
    best = counts.max(dim=1, keepdim=True).values
    # every neighbour whose class reaches the maximum count is a candidate; take the first (nearest) of them
    is_top = counts.gather(1, neighbour_labels) == best
    first = torch.argmax(is_top.to(torch.int8), dim=1)
    return neighbour_labels.gather(1, first[:, None]).squeeze(1)


@torch.no_grad()
def knn_classify(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, k: int = 1,
                 num_classes: Optional[int] = None, test_chunk: int = 1024, train_chunk: int = 16384,
                 device: Optional[torch.device] = None) -> KnnResult:
    train = torch.as_tensor(train)
    test = torch.as_tensor(test)
    train_labels = torch.as_tensor(train_labels).long()
    if train.dim() != 2 or test.dim() != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(f"knn: expected (N_train, D) and (N_test, D) features, got {tuple(train.shape)} "
                         f"and {tuple(test.shape)}")
    if len(train_labels) != len(train):
        raise ValueError(f"knn: {len(train_labels)} train labels for {len(train)} train features")
    if not 1 <= k <= len(train):
        raise ValueError(f"knn: k must lie in [1, {len(train)}], got {k}")
    device = device or train.device
    num_classes = int(num_classes or int(train_labels.max()) + 1)
    labels_dev = train_labels.to(device)
    preds, neigh, sims = [], [], []
    for start in range(0, len(test), test_chunk):
        q = F.normalize(test[start:start + test_chunk].to(device, torch.float32), dim=1)
        best_sim = torch.full((len(q), 0), float("-inf"), device=device)
        best_idx = torch.zeros((len(q), 0), dtype=torch.long, device=device)
        for t0 in range(0, len(train), train_chunk):
            keys = F.normalize(train[t0:t0 + train_chunk].to(device, torch.float32), dim=1)
            sim = q @ keys.T
            kk = min(k, sim.shape[1])
            # a stable sort, not topk (which picks any member of a tie): results do not depend on train_chunk
            s, i = torch.sort(sim, dim=1, descending=True, stable=True)
            s, i = s[:, :kk], i[:, :kk]
            cand_sim = torch.cat([best_sim, s], dim=1)
            cand_idx = torch.cat([best_idx, i + t0], dim=1)
            # stable order: on equal similarity the earlier train sample wins
            order = torch.sort(cand_idx, dim=1).indices
            cand_sim, cand_idx = cand_sim.gather(1, order), cand_idx.gather(1, order)
            top = torch.sort(cand_sim, dim=1, descending=True, stable=True).indices[:, :k]
            best_sim, best_idx = cand_sim.gather(1, top), cand_idx.gather(1, top)
        preds.append(vote(labels_dev[best_idx], num_classes).cpu())
        neigh.append(best_idx.cpu())
        sims.append(best_sim.cpu())
    return KnnResult(torch.cat(preds).numpy(), torch.cat(neigh).numpy(), torch.cat(sims).numpy())
