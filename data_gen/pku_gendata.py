"""PKU-MMD II (untrimmed sequences + official labels) -> SCD-Net style clip arrays.

Input:
    --skeleton-dir  ``<seq>.txt``: one line per frame of 150 numbers = 2 bodies x 25
                    joints x (x, y, z); an absent second body is 75 zeros;
    --label-dir     ``<seq>.txt``: one line per action instance ``class,start,end,confidence``,
                    four integers (class 1-based; blank lines ignored); any other line is
                    an error naming the label file and line;
    --split-file    cross-subject split like the official ``cross-subject_v2.txt``: a line
                    ``Training videos:`` then the comma-separated training sequence names,
                    then ``Validation videos:`` (the official files spell it
                    ``Validataion``; both accepted) and the test names.

Each labelled instance becomes a clip ``frames[start:end]`` (the convention of the
public PKU-MMD gendata scripts), named ``<seq>_<k>`` (k = 0-based row of the
label file).  A clip that ends past the end of its sequence (``end > T``; label
and skeleton frame counts can differ by a few frames) keeps the frames that exist,
as the public gendata scripts' slicing does, and is named (label file and line) in
a warning, as is each clip longer than ``max_frames`` (truncated to it).  All-zero
or empty clips are dropped, each named (label file and line) in the log and in
``<out-folder>/skipped.txt``.  Clips
are pre-normalised like NTU (body 0 of the file = person 0; in a clip where body 0
never appears, body 1 is person 0, so that the clip is centred and rotated on it,
[ours]: the public scripts pre-normalise on body 0 and so leave such a clip in camera coordinates)
and written to ``<out-folder>/<benchmark>/{train,val}_data_joint.npy`` (N, 3, max_frames, 25, 2)
float32, ``{train,val}_num_frame.npy`` (clip length, capped) and
``{train,val}_label.pkl``.

Labels (``--label-map``): ``compact`` (default) maps the sorted distinct class ids
found in the label files of both splits to 0..K-1 (K = 41 on PKU-MMD II) and
writes ``<out-folder>/<benchmark>/label_map.json`` (``{"class_ids": [...]}``: entry
i = the 1-based PKU class id of label i); ``raw`` keeps ``id - 1`` (0..50, the
PKU-MMD I numbering).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
from typing import Dict, List, Optional, Tuple  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data_gen.cli import DefaultsHelpFormatter, positive_int  # noqa: E402
from data_gen.ntu_reader import SkeletonFormatError, decode_text  # noqa: E402
from data_gen.prenormalise import pre_normalise  # noqa: E402
from data_gen.split_writer import SplitGroup, add_conversion_options, write_skipped_report  # noqa: E402
from feeder.io import save_json_atomic  # noqa: E402
from net.graph import get_layout  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = ["read_pku_sequence", "read_pku_labels", "read_split_file", "gendata", "build_parser", "main"]

PKU_BODIES = 2
PKU_JOINTS = 25
NUM_COORDS = 3
VALUES_PER_FRAME = PKU_BODIES * PKU_JOINTS * NUM_COORDS          # 150
LABEL_FIELDS = 4                                                  # class, start, end, confidence

_TRAIN_HEADING = re.compile(r"^\s*training\s+videos?\s*:", re.I)
_VAL_HEADING = re.compile(r"^\s*(validation|validataion|testing|test)\s+videos?\s*:", re.I)


def read_pku_sequence(path) -> np.ndarray:
    """``<seq>.txt`` -> ``(T, 2, 25, 3)`` float32; :class:`SkeletonFormatError` with the line on bad input."""
    path = Path(path)
    text = path.read_text(encoding="ascii", errors="replace")
    lines = [ln for ln in text.splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise SkeletonFormatError(path, 1, f"empty sequence: expected lines of {VALUES_PER_FRAME} numbers")
    try:                                        # one row per line: a ragged file (numbers moved across lines) fails
        values = np.array([line.split() for line in lines], dtype=np.float64)
        ok = values.shape == (len(lines), VALUES_PER_FRAME) and np.isfinite(values).all()
    except ValueError:
        ok = False
    if not ok:                                  # find the first bad line (slow path, errors only)
        for i, line in enumerate(lines):
            fields = line.split()
            if len(fields) != VALUES_PER_FRAME:
                raise SkeletonFormatError(path, i + 1, f"expected {VALUES_PER_FRAME} numbers, got {len(fields)}")
            for k, field in enumerate(fields):
                try:
                    number = float(field)
                except ValueError:
                    raise SkeletonFormatError(path, i + 1, f"field {k + 1} is {field!r}, expected a number") from None
                if not math.isfinite(number):
                    raise SkeletonFormatError(path, i + 1, f"field {k + 1} is {field!r}, expected a finite number")
        raise SkeletonFormatError(path, None, "inconsistent content")
    return values.reshape(len(lines), PKU_BODIES, PKU_JOINTS, NUM_COORDS).astype(np.float32)


def read_pku_labels(path) -> List[Tuple[int, int, int]]:
    """Label file -> ``[(class_id 1-based, start, end), ...]`` in file order."""
    return [(cls, start, end) for _, cls, start, end in _read_label_rows(path)]


def _read_label_rows(path) -> List[Tuple[int, int, int, int]]:
    """``[(line number, class_id, start, end), ...]``; :class:`SkeletonFormatError` (file:line) on a bad line."""
    path = Path(path)
    text = decode_text(path, path.read_bytes(), "lines 'class,start,end,confidence'", "utf-8-sig")
    rows = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != LABEL_FIELDS:
            raise SkeletonFormatError(path, i + 1, f"expected {LABEL_FIELDS} comma-separated integers "
                                                   f"'class,start,end,confidence', got {len(fields)} fields: {line!r}")
        values = []
        for what, field in zip(("class", "start", "end", "confidence"), fields):
            try:
                values.append(int(field))
            except ValueError:
                raise SkeletonFormatError(path, i + 1, f"{what} is {field!r}, expected an integer "
                                                       f"('class,start,end,confidence'): {line!r}") from None
        cls, start, end, _ = values
        if cls < 1 or start < 0 or end < start:
            raise SkeletonFormatError(path, i + 1, f"expected class >= 1 and 0 <= start <= end, got {line!r}")
        rows.append((i + 1, cls, start, end))
    return rows


def read_split_file(path) -> Dict[str, List[str]]:
    """``{"train": [...], "val": [...]}`` from an official-style split file."""
    path = Path(path)
    lists: Dict[str, List[str]] = {"train": [], "val": []}
    first_line: Dict[Tuple[str, str], int] = {}       # (list, name) -> line it is first listed on
    current: Optional[str] = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for heading, key in ((_TRAIN_HEADING, "train"), (_VAL_HEADING, "val")):
            match = heading.match(line)
            if match:
                current, line = key, line[match.end():]
                break
        if current is None:
            if line.strip():
                raise ValueError(f"{path}: expected a 'Training videos:' heading before {line.strip()!r}")
            continue
        for name in (Path(n.strip()).stem for n in line.split(",") if n.strip()):
            if (current, name) in first_line:           # its clips would be written twice under the same names
                which = "training" if current == "train" else "validation"
                raise ValueError(f"{path}: {name!r} is listed twice in the {which} videos (lines "
                                 f"{first_line[current, name]} and {number}); expected each sequence once")
            first_line[current, name] = number
            lists[current].append(name)
    if not lists["train"] or not lists["val"]:
        raise ValueError(f"{path}: expected 'Training videos:' and 'Validation videos:' lists, "
                         f"got {len(lists['train'])} / {len(lists['val'])} names")
    overlap = set(lists["train"]) & set(lists["val"])
    if overlap:
        raise ValueError(f"{path}: {len(overlap)} sequences are in both lists (e.g. {sorted(overlap)[0]})")
    return lists


def gendata(skeleton_dir, label_dir, split_file, out_folder, benchmark: str = "xsub", max_frames: int = 300,
            label_map: str = "compact", on_error: str = "raise", limit: Optional[int] = None,
            progress: bool = True) -> Dict[str, int]:
    """Cut, normalise and write the clips of both splits; returns ``{"train": n, "val": n}``."""
    if label_map not in ("compact", "raw"):
        raise ValueError(f"label_map must be 'compact' or 'raw', got {label_map!r}")
    skeleton_dir, label_dir, out_folder = Path(skeleton_dir), Path(label_dir), Path(out_folder)
    layout = get_layout("ntu25")
    split = read_split_file(split_file)
    skipped: List[str] = []

    # 1. labels of every sequence (small files): the clip list of each split,
    #    (clip name, sequence, class id, start, end, label-file line).
    clips: Dict[str, List[Tuple[str, str, int, int, int, int]]] = {"train": [], "val": []}
    for part, seqs in split.items():
        seqs = sorted(seqs)[:limit] if limit is not None else sorted(seqs)
        for seq in seqs:
            label_path, skel_path = label_dir / f"{seq}.txt", skeleton_dir / f"{seq}.txt"
            try:
                if not label_path.is_file() or not skel_path.is_file():
                    raise FileNotFoundError(f"{seq}: missing {label_path if not label_path.is_file() else skel_path}")
                rows = _read_label_rows(label_path)
            except (SkeletonFormatError, FileNotFoundError) as exc:
                if on_error == "raise":
                    raise
                skipped.append(f"{seq}\t{type(exc).__name__}: {exc}")
                continue
            clips[part] += [(f"{seq}_{k}", seq, cls, start, end, line)
                            for k, (line, cls, start, end) in enumerate(rows)]
    class_ids = sorted({c[2] for part in clips.values() for c in part})
    if label_map == "compact":
        index = {cid: i for i, cid in enumerate(class_ids)}
        logger.info("%d distinct classes in the label files (PKU-MMD II has 41)", len(class_ids))
    else:
        index = {cid: cid - 1 for cid in class_ids}

    # 2. per split: read each sequence once, cut its clips, normalise, write.
    shape = (NUM_COORDS, max_frames, layout.num_joints, PKU_BODIES)
    dropped: List[Tuple[str, str]] = []          # (clip name, "<label file>:<line>: why") of each all-zero clip
    clipped: List[str] = []                       # "<label file>:<line>: ..." of each clip cut at its sequence's end
    truncated: List[str] = []                     # "<label file>:<line>: ..." of each clip cut at max_frames
    # Both splits are committed together: an error in either leaves no new file of either.
    with SplitGroup() as group:
        writers = {part: group.open(out_folder / benchmark, part, [c[0] for c in part_clips],
                                    [index[c[2]] for c in part_clips], shape)
                   for part, part_clips in clips.items()}
        for part, part_clips in clips.items():
            writer = writers[part]
            by_seq: Dict[str, List[int]] = {}
            for row, clip in enumerate(part_clips):
                by_seq.setdefault(clip[1], []).append(row)
            for seq, rows in tqdm(by_seq.items(), desc=f"{benchmark}/{part}", unit="seq", disable=not progress):
                try:
                    frames = read_pku_sequence(skeleton_dir / f"{seq}.txt")
                except SkeletonFormatError as exc:
                    if on_error == "raise":
                        raise
                    skipped.append(f"{seq}\t{type(exc).__name__}: {exc}")
                    for row in rows:
                        writer.skip(row)
                    continue
                for row in rows:
                    name, _, _, start, end, line = part_clips[row]
                    if end > len(frames):
                        clipped.append(f"{label_dir / f'{seq}.txt'}:{line}: {name} {start}..{end} of a "
                                       f"{len(frames)}-frame sequence")
                    clip = frames[start:end]
                    if len(clip) == 0 or not clip.any():
                        writer.skip(row)
                        dropped.append((name, f"{label_dir / f'{seq}.txt'}:{line}: frames {start}..{end} are "
                                              f"{'empty' if len(clip) == 0 else 'all zero'}"))
                        continue
                    t = min(len(clip), max_frames)
                    if len(clip) > max_frames:
                        truncated.append(f"{label_dir / f'{seq}.txt'}:{line}: {name}: {len(clip)} frames")
                    sample = np.zeros((PKU_BODIES, max_frames, layout.num_joints, NUM_COORDS), dtype=np.float32)
                    sample[:, :t] = clip[:t].transpose(1, 0, 2, 3)
                    if not sample[0].any():          # body 0 absent from the whole clip: body 1 is person 0
                        sample = sample[::-1].copy()
                    sample = pre_normalise(sample, layout, axes="MTVC")
                    writer.write(row, np.ascontiguousarray(sample.transpose(3, 1, 2, 0)), t)
    counts = {part: writer.num_kept for part, writer in writers.items()}
    if clipped:
        logger.warning("%d clip(s) end past their sequence and keep the frames up to its end: %s%s", len(clipped),
                       "; ".join(clipped[:5]), "; ..." if len(clipped) > 5 else "")
    if truncated:
        logger.warning("%d clip(s) longer than --max-frames %d, truncated to it: %s%s", len(truncated), max_frames,
                       "; ".join(truncated[:5]), "; ..." if len(truncated) > 5 else "")
    if dropped:
        logger.warning("%d empty or all-zero clips dropped (all listed in %s): %s%s", len(dropped),
                       out_folder / "skipped.txt", "; ".join(f"{n} ({why})" for n, why in dropped[:5]),
                       "; ..." if len(dropped) > 5 else "")
        skipped += [f"{name}\tempty or all-zero clip: {why}" for name, why in dropped]
    save_json_atomic(out_folder / benchmark / "label_map.json",
                     {"label_map": label_map, "class_ids": class_ids if label_map == "compact" else None})
    write_skipped_report(out_folder, skipped, "sequences or clips")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Cut PKU-MMD II untrimmed skeleton sequences into labelled clips and write "
                    "<out-folder>/<benchmark>/{train,val}_data_joint.npy (N,3,T,25,2) float32, "
                    "{train,val}_num_frame.npy, {train,val}_label.pkl (0-based) and label_map.json.",
        formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--skeleton-dir", type=Path, required=True,
                        help="folder of <seq>.txt skeleton files (150 numbers per line)")
    parser.add_argument("--label-dir", type=Path, required=True,
                        help="folder of <seq>.txt label files (class,start,end,confidence per line)")
    parser.add_argument("--split-file", type=Path, required=True,
                        help="official-style split file (e.g. cross-subject_v2.txt)")
    parser.add_argument("--out-folder", type=Path, required=True, help="output folder")
    parser.add_argument("--benchmark", default="xsub", help="name of the benchmark sub-folder")
    parser.add_argument("--max-frames", type=positive_int, default=300, help="T of the output arrays; longer clips are truncated")
    parser.add_argument("--label-map", choices=("compact", "raw"), default="compact",
                        help="compact: distinct class ids -> 0..K-1 (K=41 on PKU-MMD II); raw: id - 1")
    add_conversion_options(parser, "only the first N sequences of each split")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        counts = gendata(args.skeleton_dir, args.label_dir, args.split_file, args.out_folder, args.benchmark,
                         args.max_frames, args.label_map, args.on_error, args.limit, not args.no_progress)
    except (SkeletonFormatError, FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return 1
    logger.info("pku/%s: train %d  val %d", args.benchmark, counts.get("train", 0), counts.get("val", 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
