"""File names of one prepared split (acsar_facts.md §6 conventions), with clear errors.

``<root>/{split}_data_joint.npy``, ``{split}_num_frame.npy``, ``{split}_label.pkl``
and, for text, ``<root>/text/{split}_{text}.npy``.  :func:`load_split` opens them:
data (N, C, T, V, M) as a memmap, num_frame (N,), names and labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from feeder.io import load_label_pkl, load_npy

__all__ = ["SplitFiles", "split_files", "load_split"]


@dataclass(frozen=True)
class SplitFiles:
    data: Path
    num_frame: Path
    label: Path
    text: Optional[Path] = None


def split_files(root: str | Path, split: str, text: Optional[str] = None, check: bool = True) -> SplitFiles:
    if root is None:
        raise ValueError("data.root is not set: point it at a folder prepared by data_gen/ (e.g. data/ntu60/xsub)")
    root = Path(root)
    files = SplitFiles(
        data=root / f"{split}_data_joint.npy",
        num_frame=root / f"{split}_num_frame.npy",
        label=root / f"{split}_label.pkl",
        text=(root / "text" / f"{split}_{text}.npy") if text else None,
    )
    if check:
        missing = [str(p) for p in (files.data, files.num_frame, files.label, files.text) if p and not p.is_file()]
        if missing:
            arrays_missing = any(str(p) in missing for p in (files.data, files.num_frame))
            hints = []
            if str(files.label) in missing and not arrays_missing:
                hints.append("the label file is written last, so its arrays are of an interrupted conversion: "
                             "rerun the data_gen/ script that made them")
            elif arrays_missing:
                hints.append("prepare the data with the data_gen/ scripts (see README)")
            if files.text and str(files.text) in missing:
                text_hint = "text features come from data_gen/encode_text.py"
                others = sorted(p.stem[len(split) + 1:] for p in files.text.parent.glob(f"{split}_*.npy"))
                if others:
                    text_hint += f" (this folder has data.text={' / '.join(others)})"
                hints.append(text_hint)
            hint = "".join(f"; {h}" for h in hints)
            raise FileNotFoundError(f"split {split!r} of {root}: missing {', '.join(missing)}{hint}")
    return files


def load_split(root: str | Path, split: str, mmap: bool = True) -> Tuple[np.ndarray, np.ndarray, List[str], List[int]]:
    """(data (N, C, T, V, M), num_frame (N,), sample names, labels) of a prepared split; ValueError naming the
    files when they do not describe the same N samples."""
    files = split_files(root, split)
    data = load_npy(files.data, mmap_mode="r" if mmap else None)
    names, labels = load_label_pkl(files.label)
    num_frame = load_npy(files.num_frame)
    if data.ndim != 5:
        raise ValueError(f"{files.data}: expected an (N, C, T, V, M) array, got shape {data.shape}")
    if not (len(data) == len(num_frame) == len(names)):
        raise ValueError(f"split {split!r} of {root}: {files.data.name} has {len(data)} samples, "
                         f"{files.num_frame.name} {len(num_frame)}, {files.label.name} {len(names)}: they must "
                         f"describe the same samples; rerun the data_gen/ script that made them")
    return data, num_frame, names, labels
