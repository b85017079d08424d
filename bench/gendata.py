"""Throughput and peak memory of ``data_gen/ntu_gendata.py`` on synthetic NTU files of realistic size.

Files: ``.skeleton`` text in the NTU format (``data_gen.synth_gendata.format_skeleton_text``),
70-100 frames (mean about 85), one or two bodies (half each), smooth random joint
trajectories around 3 m from the camera.  A pool of distinct texts is written under
many sample names (reading speed does not depend on which text a name holds).

Per file count (each run in its own process): wall seconds and files/s of
``gendata(..., workers=W)`` (reading, body selection, pre-normalisation, writing the
x-sub memmaps), the worker CPU seconds per file (what it would cost on idle cores), the
parent's CPU ms per file (collecting frame counts, as the workers write the rows; its
imports included, so it falls as the count grows), and the peak RSS of the parent and of
the largest worker; two counts show whether the peak stays flat as the number of files
grows.  Also a one-process breakdown of the per-file CPU time (read / select / pre-normalise).

    python bench/gendata.py [--quick] [--counts 500 2000] [--workers 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

from common import conditions, emit_json, print_case_result, print_table, run_case_process  # noqa: E402
from data_gen.cli import positive_int  # noqa: E402

COLUMNS = ["files", "workers", "wall_s", "files_per_s", "worker_cpu_ms_per_file", "cpu_bound_files_per_s",
           "parent_cpu_ms_per_file", "parent_peak_rss_mb", "worker_peak_rss_mb"]


def synth_texts(num: int, seed: int = 0) -> list:
    """``num`` distinct .skeleton texts: 70-100 frames, 1 or 2 bodies, smooth random motion."""
    from data_gen.synth_gendata import format_skeleton_text

    rng = np.random.default_rng(seed)
    out = []
    for k in range(num):
        t, m = int(rng.integers(70, 101)), 1 + k % 2
        base = rng.normal(0, 0.25, size=(1, m, 25, 3)) + np.array([0.0, 0.0, 3.0]) + \
            np.array([[[[0.8 * b, 0, 0]] for b in range(m)]]).reshape(1, m, 1, 3)
        walk = np.cumsum(rng.normal(0, 0.01, size=(t, m, 25, 3)), axis=0)
        ids = [72057594037927936 + int(x) for x in rng.integers(1000, 60000, size=m)]
        out.append(format_skeleton_text(base + walk, ids, rng).encode("ascii"))
    return out


def write_files(folder: Path, count: int, texts: list) -> None:
    """``count`` NTU-60 files (setups 1-17, cameras 1-3, performers 1-40, actions 1-60, no missing-list names)."""
    from data_gen.ntu_gendata import DATASETS, load_missing_list

    missing = load_missing_list(DATASETS["ntu60"]["missing_list"])
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for s in range(1, 18):
        for p in range(1, 41):
            for c in range(1, 4):
                for a in range(1, 61):
                    name = f"S{s:03d}C{c:03d}P{p:03d}R001A{a:03d}"
                    if name in missing:
                        continue
                    (folder / f"{name}.skeleton").write_bytes(texts[written % len(texts)])
                    written += 1
                    if written == count:
                        return


def run_case(case: dict) -> dict:
    from data_gen.ntu_gendata import gendata

    start = time.perf_counter()
    summary = gendata(case["data"], case["out"], "ntu60", ["xsub"], workers=case["workers"], progress=False)
    wall = time.perf_counter() - start
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    n = sum(summary["xsub"].values())
    cpu = (kids.ru_utime + kids.ru_stime) if case["workers"] > 1 else (me.ru_utime + me.ru_stime)
    return {"files": n, "workers": case["workers"], "wall_s": wall, "files_per_s": n / wall,
            "worker_cpu_ms_per_file": 1000 * cpu / n,
            "cpu_bound_files_per_s": case["workers"] * n / cpu if case["workers"] > 1 else n / cpu,
            "parent_cpu_ms_per_file": 1000 * (me.ru_utime + me.ru_stime) / n if case["workers"] > 1 else None,
            "parent_peak_rss_mb": me.ru_maxrss / 1024, "worker_peak_rss_mb": kids.ru_maxrss / 1024,
            "conditions": conditions()}


def breakdown(folder: Path, limit: int) -> dict:
    """Mean CPU ms per file of each stage of ``process_file``, in this process (one core)."""
    from data_gen.ntu_reader import body_order, read_skeleton
    from data_gen.prenormalise import mtvc_to_ctvm, pre_normalise_inplace
    from net.graph import get_layout

    layout = get_layout("ntu25")
    paths = sorted(folder.glob("*.skeleton"))[:limit]
    t = {"read": 0.0, "select": 0.0, "pre_normalise": 0.0}
    for path in paths:
        c0 = time.process_time()
        seq = read_skeleton(path)
        c1 = time.process_time()
        order = body_order(seq.joints, 2)
        sample = np.zeros((2, 300, 25, 3), dtype=np.float32)
        frames = min(seq.num_frames, 300)
        sample[: len(order), :frames] = seq.joints[order, :frames]
        c2 = time.process_time()
        mtvc_to_ctvm(pre_normalise_inplace(sample, layout))          # with the (C, T, V, M) copy
        c3 = time.process_time()
        t["read"] += c1 - c0
        t["select"] += c2 - c1
        t["pre_normalise"] += c3 - c2
    out = {f"{k}_ms": 1000 * v / len(paths) for k, v in t.items()}
    out["total_ms"] = sum(out.values())
    out["files"] = len(paths)
    out["mean_bytes"] = float(np.mean([p.stat().st_size for p in paths]))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="counts 300 and 1000")
    parser.add_argument("--counts", type=positive_int, nargs="+", default=None, help="file counts [500 2000]")
    parser.add_argument("--workers", type=positive_int, default=2, help="ntu_gendata.py worker processes [2]")
    parser.add_argument("--distinct", type=positive_int, default=40, help="distinct file texts in the pool")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and conditions here")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print_case_result(run_case(json.loads(args.case)))
        return 0
    counts = args.counts or ([300, 1000] if args.quick else [500, 2000])
    rows = []
    with tempfile.TemporaryDirectory(prefix="acsar-bench-gendata-") as tmp:
        texts = synth_texts(args.distinct)
        raw = Path(tmp) / "raw"
        write_files(raw, max(counts), texts)
        stages = breakdown(raw, 200)
        for count in counts:
            data = raw if count == max(counts) else Path(tmp) / f"raw{count}"
            if data != raw:
                data.mkdir()
                for path in sorted(raw.glob("*.skeleton"))[:count]:
                    os.link(path, data / path.name)
            case = {"data": str(data), "out": str(Path(tmp) / f"out{count}"), "workers": args.workers}
            result, stderr = run_case_process([__file__, "--case", json.dumps(case)])
            if result is None:
                raise RuntimeError(f"gendata case {count} failed: {stderr[-2000:]}")
            rows.append(result)
    print_table(rows, COLUMNS, title=f"ntu_gendata.py, synthetic files ({stages['mean_bytes'] / 1024:.0f} KiB mean), "
                                     f"load {conditions()['loadavg']}")
    print("per file, one process (CPU ms): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()
                                                      if k.endswith("_ms")))
    emit_json(args.json, {"rows": rows, "stages": stages, "conditions": conditions()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
