"""NTU RGB+D 60 / 120 ``.skeleton`` folders -> SCD-Net style benchmark arrays.

For each benchmark (``xsub``, ``xview`` for NTU-60; ``xsub``, ``xset`` for NTU-120)
writes into ``<out-folder>/<benchmark>/`` (acsar_facts.md §6):

    {train,val}_data_joint.npy   (N, 3, max_frames, 25, 2) float32 (memmap)
    {train,val}_num_frame.npy    (N,) int64: the file's frame count (header), capped at max_frames
    {train,val}_label.pkl        (sample names = file stems, 0-based action labels)

Per file (in worker processes): read every body (:mod:`data_gen.ntu_reader`, the
m-th body of a frame in slot m, at most 4 slots), keep the two slots with the
largest energy, pre-normalise (:mod:`data_gen.prenormalise`, in place) into
``(3, T, 25, 2)``, which the worker writes straight into its row of the ``.npy`` file of
every benchmark the file belongs to (:class:`data_gen.split_writer.SplitWriter`; the
parent only records frame counts and errors).  Every split of every benchmark is
committed together at the end (:class:`data_gen.split_writer.SplitGroup`), so a failed
run leaves all the old splits.  Files are processed in sorted order; the
dataset's samples-with-missing-skeletons list is skipped.  ``--on-error skip``
records bad files in ``<out-folder>/skipped.txt`` and goes on.

Usage: ``python data_gen/ntu_gendata.py --data-path RAW --out-folder data/ntu60 --dataset ntu60``
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import re  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Dict, List, Optional, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data_gen.cli import DefaultsHelpFormatter, positive_int  # noqa: E402
from data_gen.ntu_reader import KINECT_MAX_BODIES, SkeletonFormatError, body_order, read_skeleton  # noqa: E402
from data_gen.prenormalise import mtvc_to_ctvm, pre_normalise_inplace  # noqa: E402
from data_gen.split_writer import SplitGroup, add_conversion_options, pwrite_all, write_skipped_report  # noqa: E402
from net.graph import get_layout  # noqa: E402

logger = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parent / "resources"

# Benchmark protocols.  Source: Shahroudy et al., "NTU RGB+D", CVPR 2016 (x-sub
# performers, x-view cameras) and Liu et al., "NTU RGB+D 120", TPAMI 2019 (x-sub
# performers, x-set = even setup ids); the same lists as the SCD-Net / 2s-AGCN
# ntu_gendata.py (acsar_facts.md §6).
_NTU60_TRAIN_PERFORMERS = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
_NTU120_EXTRA_TRAIN_PERFORMERS = (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81,
                                  82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103)
DATASETS: Dict[str, dict] = {
    "ntu60": {
        "max_action": 60,
        "max_setup": 17,
        "missing_list": RESOURCES / "ntu60_missing_skeletons.txt",
        "benchmarks": {
            # benchmark: (name field used, training ids)
            "xsub": ("performer", frozenset(_NTU60_TRAIN_PERFORMERS)),
            "xview": ("camera", frozenset({2, 3})),
        },
    },
    "ntu120": {
        "max_action": 120,
        "max_setup": 32,
        "missing_list": RESOURCES / "ntu120_missing_skeletons.txt",
        "benchmarks": {
            "xsub": ("performer", frozenset(_NTU60_TRAIN_PERFORMERS + _NTU120_EXTRA_TRAIN_PERFORMERS)),
            "xset": ("setup", frozenset(range(2, 33, 2))),
        },
    },
}

NAME_PATTERN = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")
NUM_PERSONS = 2          # bodies kept per sample (M)
NUM_COORDS = 3
_NAMES_SHOWN = 10        # file names listed in a warning about ignored files


@dataclass(frozen=True)
class SampleInfo:
    name: str
    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @classmethod
    def parse(cls, name: str) -> "SampleInfo":
        match = NAME_PATTERN.match(name)
        if not match:
            raise ValueError(f"{name!r} is not an NTU sample name SsssCcccPpppRrrrAaaa")
        s, c, p, r, a = (int(x) for x in match.groups())
        return cls(name, s, c, p, r, a)

    @property
    def label(self) -> int:
        return self.action - 1


def is_training(info: SampleInfo, dataset: str, benchmark: str) -> bool:
    field, ids = DATASETS[dataset]["benchmarks"][benchmark]
    return getattr(info, field) in ids


def load_missing_list(path) -> set:
    """Sample names ``SsssCcccPpppRrrrAaaa``, one per line.

    Blank lines and ``#`` comments are ignored and one ``.skeleton`` suffix is dropped
    (``S001C002P005R002A008.skeleton``); anything else (a typo, a lower-case name, a
    path with a folder) is an error naming the file and line, never silently ignored.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such missing-skeleton list (--missing-list: a text file of "
                                f"sample names SsssCcccPpppRrrrAaaa, one per line)") from None
    except UnicodeDecodeError as exc:
        raise SkeletonFormatError(path, None, f"non-ASCII byte at offset {exc.start}: expected sample names "
                                              f"SsssCcccPpppRrrrAaaa, one per line") from None
    names = set()
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        name = entry.removesuffix(".skeleton")
        if not NAME_PATTERN.match(name):
            hint = " (give the bare sample name, without a folder)" if "/" in name or "\\" in name else ""
            raise SkeletonFormatError(path, number, f"{entry!r} is not an NTU sample name SsssCcccPpppRrrrAaaa "
                                                    f"(optionally with .skeleton){hint}")
        names.add(name)
    return names


def process_file(path, layout_name: str = "ntu25", max_frames: int = 300,
                 max_bodies: int = KINECT_MAX_BODIES, num_persons: int = NUM_PERSONS,
                 strict: bool = False) -> Tuple[np.ndarray, int]:
    """One ``.skeleton`` file -> ``((3, max_frames, V, num_persons) float32, num_frame)``.

    Reads all bodies, keeps the ``num_persons`` highest-energy ones, truncates to
    ``max_frames`` and pre-normalises.  ``num_frame`` = header frame count, capped.
    ``strict`` also checks the fields the pipeline does not use (all 12 of a joint line,
    every body-info field), line by line (:func:`data_gen.ntu_reader.read_skeleton`).
    """
    layout = get_layout(layout_name)
    seq = read_skeleton(path, max_bodies=max_bodies, num_joints=layout.num_joints, strict=strict)
    order = body_order(seq.joints, num_persons)                           # the kept slots, by energy
    t = min(seq.num_frames, max_frames)
    sample = np.zeros((num_persons, max_frames, layout.num_joints, NUM_COORDS), dtype=np.float32)
    sample[: len(order), :t] = seq.joints[order, :t]                      # (M, T, V, 3)
    if sample.sum() == 0:
        raise SkeletonFormatError(path, None, "no body in any frame: expected at least one skeleton")
    pre_normalise_inplace(sample, layout)
    return mtvc_to_ctvm(sample), t


def _worker(args):
    """Process one file and write it into its rows; returns ``(index, num_frame, error)``.

    ``slots`` are :meth:`SplitWriter.row_slot` triples; the descriptors are the parent's,
    inherited by the forked pool (or the parent's own with ``workers=1``), so only the
    frame count and any error go back through the pipe, never the 180 KB sample (NTU, T = 300).
    Read / format errors are returned for the parent to raise or record; a failed
    write raises here (imap re-raises it in the parent): it is not a bad input file.
    """
    index, path, layout_name, max_frames, strict, slots = args
    try:
        data, num_frame = process_file(path, layout_name, max_frames, strict=strict)
    except (SkeletonFormatError, OSError) as exc:       # picklable: re-raised or recorded by the parent
        return index, 0, exc
    for fd, offset, nbytes in slots:
        if data.nbytes != nbytes or data.dtype != np.float32:
            raise ValueError(f"{path}: sample {data.dtype} {data.shape} does not fit a {nbytes}-byte row")
        pwrite_all(fd, data, offset)
    return index, num_frame, None


def list_samples(data_path: Path, dataset: str, missing: set, limit: Optional[int] = None
                 ) -> Tuple[List[Path], List[SampleInfo]]:
    """Sorted ``.skeleton`` files of ``dataset`` in ``data_path`` minus the missing list."""
    spec = DATASETS[dataset]
    # ".SKELETON" too: such a file is not used, and the warning below names it rather than passing over it
    files = sorted(p for p in Path(data_path).iterdir() if p.suffix.lower() == ".skeleton" and p.is_file())
    kept_paths, infos = [], []
    counts = {"not_named": 0, "missing_list": 0, "other_dataset": 0}
    not_named: List[str] = []
    for path in files:
        info = None
        if path.suffix == ".skeleton":
            with contextlib.suppress(ValueError):
                info = SampleInfo.parse(path.stem)
        if info is None:
            counts["not_named"] += 1
            not_named.append(path.name)
            continue
        if info.name in missing:
            counts["missing_list"] += 1
            continue
        if info.action > spec["max_action"] or info.setup > spec["max_setup"]:
            counts["other_dataset"] += 1
            continue
        kept_paths.append(path)
        infos.append(info)
    logger.info("%s: %d .skeleton files, %d kept; ignored: %d on the missing-skeleton list, "
                "%d outside %s (action > A%03d or setup > S%03d), %d not named SsssCcccPpppRrrrAaaa",
                data_path, len(files), len(kept_paths), counts["missing_list"], counts["other_dataset"],
                dataset, spec["max_action"], spec["max_setup"], counts["not_named"])
    if not_named:                                        # a renamed or copied file: never passed over unnamed
        shown = ", ".join(not_named[:_NAMES_SHOWN]) + (", ..." if len(not_named) > _NAMES_SHOWN else "")
        logger.warning("%s: %d .skeleton file(s) ignored, not named SsssCcccPpppRrrrAaaa.skeleton: %s",
                       data_path, len(not_named), shown)
    if limit is not None:
        kept_paths, infos = kept_paths[:limit], infos[:limit]
    return kept_paths, infos


def gendata(data_path, out_folder, dataset: str = "ntu60", benchmarks: Optional[Sequence[str]] = None,
            max_frames: int = 300, workers: int = 1, missing_list=None, use_missing_list: bool = True,
            on_error: str = "raise", limit: Optional[int] = None, chunksize: int = 8,
            flush_every: int = 256, progress: bool = True, strict: bool = False) -> Dict[str, Dict[str, int]]:
    """Convert a folder; returns ``{benchmark: {"train": n, "val": n}}`` (samples written).

    ``strict`` validates every field of every file, not only those converted (slower).

    Raises:
        SkeletonFormatError: a bad file with ``on_error="raise"`` (no output of the run remains
            for the splits being written; splits of earlier runs are untouched).
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    spec = DATASETS[dataset]
    benchmarks = list(benchmarks or spec["benchmarks"])
    unknown = [b for b in benchmarks if b not in spec["benchmarks"]]
    if unknown:
        raise ValueError(f"{dataset} has benchmarks {sorted(spec['benchmarks'])}, not {unknown}")
    data_path, out_folder = Path(data_path), Path(out_folder)
    if not data_path.is_dir():
        raise FileNotFoundError(f"--data-path {data_path} is not a folder of .skeleton files")
    missing = set()
    if use_missing_list:
        missing = load_missing_list(missing_list or spec["missing_list"])
    paths, infos = list_samples(data_path, dataset, missing, limit)
    if not paths:
        holders = sorted(sub.name for sub in data_path.iterdir()
                         if sub.is_dir() and next(sub.glob("*.skeleton"), None) is not None)
        hint = (f"; the .skeleton files are one level down, in {', '.join(holders)}: --data-path is the folder "
                f"that holds them (e.g. {data_path / holders[0]})") if holders else ""
        raise FileNotFoundError(f"no usable {dataset} .skeleton files in {data_path}{hint}")

    layout = get_layout("ntu25")
    sample_shape = (NUM_COORDS, max_frames, layout.num_joints, NUM_PERSONS)
    # For every file: the (writer, row) pairs it goes to.
    targets: List[List[Tuple[str, int]]] = [[] for _ in paths]
    split_members: Dict[str, Tuple[List[str], List[int]]] = {}
    for bench in benchmarks:
        for split in ("train", "val"):
            split_members[f"{bench}/{split}"] = ([], [])
        for k, info in enumerate(infos):
            key = f"{bench}/{'train' if is_training(info, dataset, bench) else 'val'}"
            names, labels = split_members[key]
            targets[k].append((key, len(names)))
            names.append(info.name)
            labels.append(info.label)

    skipped: List[str] = []
    with contextlib.ExitStack() as stack:
        group = stack.enter_context(SplitGroup())          # every split committed together, after the pool
        writers = {key: group.open(out_folder / key.split("/")[0], key.split("/")[1],
                                   names, labels, sample_shape, flush_every)
                   for key, (names, labels) in split_members.items()}
        jobs = [(k, str(p), layout.name, max_frames, strict,
                 tuple(writers[key].row_slot(row) for key, row in targets[k]))
                for k, p in enumerate(paths)]
        if workers > 1:                                  # fork: the workers inherit the writers' descriptors
            pool = stack.enter_context(multiprocessing.get_context("fork").Pool(workers))
            results = pool.imap(_worker, jobs, chunksize=chunksize)
        else:
            results = map(_worker, jobs)
        for index, num_frame, error in tqdm(results, total=len(jobs), desc=f"{dataset} files",
                                            unit="file", disable=not progress):
            if error is not None:
                if on_error == "raise":
                    raise error
                skipped.append(f"{paths[index].name}\t{type(error).__name__}: {error}")
                for key, row in targets[index]:
                    writers[key].skip(row)
                continue
            for key, row in targets[index]:
                writers[key].mark_written(row, num_frame)
    write_skipped_report(out_folder, skipped, "files")        # once every split is in place
    summary: Dict[str, Dict[str, int]] = {}
    for key, writer in writers.items():
        bench, split = key.split("/")
        summary.setdefault(bench, {})[split] = writer.num_kept
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Convert NTU RGB+D 60/120 .skeleton files into SCD-Net style arrays "
                    "(<out-folder>/<benchmark>/{train,val}_data_joint.npy (N,3,T,25,2) float32, "
                    "{train,val}_num_frame.npy, {train,val}_label.pkl).",
        formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--data-path", required=True, type=Path,
                        help="folder holding the raw .skeleton files (CRLF or LF)")
    parser.add_argument("--out-folder", required=True, type=Path,
                        help="output folder; one sub-folder per benchmark is written")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="ntu60",
                        help="ntu60 keeps actions A001-A060 of setups S001-S017 (others are ignored and counted); "
                             "ntu120 keeps all")
    parser.add_argument("--benchmark", action="append", default=None,
                        help="benchmark to write, repeatable (ntu60: xsub, xview; ntu120: xsub, xset); "
                             "default: all of the dataset's")
    parser.add_argument("--max-frames", type=positive_int, default=300,
                        help="T of the output arrays; longer files are truncated")
    workers = max(1, min(4, multiprocessing.cpu_count()))
    parser.add_argument("--workers", type=positive_int, default=workers,
                        help=f"worker processes reading files (1 = in-process; default: min(4, CPU cores) = {workers})")
    parser.add_argument("--chunksize", type=positive_int, default=8, help="files per task sent to a worker")
    missing = parser.add_mutually_exclusive_group()
    missing.add_argument("--missing-list", type=Path, default=None,
                         help="file of sample names to skip, one per line (# comments and a .skeleton "
                              "suffix allowed; anything else is an error) (default: the dataset's official "
                              "samples-with-missing-skeletons list in data_gen/resources/)")
    missing.add_argument("--ignore-missing-list", action="store_true",
                         help="do not skip the samples with missing skeletons")
    add_conversion_options(parser, "only the first N files (sorted) after filtering, for quick looks")
    parser.add_argument("--flush-every", type=positive_int, default=256,
                        help="rows per chunk when skipped samples are dropped from the output (bounds resident memory)")
    parser.add_argument("--strict", action="store_true",
                        help="also check the fields the arrays do not use (all 12 per joint, the body-info "
                             "fields), line by line; by default only counts, body ids and x y z are parsed")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = gendata(args.data_path, args.out_folder, args.dataset, args.benchmark, args.max_frames,
                          args.workers, args.missing_list, not args.ignore_missing_list, args.on_error,
                          args.limit, args.chunksize, args.flush_every, not args.no_progress, args.strict)
    except (SkeletonFormatError, FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return 1
    for bench, counts in summary.items():
        logger.info("%s/%s: train %d  val %d", args.dataset, bench, counts.get("train", 0), counts.get("val", 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
