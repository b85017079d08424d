"""Accuracy metrics and the per-run test score file that fusion reads.

- ``topk_accuracy(logits (N, K), labels (N,), ks) -> {k: percent}``;
- ``confusion_matrix(pred (N,), labels (N,), num_classes) -> (K, K)`` int64, rows = true class;
- ``per_class_accuracy(pred, labels, num_classes) -> (K,)`` percent (NaN for absent classes);
- ``softmax(logits) -> probabilities`` (numpy, row-wise, numerically stable);
- ``require_finite(values (N, D), names, where, what)``: a row with NaN / inf is an error naming the samples
  (their softmax, arg-max and neighbours are undefined: top-k counted a NaN row as class 0);
- ``save_scores(path, names, logits, labels, class_names)`` / ``load_scores(path) -> dict``:
  ``scores.pkl`` = ``{"names": [str] (N), "logits": float32 (N, K), "labels": int64 (N),
  "class_names": [str] | None}``; ``logits`` are finite pre-softmax scores in the order of ``names``.
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from feeder.io import save_pickle_atomic

__all__ = ["topk_accuracy", "confusion_matrix", "per_class_accuracy", "softmax", "require_finite", "save_scores",
           "load_scores", "load_class_names", "SCORES_FILE"]

SCORES_FILE = "scores.pkl"


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, ks: Iterable[int] = (1, 5)) -> Dict[int, float]:
    logits = np.asarray(logits)
    labels = np.asarray(labels).reshape(-1)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"topk_accuracy: logits {logits.shape} and labels {labels.shape} do not match")
    if len(labels) == 0:
        return {int(k): float("nan") for k in ks}
    order = np.argsort(-logits, axis=1, kind="stable")
    out = {}
    for k in ks:
        k_eff = min(int(k), logits.shape[1])
        hit = (order[:, :k_eff] == labels[:, None]).any(axis=1)
        out[int(k)] = float(100.0 * hit.mean())
    return out


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    return cm


def per_class_accuracy(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    cm = confusion_matrix(pred, labels, num_classes)
    total = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 100.0 * np.diag(cm) / np.maximum(total, 1), np.nan)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def require_finite(values: np.ndarray, names: Sequence[str], where: str, what: str = "logits") -> None:
    """Raise ValueError (naming ``where`` and up to ten samples) when a row of ``values`` holds NaN or inf."""
    bad = np.flatnonzero(~np.isfinite(np.asarray(values)).all(axis=1))
    if bad.size:
        raise ValueError(f"{where}: {bad.size} of {len(values)} samples have non-finite {what} (NaN or inf), e.g. "
                         f"{[names[i] for i in bad[:10]]}; their softmax, arg-max and neighbours are undefined, so "
                         f"no accuracy or fusion can use them (the model diverged or read non-finite input)")


def save_scores(path: Path, names: Sequence[str], logits: np.ndarray, labels: np.ndarray,
                class_names: Optional[List[str]] = None) -> None:
    logits = np.asarray(logits, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if not (len(names) == len(logits) == len(labels)):
        raise ValueError(f"save_scores: {len(names)} names, {len(logits)} logits, {len(labels)} labels")
    save_pickle_atomic(path, {"names": [str(n) for n in names], "logits": logits, "labels": labels,
                              "class_names": list(class_names) if class_names else None})


def load_scores(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score file not found: {path} (every finished evaluation writes {SCORES_FILE} "
                                f"into its run dir)")
    try:
        with open(path, "rb") as handle:
            obj = pickle.load(handle)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as err:
        raise ValueError(f"{path}: not a readable score file ({type(err).__name__}: {err}); expected the pickle "
                         f"an evaluation writes (names, logits, labels)") from err
    if not isinstance(obj, dict) or not {"names", "logits", "labels"} <= set(obj):
        raise ValueError(f"{path}: expected a dict with names, logits and labels")
    logits, labels = np.asarray(obj["logits"]), np.asarray(obj["labels"])
    if not (len(obj["names"]) == len(logits) == len(labels)):
        raise ValueError(f"{path}: names, logits and labels have different lengths "
                         f"({len(obj['names'])}, {len(logits)}, {len(labels)})")
    if logits.ndim != 2 or not np.issubdtype(logits.dtype, np.number):
        raise ValueError(f"{path}: logits must be a numeric array (N, classes), got {logits.dtype} {logits.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.number) or not np.all(np.mod(labels, 1) == 0):
        raise ValueError(f"{path}: labels must be whole class numbers (N,), got {labels.dtype} {labels.shape}")
    if not all(isinstance(n, str) for n in obj["names"]):
        raise ValueError(f"{path}: names must be sample-name strings")
    num_classes = logits.shape[1]
    outside = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if outside.size:
        raise ValueError(f"{path}: labels must be class numbers 0..{num_classes - 1} (its logits have {num_classes} "
                         f"classes); {outside.size} are not, e.g. "
                         f"{[(obj['names'][i], int(labels[i])) for i in outside[:10]]}")
    class_names = obj.get("class_names")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{path}: {len(class_names)} class names for {num_classes} classes (the logits' columns)")
    require_finite(logits, obj["names"], str(path))
    return dict(obj, logits=logits, labels=labels.astype(np.int64))


def load_class_names(path: Optional[str], num_classes: int) -> Optional[List[str]]:
    """Class names from a text file (one per line); None when ``path`` is None or the file is absent."""
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        logging.getLogger(__name__).warning("class-name file %s not found: figures use class numbers", p)
        return None
    names = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != num_classes:
        raise ValueError(f"{p}: {len(names)} class names but num_classes={num_classes}")
    return names
