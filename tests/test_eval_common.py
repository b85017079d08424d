"""Shared fixtures of the evaluation tests (tests/test_eval_*.py): tiny data, tiny model, tiny checkpoint.

Data: 4 classes, 40 train / 20 test samples, (C, T, V, M) = (3, 20, 25, 2), a class-dependent
motion pattern plus noise, so that even a random encoder separates them somewhat.
Model: stem [8, 16, 8], hidden 32, 2 heads, projections 16, window 16, text branch (film) on
(6 tokens x 8) features.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from feeder.io import save_pickle_atomic
from net.acsar import ACSAR
from processor.checkpoint import save_checkpoint

NUM_CLASSES = 4
T_STORE, V, M = 20, 25, 2
TEXT_TOKENS, TEXT_DIM = 6, 8

MODEL = {"in_channels": 3, "num_person": 2, "stem_channels": [8, 16, 8], "hidden_dim": 32, "num_heads": 2,
         "num_layers": 1, "ff_dim": 32, "dropout": 0.1, "proj_hidden": 32, "proj_dim": 16}
WINDOW = 16


def model_overrides(prefix: str = "model") -> list:
    out = [f"{prefix}.{k}={v}" for k, v in MODEL.items()]
    return out + [f"data.window={WINDOW}"]


def write_split(root: Path, split: str, n: int, seed: int, with_text: bool = True) -> None:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % NUM_CLASSES
    t = np.linspace(0, 2 * np.pi, T_STORE)
    x = rng.normal(0, 0.05, size=(n, 3, T_STORE, V, M)).astype(np.float32)
    for c in range(NUM_CLASSES):
        idx = labels == c
        # class c: a sinusoid of frequency c+1 on axis c % 3, amplitude on half of the joints
        x[idx, c % 3, :, : V // 2, 0] += np.sin((c + 1) * t)[None, :, None]
    x[:, :, :, :, 1] *= 0.0  # second person absent
    np.save(root / f"{split}_data_joint.npy", x)
    np.save(root / f"{split}_num_frame.npy", np.full(n, T_STORE, dtype=np.int64))
    save_pickle_atomic(root / f"{split}_label.pkl", ([f"{split}_s{i:03d}" for i in range(n)], labels.tolist()))
    if with_text:
        (root / "text").mkdir(exist_ok=True)
        text = rng.normal(0, 1, size=(n, TEXT_TOKENS, TEXT_DIM)).astype(np.float16)
        text[:, 0, :] += (labels[:, None] * 0.8).astype(np.float16)
        np.save(root / "text" / f"{split}_clip.npy", text)


def make_dataset(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_split(root, "train", 40, seed=1)
    write_split(root, "val", 20, seed=2)
    (root / "classes.txt").write_text("\n".join(f"action {c}" for c in range(NUM_CLASSES)) + "\n")
    return root


def pretrain_config(root: Path, stream: str = "joint") -> dict:
    return {
        "model": dict(MODEL),
        "data": {"root": str(root), "layout": "ntu25", "num_classes": NUM_CLASSES, "class_names": None,
                 "stream": stream, "window": WINDOW, "train_split": "train", "test_split": "val", "text": "clip"},
        "moco": {"queue_size": 32, "momentum": 0.999, "tau_domain": 0.2},
        "text": {"mode": "film", "level": "token", "num_tokens": TEXT_TOKENS, "feature_dim": TEXT_DIM,
                 "hidden_dim": 8, "tau_cross": 0.15, "weight": 0.5},
        "epochs": 1,
    }


def make_checkpoint(run_dir: Path, root: Path, stream: str = "joint", seed: int = 0) -> Path:
    """A tiny pretraining checkpoint in our format: {model: ACSAR state, config: resolved config}."""
    from processor.pretrain_acsar import acsar_kwargs

    cfg = pretrain_config(root, stream)
    torch.manual_seed(seed)
    model = ACSAR(**acsar_kwargs(cfg))
    run_dir.mkdir(parents=True, exist_ok=True)
    return save_checkpoint({"model": model.state_dict(), "config": cfg, "epoch": 1}, run_dir)


def common_overrides(tmp_path: Path, root: Path) -> list:
    return [f"work_dir={tmp_path / 'runs'}", f"data.root={root}", "data.layout=ntu25",
            f"data.num_classes={NUM_CLASSES}", f"data.class_names={root / 'classes.txt'}",
            "progress_bar=false", "device=cpu", "eval_batch_size=16",
            *model_overrides()]
