"""t-SNE embeddings and k-means pseudo-labels for the feature-distribution figure (paper Fig. 6, §5.5.1).

- ``tsne_2d(features (N, D), seed, perplexity) -> (N, 2)``: scikit-learn t-SNE (PCA init);
  the perplexity is capped at (N - 1) / 3 so that tiny sets work;
- ``kmeans_labels(features (N, D), k, seed) -> (N,)``: k-means cluster ids (the paper colours
  by 60 k-means pseudo-labels, self-supervised setting); features are L2-normalised first.
"""
from __future__ import annotations

import numpy as np

__all__ = ["tsne_2d", "kmeans_labels", "l2_normalise", "MIN_POINTS"]

#: the fewest points the embedding is computed for (scikit-learn's perplexity must stay below N)
MIN_POINTS = 4


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def tsne_2d(features: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    from sklearn.manifold import TSNE

    x = l2_normalise(features)
    n = len(x)
    if n < MIN_POINTS:
        raise ValueError(f"t-SNE needs at least {MIN_POINTS} points, got {n}")
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perp, init="pca", random_state=int(seed)).fit_transform(x)


def kmeans_labels(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    x = l2_normalise(features)
    k = int(min(k, len(x)))
    return KMeans(n_clusters=k, n_init=4, random_state=int(seed)).fit_predict(x).astype(np.int64)
