"""Throughput of the pretraining data pipeline (two augmented views per sample).

Measures samples/s of :class:`feeder.datasets.PretrainDataset` through a
``DataLoader`` (batch 64) at ``num_workers`` 0 and 2, with every augmentation
forced on (``p = 1``) and with the paper's ``p = 0.5``, and of the batched torch
path on ``--device`` (the training device: CUDA when there is one, else the CPU):
``PretrainDataset(return_raw=True)`` (raw clips + parameters
sampled in the workers) followed by :class:`feeder.batch_augment.BatchAugmenter`
on both views, in total and for the augmentation alone.  Data: a synthetic split at the paper shape
``(N, 3, 300, 25, 2)`` float32 with random valid lengths, written to a temporary
folder (or ``--data-dir`` holding ``train_data_joint.npy`` / ``train_num_frame.npy``).

    python bench/data_pipeline.py [--num-items 1000] [--device cpu] [--json out.json]

Prints one table to stdout; ``--json`` also writes the figures and the conditions.
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from common import conditions as run_conditions, device_sync  # noqa: E402
from data_gen.cli import positive_int  # noqa: E402
from feeder.batch_augment import BatchAugmenter  # noqa: E402
from feeder.datasets import PretrainDataset  # noqa: E402
from feeder.io import open_memmap_atomic, save_json_atomic, save_npy_atomic  # noqa: E402

logger = logging.getLogger(__name__)

OPS = ("rotate", "flip", "shear", "spatial_mask", "temporal_mask")
MIN_VALID_FRAMES = 32      # shortest valid length of a synthetic clip (the demo's window)


def make_split(folder: Path, n: int, t: int, v: int, m: int, seed: int) -> Path:
    """Synthetic ``train_data_joint.npy`` / ``train_num_frame.npy`` at the given shape."""
    rng = np.random.default_rng(seed)
    num_frame = rng.integers(MIN_VALID_FRAMES, t + 1, size=n).astype(np.int64)
    with open_memmap_atomic(folder / "train_data_joint.npy", (n, 3, t, v, m), np.float32, fill=None) as arr:
        for i, nf in enumerate(num_frame):
            arr[i, :, :nf] = rng.standard_normal((3, nf, v, m), dtype=np.float32)
    save_npy_atomic(folder / "train_num_frame.npy", num_frame)
    return folder


def time_loader(ds: PretrainDataset, num_items: int, batch_size: int, workers: int) -> float:
    """samples/s for the first ``num_items`` items (worker start-up included)."""
    subset = torch.utils.data.Subset(ds, range(min(num_items, len(ds))))
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        persistent_workers=False)
    start = time.perf_counter()
    count = 0
    for batch in loader:
        count += batch[0].shape[0]
    return count / (time.perf_counter() - start)


def time_batch_path(ds_raw: PretrainDataset, pipeline, num_items: int, batch_size: int, workers: int,
                    device: torch.device) -> tuple:
    """samples/s of the device path on ``device``: (DataLoader of raw clips + copy to the device +
    BatchAugmenter on both views) and (copy + BatchAugmenter alone, both views).  Parameters are
    sampled in the workers when ``ds_raw.raw_params``, else by the BatchAugmenter in the main
    process (counted in both)."""
    aug = BatchAugmenter(pipeline, seed=ds_raw.seed)
    sync = device_sync(device)
    loader = DataLoader(torch.utils.data.Subset(ds_raw, range(min(num_items, len(ds_raw)))),
                        batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    t_aug = 0.0
    count = 0
    start = time.perf_counter()
    for clip, second, _, index in loader:
        t0 = time.perf_counter()
        clip = clip.to(device, non_blocking=True)
        for view in (0, 1):
            if ds_raw.raw_params:
                out = aug(clip, params=second[view])
            else:
                out = aug(clip, second, index, epoch=0, view=view)
        sync()
        t_aug += time.perf_counter() - t0
        count += clip.shape[0]
        assert out.shape[2] == pipeline.window
    return count / (time.perf_counter() - start), count / t_aug


def _summary(runs) -> dict:
    return {"samples_per_s": float(np.median(runs)), "best_samples_per_s": float(np.max(runs)),
            "runs": [float(r) for r in runs]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-items", type=positive_int, default=1000,
                        help="samples of the synthetic split, and samples read per run [1000]")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="DataLoader batch size [64]")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader num_workers values, one row each [0 2]")
    parser.add_argument("--window", type=positive_int, default=64,
                        help="frames of each augmented view (paper 64, demo 32) [64]")
    parser.add_argument("--frames", type=positive_int, default=300, help="storage frames T of the synthetic split")
    parser.add_argument("--data-dir", type=Path, default=None, help="existing split folder (else synthetic)")
    parser.add_argument("--torch-threads", type=positive_int, default=1, help="torch intra-op threads for the batch path")
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs per row; the table shows median and best")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where the batched path augments (the training device) [cuda if available]")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.data_dir is None and args.frames < MIN_VALID_FRAMES:
        parser.error(f"--frames must be at least {MIN_VALID_FRAMES} (the synthetic clips' shortest valid length)")
    if any(w < 0 for w in args.workers):
        parser.error("--workers must be >= 0")
    device = torch.device(args.device)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.torch_threads)
    load_start = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="acsar-bench-") as tmp:
        folder = args.data_dir
        if folder is None:
            logger.info("writing a synthetic split of %d samples to %s", args.num_items, tmp)
            folder = make_split(Path(tmp), args.num_items, args.frames, 25, 2, seed=0)
        data_path, nf_path = folder / "train_data_joint.npy", folder / "train_num_frame.npy"
        rows = []
        for label, cfg in (("p=1 (all on)", {name: {"p": 1.0} for name in OPS}), ("p=0.5 (paper)", None)):
            ds = PretrainDataset(data_path, nf_path, window=args.window, transform=cfg, seed=0)
            for workers in args.workers:
                runs = [time_loader(ds, args.num_items, args.batch_size, workers) for _ in range(args.repeats)]
                rows.append({"path": "numpy per-sample DataLoader", "augment": label, "workers": workers,
                             **_summary(runs)})
                logger.info("%s workers=%d: %s samples/s", label, workers, [round(r) for r in runs])
            for raw_params, where in ((False, "main"), (True, "workers")):
                raw = PretrainDataset(data_path, nf_path, window=args.window, transform=cfg, seed=0,
                                      return_raw=True, raw_params=raw_params)
                for workers in args.workers:
                    runs = [time_batch_path(raw, raw.pipeline, args.num_items, args.batch_size, workers, device)
                            for _ in range(args.repeats)]
                    rows.append({"path": f"raw + batch on {device.type}, params@{where}", "augment": label,
                                 "workers": workers, **_summary([r[0] for r in runs])})
                    aug_where = f"{args.torch_threads} thr" if device.type == "cpu" else device.type
                    rows.append({"path": f"  of which batch aug ({aug_where})", "augment": label,
                                 "workers": workers, **_summary([r[1] for r in runs])})
                    logger.info("%s raw+batch params@%s workers=%d: %s samples/s", label, where, workers,
                                [round(r[0]) for r in runs])
        measured = {                         # read before conditions() starts its git subprocesses
            "loadavg_1m_start": load_start, "loadavg_1m_end": os.getloadavg()[0], "numpy": np.__version__,
            "device": str(device), "num_items": args.num_items, "batch_size": args.batch_size, "window": args.window,
            "storage_frames": args.frames, "data": str(args.data_dir) if args.data_dir else "synthetic (page cache)",
            # the workers' own peak is not given: forked children (DataLoader workers, and the ldconfig that
            # `import torch` runs) report the parent's pages as theirs (~430 MB even with --workers 0)
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        conditions = run_conditions(**measured)
    print(f"{'path':34s} {'augment':15s} {'workers':>7s} {'samples/s':>10s} {'best':>6s} {'ms/batch':>9s}")
    for r in rows:
        ms = 1000.0 * args.batch_size / r["samples_per_s"]
        print(f"{r['path']:34s} {r['augment']:15s} {r['workers']:>7d} {r['samples_per_s']:10.0f} "
              f"{r['best_samples_per_s']:6.0f} {ms:9.1f}")
    print("conditions: " + ", ".join(f"{k}={v}" for k, v in conditions.items()))
    if args.json is not None:
        save_json_atomic(args.json, {"rows": rows, "conditions": conditions})
    return 0


if __name__ == "__main__":
    sys.exit(main())
