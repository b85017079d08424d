"""Whole-batch augmentation in torch, on the training device (``augment_on_device: true``).

The per-sample numpy path (:mod:`feeder.transforms`) and this batched path share
one parameter sampler: every op of a :class:`feeder.transforms.SkeletonPipeline`
draws its parameters per sample from ``view_rng(seed, epoch, index, view)``;
here the parameters of a batch are stacked into tensors and applied to the whole
batch at once, so for the same ``(seed, epoch, index, view)`` the device path
produces the same view as the CPU data-loader path (up to float rounding).

Kernels (``x`` is ``(N, C, T, V, M)``, any float dtype, any device):

- :func:`crop_resize_batch` ``(N, C, T_store, V, M)`` + per-sample ``start``/``length``
  -> ``(N, C, window, V, M)``;
- :func:`linear_batch` per-sample ``(N, 3, 3)`` matrices on the coordinate axis
  (rotation, shear; identity where the op was not drawn);
- :func:`flip_batch` per-sample flag, joint permutation;
- :func:`joint_mask_batch` ``(N, V)`` keep weights; :func:`frame_mask_batch` ``(N, T)``;
- :func:`collate_params` stacks per-sample parameters (what ``default_collate`` does too).

:class:`BatchAugmenter` drives a pipeline over a raw batch: use it in the training
step with the raw clips and parameters that ``PretrainDataset(return_raw=True)``
returns (parameters sampled in the data-loader workers), or let it sample the
parameters itself from ``num_frame`` and ``indices``.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch

from feeder.temporal import resize_positions

__all__ = [
    "crop_resize_batch", "linear_batch", "flip_batch", "joint_mask_batch", "frame_mask_batch",
    "collate_params", "BatchAugmenter",
]


def crop_resize_batch(x: torch.Tensor, start: torch.Tensor, length: torch.Tensor, window: int) -> torch.Tensor:
    """Per-sample crop ``[start, start+length)`` resized linearly to ``window`` frames.

    ``x`` ``(N, C, T, V, M)``; ``start``/``length`` ``(N,)`` int.  One gather of the two
    neighbouring frames per output frame and one blend over the whole batch.
    """
    n, c, t, v, m = x.shape
    start = start.to(device=x.device)
    length = length.to(device=x.device)
    i0, i1, w = resize_positions(start, length, window, xp=torch)         # (N, W) storage frames
    rows = x.reshape(n * c * t, v * m)                                    # one row per (sample, channel, frame)
    base = torch.arange(n * c, device=x.device).reshape(n, c, 1) * t
    a = rows.index_select(0, (base + i0[:, None, :]).reshape(-1)).reshape(n, c, window, v, m)
    b = rows.index_select(0, (base + i1[:, None, :]).reshape(-1)).reshape(n, c, window, v, m)
    w = w.to(x.dtype)[:, None, :, None, None]
    return a + w * (b - a)


def linear_batch(x: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """``x'[n, i] = sum_j A[n, i, j] x[n, j]`` on the coordinate axis (C must equal 3)."""
    if x.shape[1] != matrices.shape[-1]:
        raise ValueError(f"linear transform of {matrices.shape[-1]}-d coordinates on data with C={x.shape[1]}")
    a = matrices.to(device=x.device, dtype=x.dtype)
    return torch.einsum("nij,njtvm->nitvm", a, x)


def flip_batch(x: torch.Tensor, flags: torch.Tensor, perm: Sequence[int]) -> torch.Tensor:
    """Swap joints by ``perm`` where ``flags`` (N,) is true; coordinates are kept."""
    n, c, t, v, m = x.shape
    perm_t = torch.as_tensor(list(perm), device=x.device, dtype=torch.long)
    flags = flags.to(device=x.device, dtype=torch.bool)
    index = torch.where(flags[:, None], perm_t[None], torch.arange(v, device=x.device)[None])   # (N, V)
    return torch.gather(x, 3, index[:, None, None, :, None].expand(n, c, t, v, m))


def joint_mask_batch(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Multiply joint ``v`` of sample ``n`` by ``keep[n, v]`` (0 = masked) on every channel/frame/person."""
    return x * keep.to(device=x.device, dtype=x.dtype)[:, None, None, :, None]


def frame_mask_batch(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Multiply frame ``t`` of sample ``n`` by ``keep[n, t]`` (0 = masked)."""
    return x * keep.to(device=x.device, dtype=x.dtype)[:, None, :, None, None]


def collate_params(per_sample: Sequence[Sequence[Dict[str, np.ndarray]]]) -> list:
    """``[sample][op] -> dict`` of numpy values  ->  ``[op] -> dict`` of stacked tensors."""
    if not per_sample:
        raise ValueError("cannot collate the parameters of an empty batch")
    n_ops = len(per_sample[0])
    out = []
    for k in range(n_ops):
        keys = per_sample[0][k].keys()
        out.append({key: torch.from_numpy(np.stack([np.asarray(s[k][key]) for s in per_sample]))
                    for key in keys})
    return out


class BatchAugmenter:
    """Applies a :class:`~feeder.transforms.SkeletonPipeline` to a raw batch on its device.

    Args:
        pipeline: the same object the dataset would use (``build_pretrain_transform``).
        seed: the dataset seed; parameters of sample ``index`` for ``epoch`` and ``view``
            come from ``view_rng(seed, epoch, index, view)`` exactly as in the dataset.

    Call ``augmenter(x_raw, num_frame, indices, epoch, view)`` with ``x_raw``
    ``(N, C, T_store, V, M)`` (on any device), ``num_frame`` and ``indices`` ``(N,)``;
    returns ``(N, C, window, V, M)`` on ``x_raw``'s device.  Parameter sampling runs on
    the CPU (a few small numpy draws per sample); ``params=`` bypasses it.
    """

    def __init__(self, pipeline, seed: int) -> None:
        self.pipeline = pipeline
        self.seed = int(seed)

    def sample_params(self, num_frame, indices, epoch: int, view: int, storage_frames: int) -> list:
        from feeder.transforms import view_rng  # local: transforms imports this module

        num_frame = np.asarray(torch.as_tensor(num_frame).cpu()).reshape(-1)
        indices = np.asarray(torch.as_tensor(indices).cpu()).reshape(-1)
        per_sample = [
            self.pipeline.sample(view_rng(self.seed, epoch, int(i), view), int(nf), storage_frames)
            for nf, i in zip(num_frame, indices)
        ]
        return collate_params(per_sample)

    def __call__(self, x_raw: torch.Tensor, num_frame=None, indices=None, epoch: int = 0, view: int = 0,
                 params: list | None = None) -> torch.Tensor:
        if x_raw.dim() != 5:
            raise ValueError(f"BatchAugmenter expects (N, C, T, V, M), got {tuple(x_raw.shape)}")
        if params is None:
            if num_frame is None or indices is None:
                raise ValueError("BatchAugmenter needs num_frame and indices (or params=)")
            params = self.sample_params(num_frame, indices, epoch, view, x_raw.shape[2])
        return self.pipeline.apply_batch(x_raw, params)
