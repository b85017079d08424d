"""Generic importer: a folder of per-sequence JSON files -> SCD-Net style benchmark arrays.

Each input file ``<name>.json`` holds ``{"file_name": str, "skeletons": [T][V][3],
"label": int (1-based)}`` (the NW-UCLA re-host format).  Output in
``<out-folder>/<benchmark>/`` (acsar_facts.md §6):

    {train,val}_data_joint.npy   (N, 3, max_frames, V, M) float32 memmap; person 0 = the
                                 sequence, persons 1.. are all zero
    {train,val}_num_frame.npy    (N,) int64 frames (capped at max_frames)
    {train,val}_label.pkl        (file names, 0-based labels = label - 1)

Labels must lie in 1..``--num-classes`` when it is given (NW-UCLA: 10, its
class list).  Each sequence is pre-normalised like NTU (:mod:`data_gen.prenormalise`, joints
from ``--layout``).  Split (one of):

    --test-list PATH   pickle or JSON: a list of file names, or of dicts with a
                       ``file_name`` key (e.g. NW-UCLA's ``val_label.pkl``);
    --test-regex RE    ``re.search`` on the file name (e.g. ``_v03$``);

everything else is training.  Samples are written in sorted file-name order and
named by their file; a ``"file_name"`` (optional) must be that name: a copy of a
sequence under another file name (a test clip landing in training) is bad input.

A split that selects no file at all is an error (a test list of other names, a
case mismatch, a regex that matches nothing), so is one that selects every file
(no training samples left), as is a test-list name without a
``.json`` file: with ``--on-error skip`` such names are listed in ``skipped.txt``
and the run goes on; with ``--limit`` (a subset of the files on purpose) both are
logged warnings only.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import pickle  # noqa: E402
import re  # noqa: E402
from typing import Dict, List, Optional, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data_gen.cli import DefaultsHelpFormatter, positive_int  # noqa: E402
from data_gen.ntu_reader import SkeletonFormatError, decode_text  # noqa: E402
from data_gen.prenormalise import pre_normalise  # noqa: E402
from data_gen.split_writer import SplitGroup, add_conversion_options, write_skipped_report  # noqa: E402
from net.graph import LAYOUTS, get_layout  # noqa: E402

logger = logging.getLogger(__name__)

NUM_COORDS = 3

__all__ = ["read_json_sequence", "load_name_list", "split_names", "gendata", "build_parser", "main"]


def read_json_sequence(path, num_joints: int, num_classes: Optional[int] = None) -> Tuple[str, np.ndarray, int]:
    """``(file_name, (T, V, 3) float32, label 1-based)``; :class:`SkeletonFormatError` on bad content
    (with ``num_classes``, also a label above it)."""
    path = Path(path)
    obj = _read_json(path)
    if not isinstance(obj, dict) or not {"skeletons", "label"} <= set(obj):
        raise SkeletonFormatError(path, None, 'expected an object with "file_name", "skeletons" [T][V][3] and "label"')
    name = obj.get("file_name", path.stem)
    if name not in (path.stem, path.name):
        raise SkeletonFormatError(path, None, f'"file_name" is {name!r}, expected the name of its file, '
                                              f'{path.stem!r} (a renamed copy of another sequence?)')
    try:
        values = np.asarray(obj["skeletons"])
    except (TypeError, ValueError):
        raise SkeletonFormatError(path, None, '"skeletons" is not a rectangular [T][V][3] array of numbers') from None
    if values.dtype.kind not in "iuf" and values.size:         # "1", null: not coordinates
        raise SkeletonFormatError(path, None, '"skeletons" holds a value that is not a number (a string or null), '
                                              'expected a [T][V][3] array of numbers')
    with np.errstate(over="ignore"):                            # beyond float32: Inf, reported below
        joints = values.astype(np.float32)
    if joints.ndim != 3 or joints.shape[1:] != (num_joints, NUM_COORDS) or joints.shape[0] == 0:
        hint = ""
        if joints.ndim == 3 and joints.shape[0] and joints.shape[2] == NUM_COORDS and joints.shape[1] != num_joints:
            fits = sorted(name for name, layout in LAYOUTS.items() if layout.num_joints == joints.shape[1])
            hint = (f" (the layout's joint count; {joints.shape[1]} joints is --layout {' / '.join(fits)})" if fits
                    else f" (the layout's joint count; no layout has {joints.shape[1]} joints)")
        raise SkeletonFormatError(path, None, f'"skeletons" has shape {joints.shape}, expected '
                                              f'(T>0, {num_joints}, 3){hint}')
    if not np.isfinite(joints).all():
        raise SkeletonFormatError(path, None, '"skeletons" holds NaN, Inf or a value beyond float32 range')
    label = obj["label"]
    if not isinstance(label, int) or isinstance(label, bool) or label < 1:
        raise SkeletonFormatError(path, None, f'"label" is {label!r}, expected a 1-based integer')
    if num_classes is not None and label > num_classes:
        raise SkeletonFormatError(path, None, f'"label" is {label}, expected 1..{num_classes} (--num-classes)')
    return name, joints, label


def _read_json(path: Path):
    """Parsed content of a UTF-8 JSON file; :class:`SkeletonFormatError` (file, line) if it is not one."""
    text = decode_text(path, path.read_bytes(), "a UTF-8 JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SkeletonFormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None


def load_name_list(path) -> List[str]:
    """A pickle or JSON list of names, or of dicts with ``file_name`` (NW-UCLA ``val_label.pkl``)."""
    path = Path(path)
    if path.suffix == ".json":
        obj = _read_json(path)
    else:
        try:
            with open(path, "rb") as handle:
                obj = pickle.load(handle)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read as a pickle ({type(exc).__name__}: {exc}); expected a list of "
                             f"names or of dicts with 'file_name' (or a .json list)") from None
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], (list, tuple)):
        obj = obj[0]                                   # a (names, labels) label pickle
    if not isinstance(obj, (list, tuple)):
        raise ValueError(f"{path}: expected a list of names or of dicts with 'file_name', got {type(obj).__name__}")
    names = []
    for item in obj:
        if isinstance(item, dict):
            item = item.get("file_name")
        if not isinstance(item, str):
            raise ValueError(f"{path}: expected a list of names or of dicts with 'file_name', got {item!r}")
        names.append(Path(item).stem if item.endswith(".json") else item)
    return names


def split_names(names: Sequence[str], test_names: Optional[Sequence[str]] = None,
                test_regex: Optional[str] = None) -> Dict[str, List[str]]:
    """``{"train": [...], "val": [...]}`` (input order kept) from a test list or a regex."""
    if (test_names is None) == (test_regex is None):
        raise ValueError("give exactly one of a test list or a test regex")
    if test_names is not None:
        test = set(test_names)
        is_test = [n in test for n in names]
    else:
        try:
            pattern = re.compile(test_regex)
        except re.error as exc:
            raise ValueError(f"--test-regex {test_regex!r} is not a regular expression: {exc}") from None
        is_test = [bool(pattern.search(n)) for n in names]
    return {"train": [n for n, t in zip(names, is_test) if not t],
            "val": [n for n, t in zip(names, is_test) if t]}


def _examples(names, k: int = 3) -> str:
    names = sorted(names)
    return ", ".join(repr(n) for n in names[:k]) + (", ..." if len(names) > k else "")


def _check_split(splits: Dict[str, List[str]], test_names, test_list, test_regex, data_path: Path, on_error: str,
                 limit: Optional[int], skipped: List[str]) -> None:
    """No silent empty val or train split, no test-list name silently without a file (module docstring)."""
    found = splits["train"] + splits["val"]
    if not splits["train"]:
        how = f"test list {test_list} names" if test_names is not None else f"--test-regex {test_regex!r} matches"
        problem = (f"{how} every one of the {len(found)} .json files in {data_path}, so the train split would be "
                   f"empty (e.g. {_examples(found)})")
        if limit is None:
            raise ValueError(problem)
        logger.warning("%s (with --limit %d)", problem, limit)
    if test_names is not None:
        unknown = sorted(set(test_names) - set(found))
        if not splits["val"]:
            lower = {n.lower(): n for n in found}
            near = sorted(n for n in set(test_names) if n.lower() in lower)
            hint = (f"; {near[0]!r} differs from the file name {lower[near[0].lower()]!r} only in letter case "
                    f"(matching is case-sensitive)" if near else "")
            problem = (f"test list {test_list}: none of its {len(set(test_names))} names matches one of the "
                       f"{len(found)} .json files in {data_path}, so the val split would be empty (expected e.g. "
                       f"{_examples(test_names)}; found e.g. {_examples(found)}){hint}")
        elif unknown:
            problem = (f"test list {test_list}: {len(unknown)} of its {len(set(test_names))} names have no .json "
                       f"file in {data_path}: {_examples(unknown, 5)}")
        else:
            return
        if limit is not None:                          # a subset of the files on purpose
            logger.warning("%s (with --limit %d)", problem, limit)
        elif not splits["val"]:
            raise ValueError(problem)
        elif on_error == "raise":
            raise ValueError(problem + "; fix the list, or use --on-error skip to go on without those names")
        else:
            logger.warning("%s; going on without them (listed in skipped.txt)", problem)
            skipped += [f"{n}\tnot found: listed in {test_list}, but there is no {n}.json in {data_path}"
                        for n in unknown]
    elif not splits["val"]:
        problem = (f"--test-regex {test_regex!r} matches none of the {len(found)} .json files in {data_path}, so "
                   f"the val split would be empty (e.g. {_examples(found)})")
        if limit is None:
            raise ValueError(problem)
        logger.warning("%s (with --limit %d)", problem, limit)


def _prepare(joints: np.ndarray, layout, max_frames: int, num_persons: int) -> Tuple[np.ndarray, int]:
    t = min(len(joints), max_frames)
    sample = np.zeros((num_persons, max_frames, layout.num_joints, NUM_COORDS), dtype=np.float32)
    sample[0, :t] = joints[:t]
    sample = pre_normalise(sample, layout, axes="MTVC")
    return np.ascontiguousarray(sample.transpose(3, 1, 2, 0)), t


def gendata(data_path, out_folder, layout_name: str, benchmark: str, test_list=None,
            test_regex: Optional[str] = None, max_frames: int = 300, num_persons: int = 2,
            on_error: str = "raise", limit: Optional[int] = None, progress: bool = True,
            num_classes: Optional[int] = None) -> Dict[str, int]:
    """Convert a folder of JSON sequences; returns ``{"train": n, "val": n}``.

    ``num_classes``: a file whose label is above it is bad input (None: labels are not bounded).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    data_path, out_folder = Path(data_path), Path(out_folder)
    if not data_path.is_dir():
        raise FileNotFoundError(f"data folder not found: {data_path}" if not data_path.exists()
                                else f"{data_path} is not a folder of .json sequences")
    files = sorted(data_path.glob("*.json"))
    other_case = sorted(p.name for p in data_path.iterdir() if p.suffix.lower() == ".json" and p.suffix != ".json")
    if other_case:                                      # read only as *.json: say which are left out
        logger.warning("%s: %d file(s) with an upper-case .json suffix left out (rename them to *.json): %s",
                       data_path, len(other_case), _examples(other_case, 10))
    if not files:
        raise FileNotFoundError(f"no .json files in {data_path}")
    if limit is not None:
        files = files[:limit]
    layout = get_layout(layout_name)
    by_stem = {f.stem: f for f in files}
    test_names = load_name_list(test_list) if test_list is not None else None
    splits = split_names(list(by_stem), test_names, test_regex)
    out_dir = out_folder / benchmark
    skipped: List[str] = []
    _check_split(splits, test_names, test_list, test_regex, data_path, on_error, limit, skipped)
    counts: Dict[str, int] = {}
    shape = (NUM_COORDS, max_frames, layout.num_joints, num_persons)
    # Each file is read once and written straight into its row (labels come with the rows), so
    # memory stays flat; both splits are committed together, so a bad file under --on-error
    # raise leaves the old train and val as they were.
    with SplitGroup() as group:
        for split, stems in splits.items():
            writer = group.open(out_dir, split, stems, [None] * len(stems), shape)
            for row, stem in enumerate(tqdm(stems, desc=f"{benchmark}/{split}", unit="file", disable=not progress)):
                try:
                    _, joints, label = read_json_sequence(by_stem[stem], layout.num_joints, num_classes)
                except (SkeletonFormatError, OSError) as exc:
                    if on_error == "raise":
                        raise
                    skipped.append(f"{by_stem[stem].name}\t{type(exc).__name__}: {exc}")
                    writer.skip(row)
                    continue
                if len(joints) > max_frames:
                    logger.warning("%s: %d frames, truncated to %d", stem, len(joints), max_frames)
                sample, t = _prepare(joints, layout, max_frames, num_persons)
                writer.write(row, sample, t, label=label - 1)
            counts[split] = writer.num_kept
    write_skipped_report(out_folder, skipped, "files")
    return counts


def build_parser(description: Optional[str] = None, defaults: Optional[dict] = None,
                 notes: Optional[Dict[str, str]] = None) -> argparse.ArgumentParser:
    """The importer's parser; a dataset wrapper gives its own ``defaults`` (by dest) and ``notes``
    (by dest: text appended to that option's help, e.g. what its default means there)."""
    defaults, notes = defaults or {}, notes or {}
    parser = argparse.ArgumentParser(
        description=description or "Convert a folder of {file_name, skeletons[T][V][3], label (1-based)} JSON "
                                   "files into <out-folder>/<benchmark>/{train,val}_data_joint.npy "
                                   "(N,3,T,V,M) float32, {train,val}_num_frame.npy, {train,val}_label.pkl.",
        formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--data-path", type=Path, required="data_path" not in defaults,
                        default=defaults.get("data_path"), help="folder of .json sequences")
    parser.add_argument("--out-folder", type=Path, required=True, help="output folder")
    parser.add_argument("--benchmark", default=defaults.get("benchmark", "default"),
                        help="name of the benchmark sub-folder written under --out-folder")
    parser.add_argument("--layout", default=defaults.get("layout", "ntu25"),
                        help="skeleton layout of the joints (net.graph: ntu25, kinect_v1, coco17)")
    split = parser.add_mutually_exclusive_group(required="split" not in defaults)
    split.add_argument("--test-list", type=Path, default=defaults.get("test_list"),
                       help="pickle/JSON list of test file names (or of dicts with 'file_name')"
                            + notes.get("test_list", ""))
    split.add_argument("--test-regex", default=defaults.get("test_regex"),
                       help="regular expression (re.search on the file name) selecting the test files"
                            + notes.get("test_regex", ""))
    parser.add_argument("--max-frames", type=positive_int, default=defaults.get("max_frames", 300),
                        help="T of the output arrays; longer sequences are truncated")
    parser.add_argument("--num-persons", type=positive_int, default=2,
                        help="M of the output arrays; person 0 = the sequence, the others are zero"
                             + notes.get("num_persons", ""))
    parser.add_argument("--num-classes", type=positive_int, default=defaults.get("num_classes"),
                        help="number of classes: a file whose label is above it is bad input (--on-error); "
                             "without it labels are not bounded" + notes.get("num_classes", ""))
    add_conversion_options(parser, "only the first N files (sorted), for quick looks")
    return parser


def run(args) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        counts = gendata(args.data_path, args.out_folder, args.layout, args.benchmark, args.test_list, args.test_regex,
                         args.max_frames, args.num_persons, args.on_error, args.limit, not args.no_progress,
                         args.num_classes)
    except (SkeletonFormatError, FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return 1
    logger.info("%s: train %d  val %d", args.benchmark, counts.get("train", 0), counts.get("val", 0))
    return 0


def main(argv=None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
