"""CTR-GCN building blocks and the CTR-GCN stem that SCD-Net / AC-SAR put in each branch.

Shapes (no temporal stride anywhere, so T is kept):

* :class:`PointwiseConv`    (B, C_in, T, V) -> (B, C_out, T, V), a 1x1 convolution (one GEMM on CPU)
* :class:`CTRGC`            (B, C_in, T, V) -> (B, C_out, T, V), one adjacency subset
* :class:`GraphConv`        (B, C_in, T, V) -> (B, C_out, T, V), sum over the subsets + BN + residual + ReLU
* :class:`TemporalConvBN`   (B, C_in, T, V) -> (B, C_out, T, V), (k x 1) dilated temporal conv + BN
* :class:`TemporalMaxPool` (B, C, T, V) -> (B, C, T, V), 3x1 max-pool over time (channels-last on CPU)
* :class:`MultiScaleTemporalConv` (B, C, T, V) -> (B, C, T, V), dilated branches + max-pool + 1x1
* :class:`CTRGCNBlock`      (B, C_in, T, V) -> (B, C_out, T, V): graph conv -> temporal conv, block residual, ReLU
* :class:`CTRGCNStem`       (N, C, T, V, M) -> (N*M, C_last, T, V): data_bn over (M V C) then the blocks

B = N*M (every person is a separate graph).  The adjacency comes from
``net.graph.get_layout(name).adjacency()`` (3 subsets: I, inward, outward).

Submodule names follow CTR-GCN (``data_bn``, ``l1..lK``, ``gcn1``, ``tcn1``,
``branches``, ``convs``, ``PA``, ``alpha``, ``down``, ``residual``) so that an
official SCD-Net checkpoint maps onto these modules by prefix renames only
(:mod:`net.scdnet_checkpoint`).  Initialisation is CTR-GCN's: Kaiming-normal
(fan-out) convolutions with zero bias, BatchNorm weight 1 (BN after the graph
sum: 1e-6; BN inside the multi-scale TCN: N(1, 0.02)), relation scale alpha 0.  The batch norms are
:class:`net.batch_norm.BatchNorm2d` (``nn.BatchNorm2d`` with faster CPU training statistics).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from einops import rearrange
from torch import nn

from net.batch_norm import BatchNorm2d

__all__ = [
    "relation_channels",
    "PointwiseConv",
    "CTRGC",
    "GraphConv",
    "TemporalConvBN",
    "TemporalMaxPool",
    "MultiScaleTemporalConv",
    "CTRGCNBlock",
    "CTRGCNStem",
]

# CTR-GCN's fixed constants (its model/ctrgcn.py; no paper gives them, none is a tunable of AC-SAR):
GCN_BN_INIT_SCALE = 1e-6     # unit_gcn: bn_init(self.bn, 1e-6), so each graph conv starts near its residual
TCN_BN_INIT_STD = 0.02       # MultiScale_TemporalConv weights_init: BN weight ~ N(1, 0.02)
TCN_POOL_WINDOW = 3          # the max-pool branch: MaxPool2d(kernel_size=(3, 1), stride 1, padding (1, 0))


def _init_conv(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _init_bn(bn: nn.modules.batchnorm._BatchNorm, scale: float) -> None:
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


def relation_channels(in_channels: int, reduction: int = 8, raw_channels: Sequence[int] = (3, 9),
                      raw_relation_channels: int = 8) -> int:
    """Width of CTR-GC's channel-wise relation maps (CTR-GCN's convention).

    Raw coordinate inputs (3 or 9 channels) get ``raw_relation_channels``;
    every other input gets ``in_channels // reduction`` (at least 1).
    """
    if in_channels in tuple(raw_channels):
        return raw_relation_channels
    return max(1, in_channels // reduction)


class PointwiseConv(nn.Conv2d):
    """A 1x1 ``nn.Conv2d`` (same parameters and state-dict keys) computed as one batched GEMM on CPU.

    ``forward(x (B, C_in, T, V)) -> (B, C_out, T, V)``.  On CPU, oneDNN runs 1x1 convolutions on
    NCHW activations at 10-35 % of the dense-matmul rate at the stem's sizes (it reorders to a
    blocked layout and back); ``W (C_out, C_in) @ x (B, C_in, T*V)`` as one ``bmm`` computes the
    same sums at about twice the speed, forward and backward (bench/train_step.py).  Other devices,
    and channels-last inputs, take the convolution path (:meth:`conv_forward`).
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def conv_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The plain convolution (the reference the GEMM path is tested against)."""
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or not x.is_contiguous():
            return self.conv_forward(x)
        n, c, t, v = x.shape
        weight = self.weight.view(self.out_channels, c).expand(n, -1, -1)
        y = torch.bmm(weight, x.view(n, c, t * v))
        if self.bias is not None:
            y = y.add_(self.bias.view(1, -1, 1))        # in place: baddbmm would first copy the expanded bias
        return y.view(n, self.out_channels, t, v)


class CTRGC(nn.Module):
    """Channel-wise topology refinement graph convolution for one adjacency subset.

    ``forward(x (B, C_in, T, V), A (V, V), alpha (1,)) -> (B, C_out, T, V)``:
    per-channel topology ``alpha * conv4(tanh(m_u - m_v)) + A`` with ``m`` the
    time-averaged embeddings of ``conv1``/``conv2``, applied to ``conv3(x)``.
    """

    def __init__(self, in_channels: int, out_channels: int, rel_channels: int):
        super().__init__()
        self.conv1 = PointwiseConv(in_channels, rel_channels)
        self.conv2 = PointwiseConv(in_channels, rel_channels)
        self.conv3 = PointwiseConv(in_channels, out_channels)
        self.conv4 = PointwiseConv(rel_channels, out_channels)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            _init_conv(conv)

    def topology(self, x: torch.Tensor, adjacency: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T, V) -> the refined topology (B, C_out, V, V).

        conv1 / conv2 are 1x1 (affine per position), so the time average of
        their output equals their output on the time average: they run on the
        (B, C_in, 1, V) mean instead of the full clip (T times fewer FLOPs).
        """
        x_mean = x.mean(-2, keepdim=True)                                   # (B, C_in, 1, V)
        m_u = self.conv1(x_mean).transpose(-1, -2)                          # (B, R, V, 1)
        m_v = self.conv2(x_mean)                                            # (B, R, 1, V)
        return self.conv4(torch.tanh(m_u - m_v)) * alpha + adjacency

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bcuv,bctv->bctu", self.topology(x, adjacency, alpha), self.conv3(x))

    def reference_forward(self, x: torch.Tensor, adjacency: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The straightforward CTR-GCN formulation (kept to test :meth:`forward` against)."""
        m_u = rearrange(self.conv1.conv_forward(x).mean(-2), "b r u -> b r u 1")
        m_v = rearrange(self.conv2.conv_forward(x).mean(-2), "b r v -> b r 1 v")
        topology = self.conv4.conv_forward(torch.tanh(m_u - m_v)) * alpha + adjacency  # (B, C_out, V, V)
        return torch.einsum("bcuv,bctv->bctu", topology, self.conv3.conv_forward(x))


class GraphConv(nn.Module):
    """CTR-GCN's ``unit_gcn``: sum of one :class:`CTRGC` per subset, BN, residual, ReLU.

    ``PA`` (S, V, V) is the learnable adjacency initialised from the layout;
    ``alpha`` (shared by the subsets) starts at 0, so at init the layer is a
    plain GCN on the layout graph.  ``down`` (1x1 conv + BN) adapts the residual
    when C_in != C_out.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray):
        super().__init__()
        adjacency = np.asarray(adjacency, dtype=np.float32)
        if adjacency.ndim != 3 or adjacency.shape[1] != adjacency.shape[2]:
            raise ValueError(f"adjacency must be (subsets, V, V), got {adjacency.shape}")
        rel = relation_channels(in_channels)
        self.convs = nn.ModuleList(CTRGC(in_channels, out_channels, rel) for _ in range(adjacency.shape[0]))
        self.PA = nn.Parameter(torch.from_numpy(adjacency.copy()))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = BatchNorm2d(out_channels)
        _init_bn(self.bn, GCN_BN_INIT_SCALE)
        self.down: Optional[nn.Sequential] = None
        if in_channels != out_channels:
            self.down = nn.Sequential(PointwiseConv(in_channels, out_channels),
                                      BatchNorm2d(out_channels))
            _init_conv(self.down[0])
            _init_bn(self.down[1], 1.0)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convs[0](x, self.PA[0], self.alpha)
        for i in range(1, len(self.convs)):
            y = y.add_(self.convs[i](x, self.PA[i], self.alpha))        # einsum outputs are not saved
        y = self.bn(y)
        res = x if self.down is None else self.down(x)
        y = y.add_(res)                                              # the BN output is not saved for backward
        return self.relu(y)

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        y = sum(conv.reference_forward(x, self.PA[i], self.alpha) for i, conv in enumerate(self.convs))
        y = self.bn(y)
        y = y + (x if self.down is None else self.down(x))
        return self.relu(y)


class TemporalConvBN(nn.Module):
    """(k x 1) temporal convolution (dilated, 'same' padding, stride 1) followed by BN."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        if kernel_size == 1:
            self.conv: nn.Conv2d = PointwiseConv(in_channels, out_channels)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=(kernel_size, 1),
                                  padding=(pad, 0), dilation=(dilation, 1))
        self.bn = BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class TemporalMaxPool(nn.MaxPool2d):
    """CTR-GCN's max-pool over time (window 3, stride 1, same padding): (B, C, T, V) -> (B, C, T, V).

    On CPU it pools a channels-last copy of ``x`` and returns a contiguous result: PyTorch's CPU
    kernel for NCHW input walks the window element by element, the channels-last one is vectorised
    over C, so forward + backward take 1.3-2.7x less time at the stems' sizes even with the two
    layout copies (batch 32-64, 4-64 channels; README, Benchmarks).  Same values and same gradients,
    ties included (both kernels keep the first maximum of the window); other devices pool directly.
    """

    def __init__(self):
        super().__init__(kernel_size=(TCN_POOL_WINDOW, 1), stride=1, padding=(TCN_POOL_WINDOW // 2, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4:
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


class MultiScaleTemporalConv(nn.Module):
    """CTR-GCN's multi-scale TCN: one branch per dilation, a max-pool branch and a 1x1 branch.

    Each branch has ``out_channels / (len(dilations) + 2)`` channels; the
    outputs are concatenated along channels.  Branch layout (indices matter for
    checkpoints): dilated ``[conv1x1, BN, ReLU, TemporalConvBN]``, max-pool
    ``[conv1x1, BN, ReLU, MaxPool(3x1), BN]``, point ``[conv1x1, BN]``.
    No internal residual (the block adds its own).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        num_branches = len(dilations) + 2
        if out_channels % num_branches:
            raise ValueError(f"multi-scale TCN: {out_channels} output channels do not split into "
                             f"{num_branches} equal branches")
        width = out_channels // num_branches
        branches = [
            nn.Sequential(PointwiseConv(in_channels, width), BatchNorm2d(width),
                          nn.ReLU(inplace=True), TemporalConvBN(width, width, kernel_size, dilation))
            for dilation in dilations
        ]
        branches.append(nn.Sequential(
            PointwiseConv(in_channels, width), BatchNorm2d(width), nn.ReLU(inplace=True),
            TemporalMaxPool(), BatchNorm2d(width)))
        branches.append(nn.Sequential(PointwiseConv(in_channels, width), BatchNorm2d(width)))
        self.branches = nn.ModuleList(branches)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _init_conv(m)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, TCN_BN_INIT_STD)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class CTRGCNBlock(nn.Module):
    """CTR-GCN basic block: ``ReLU(tcn1(gcn1(x)) + residual(x))``.

    ``residual=False`` drops the block residual (the first block of the stem);
    otherwise it is the identity when C_in == C_out, else a 1x1 conv + BN.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray, *, residual: bool,
                 kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.gcn1 = GraphConv(in_channels, out_channels, adjacency)
        self.tcn1 = MultiScaleTemporalConv(out_channels, out_channels, kernel_size, dilations)
        self.use_residual = residual
        self.residual: Optional[TemporalConvBN] = None
        if residual and in_channels != out_channels:
            self.residual = TemporalConvBN(in_channels, out_channels, kernel_size=1)
            _init_conv(self.residual.conv)
            _init_bn(self.residual.bn, 1.0)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn1(self.gcn1(x))
        if self.use_residual:
            res = x if self.residual is None else self.residual(x)
            y = y.add_(res)                                   # the cat output is not saved for backward
        return self.relu(y)

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn1(self.gcn1.reference_forward(x))
        if self.use_residual:
            y = y + (x if self.residual is None else self.residual(x))
        return self.relu(y)


class CTRGCNStem(nn.Module):
    """data_bn + a stack of CTR-GCN blocks (SCD-Net: 3 -> 64 -> 256 -> 64, no stride).

    Args:
        in_channels: C of the input (3 for coordinates).
        num_person: M.
        adjacency: (S, V, V) layout adjacency.
        channels: output width of each block, e.g. ``[64, 256, 64]``; the first
            block has no residual (CTR-GCN convention).
        kernel_size, dilations: multi-scale TCN (CTR-GCN: 5 and (1, 2)).

    ``forward(x (N, C, T, V, M)) -> (N*M, channels[-1], T, V)``; ``reference_forward`` is the
    straightforward formulation the fast paths are tested against.
    """

    def __init__(self, in_channels: int, num_person: int, adjacency: np.ndarray, channels: Sequence[int],
                 kernel_size: int = 5, dilations: Sequence[int] = (1, 2)):
        super().__init__()
        if len(channels) == 0:
            raise ValueError("stem_channels must name at least one block")
        num_joints = int(np.asarray(adjacency).shape[-1])
        self.in_channels, self.num_person, self.num_joints = in_channels, num_person, num_joints
        self.out_channels = int(channels[-1])
        self.data_bn = nn.BatchNorm1d(num_person * num_joints * in_channels)
        _init_bn(self.data_bn, 1.0)
        self.block_names = []
        widths = [in_channels, *[int(c) for c in channels]]
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            name = f"l{i + 1}"
            self.add_module(name, CTRGCNBlock(c_in, c_out, adjacency, residual=i > 0,
                                              kernel_size=kernel_size, dilations=dilations))
            self.block_names.append(name)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        _, _, _, v, m = x.shape
        x = rearrange(x, "n c t v m -> n (m v c) t")
        x = self.data_bn(x)
        return rearrange(x, "n (m v c) t -> (n m) c t v", m=m, v=v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._embed(x)
        for name in self.block_names:
            x = getattr(self, name)(x)
        return x

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The straightforward formulation (NCHW, per-position relation convs), for tests."""
        x = self._embed(x)
        for name in self.block_names:
            x = getattr(self, name).reference_forward(x)
        return x
