"""Temporal crop-resize of skeleton clips (acsar_facts.md §5.1).

A clip is stored as ``(C, T, V, M)`` with ``T`` storage frames (300 for NTU)
of which the first ``num_frame`` are valid.  Training crops a random window of
``ratio ~ U(low, high)`` of the valid frames (length clipped to
``[min_length, valid]``; when ``valid < min_length`` the whole valid part is
used), evaluation crops the centre ``ratio`` (0.95) of them.  The crop is then
resized to ``window`` frames by linear interpolation along time with the
``align_corners=False`` convention of ``torch.nn.functional.interpolate``
(bilinear on a ``(C·V·M, L)`` image whose other axis keeps its size, as in the
SCD-Net feeder).

The crop is described by ``(start, length)`` in storage frames; the resize is
one gather of two frame indices per output frame and a blend, done over all
``C·V·M`` channels at once.  ``resize_positions`` is the single definition of
the sampling grid, shared by the numpy path here and the torch batch path in
:mod:`feeder.batch_augment`.

Shapes: ``(C, T, V, M)`` in, ``(C, window, V, M)`` float32 out.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

__all__ = [
    "valid_length", "random_crop_bounds", "center_crop_bounds", "resize_positions",
    "crop_resize", "center_crop_resize",
]


def valid_length(num_frame: int, storage_frames: int) -> int:
    """Number of usable frames: ``num_frame`` clipped to the storage length; at least 1."""
    n = int(min(int(num_frame), int(storage_frames)))
    if n < 1:
        raise ValueError(f"a clip needs at least one valid frame, got num_frame={num_frame}")
    return n


def random_crop_bounds(rng: np.random.Generator, valid: int, ratio: Sequence[float],
                       min_length: int) -> Tuple[int, int]:
    """``(start, length)`` of a random crop.

    ``p ~ U(ratio[0], ratio[1])``; ``length = clip(floor(valid * p), min_length, valid)``
    (so ``valid`` when ``valid < min_length``); ``start ~ U{0, ..., valid - length}``.
    Two calls on ``rng`` (the second consumes nothing when the crop covers the clip: numpy draws
    no bits for a one-value range).  ``min_length`` must be an integer >= 1 (a length-0 crop has no
    frame to resize).
    """
    if int(min_length) != min_length or min_length < 1:
        raise ValueError(f"random_crop_bounds: min_length must be an integer >= 1, got {min_length!r}")
    low, high = float(ratio[0]), float(ratio[1])
    p = rng.uniform(low, high)
    length = int(min(max(int(np.floor(valid * p)), int(min_length)), valid))
    start = int(rng.integers(0, valid - length + 1))
    return start, length


def center_crop_bounds(valid: int, ratio: float) -> Tuple[int, int]:
    """``(start, length)`` of the deterministic centre crop keeping ``ratio`` of ``valid``.

    ``bias = int((1 - ratio) * valid / 2)`` frames are cut at each end (at least one
    frame is kept).
    """
    bias = int((1.0 - float(ratio)) * valid / 2)
    length = max(valid - 2 * bias, 1)
    bias = min(bias, valid - length)
    return bias, length


def resize_positions(start, length, window: int, xp=np):
    """Frame indices and weights for linear resize of ``[start, start+length)`` to ``window``.

    ``start``/``length`` are scalars or arrays of shape ``(N,)`` (``xp`` is numpy or
    torch, the output follows it).  Returns ``(i0, i1, w)`` each shaped ``(..., window)``:
    output frame ``j = (1 - w) * x[i0] + w * x[i1]`` in storage indices.  Matches
    ``F.interpolate(..., mode="linear"/"bilinear", align_corners=False)``:
    ``src = (j + 0.5) * length / window - 0.5`` clamped at 0.
    """
    if xp is np:
        start = np.asarray(start, dtype=np.int64)[..., None]
        length = np.asarray(length, dtype=np.int64)[..., None]
        j = np.arange(window, dtype=np.float64)
        src = np.maximum((j + 0.5) * (length / window) - 0.5, 0.0)
        i0 = np.floor(src).astype(np.int64)
        i0 = np.minimum(i0, length - 1)
        i1 = np.minimum(i0 + 1, length - 1)
        w = (src - i0).astype(np.float32)
        return start + i0, start + i1, w
    # torch
    start = start.to(xp.int64).unsqueeze(-1)
    length = length.to(xp.int64).unsqueeze(-1)
    j = xp.arange(window, dtype=xp.float64, device=start.device)
    src = ((j + 0.5) * (length.to(xp.float64) / window) - 0.5).clamp_min(0.0)
    i0 = xp.minimum(src.floor().to(xp.int64), length - 1)
    i1 = xp.minimum(i0 + 1, length - 1)
    w = (src - i0.to(xp.float64)).to(xp.float32)
    return start + i0, start + i1, w


def crop_resize(x: np.ndarray, start: int, length: int, window: int) -> np.ndarray:
    """Resize frames ``[start, start+length)`` of ``x`` ``(C, T, V, M)`` to ``(C, window, V, M)`` float32.

    Reads only the frames it needs (works on a memmap without loading it).
    """
    if x.ndim != 4:
        raise ValueError(f"crop_resize expects (C, T, V, M), got shape {x.shape}")
    if not (0 <= start and start + length <= x.shape[1] and length >= 1):
        raise ValueError(f"crop [{start}, {start + length}) outside the {x.shape[1]} stored frames")
    i0, i1, w = resize_positions(start, length, window)
    clip = np.asarray(x[:, start:start + length], dtype=np.float32)   # one contiguous read
    a = clip[:, i0 - start]
    b = clip[:, i1 - start]
    w = w[None, :, None, None]
    return (a + w * (b - a)).astype(np.float32, copy=False)


def center_crop_resize(x: np.ndarray, num_frame: int, window: int, ratio: float) -> np.ndarray:
    """Deterministic evaluation crop: centre ``ratio`` of the valid frames -> ``window`` frames."""
    valid = valid_length(num_frame, x.shape[1])
    start, length = center_crop_bounds(valid, ratio)
    return crop_resize(x, start, length, window)
