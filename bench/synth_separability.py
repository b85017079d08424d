"""Is the synthetic demo set learnable from motion but not from a single pose?

Generates the demo set (``data_gen/synth_gendata.py``), turns it into
``(N, 3, 300, 25, 2)`` pre-normalised arrays for the NTU-60 cross-subject
split and scores two 1-nearest-neighbour classifiers (Euclidean distance,
train performers -> test performers):

(a) the first frame only (pre-normalised coordinates of frame 0, both bodies);
(b) the whole sequence, valid frames resampled to ``--resample`` frames, flattened.

A good demo set has (a) near chance and (b) high.  The arrays come from
``data_gen/ntu_gendata.py`` when it is importable (the project's own path);
``--reader own`` (or its absence) uses the small independent reader and
pre-normalisation in this file (acsar_facts.md §6).

Usage::

    python bench/synth_separability.py [--raw DIR] [--work DIR] [--reader auto|gendata|own]

Prints a table to stdout; :func:`evaluate` returns the numbers as a dict.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from data_gen.synth_gendata import generate_dataset  # noqa: E402
from net.graph import get_layout  # noqa: E402

logger = logging.getLogger(__name__)

# NTU-60 cross-subject training performers (acsar_facts.md §6).
XSUB_TRAIN_PERFORMERS = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
MAX_FRAMES, MAX_BODIES = 300, 2


# ------------------------------------------------------------------ independent minimal reader
def read_skeleton(path: Path) -> np.ndarray:
    """``(T, B, 25, 3)`` xyz of every body slot (B = most bodies in any frame; missing = 0)."""
    lines = Path(path).read_text().splitlines()
    num_frames = int(lines[0])
    frames: List[List[np.ndarray]] = []
    i = 1
    for _ in range(num_frames):
        nb = int(lines[i])
        i += 1
        bodies = []
        for _ in range(nb):
            nj = int(lines[i + 1])
            block = np.array([ln.split()[:3] for ln in lines[i + 2:i + 2 + nj]], dtype=np.float64)
            bodies.append(block)
            i += 2 + nj
        frames.append(bodies)
    b = max([len(f) for f in frames] + [1])
    out = np.zeros((num_frames, b, 25, 3))
    for t, bodies in enumerate(frames):
        for k, block in enumerate(bodies):
            out[t, k] = block
    return out


def _rotation_to(vec: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation matrix taking direction ``vec`` onto ``target`` (Rodrigues)."""
    a = vec / max(np.linalg.norm(vec), 1e-9)
    b = target / np.linalg.norm(target)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-9:
        return np.eye(3) if c > 0 else -np.eye(3)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def own_prenormalise(seq: np.ndarray, layout=None) -> Tuple[np.ndarray, int]:
    """(T, B, 25, 3) -> ((3, 300, 25, 2) pre-normalised, valid frame count)."""
    layout = layout or get_layout("ntu25")
    present = np.abs(seq).sum((2, 3)) > 0                       # (T, B)
    energy = np.array([seq[present[:, k], k].std(0).sum() if present[:, k].sum() > 1 else 0.0
                       for k in range(seq.shape[1])])
    keep = np.argsort(-energy)[:MAX_BODIES]
    x = np.zeros((seq.shape[0], MAX_BODIES, 25, 3))
    x[:, :len(keep)] = seq[:, keep]
    nonempty = np.where(np.abs(x).sum((1, 2, 3)) > 0)[0]
    x = x[nonempty[0]:nonempty[-1] + 1]
    t = min(len(x), MAX_FRAMES)
    x = x[:t]
    mask = np.abs(x).sum(-1, keepdims=True) > 0
    x = (x - x[:, :1, layout.spine:layout.spine + 1]) * mask
    rot = _rotation_to(x[0, 0, layout.spine] - x[0, 0, layout.hip], np.array([0.0, 0.0, 1.0]))
    x = x @ rot.T
    rot = _rotation_to(x[0, 0, layout.right_shoulder] - x[0, 0, layout.left_shoulder],
                       np.array([1.0, 0.0, 0.0]))
    x = (x @ rot.T) * mask
    out = np.zeros((MAX_FRAMES, MAX_BODIES, 25, 3), dtype=np.float32)
    reps = int(np.ceil(MAX_FRAMES / t))
    out[:] = np.concatenate([x] * reps, 0)[:MAX_FRAMES]          # pad by repeating the sequence
    return out.transpose(3, 0, 2, 1), t


def _performer(name: str) -> int:
    return int(name[name.index("P") + 1:name.index("P") + 4])


def _label(name: str) -> int:
    return int(name[name.index("A") + 1:name.index("A") + 4]) - 1


def load_with_own_reader(raw_dir: Path) -> Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """split -> (data (N,3,300,25,2), num_frame (N,), labels (N,)) for the x-sub split."""
    files = sorted(Path(raw_dir).glob("*.skeleton"))
    out: Dict[str, list] = {"train": [[], [], []], "val": [[], [], []]}
    for f in files:
        data, t = own_prenormalise(read_skeleton(f))
        split = "train" if _performer(f.name) in XSUB_TRAIN_PERFORMERS else "val"
        for lst, value in zip(out[split], (data, t, _label(f.name))):
            lst.append(value)
    return {k: (np.stack(v[0]), np.array(v[1]), np.array(v[2])) for k, v in out.items()}


# ------------------------------------------------------------------ project path (ntu_gendata)
def load_with_gendata(raw_dir: Path, work_dir: Path, workers: int = 1
                      ) -> Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run ``data_gen/ntu_gendata.py`` (NTU-60 x-sub) on ``raw_dir`` and load its arrays.

    The NTU-60 missing-skeleton list is not applied: it names real recordings, and
    some of its names coincide with synthetic files.
    """
    from data_gen.ntu_gendata import gendata
    from feeder.splits import load_split

    gendata(raw_dir, work_dir, dataset="ntu60", benchmarks=["xsub"], workers=workers,
            use_missing_list=False, progress=False)
    result = {}
    for split in ("train", "val"):
        data, num, _, labels = load_split(Path(work_dir) / "xsub", split)
        result[split] = (np.asarray(data), num, np.array(labels))
    return result


# ------------------------------------------------------------------ 1-NN
def resample(data: np.ndarray, num_frame: np.ndarray, frames: int) -> np.ndarray:
    """(N, C, T, V, M) -> (N, C, frames, V, M): linear resampling of each sample's valid frames."""
    n = data.shape[0]
    out = np.empty(data.shape[:2] + (frames,) + data.shape[3:], dtype=np.float32)
    for i in range(n):
        t = max(int(num_frame[i]), 1)
        pos = np.linspace(0.0, t - 1, frames)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, t - 1)
        w = (pos - lo)[None, :, None, None]
        out[i] = data[i][:, lo] * (1 - w) + data[i][:, hi] * w
    return out


def one_nn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    a = train_x.reshape(len(train_x), -1).astype(np.float64)
    b = test_x.reshape(len(test_x), -1).astype(np.float64)
    d = (b * b).sum(1)[:, None] - 2 * b @ a.T + (a * a).sum(1)[None, :]
    return float((train_y[np.argmin(d, 1)] == test_y).mean())


def evaluate(raw_dir: Path, work_dir: Optional[Path] = None, reader: str = "auto",
             resample_frames: int = 32) -> Dict[str, float]:
    """1-NN accuracies on the x-sub split of an already generated raw folder."""
    used = reader
    if reader in ("auto", "gendata"):
        try:
            if work_dir is None:
                raise ValueError("work_dir is needed for ntu_gendata output")
            splits = load_with_gendata(raw_dir, work_dir)
            used = "gendata"
        except Exception as exc:  # noqa: BLE001 - fall back, but say why
            if reader == "gendata":
                raise
            logger.warning("data_gen/ntu_gendata.py not usable (%s: %s); using the bench's own reader",
                           type(exc).__name__, exc)
            used = "own"
    if used == "own":
        splits = load_with_own_reader(raw_dir)
    (xtr, ntr, ytr), (xte, nte, yte) = splits["train"], splits["val"]
    first_tr, first_te = xtr[:, :, 0], xte[:, :, 0]
    seq_tr, seq_te = resample(xtr, ntr, resample_frames), resample(xte, nte, resample_frames)
    classes = np.unique(np.concatenate([ytr, yte]))
    two_person_tr = np.abs(xtr[:, :, 0, :, 1]).sum((1, 2)) > 0
    # what a static-pose classifier can reach by only telling 1-person from 2-person classes
    groups = {}
    for c in classes:
        groups.setdefault(bool(two_person_tr[ytr == c].mean() > 0.5), []).append(c)
    floor = sum(np.isin(yte, g).mean() / len(g) for g in groups.values())
    return {
        "reader": used, "train": len(ytr), "test": len(yte), "classes": len(classes),
        "chance": 1.0 / len(classes), "person_count_floor": float(floor),
        "first_frame_1nn": one_nn_accuracy(first_tr, ytr, first_te, yte),
        "sequence_1nn": one_nn_accuracy(seq_tr, ytr, seq_te, yte),
    }


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, default=None,
                        help="folder for the generated .skeleton files (default: a temp folder)")
    parser.add_argument("--work", type=Path, default=None, help="folder for ntu_gendata output (default: temp)")
    parser.add_argument("--reader", choices=("auto", "gendata", "own"), default="auto",
                        help="array source: data_gen/ntu_gendata.py, the bench's own reader, or auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data (default: 0)")
    parser.add_argument("--num-classes", type=int, default=10, help="synthetic classes generated (default: 10)")
    parser.add_argument("--resample", type=int, default=32, help="frames per sequence for (b)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw or Path(tmp) / "raw"
        work = args.work or Path(tmp) / "work"
        start = time.perf_counter()
        generate_dataset(raw, seed=args.seed, num_classes=args.num_classes, progress=False)
        gen_s = time.perf_counter() - start
        start = time.perf_counter()
        result = evaluate(raw, work, reader=args.reader, resample_frames=args.resample)
        result["generate_s"], result["convert_and_eval_s"] = gen_s, time.perf_counter() - start
    for key, value in result.items():
        print(f"{key:>22}: {value:.3f}" if isinstance(value, float) else f"{key:>22}: {value}")
    return result


if __name__ == "__main__":
    main()
