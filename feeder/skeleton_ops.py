"""Stream conversions on skeleton arrays: bone and motion, one implementation each.

Both work on numpy arrays and torch tensors of shape ``(..., C, T, V, M)``
(any leading batch dimensions) and return the same shape and type.  They are
used by ``data_gen/gen_bone_data.py`` / ``gen_motion_data.py`` and by the
feeders, which convert on the fly after cropping (acsar_facts.md §5, §6).
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

from net.graph import Layout

Array = Union[np.ndarray, torch.Tensor]

STREAMS = ("joint", "bone", "motion")


def to_bone(x: Array, layout: Layout) -> Array:
    """``bone[..., v, :] = x[..., v, :] - x[..., parent(v), :]`` along the joint axis (-2)."""
    parents = layout.parents
    if x.shape[-2] != layout.num_joints:
        raise ValueError(f"to_bone: expected {layout.num_joints} joints ({layout.name}) on axis -2, got shape {tuple(x.shape)}")
    if isinstance(x, torch.Tensor):
        return x - x[..., torch.as_tensor(parents, device=x.device), :]
    return x - x[..., parents, :]


def to_motion(x: Array) -> Array:
    """``m[t] = x[t+1] - x[t]`` along the time axis (-3); the last frame is zero."""
    if isinstance(x, torch.Tensor):
        out = torch.zeros_like(x)
    else:
        out = np.zeros_like(x)
    out[..., :-1, :, :] = x[..., 1:, :, :] - x[..., :-1, :, :]
    return out


def convert_stream(x: Array, stream: str, layout: Layout) -> Array:
    """Joint coordinates -> the requested stream (``joint`` returns ``x`` itself)."""
    if stream == "joint":
        return x
    if stream == "bone":
        return to_bone(x, layout)
    if stream == "motion":
        return to_motion(x)
    raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")
