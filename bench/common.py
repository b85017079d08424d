"""Shared helpers of the benchmark scripts: run conditions, peak memory, the dense-matmul yardstick, tables.

Every ``bench/*.py`` script prints a short table to stdout and can write its rows
plus :func:`conditions` to a JSON file; ``bench/run_all.py`` collects them.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:                 # torch is imported where it is used: the gendata bench runs without it
    import torch

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["conditions", "cpu_model", "git_state", "peak_rss_mb", "children_peak_rss_mb", "minor_faults",
           "matmul_flops", "print_table", "emit_json", "print_case_result", "run_case_process"]

RESULT_PREFIX = "RESULT "   # the stdout line that carries a case process's result (JSON) back to its parent


def print_case_result(result: Dict[str, Any]) -> None:
    """Hand a case's result to the :func:`run_case_process` that started this process (one stdout line)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_case_process(args: Sequence[str], timeout: Optional[float] = None) -> Tuple[Optional[Dict[str, Any]], str]:
    """Run ``python *args`` (a benchmark case in a fresh process, so that its time and peak memory are its own):
    ``(the result it printed with print_case_result, or None when it failed; its stderr)``.  A case past
    ``timeout`` seconds raises ``subprocess.TimeoutExpired``."""
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        return None, proc.stderr
    return json.loads(lines[-1][len(RESULT_PREFIX):]), proc.stderr


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def minor_faults() -> int:
    """Minor page faults of this process so far (pages the kernel mapped on first touch)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def children_peak_rss_mb() -> float:
    """Largest peak RSS among this process's terminated (waited-for) children (MiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def cpu_model() -> str | None:
    """The processor's name (``model name`` of /proc/cpuinfo; ``platform.processor()`` elsewhere), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def git_state() -> Dict[str, Any]:
    """``git_commit`` of the checkout these scripts belong to and ``git_dirty`` (tracked files changed),
    both None outside a git checkout."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def conditions(**extra: Any) -> Dict[str, Any]:
    """Machine, code and load description stored with every figure: host, CPU, load, Python (and torch
    version and threads), the git commit and the command line (``argv``: the script and its options).

    The torch fields only when this process has imported torch: a benchmark of a
    torch-free program (``ntu_gendata.py``) must not load it (its 0.7 GB would show
    in the peak RSS being measured).
    """
    out = {
        "host": socket.gethostname(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(), **git_state(), "argv": list(sys.argv),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        out.update({"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None})
    out.update(extra)
    return out


def device_sync(device: "torch.device"):
    """A no-argument function that waits for ``device``'s queued work (a no-op off CUDA), for timing."""
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def matmul_flops(device: "torch.device", size: int = 2048, seconds: float = 1.5, dtype=None) -> float:
    """FLOP/s of a dense ``size x size`` matmul loop on ``device`` (the practical compute limit).

    Runs for about ``seconds`` after one warm-up product, with the current torch thread count.
    """
    import torch

    dtype = dtype or torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = device_sync(device)
    c = a @ b
    sync()
    count, start = 0, time.perf_counter()
    while True:
        c = a @ b
        count += 1
        if count % 4 == 0 or device.type != "cuda":
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
    del c
    return 2.0 * size ** 3 * count / elapsed


def print_table(rows: Sequence[Dict[str, Any]], columns: Sequence[str], title: str = "") -> None:
    """Plain fixed-width table of ``columns`` of ``rows`` (floats with 3 significant digits)."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
        return "-" if v is None else str(v)

    cells: List[List[str]] = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    if title:
        print(title)
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    sys.stdout.flush()


def emit_json(path: Path | None, payload: Dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` (atomically) when a path is given."""
    if path is None:
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from feeder.io import save_json_atomic

    save_json_atomic(Path(path), json.loads(json.dumps(payload, default=str)))
