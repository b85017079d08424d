"""Joint arrays -> bone arrays: ``{split}_data_joint.npy`` -> ``{split}_data_bone.npy``.

Both (N, C, T, V, M) float32; ``bone[v] = joint[v] - joint[parent(v)]`` with the
layout's parents (:func:`feeder.skeleton_ops.to_bone`, the one implementation;
acsar_facts.md §6).  The joint array is read as a memmap and the output written
as a memmap chunk by chunk (atomic: it appears only when complete), so memory
stays flat.  The layout is inferred from V (25 -> ntu25, 20 -> kinect_v1,
17 -> coco17) unless ``--layout`` is given.  A later conversion that rewrites the joint
array removes the bone and motion arrays made from the old one (:mod:`data_gen.split_writer`).

Usage: ``python data_gen/gen_bone_data.py --folder data/ntu60/xsub data/ntu60/xview``
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import logging  # noqa: E402
from typing import Callable, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data_gen.cli import DefaultsHelpFormatter, positive_int  # noqa: E402
from data_gen.split_writer import release_pages, stream_array_path  # noqa: E402
from feeder.io import load_npy, open_memmap_atomic  # noqa: E402
from feeder.skeleton_ops import to_bone  # noqa: E402
from net.graph import LAYOUTS, get_layout  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = ["open_joints", "convert_split", "layout_for_joints", "stream_parser", "stream_main"]


def layout_for_joints(num_joints: int, name: Optional[str] = None):
    """The named layout, or the unique registered layout with ``num_joints`` joints."""
    if name:
        return get_layout(name)
    matches = [layout for layout in LAYOUTS.values() if layout.num_joints == num_joints]
    if len(matches) != 1:
        raise ValueError(f"cannot infer the layout of {num_joints} joints (candidates: "
                         f"{[m.name for m in matches]}); pass --layout")
    return matches[0]


def open_joints(folder, split: str) -> np.ndarray:
    """``{folder}/{split}_data_joint.npy`` as a read-only memmap; a missing, unreadable or not (N, C, T, V, M)
    array is an error naming the file."""
    source_path = stream_array_path(folder, split, "joint")
    if not source_path.is_file():
        raise FileNotFoundError(f"joint array not found: {source_path}")
    source = load_npy(source_path, mmap_mode="r")
    if source.ndim != 5:
        raise ValueError(f"{source_path}: expected (N, C, T, V, M), got shape {source.shape}")
    return source


def convert_split(folder, split: str, stream: str, fn: Callable[[np.ndarray], np.ndarray],
                  chunk: int = 256, progress: bool = True) -> Path:
    """``{folder}/{split}_data_joint.npy`` -> ``{folder}/{split}_data_{stream}.npy`` via ``fn`` per chunk."""
    folder = Path(folder)
    source = open_joints(folder, split)
    target = stream_array_path(folder, split, stream)
    with open_memmap_atomic(target, source.shape, np.float32, fill=None) as out:
        for a in tqdm(range(0, len(source), chunk), desc=f"{folder.name}/{split} {stream}", unit="chunk",
                      disable=not progress):
            out[a : a + chunk] = fn(np.asarray(source[a : a + chunk], dtype=np.float32))
            release_pages(out)
    del source
    logger.info("wrote %s %s", target, tuple(np.load(target, mmap_mode="r").shape))
    return target


def stream_parser(stream: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=f"Write {{split}}_data_{stream}.npy next to {{split}}_data_joint.npy "
                    "(N,C,T,V,M float32, chunked memmaps).",
        formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--folder", type=Path, nargs="+", required=True,
                        help="benchmark folder(s) holding {split}_data_joint.npy")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits to convert")
    if stream == "bone":
        parser.add_argument("--layout", default=None,
                            help="skeleton layout (net.graph); default: inferred from the joint count")
    parser.add_argument("--chunk", type=positive_int, default=256, help="samples per chunk")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--log-level", default="INFO", help="logging level")
    return parser


def stream_main(stream: str, argv: Optional[Sequence[str]] = None) -> int:
    from feeder.skeleton_ops import to_motion

    args = stream_parser(stream).parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        for folder in args.folder:
            for split in args.splits:
                if stream == "bone":
                    joints = open_joints(folder, split)
                    layout = layout_for_joints(joints.shape[3], args.layout)
                    del joints
                    fn = lambda x, layout=layout: to_bone(x, layout)  # noqa: E731
                else:
                    fn = to_motion
                convert_split(folder, split, stream, fn, args.chunk, not args.no_progress)
    except (OSError, ValueError, KeyError) as exc:        # OSError: a missing file, no permission, a full disk
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(stream_main("bone"))
