"""Loops over a dataset without gradient: features of a frozen encoder and class scores.

Both take a dataset whose items are ``(x (C, T, V, M), label, index)`` (``DownstreamDataset``)
or ``(features (D,), label, index)`` (a cached-feature set) and keep the dataset order.

- ``extract_features(fn, dataset, batch_size, device) -> (features (N, D) float32, labels (N,), index (N,))``
  with ``fn(x) -> (B, D)`` (e.g. ``SkeletonClassifier.features``);
- ``predict(fn, dataset, batch_size, device)`` is the same loop with ``fn`` returning logits.
"""
from __future__ import annotations

from typing import Callable, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm import tqdm

__all__ = ["extract_features", "predict", "FeatureDataset"]


@torch.no_grad()
def extract_features(fn: Callable[[torch.Tensor], torch.Tensor], dataset: Dataset, batch_size: int,
                     device: torch.device, num_workers: int = 0, desc: str = "features",
                     progress: bool = True) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    feats, labels, index = [], [], []
    for x, y, i in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=not progress):
        out = fn(x.to(device, non_blocking=True))
        feats.append(out.float().cpu())
        labels.append(torch.as_tensor(y))
        index.append(torch.as_tensor(i))
    if not feats:
        raise ValueError(f"{desc}: the dataset is empty")
    return torch.cat(feats).numpy(), torch.cat(labels).numpy().astype(np.int64), torch.cat(index).numpy().astype(np.int64)


predict = extract_features


class FeatureDataset(TensorDataset):
    """Cached features as a dataset: ``[i] -> (feature (D,), label, index)``."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, index: np.ndarray) -> None:
        super().__init__(torch.as_tensor(features, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long),
                         torch.as_tensor(index, dtype=torch.long))
