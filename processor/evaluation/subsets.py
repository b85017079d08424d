"""Class-balanced, seeded subsets of a labelled split.

``class_balanced_subset(labels (N,), fraction, seed) -> indices (K,)``: per class c with
n_c samples, ``max(min_per_class, round(fraction * n_c))`` (capped at n_c) samples drawn
without replacement; sorted positions into ``labels``.  Used for the semi-supervised
1 % / 5 % / 10 % label budgets (acsar_facts.md §7) and, through :func:`holdout_split`,
for the held-out monitor split of the evaluations.

Reproducible: the draw depends only on ``(seed, labels)``; each class uses its own
generator ``numpy.random.default_rng([seed, c])`` so a class's draw does not depend on
the other classes.  Rounding is Python's ``round`` (half to even).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

__all__ = ["per_class_counts", "class_balanced_subset", "holdout_split"]


def _as_labels(labels: Sequence[int]) -> np.ndarray:
    arr = np.asarray(labels).reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def per_class_counts(labels: Sequence[int], fraction: float, min_per_class: int = 1,
                     keep_per_class: int = 0) -> Dict[int, int]:
    """{class: number of samples to draw}: ``clip(round(fraction * n_c), min_per_class, n_c - keep_per_class)``."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    arr = _as_labels(labels)
    classes, counts = np.unique(arr, return_counts=True)
    out = {}
    for c, n in zip(classes.tolist(), counts.tolist()):
        k = max(int(min_per_class), int(round(fraction * n)))
        out[c] = max(0, min(k, n - int(keep_per_class)))
    return out


def _draw(labels: np.ndarray, counts: Dict[int, int], seed: int) -> np.ndarray:
    chosen = []
    for c, k in counts.items():
        members = np.flatnonzero(labels == c)
        rng = np.random.default_rng([int(seed), int(c)])
        chosen.append(members[rng.permutation(len(members))[:k]])
    if not chosen:
        return np.zeros((0,), dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def class_balanced_subset(labels: Sequence[int], fraction: float, seed: int, min_per_class: int = 1) -> np.ndarray:
    """Sorted indices of a class-balanced subset: per class ``max(min_per_class, round(fraction * n_c))``."""
    arr = _as_labels(labels)
    return _draw(arr, per_class_counts(arr, fraction, min_per_class), seed)


def holdout_split(labels: Sequence[int], fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """(train positions, held-out positions), class-balanced: each class gives ``round(fraction * n_c)``
    samples (at least 1, but never its last one) to the held-out part.  Positions index ``labels``."""
    arr = _as_labels(labels)
    counts = per_class_counts(arr, fraction, min_per_class=1, keep_per_class=1)
    held = _draw(arr, counts, seed)
    mask = np.ones(len(arr), dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask).astype(np.int64), held
