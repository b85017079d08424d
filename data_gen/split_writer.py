"""Writes one benchmark split of a skeleton dataset, atomically and with flat memory.

Output in ``out_dir`` (acsar_facts.md §6):
    ``{split}_data_joint.npy``  (N, C, T, V, M) float32 memmap,
    ``{split}_num_frame.npy``   (N,) int64 valid frames,
    ``{split}_label.pkl``       (sample_names, 0-based labels).

The sample list is fixed up front (``names``, ``labels``); rows are written in
any order with :meth:`SplitWriter.write`, or dropped with :meth:`SplitWriter.skip`
(bad input under ``--on-error skip``).  On success the array is renamed into
place, or, if rows were dropped, copied chunk by chunk into a compact array.
On any exception nothing of this split is left behind.

Replacing a split (commit order): the three new files are first finished under
hidden scratch names beside the targets; then the old ``{split}_label.pkl`` is
removed, the array and the frame counts are renamed into place, and the new
``{split}_label.pkl`` is renamed in last.  The label file is thus the split's
completion marker: when it exists, the three files are all of one run (all of
the earlier one if the commit had not begun, all of the new one once it has
finished); an interrupt during the commit leaves the split *without* a label
file, which readers report as missing, never new arrays beside old labels.

Several splits of one run (train and val, every benchmark of an NTU conversion) are
committed together by :class:`SplitGroup`: every split is finished under its scratch
names first, and only then do the old label files all go, the arrays and frame counts
move into place and the new label files come in last.  A failure while any split is
being finished (a full disk during the compaction, a bad file) leaves every old split
as it was; there is never a new split beside an old one, both looking complete.

Derived arrays: ``{split}_data_bone.npy`` / ``{split}_data_motion.npy`` (``gen_bone_data.py``,
``gen_motion_data.py``) are functions of the joint array beside them.  The commit of a new
joint array removes those of the split it replaces (with a warning naming them): left in
place they would still look valid, of another run's samples (another N, another order).

Memory: rows are written straight into the file behind the ``.npy`` memmap with
``os.pwrite`` (no page of the mapping is touched, so the resident set does not
grow with the dataset, and a row costs one copy into the page cache instead of a
page fault per 4 KiB).  A worker process can write its rows itself
(:meth:`SplitWriter.row_slot`, :func:`pwrite_all`) so that no sample passes through
a pipe; the parent only records them (:meth:`SplitWriter.mark_written`).  Dropping
skipped rows copies ``flush_every`` rows at a time and releases the pages after each
chunk.
"""
from __future__ import annotations

import contextlib
import logging
import mmap
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from data_gen.cli import positive_int
from feeder.io import open_memmap_atomic, save_npy_atomic, save_pickle_atomic, save_text_atomic

__all__ = ["SplitGroup", "SplitWriter", "pwrite_all", "release_pages", "DERIVED_STREAMS", "stream_array_path"]

logger = logging.getLogger(__name__)

DERIVED_STREAMS = ("bone", "motion")     # the streams gen_bone_data.py / gen_motion_data.py write beside the joints


def stream_array_path(out_dir, split: str, stream: str) -> Path:
    """``{out_dir}/{split}_data_{stream}.npy``: where a split's ``joint`` (or derived) array lives."""
    return Path(out_dir) / f"{split}_data_{stream}.npy"


def pwrite_all(fd: int, buffer, offset: int) -> None:
    """Write all of ``buffer`` (any C-contiguous buffer) at byte ``offset`` of ``fd`` (``os.pwrite`` may write less)."""
    view = memoryview(buffer).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def release_pages(array: np.ndarray) -> None:
    """Flush a ``np.memmap`` and drop its pages from this process's resident set (Linux)."""
    if not isinstance(array, np.memmap):
        return
    array.flush()
    handle = getattr(array, "_mmap", None)
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        with contextlib.suppress(OSError, ValueError):
            handle.madvise(mmap.MADV_DONTNEED)


class SplitWriter:
    """Context manager for one split; see the module docstring.

    Args:
        out_dir: benchmark folder (created if needed).
        split: ``"train"`` or ``"val"``.
        names, labels: the samples in output order (0-based labels).  A label may be
            ``None`` when it is only known once the sample is read: :meth:`write` /
            :meth:`mark_written` then give it.
        sample_shape: ``(C, T, V, M)``.
        flush_every: rows per chunk when skipped rows are dropped at the end.
        commit: move the finished files into place on leaving the with-block;
            ``False`` leaves them under their scratch names for :class:`SplitGroup`.
    """

    def __init__(self, out_dir, split: str, names: Sequence[str], labels: Sequence[Optional[int]],
                 sample_shape: Sequence[int], flush_every: int = 256, commit: bool = True):
        if len(names) != len(labels):
            raise ValueError(f"{len(names)} names but {len(labels)} labels")
        self.out_dir = Path(out_dir)
        self.split = split
        self.names = list(names)
        self.labels: List[Optional[int]] = [None if x is None else int(x) for x in labels]
        self.commit = commit
        self.sample_shape = tuple(int(x) for x in sample_shape)
        self.flush_every = max(1, int(flush_every))
        self.num_frame = np.zeros(len(self.names), dtype=np.int64)
        self.kept = np.ones(len(self.names), dtype=bool)
        self.written = np.zeros(len(self.names), dtype=bool)
        self._stack: Optional[contextlib.ExitStack] = None
        self._array: Optional[np.ndarray] = None
        self._fd: Optional[int] = None
        self._finished_array: Optional[Path] = None      # the finished array's scratch name (before the commit)

    # ----------------------------------------------------------- paths
    def path(self, kind: str) -> Path:
        if kind == "joint":
            return stream_array_path(self.out_dir, self.split, kind)
        suffix = {"num_frame": "_num_frame.npy", "label": "_label.pkl"}[kind]
        return self.out_dir / f"{self.split}{suffix}"

    def _hidden(self, kind: str) -> Path:
        """Scratch name of this process beside the targets (same filesystem: renames are atomic)."""
        final = self.path(kind)
        return final.with_name(f".{final.stem}.{kind}-{os.getpid()}{final.suffix}")

    @property
    def _scratch(self) -> Path:
        return self.out_dir / f".{self.split}_data_joint.full-{os.getpid()}.npy"

    # ----------------------------------------------------------- context
    def __enter__(self) -> "SplitWriter":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._stack = contextlib.ExitStack()
        self._array = self._stack.enter_context(
            open_memmap_atomic(self._scratch, (len(self.names),) + self.sample_shape, np.float32, fill=None))
        self._fd = os.open(self._array.filename, os.O_WRONLY)
        self._stack.callback(os.close, self._fd)                 # runs before the memmap closes (LIFO)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack, self._array, self._fd = self._stack, None, None, None
        done = False
        try:
            if exc_type is not None:
                stack.__exit__(exc_type, exc, tb)       # removes the temporary array
                return False
            stack.close()                               # temporary -> scratch
            self._finish()
            if self.commit:
                commit_splits([self])
            done = True
        finally:
            if self.commit or not done:
                self.discard()
        return False

    def discard(self) -> None:
        """Remove this split's scratch files (after a commit there are none left)."""
        self._finished_array = None
        for scratch in (self._scratch, self._hidden("joint"), self._hidden("num_frame"), self._hidden("label")):
            with contextlib.suppress(FileNotFoundError):
                scratch.unlink()

    # ----------------------------------------------------------- rows
    def write(self, index: int, sample: np.ndarray, num_frame: int, label: Optional[int] = None) -> None:
        fd, offset, _ = self.row_slot(index)
        if sample.shape != self.sample_shape:
            raise ValueError(f"{self.names[index]}: sample shape {sample.shape}, expected {self.sample_shape}")
        pwrite_all(fd, np.ascontiguousarray(sample, dtype=self._array.dtype), offset)
        self.mark_written(index, num_frame, label)

    def row_slot(self, index: int) -> Tuple[int, int, int]:
        """``(fd, byte offset, byte length)`` of row ``index`` in the open scratch array.

        For a forked worker process (it inherits the descriptor) that writes the row
        itself with :func:`pwrite_all` (float32, C-contiguous ``sample_shape``); the
        parent then calls :meth:`mark_written`.  Rows never overlap, so concurrent
        writers need no lock.
        """
        if self._array is None:
            raise RuntimeError(f"{self.split}: row_slot() outside the writer's with-block")
        if not 0 <= index < len(self.names):
            raise IndexError(f"{self.split}: row {index} outside 0..{len(self.names) - 1}")
        nbytes = int(np.prod(self.sample_shape)) * self._array.dtype.itemsize
        return self._fd, self._array.offset + index * nbytes, nbytes

    def mark_written(self, index: int, num_frame: int, label: Optional[int] = None) -> None:
        """Record that row ``index`` now holds a sample of ``num_frame`` valid frames (and its label, if given)."""
        self.num_frame[index] = int(num_frame)
        if label is not None:
            self.labels[index] = int(label)
        self.written[index] = True

    def skip(self, index: int) -> None:
        self.kept[index] = False

    @property
    def num_kept(self) -> int:
        return int(self.kept.sum())

    def _finish(self) -> None:
        """Finish the three new files under their scratch names; the old split stays as it was."""
        missing = np.flatnonzero(self.kept & ~self.written)
        if len(missing):
            raise RuntimeError(f"{self.split}: {len(missing)} samples were neither written nor skipped "
                               f"(first: {self.names[missing[0]]})")
        if not self.kept.any():
            logger.warning("%s: the %s split is empty (no input file belongs to it, or every one was skipped): "
                           "training or evaluating on it will fail", self.out_dir, self.split)
        unlabelled = [n for n, l, k in zip(self.names, self.labels, self.kept) if k and l is None]
        if unlabelled:
            raise RuntimeError(f"{self.split}: {len(unlabelled)} samples were written without a label "
                               f"(first: {unlabelled[0]})")
        # 1. Finish every new file under a scratch name: a failure here leaves the old split as it was.
        if self.kept.all():
            array = self._scratch
        else:
            array = self._hidden("joint")
            keep = np.flatnonzero(self.kept)
            source = np.load(self._scratch, mmap_mode="r")
            with open_memmap_atomic(array, (len(keep),) + self.sample_shape, np.float32, fill=None) as out:
                for a in range(0, len(keep), self.flush_every):
                    rows = keep[a : a + self.flush_every]
                    out[a : a + len(rows)] = source[rows]
                    release_pages(out)
            del source
            logger.info("%s: dropped %d skipped samples, %d kept", self.path("joint"), len(self.names) - len(keep),
                        len(keep))
        names: List[str] = [n for n, k in zip(self.names, self.kept) if k]
        labels: List[int] = [l for l, k in zip(self.labels, self.kept) if k]
        save_npy_atomic(self._hidden("num_frame"), self.num_frame[self.kept])
        save_pickle_atomic(self._hidden("label"), (names, labels))
        self._finished_array = array


def commit_splits(writers: Sequence[SplitWriter]) -> None:
    """Move finished splits into place (module docstring): no label file while any array changes."""
    unfinished = [f"{w.out_dir}/{w.split}" for w in writers if w._finished_array is None]
    if unfinished:
        raise RuntimeError(f"commit of unfinished splits: {', '.join(unfinished)}")
    for writer in writers:
        with contextlib.suppress(FileNotFoundError):
            writer.path("label").unlink()
    for writer in writers:
        os.replace(writer._finished_array, writer.path("joint"))
        os.replace(writer._hidden("num_frame"), writer.path("num_frame"))
        stale = [path for path in (stream_array_path(writer.out_dir, writer.split, stream)
                                   for stream in DERIVED_STREAMS) if path.is_file()]
        for path in stale:
            path.unlink()
        if stale:
            logger.warning("%s: removed %s, made from the joint array this run replaced; rerun "
                           "data_gen/gen_bone_data.py / gen_motion_data.py if you want them on disk",
                           writer.out_dir, ", ".join(p.name for p in stale))
    for writer in writers:
        os.replace(writer._hidden("label"), writer.path("label"))
        writer._finished_array = None


class SplitGroup:
    """The splits of one run, committed together (module docstring).

    ``with SplitGroup() as group:`` then ``writer = group.open(out_dir, split, names, labels,
    sample_shape)`` for each split (arguments of :class:`SplitWriter`).  Leaving the block
    without an exception finishes every split, then commits them all; any exception, in
    the block or while a split is finished, removes every new file and keeps the old ones.
    """

    def __init__(self):
        self._writers: List[SplitWriter] = []
        self._stack: Optional[contextlib.ExitStack] = None

    def __enter__(self) -> "SplitGroup":
        self._stack = contextlib.ExitStack()
        return self

    def open(self, *args, **kwargs) -> SplitWriter:
        if self._stack is None:
            raise RuntimeError("SplitGroup.open() outside the group's with-block")
        writer = SplitWriter(*args, commit=False, **kwargs)
        self._writers.append(writer)
        return self._stack.enter_context(writer)

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        try:
            if stack.__exit__(exc_type, exc, tb):        # finishes each split (LIFO) or removes its files
                return True
            if exc_type is None:
                commit_splits(self._writers)
        finally:
            for writer in self._writers:
                writer.discard()
        return False


def write_skipped_report(out_folder: Path, skipped: Sequence[str], what: str = "files") -> None:
    """List the skipped inputs (one ``name<TAB>reason`` per line) in ``<out_folder>/skipped.txt``.

    The report describes the latest run into ``out_folder``: it is replaced atomically, and
    a run that skipped nothing removes the report of an earlier run (whose inputs may since
    have been fixed).
    """
    report = Path(out_folder) / "skipped.txt"
    if not skipped:
        try:
            report.unlink()                             # one atomic step: the report is there or not
        except FileNotFoundError:
            return
        logger.info("nothing skipped: removed %s (of an earlier run)", report)
        return
    save_text_atomic(report, "\n".join(skipped) + "\n")
    logger.warning("%d %s skipped (see %s)", len(skipped), what, report)


def add_conversion_options(parser, limit_help: str) -> None:
    """The options every dataset converter shares: --on-error, --limit, --no-progress, --log-level."""
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="bad file: stop (raise) or record it in <out-folder>/skipped.txt and go on (skip)")
    parser.add_argument("--limit", type=positive_int, default=None, help=limit_help)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--log-level", default="INFO", help="logging level")
