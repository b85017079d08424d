"""``nn.BatchNorm2d`` whose CPU training pass computes the batch statistics in the input's precision.

``forward(x (B, C, T, V)) -> (B, C, T, V)``, the same parameters, buffers, state-dict keys and
results as :class:`torch.nn.BatchNorm2d` (within float rounding: tests/test_net_batch_norm.py).

Why: PyTorch's CPU training kernel accumulates each channel's statistics in double, one channel at a
time, and is compute-bound where an element-wise pass is memory-bound: on a (32, 256, 64, 25) stem
map (one thread, the 2-core AMD VM, 2026-12-07, freed memory reused as in training:
``reuse_freed_memory``) its forward takes 32 ms, five element-wise passes' worth.  Here a training
pass on CPU computes, per channel c over the N = B*T*V positions,

    mean_c = sum(x) / N          row sums over T*V, then over B (float32 for float32 input)
    xc     = x - mean_c          kept for the backward pass in place of x
    var_c  = sum(xc * xc) / N    centred, so no E[x^2] - mean^2 cancellation
    y      = xc * (weight_c / sqrt(var_c + eps)) + bias_c

in 20 ms, and the backward pass is PyTorch's own kernel given ``xc`` and a zero mean (forward +
backward 63 -> 40 ms there, 11.4 -> 10.0 ms on a (32, 64, 64, 25) map; the paper step about 1.5 %
faster: bench/EXPERIMENTS.md §3.5; under glibc's malloc defaults its two more 52 MB allocations than
PyTorch's make it slower at the largest map).  The running statistics are updated as PyTorch does
(unbiased variance; ``momentum=None`` is the cumulative average).  ``torch.compile`` traces the same
function, so compiled and eager runs agree as before.  Evaluation, other devices (cuDNN's kernel is
already fast), bf16 / fp16 inputs, CPU autocast and single-value channels take the parent's path.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["BatchNorm2d", "batch_norm_train"]


def _per_channel(v: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, 1, 1)


class _BatchNormTrain(torch.autograd.Function):
    """(x (B, C, T, V), weight (C,) | None, bias (C,) | None, eps) -> (y, batch mean (C,), biased var (C,))."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                eps: float):
        b, c = x.shape[:2]
        rows = x.view(b * c, -1)                                    # (B*C, T*V), contiguous
        count = rows.size(0) // c * rows.size(1)
        mean = rows.sum(-1).view(b, c).sum(0).div_(count)
        xc = x - _per_channel(mean)
        var = torch.linalg.vecdot(xc.view(b * c, -1), xc.view(b * c, -1)).view(b, c).sum(0).div_(count)
        invstd = (var + eps).rsqrt_()
        scale = invstd if weight is None else weight * invstd
        y = xc * _per_channel(scale) if bias is None else torch.addcmul(_per_channel(bias), xc, _per_channel(scale))
        ctx.save_for_backward(xc, weight, invstd)
        ctx.eps, ctx.has_bias = eps, bias is not None
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor, _grad_mean, _grad_var):
        # PyTorch's own backward kernel, given the centred input and a zero mean
        xc, weight, invstd = ctx.saved_tensors
        grads = torch.ops.aten.native_batch_norm_backward(
            grad_y.contiguous(), xc, weight, None, None, torch.zeros_like(invstd), invstd, True, ctx.eps,
            [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1],
             ctx.has_bias and ctx.needs_input_grad[2]])
        return grads[0], grads[1], grads[2], None


def batch_norm_train(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                     eps: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training-mode batch norm of a contiguous (B, C, T, V) map -> (y, batch mean (C,), biased variance (C,))."""
    return _BatchNormTrain.apply(x.contiguous(), weight, bias, eps)


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:                                   # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled()


def uses_fast_path(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> bool:
    """Whether a pass of ``bn`` over ``x`` takes this module's statistics (see the module doc)."""
    return (bn.training and x.device.type == "cpu" and x.dim() == 4
            and x.dtype in (torch.float32, torch.float64) and x.numel() > x.size(1)
            and not _autocast_on("cpu")
            and (not bn.track_running_stats or bn.running_mean is None or bn.running_mean.dtype == x.dtype))


class BatchNorm2d(nn.BatchNorm2d):
    """Drop-in ``nn.BatchNorm2d`` (same state dict) with the faster CPU training statistics above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not uses_fast_path(self, x):
            return super().forward(x)
        y, mean, var = batch_norm_train(x, self.weight, self.bias, self.eps)
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(mean, var, x.numel() // x.size(1))
        return y

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        """Fold one batch's statistics into the running buffers as ``nn.BatchNorm2d`` does (unbiased
        variance; ``momentum=None`` is the cumulative average)."""
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean, momentum)
        self.running_var.lerp_(var * (count / (count - 1)), momentum)
