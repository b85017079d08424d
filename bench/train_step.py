"""Throughput of one AC-SAR pretraining step (forward + backward + SGD step) and its FLOP efficiency.

Runs exactly what ``PretrainACSAR.train_step`` + ``TrainProcessor.optimize`` do
(two views through the query and key encoders, momentum update, the four
cross-domain InfoNCE terms, the text branch when on, enqueue, backward, SGD)
on random inputs (N, 3, T, 25, 2) and random float16 text features, for:

* ``paper``: config/ntu60/xsub/pretrain.yaml (stem [64, 256, 64], C2 = 2048, T = 64);
* ``demo``:  config/demo/pretrain.yaml (a small CPU model; T = 32).

Per case (each in its own process, so the peak RSS is the case's own): seconds per
step (median of ``--steps`` after the warm-up steps), samples/s, the model FLOPs of
one step (``torch.utils.flop_counter.FlopCounterMode`` over the first, eager warm-up step:
matmuls, convolutions, attention, forward and backward), the achieved FLOP/s and
its fraction of a dense 2048 x 2048 fp32 matmul loop measured in the same process
right before and after the timed steps (mean of the two), with the same thread
count.  Peak RSS (and CUDA max allocated on GPU).

Warm-up: the first steps of a process run slower than the rest of a training run because the
heap is still growing (every new block of the peak footprint is first-touched: ~0.9 million minor
page faults and ~5-9 s of system time in the first paper-config step on the 2-core VM, 2026-12-07).
After the FLOP-count step, untimed steps run until two in a row take fewer minor page faults than
``--warmup-fault-fraction`` of the first step's (at most ``--warmup-steps``), so the timed steps
measure the steady state a long run spends its time in; ``warmup_steps`` and the timed steps' mean
``faults_per_step`` are reported beside the figures (``--warmup-steps 0`` times from the second step,
as before 2026-12-07).

``--amp bf16`` runs every case with ``amp=bf16`` (the forward autocast in bfloat16; for GPUs)
and measures the reference matmul in bfloat16 too, so the fraction compares like with like.

Every case runs with the config's ``reuse_freed_memory`` (glibc keeps freed memory for the next
step, :mod:`processor.cpu_allocator`), as ``main.py`` does; ``--system-malloc`` runs them with
glibc's defaults instead (column ``malloc``), for an A/B comparison.

``--compile`` runs every case with ``compile=true`` (query and key encoders compiled
in place with ``torch.compile``; run once with and once without it to compare).
The FLOP-count step then runs eager (``torch.compiler.set_stance("force_eager")``:
the counter sees the same model FLOPs), and ``--compile-warmup-steps`` compiled
steps (which pay the compilation, ``compile_s``) precede the timed steps.

    python bench/train_step.py [--quick] [--configs paper demo] [--batch-sizes 16 64]
                               [--threads 1 2] [--device cpu] [--compile] [--amp bf16]
                               [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from common import (conditions, device_sync, emit_json, matmul_flops, minor_faults, peak_rss_mb,  # noqa: E402
                    print_case_result, print_table, run_case_process)
from data_gen.cli import positive_int  # noqa: E402
from net.graph import get_layout  # noqa: E402

PAPER_CONFIG = ROOT / "config" / "ntu60" / "xsub" / "pretrain.yaml"
DEMO_CONFIG = ROOT / "config" / "demo" / "pretrain.yaml"
COLUMNS = ["config", "text", "compile", "amp", "malloc", "batch", "threads", "compile_s", "warmup_steps",
           "faults_per_step", "s_per_step", "samples_per_s", "gflop_per_step", "achieved_gflops", "matmul_gflops",
           "matmul_fraction", "peak_rss_mb", "cuda_max_alloc_mb"]


def switch_labels(case: dict) -> dict:
    """The case's text and compile switches as the table shows them ("on" / "off")."""
    return {key: "on" if case[key] else "off" for key in ("text", "compile")}


def build(config: str, text: bool, device: torch.device, compile_on: bool = False, amp: str = "none",
          malloc: str = "reuse"):
    """A PretrainACSAR processor with model and optimizer on ``device`` (no data); encoders compiled if asked.

    ``malloc="reuse"`` applies the config's ``reuse_freed_memory`` before the model is built (as
    ``Processor.run`` in processor/base.py does), ``"system"`` keeps glibc's defaults.
    """
    from processor.cpu_allocator import reuse_freed_memory
    from processor.pretrain_acsar import PretrainACSAR

    path, overrides = (PAPER_CONFIG if config == "paper" else DEMO_CONFIG), []
    if not text:
        overrides.append("text.mode=none")
    overrides += [f"compile={str(compile_on).lower()}", f"amp={amp}",
                  f"reuse_freed_memory={str(malloc == 'reuse').lower()}"]
    proc = PretrainACSAR.from_config(path, overrides)
    if proc.cfg.reuse_freed_memory:
        reuse_freed_memory()
    proc.device, proc.epoch, proc.augmenter = device, 0, None
    proc.model = proc.build_model().to(device)
    proc.model.train()
    proc.optimizer = proc.build_optimizer()
    return proc


def run_case(case: dict) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(case["threads"])
    torch.manual_seed(0)
    device = torch.device(case["device"])
    amp = case["amp"]
    proc = build(case["config"], case["text"], device, case["compile"], amp, case["malloc"])
    mm_dtype = torch.bfloat16 if amp == "bf16" else torch.float32
    cfg, b = proc.cfg, case["batch"]
    shape = (b, cfg.model.in_channels, cfg.data.window, get_layout(cfg.data.layout).num_joints,
             cfg.model.num_person)
    x1, x2 = torch.randn(shape, device=device), torch.randn(shape, device=device)
    length = cfg.text.num_tokens if cfg.text.level == "token" else 1
    text = torch.randn(b, length, cfg.text.feature_dim, device=device).half()
    index = torch.arange(b, device=device)
    sync = device_sync(device)

    def step():
        out = proc.train_step((x1, x2, text, index))
        proc.optimize(out["loss"])
        return out

    counter = FlopCounterMode(display=False)
    start, faults = time.perf_counter(), minor_faults()
    with counter, torch.compiler.set_stance("force_eager"):
        step()                                            # eager warm-up + FLOP count
    sync()
    warmup_s, first_faults = time.perf_counter() - start, minor_faults() - faults
    compile_s = None
    if case["compile"]:
        start = time.perf_counter()
        for _ in range(case["compile_warmup_steps"]):     # compilation (and any recompilation), not timed
            step()
        sync()
        compile_s = time.perf_counter() - start
    warmup_faults = []                                    # untimed steps until the heap stops growing:
    quiet = case["warmup_fault_fraction"] * first_faults  # two quiet steps in a row (it grows now and then)
    while len(warmup_faults) < case["warmup_steps"]:
        faults = minor_faults()
        step()
        sync()
        warmup_faults.append(minor_faults() - faults)
        if len(warmup_faults) >= 2 and max(warmup_faults[-2:]) < quiet:
            break
    flops = counter.get_total_flops()
    by_op = {str(k): v / 1e9 for k, v in counter.get_flop_counts().get("Global", {}).items()}
    mm_before = matmul_flops(device, dtype=mm_dtype)
    times, faults = [], minor_faults()
    for _ in range(case["steps"]):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    faults_per_step = (minor_faults() - faults) / case["steps"]
    mm_after = matmul_flops(device, dtype=mm_dtype)
    s_step = statistics.median(times)
    mm = 0.5 * (mm_before + mm_after)
    return {
        "config": case["config"], **switch_labels(case), "amp": amp, "malloc": case["malloc"], "batch": b,
        "threads": case["threads"], "device": str(device), "steps": case["steps"],
        "s_per_step": s_step, "s_per_step_all": times, "warmup_s": warmup_s, "compile_s": compile_s,
        "warmup_steps": len(warmup_faults), "faults_first_step": first_faults, "faults_warmup": warmup_faults,
        "faults_per_step": faults_per_step,
        "samples_per_s": b / s_step, "gflop_per_step": flops / 1e9, "gflop_by_op": by_op,
        "achieved_gflops": flops / s_step / 1e9, "matmul_gflops": mm / 1e9,
        "matmul_gflops_before_after": [mm_before / 1e9, mm_after / 1e9],
        "matmul_fraction": flops / s_step / mm,
        "peak_rss_mb": peak_rss_mb(),
        "cuda_max_alloc_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else None,
        "parameters_query_side": sum(p.numel() for m in (proc.model.encoder_q,) for p in m.parameters()),
        "conditions": conditions(),
    }


def cases(args) -> list:
    out = []
    for config in args.configs:
        sizes = args.batch_sizes if config == "paper" else args.demo_batch_sizes
        for text in (True, False):
            if config == "paper" and args.quick and not text:
                continue
            for b in sizes:
                for threads in args.threads:
                    steps = args.steps if config == "paper" else args.demo_steps
                    out.append({"config": config, "text": text, "batch": b, "threads": threads,
                                "device": args.device, "steps": steps, "compile": args.compile, "amp": args.amp,
                                "compile_warmup_steps": args.compile_warmup_steps,
                                "warmup_steps": args.warmup_steps, "warmup_fault_fraction": args.warmup_fault_fraction,
                                "malloc": "system" if args.system_malloc else "reuse"})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="paper: batch 16, text on, 2 steps; demo: 5 steps")
    parser.add_argument("--configs", nargs="+", choices=("paper", "demo"), default=["paper", "demo"],
                        help="model configurations to time [paper demo]")
    parser.add_argument("--batch-sizes", type=positive_int, nargs="+", default=None, help="paper batch sizes [16 64]")
    parser.add_argument("--demo-batch-sizes", type=positive_int, nargs="+", default=[16, 32],
                        help="demo batch sizes [16 32]")
    parser.add_argument("--steps", type=positive_int, default=None, help="timed steps per paper case [3; quick 2]")
    parser.add_argument("--demo-steps", type=positive_int, default=None, help="timed steps per demo case [20; quick 5]")
    parser.add_argument("--threads", type=positive_int, nargs="+", default=[torch.get_num_threads()],
                        help="torch intra-op thread counts to run each case with")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device of the model and of the reference matmul [cuda if available, else cpu]")
    parser.add_argument("--compile", action="store_true",
                        help="compile the query/key encoders (config compile=true); compare with a run without")
    parser.add_argument("--amp", choices=("none", "bf16"), default="none",
                        help="autocast the forward in bfloat16 (config amp); the reference matmul then runs in bf16")
    parser.add_argument("--system-malloc", action="store_true",
                        help="glibc's malloc defaults instead of the config's reuse_freed_memory (for an A/B)")
    parser.add_argument("--compile-warmup-steps", type=int, default=2,
                        help="untimed compiled steps after the eager FLOP-count step (they pay the compilation) [2]")
    parser.add_argument("--warmup-steps", type=int, default=5,
                        help="at most this many untimed steps after the FLOP-count (and compile) steps, until the "
                             "heap stops growing [5]")
    parser.add_argument("--warmup-fault-fraction", type=float, default=0.01,
                        help="two warm-up steps in a row with fewer minor page faults than this fraction of the "
                             "first step's end the warm-up [0.01]")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per case before it is abandoned")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and conditions here")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compile_warmup_steps < 1:
        parser.error("--compile-warmup-steps must be at least 1 (the first compiled step compiles)")
    if args.warmup_steps < 0 or not 0 <= args.warmup_fault_fraction <= 1:
        parser.error("--warmup-steps must be >= 0 and --warmup-fault-fraction in [0, 1]")
    if args.case:
        print_case_result(run_case(json.loads(args.case)))
        return 0
    args.batch_sizes = args.batch_sizes or ([16] if args.quick else [16, 64])
    args.steps = args.steps or (2 if args.quick else 3)
    args.demo_steps = args.demo_steps or (5 if args.quick else 20)
    rows = []
    for case in cases(args):
        try:
            result, stderr = run_case_process([__file__, "--case", json.dumps(case)], timeout=args.timeout)
        except subprocess.TimeoutExpired:
            rows.append({**case, **switch_labels(case), "error": f"timeout {args.timeout} s"})
            continue
        if result is None:
            rows.append({**case, **switch_labels(case), "error": (stderr.strip().splitlines() or ["failed"])[-1]})
            continue
        rows.append(result)
    print_table(rows, COLUMNS, title="training step (forward + backward + SGD), " + str(conditions()["loadavg"])
                + " load")
    for r in rows:
        if "error" in r:
            print(f"  {r['config']} batch {r['batch']} text {r['text']} compile {r['compile']}: {r['error']}")
    emit_json(args.json, {"rows": rows, "conditions": conditions()})
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
