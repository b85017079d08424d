"""Batch normalisation synchronised over DDP processes, on any device.

``torch.nn.SyncBatchNorm`` only runs on accelerators.  :class:`AllReduceBatchNorm`
computes the batch mean and variance from all-reduced sums (autograd-aware, so
gradients flow through the statistics as in one big batch) and therefore also
works with the gloo backend on CPU.  Two passes: the mean first, then the sum of
squared deviations from it, so the variance does not lose its digits to
``E[x^2] - mean^2`` when the mean is large against the spread.  :func:`convert_sync_batchnorm` swaps every
BatchNorm of a model, keeping its parameters and running statistics; on CUDA it
defers to ``torch.nn.SyncBatchNorm``.

Input ``(N, C, *)``; output the same shape.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from net.distributed import all_reduce_with_grad

__all__ = ["AllReduceBatchNorm", "convert_sync_batchnorm"]


class AllReduceBatchNorm(nn.modules.batchnorm._BatchNorm):
    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        channels = x.size(1)
        dims = [0] + list(range(2, x.dim()))
        stats = x.float()  # statistics in float32 whatever the activations' dtype (bf16 autocast), as native BN
        count = torch.full((1,), x.numel() / channels, dtype=stats.dtype, device=x.device)
        totals = all_reduce_with_grad(torch.cat([stats.sum(dims), count]))
        n = totals[-1]
        mean = totals[:channels] / n
        shape = [1, channels] + [1] * (x.dim() - 2)
        centred = stats - mean.view(shape)
        var = all_reduce_with_grad((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), momentum)
                self.num_batches_tracked.add_(1)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, AllReduceBatchNorm):
        out = AllReduceBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats)
        if module.affine:
            # the same Parameters, as nn.SyncBatchNorm.convert_sync_batchnorm: fresh ones would require grad even
            # where the model froze them (the momentum encoder, a frozen encoder), and DDP would then wait for
            # gradients that never come (no averaging in the first step, an error in the second)
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean.copy_(module.running_mean)
            out.running_var.copy_(module.running_var)
            out.num_batches_tracked.copy_(module.num_batches_tracked)
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert(child))
    return out
