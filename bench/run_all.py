"""Run every benchmark and collect the figures: ``python bench/run_all.py [--quick] [--json PATH]``.

Scripts (each also runs alone; see its docstring):

* ``bench/train_step.py``    pretraining step at the paper and demo configurations (FLOPs, matmul fraction)
* ``bench/data_pipeline.py`` pretraining feeder, two augmented views (window = the demo's 32 frames)
* ``bench/gendata.py``       ``data_gen/ntu_gendata.py`` files/s and peak RSS at two file counts
* ``bench/text_encoders.py`` sentences/s of CLIP (random weights) and MiniLM, full vs truncated
* ``bench/fast_paths.py``    each CPU fast path of ``net/ctrgcn.py`` against the plain op it replaces

Writes ``bench/results/<date>-<host>.json`` (or ``--json PATH``) with every script's
rows, the conditions (load average before and after each script) and two ratios:
feeder samples/s / training-step samples/s at the demo configuration, and the paper
configuration's achieved FLOP/s / dense-matmul FLOP/s.  Prints a summary table.
``--quick`` (under 10 minutes on 2 cores): paper batch 16 with text only, few steps,
fewer files and sentences.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402,F401  (loaded so that conditions() records its version and threads)

from common import conditions, emit_json, print_table  # noqa: E402
from data_gen.cli import positive_int  # noqa: E402


def script_args(quick: bool, threads: list) -> dict:
    t = [str(x) for x in threads]
    if quick:
        return {
            "train_step": ["--quick", "--threads", *t],
            "data_pipeline": ["--num-items", "256", "--repeats", "1", "--window", "32", "--workers", "0", "2"],
            "gendata": ["--quick"],
            "text_encoders": ["speed", "--num", "200", "--threads", t[0]],
            "fast_paths": ["--repeats", "10", "--threads", t[0]],
        }
    return {
        "train_step": ["--threads", *t],
        "data_pipeline": ["--num-items", "1000", "--repeats", "3", "--window", "32", "--workers", "0", "2"],
        "gendata": ["--counts", "500", "2000"],
        "text_encoders": ["speed", "--num", "1000", "--threads", t[0]],
        "fast_paths": ["--repeats", "20", "--threads", t[0]],
    }


def run_script(name: str, args: list, out: Path, timeout: float) -> dict:
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    cmd = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args, "--json", str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        ok = proc.returncode == 0 and out.exists()
        stdout, err = proc.stdout, ("" if ok else proc.stderr[-3000:])
    except subprocess.TimeoutExpired:
        ok, stdout, err = False, "", f"timeout after {timeout} s"
    print(stdout, end="")
    if not ok:
        print(f"[{name}] FAILED: {err}", file=sys.stderr)
    if not ok and out.exists():          # some cases failed (their rows say why): keep the ones that ran
        result = {**json.loads(out.read_text()), "error": err or "a case failed"}
    else:
        result = json.loads(out.read_text()) if ok else {"error": err}
    result["wall_s"] = time.perf_counter() - start
    result["loadavg_1m_before_after"] = [load_before, os.getloadavg()[0]]
    return result


def failed_scripts(results: dict) -> list:
    """Names of the scripts that failed, or of which one case (a row with an ``error``) failed."""
    return [name for name, r in results.items()
            if "error" in r or any("error" in row for row in r.get("rows", []))]


def summarise(results: dict) -> tuple:
    """(summary rows, ratios) from the scripts' results."""
    rows, ratios = [], {}
    steps = results.get("train_step", {}).get("rows", [])
    for r in steps:
        if "error" in r:
            continue
        rows.append({"benchmark": f"step {r['config']} b{r['batch']} text {r['text']} {r['threads']}thr",
                     "figure": r["samples_per_s"], "unit": "samples/s",
                     "note": f"{r['s_per_step']:.3g} s/step, {r['gflop_per_step']:.3g} GFLOP, "
                             f"{100 * r['matmul_fraction']:.2g}% of matmul {r['matmul_gflops']:.0f} GFLOP/s; "
                             f"{r['warmup_steps']} warm-up steps, {r['faults_per_step']:.0f} "
                             f"faults/step",
                     "peak_rss_mb": r["peak_rss_mb"]})
    paper = [r for r in steps if r.get("config") == "paper" and "error" not in r]
    if paper:
        best = max(paper, key=lambda r: r["matmul_fraction"])
        ratios["paper_step_matmul_fraction"] = best["matmul_fraction"]
        ratios["paper_step_matmul_fraction_case"] = f"b{best['batch']} text {best['text']} {best['threads']} thr"
    feeder = results.get("data_pipeline", {}).get("rows", [])
    for r in feeder:
        if r["path"].startswith("numpy") or r["path"].startswith("raw"):
            rows.append({"benchmark": f"feeder {r['path']} {r['augment']} w{r['workers']}",
                         "figure": r["samples_per_s"], "unit": "samples/s", "note": "2 views, window 32",
                         "peak_rss_mb": results["data_pipeline"]["conditions"].get("peak_rss_mb")})
    demo = [r for r in steps if r.get("config") == "demo" and r.get("text") == "on" and "error" not in r]
    all_on = [r for r in feeder if r["path"].startswith("numpy") and r["augment"].startswith("p=1")]
    if demo and all_on:
        step = max(demo, key=lambda r: r["batch"])     # the demo config trains at its largest batch
        for r in all_on:
            ratios[f"feeder_over_demo_step_w{r['workers']}"] = r["samples_per_s"] / step["samples_per_s"]
        ratios["feeder_over_demo_step_case"] = f"demo b{step['batch']} text on {step['threads']} thr"
    for r in results.get("gendata", {}).get("rows", []):
        rows.append({"benchmark": f"ntu_gendata {r['files']} files w{r['workers']}", "figure": r["files_per_s"],
                     "unit": "files/s", "note": f"{r['worker_cpu_ms_per_file']:.2f} CPU ms/file -> "
                                                 f"{r['cpu_bound_files_per_s']:.0f} files/s on idle cores",
                     "peak_rss_mb": max(r["parent_peak_rss_mb"], r["worker_peak_rss_mb"])})
    for r in results.get("text_encoders", {}).get("rows", []):
        for mode in ("full", "truncate"):
            rows.append({"benchmark": f"text {r['encoder']} {mode}", "figure": r[f"{mode}_sentences_per_s"],
                         "unit": "sentences/s", "note": f"batch {r['batch']}",
                         "peak_rss_mb": r.get("peak_rss_mb")})
    for r in results.get("fast_paths", {}).get("rows", []):
        rows.append({"benchmark": f"{r['path']} {r['size']}", "figure": r["speedup"], "unit": "x faster",
                     "note": f"fwd+bwd {r['fast_ms']:.3g} vs {r['plain_ms']:.3g} ms, max|diff| {r['max_abs_diff']:.2g}",
                     "peak_rss_mb": None})
    return rows, ratios


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="each script's small options (paper batch 16 with text only, fewer files and sentences)")
    parser.add_argument("--json", type=Path, default=None, help="default bench/results/<date>-<host>.json")
    parser.add_argument("--threads", type=positive_int, nargs="+", default=None,
                        help="torch threads of the training step [quick: 1; full: 1 and all cores]")
    parser.add_argument("--only", nargs="+", default=None, help="run only these scripts [all]",
                        choices=("train_step", "data_pipeline", "gendata", "text_encoders", "fast_paths"))
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per script")
    args = parser.parse_args(argv)
    threads = args.threads or ([1] if args.quick else sorted({1, os.cpu_count() or 1}))
    out_path = args.json or ROOT / "bench" / "results" / f"{time.strftime('%Y-%m-%d')}-{socket.gethostname()}.json"
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="acsar-bench-") as tmp:
        for name, sargs in script_args(args.quick, threads).items():
            if args.only and name not in args.only:
                continue
            print(f"== {name} {' '.join(sargs)}", flush=True)
            results[name] = run_script(name, sargs, Path(tmp) / f"{name}.json", args.timeout)
    rows, ratios = summarise(results)
    print()
    print_table(rows, ["benchmark", "figure", "unit", "peak_rss_mb", "note"], title="summary")
    for key, value in ratios.items():
        print(f"{key}: {value:.3g}" if isinstance(value, float) else f"{key}: {value}")
    total = time.perf_counter() - start
    print(f"total {total:.0f} s, load {conditions()['loadavg']}; written to {out_path}")
    emit_json(out_path, {"quick": args.quick, "summary": rows, "ratios": ratios, "results": results,
                         "total_s": total, "conditions": conditions()})
    failed = failed_scripts(results)
    if failed:
        print(f"failed: {', '.join(failed)} (their error rows are in {out_path})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
