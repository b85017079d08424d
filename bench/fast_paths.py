"""CPU fast paths of ``net/ctrgcn.py`` against the straightforward ops they replace, one op at a time.

``python bench/fast_paths.py [--threads 1] [--repeats 20] [--system-malloc] [--json out.json]``

For each fast path, at the activation sizes of the paper's stem (batch 16 clips x 2 persons,
T = 64) and the demo's (batch 32 x 2, T = 32): forward + backward time of the fast path and of the
plain op (median of ``--repeats``, one warm-up), the speed-up and the largest absolute difference
of the outputs and input gradients (tests/test_net_ctrgcn_fast.py checks these equalities too):

* ``PointwiseConv``: a 1x1 convolution as one batched GEMM vs ``nn.Conv2d`` (oneDNN), at the stem's
  activation sizes and at CTR-GC's relation convolutions (conv1 / conv2 on the time mean, conv4 on the
  (V, V) relation maps);
* ``TemporalMaxPool``: the 3x1 max-pool over time on a channels-last copy vs ``nn.MaxPool2d`` on NCHW;
* ``BatchNorm2d``: ``net.batch_norm.BatchNorm2d``'s training pass (float32 statistics) vs
  ``nn.BatchNorm2d`` (tests/test_net_batch_norm.py).

Memory comes from the heap as in training (``reuse_freed_memory``, every config's default,
:mod:`processor.cpu_allocator`); ``--system-malloc`` keeps glibc's defaults, under which every
activation above 32 MB is page-faulted in afresh: the batch norm, which allocates two more maps than
PyTorch's, is then slower at the paper's 256-channel size (bench/EXPERIMENTS.md §3.5).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from common import conditions, emit_json, print_table  # noqa: E402
from data_gen.cli import positive_int  # noqa: E402
from net.batch_norm import BatchNorm2d  # noqa: E402
from net.ctrgcn import PointwiseConv, TemporalMaxPool  # noqa: E402
from processor.cpu_allocator import reuse_freed_memory  # noqa: E402

# (fast path, label, input shape (B = N*M, C, T, V), output channels: the 1x1 convolution's C_out, else C)
SIZES = [
    ("PointwiseConv", "paper stem 64->256", (32, 64, 64, 25), 256),
    ("PointwiseConv", "paper stem 256->64", (32, 256, 64, 25), 64),
    ("TemporalMaxPool", "paper TCN branch 64", (32, 64, 64, 25), 64),
    ("TemporalMaxPool", "paper TCN branch 16", (32, 16, 64, 25), 16),
    ("PointwiseConv", "paper CTR-GC conv1 64->8 (time mean)", (32, 64, 1, 25), 8),
    ("PointwiseConv", "paper CTR-GC conv4 8->256 (V x V)", (32, 8, 25, 25), 256),
    ("PointwiseConv", "demo stem 16->32", (64, 16, 32, 25), 32),
    ("PointwiseConv", "demo CTR-GC conv1 16->2 (time mean)", (64, 16, 1, 25), 2),
    ("PointwiseConv", "demo CTR-GC conv4 2->32 (V x V)", (64, 2, 25, 25), 32),
    ("TemporalMaxPool", "demo TCN branch 8", (64, 8, 32, 25), 8),
    ("BatchNorm2d", "paper stem 256", (32, 256, 64, 25), 256),
    ("BatchNorm2d", "paper stem 64", (32, 64, 64, 25), 64),
    ("BatchNorm2d", "paper TCN branch 16", (32, 16, 64, 25), 16),
    ("BatchNorm2d", "demo stem 32", (64, 32, 32, 25), 32),
    ("BatchNorm2d", "demo TCN branch 8", (64, 8, 32, 25), 8),
]
COLUMNS = ["path", "size", "shape", "fast_ms", "plain_ms", "speedup", "max_abs_diff"]


def time_fwd_bwd(fn, x: torch.Tensor, grad: torch.Tensor, repeats: int):
    """Median seconds of forward + backward of ``fn`` on ``x``, and the last (output, input gradient)."""
    times = []
    for i in range(repeats + 1):
        xi = x.clone().requires_grad_()
        start = time.perf_counter()
        y = fn(xi)
        y.backward(grad)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times), y.detach(), xi.grad


def fast_and_plain(path: str, c_in: int, c_out: int):
    """(the fast module, the plain callable it replaces) for one fast path."""
    if path == "PointwiseConv":
        torch.manual_seed(0)
        conv = PointwiseConv(c_in, c_out)
        return conv, conv.conv_forward
    if path == "BatchNorm2d":                          # both in training mode: batch statistics
        return BatchNorm2d(c_out), nn.BatchNorm2d(c_out)
    return TemporalMaxPool(), nn.MaxPool2d(kernel_size=(3, 1), stride=1, padding=(1, 0))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads [1]")
    parser.add_argument("--repeats", type=positive_int, default=20, help="timed forward + backward passes per op [20]")
    parser.add_argument("--system-malloc", action="store_true",
                        help="glibc's malloc defaults instead of training's reuse_freed_memory (for an A/B)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and conditions here")
    args = parser.parse_args(argv)
    if not args.system_malloc:
        reuse_freed_memory()
    torch.set_num_threads(args.threads)
    rows = []
    for path, label, shape, c_out in SIZES:
        fast, plain = fast_and_plain(path, shape[1], c_out)
        torch.manual_seed(1)
        x = torch.relu(torch.randn(shape))               # the pool's input is a ReLU output
        grad = torch.randn(shape[0], c_out, *shape[2:])
        t_fast, y_fast, g_fast = time_fwd_bwd(fast, x, grad, args.repeats)
        t_plain, y_plain, g_plain = time_fwd_bwd(plain, x, grad, args.repeats)
        diff = max((y_fast - y_plain).abs().max().item(), (g_fast - g_plain).abs().max().item())
        rows.append({"path": path, "size": label, "shape": "x".join(map(str, shape)), "fast_ms": 1e3 * t_fast,
                     "plain_ms": 1e3 * t_plain, "speedup": t_plain / t_fast, "max_abs_diff": diff})
    malloc = "system" if args.system_malloc else "reuse"
    print_table(rows, COLUMNS, title=f"CPU fast paths, forward + backward, {args.threads} thread(s), "
                                     f"malloc {malloc}, load {conditions()['loadavg']}")
    emit_json(args.json, {"rows": rows, "conditions": conditions(threads=args.threads, malloc=malloc)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
