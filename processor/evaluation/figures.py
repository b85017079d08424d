"""Figures of the evaluations (matplotlib, Agg backend, PNG).

- :func:`plot_confusion`: row-normalised confusion matrix with class names (paper Fig. 7);
- :func:`plot_training_curves`: loss, accuracy and learning rate per epoch from ``metrics.jsonl``;
- :func:`plot_per_class_comparison`: per-class accuracy of two fusion variants side by side (paper Fig. 4);
- :func:`plot_embeddings`: 2-D embeddings (t-SNE) in panels, coloured by (pseudo-)labels (paper Fig. 6).

Every function writes one PNG and returns its path; the figure size grows with the
number of classes so that 60 / 120 names stay legible.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from feeder.io import atomic_path  # noqa: E402

__all__ = ["plot_confusion", "plot_training_curves", "read_metrics", "plot_per_class_comparison", "plot_embeddings"]

#: class-name tick labels (pt): LABEL_FILL of the axis length each class has, between LABEL_PT_MIN (still legible
#: in the PNG at the figures' dpi) and LABEL_PT_MAX (the size of a few classes' names)
LABEL_FILL, LABEL_PT_MIN, LABEL_PT_MAX = 0.6, 5.0, 9.0
#: height (in) of the per-class figure's bar panel: the figure grows by what the title and rotated names need
BAR_PANEL_IN = 3.5


def _save(fig, path: Path, dpi: int) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _names(class_names: Optional[Sequence[str]], k: int) -> List[str]:
    return list(class_names) if class_names else [str(i) for i in range(k)]


def _label_font(fig, ax, k: int, axis: str) -> float:
    """Font size (pt) of ``k`` class names along ``axis`` ("x" or "y") of ``ax``, from the length each one has."""
    ax.apply_aspect()                          # an image's equal aspect shrinks the axes: measure what is left
    box, (width, height) = ax.get_position(), fig.get_size_inches()
    pitch_pt = 72.0 * (box.width * width if axis == "x" else box.height * height) / max(k, 1)
    return float(np.clip(LABEL_FILL * pitch_pt, LABEL_PT_MIN, LABEL_PT_MAX))


def plot_confusion(cm: np.ndarray, path: Path, class_names: Optional[Sequence[str]] = None,
                   title: str = "Confusion matrix", dpi: int = 120) -> Path:
    """Rows = true class, columns = predicted class, each row normalised to sum 1."""
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[0]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.22 * k, 40)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    names = _names(class_names, k)
    font = min(_label_font(fig, ax, k, "x"), _label_font(fig, ax, k, "y"))
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names, rotation=90, fontsize=font)
    ax.set_yticklabels(names, fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=font - 1,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title)
    return _save(fig, path, dpi)


def read_metrics(path: Path) -> List[Dict[str, float]]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not a JSON line ({err})") from None
    return rows


def plot_training_curves(metrics: Sequence[Dict[str, float]], path: Path, title: str = "Training curves",
                         dpi: int = 110) -> Path:
    """Three panels over epochs: every ``*loss`` key, every ``*acc``/``*top1`` key, and ``lr`` (log scale)."""
    epochs = [row["epoch"] for row in metrics]
    keys = sorted({k for row in metrics for k in row if k not in ("epoch", "lr")})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = [("loss", [k for k in keys if "loss" in k]),
              ("accuracy (%)", [k for k in keys if "acc" in k or "top1" in k or "top5" in k])]
    for ax, (label, names) in zip(axes[:2], panels):
        for name in names:
            ax.plot(epochs, [row.get(name, np.nan) for row in metrics], marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        if names:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[2].plot(epochs, [row.get("lr", np.nan) for row in metrics], marker="o", markersize=3, color="tab:red")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("learning rate")
    axes[2].set_title("learning rate")
    axes[2].grid(alpha=0.3)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))     # whole epochs
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_per_class_comparison(acc_a: np.ndarray, acc_b: np.ndarray, label_a: str, label_b: str, path: Path,
                              class_names: Optional[Sequence[str]] = None, title: Optional[str] = None,
                              dpi: int = 110) -> Path:
    """Grouped bars: per-class top-1 (%) of variant A and variant B."""
    acc_a, acc_b = np.asarray(acc_a, dtype=float), np.asarray(acc_b, dtype=float)
    k = len(acc_a)
    names = _names(class_names, k)
    x = np.arange(k)
    fig, ax = plt.subplots(figsize=(max(8, 0.28 * k + 2), 5))
    ax.bar(x - 0.2, acc_a, width=0.4, label=f"{label_a} (mean {np.nanmean(acc_a):.1f})")
    ax.bar(x + 0.2, acc_b, width=0.4, label=f"{label_b} (mean {np.nanmean(acc_b):.1f})")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=90, fontsize=_label_font(fig, ax, k, "x"))
    ax.set_ylabel("per-class top-1 accuracy (%)")
    ax.set_ylim(0, 118)                      # headroom above 100 % for the legend: it never hides a bar
    ax.set_yticks(np.arange(0, 101, 20))
    ax.legend(loc="upper center", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or f"Per-class accuracy: {label_a} vs {label_b}")
    for _ in range(2):                       # long names (NTU's) would squash the bars into a strip under the legend
        fig.tight_layout()
        panel_in = ax.get_position().height * fig.get_figheight()
        fig.set_size_inches(fig.get_figwidth(), fig.get_figheight() + BAR_PANEL_IN - panel_in)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_embeddings(panels: Sequence[tuple], path: Path, title: str = "t-SNE", dpi: int = 110) -> Path:
    """``panels`` = [(panel title, points (N, 2), colours (N,) int)]; one scatter per panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5.2), squeeze=False)
    for ax, (name, points, colours) in zip(axes[0], panels):
        points = np.asarray(points)
        colours = np.asarray(colours)
        ncol = int(colours.max()) + 1 if colours.size else 1
        cmap = plt.get_cmap("tab10" if ncol <= 10 else "tab20" if ncol <= 20 else "nipy_spectral")
        size = float(np.clip(4000.0 / max(len(points), 1), 3, 40))
        ax.scatter(points[:, 0], points[:, 1], c=colours, cmap=cmap, s=size, alpha=0.8, linewidths=0,
                   vmin=0, vmax=max(ncol - 1, 1))
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)
