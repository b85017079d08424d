"""Small fixture builders shared by tests: prepared splits written the way data_gen/ writes them."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional

import numpy as np

TINY_MODEL = [
    "model.stem_channels=[4, 8, 4]", "model.hidden_dim=16", "model.num_heads=2", "model.ff_dim=16",
    "model.dropout=0.0", "model.proj_hidden=16", "model.proj_dim=8",
]


def make_split(root: Path, split: str, n: int = 24, frames: int = 40, joints: int = 25, persons: int = 2,
               num_classes: int = 4, text: Optional[str] = None, text_shape=(77, 12), seed: int = 0) -> None:
    """Write ``{split}_data_joint.npy`` (n, 3, frames, joints, persons) and friends under ``root``.

    Class c moves joint c along x with a class-specific speed, so classes are learnable.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    labels = np.arange(n) % num_classes
    num_frame = rng.integers(frames // 2, frames + 1, size=n)
    data = rng.normal(0, 0.05, size=(n, 3, frames, joints, persons)).astype(np.float32)
    t = np.arange(frames)[None, :]
    data[:, 0, :, :, 0] += (np.sin(t * (labels[:, None] + 1) * 0.2))[:, :, None]
    for i, nf in enumerate(num_frame):
        data[i, :, nf:] = 0
    if persons > 1:
        data[::2, :, :, :, 1] = 0
    np.save(root / f"{split}_data_joint.npy", data)
    np.save(root / f"{split}_num_frame.npy", num_frame)
    names = [f"S001C001P{p:03d}R001A{a + 1:03d}" for p, a in zip(range(n), labels)]
    with open(root / f"{split}_label.pkl", "wb") as handle:
        pickle.dump((names, labels.tolist()), handle)
    if text:
        (root / "text").mkdir(exist_ok=True)
        feats = rng.normal(size=(n, *text_shape)).astype(np.float16)
        feats[:, :, 0] += labels[:, None]
        np.save(root / "text" / f"{split}_{text}.npy", feats)
