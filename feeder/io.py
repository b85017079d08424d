"""Atomic file output and memmap helpers shared by data scripts and processors.

Nothing is ever half-written: every writer produces a temporary file beside the
target (``.<name>.tmp-<pid>``) and renames it into place only on success; on any
exception the temporary file is removed and the previous target (if any) stays.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any, Iterator, Sequence, Tuple

import numpy as np

__all__ = [
    "temp_path_for", "atomic_path", "atomic_open", "open_memmap_atomic",
    "save_npy_atomic", "save_pickle_atomic", "save_json_atomic", "save_text_atomic",
    "load_label_pkl", "load_npy", "load_sample_names", "lines_sha256", "file_sha256", "move_to_overwritten",
    "OVERWRITTEN_DIR",
]


def temp_path_for(path: os.PathLike) -> Path:
    """A hidden temporary name in the same folder (same filesystem, so rename is atomic).

    Keeps the suffix so that libraries which append one (``np.save``) do not.
    """
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on clean exit rename it to ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: os.PathLike, mode: str = "w", **kwargs) -> Iterator[Any]:
    """``open`` whose result appears at ``path`` only when the block succeeds."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


@contextlib.contextmanager
def open_memmap_atomic(path: os.PathLike, shape: Sequence[int], dtype=np.float32,
                       fill: float | None = 0.0) -> Iterator[np.memmap]:
    """A writable ``.npy`` memmap of ``shape`` that becomes ``path`` on success.

    The array never lives in RAM as a whole: callers write slices, the OS pages
    them out.  ``fill=None`` skips zero-filling (a fresh file is already zero on
    every mainstream filesystem, so this is the usual choice).
    """
    with atomic_path(path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape))
        try:
            if fill not in (None, 0.0):
                array[...] = fill
            yield array
            array.flush()
        finally:
            del array


def save_npy_atomic(path: os.PathLike, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:                 # flushed to disk before the rename, as the others
        np.save(handle, array, allow_pickle=False)


def save_pickle_atomic(path: os.PathLike, obj: Any) -> None:
    with atomic_open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)


def save_json_atomic(path: os.PathLike, obj: Any, indent: int = 2) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=indent, sort_keys=False, default=_json_default)
        handle.write("\n")


def save_text_atomic(path: os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _json_default(obj: Any):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


OVERWRITTEN_DIR = "overwritten"  # <folder>/overwritten/<UTC time>/: what an overwrite replaced


def move_to_overwritten(folder: os.PathLike, entries: Sequence[os.PathLike]) -> Path:
    """Move ``entries`` (files or folders inside ``folder``) into a new ``folder/overwritten/<UTC time>/``
    and return it: what an explicit overwrite replaces is kept, never deleted."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    target, n = Path(folder) / OVERWRITTEN_DIR / stamp, 1
    while target.exists():
        n += 1
        target = Path(folder) / OVERWRITTEN_DIR / f"{stamp}-{n}"
    target.mkdir(parents=True)
    for entry in entries:
        Path(entry).rename(target / Path(entry).name)
    return target


def load_npy(path: os.PathLike, mmap_mode: str | None = None) -> np.ndarray:
    """``np.load`` of a ``.npy`` file whose errors (missing, truncated, not an array) name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"array file not found: {path}")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"{path}: cannot read as a .npy array ({exc}); rewrite it with the data_gen/ "
                         f"script that made it") from exc


def load_label_pkl(path: os.PathLike) -> Tuple[list, list]:
    """Read a 2s-AGCN style ``(sample_names, labels)`` pickle with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    try:
        with open(path, "rb") as handle:
            obj = pickle.load(handle)
    except Exception as exc:  # noqa: BLE001 - truncated or not a pickle: re-raised with the file named
        raise ValueError(f"{path}: cannot read as a pickled (sample_names, labels) pair ({exc})") from exc
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and len(obj[0]) == len(obj[1])):
        raise ValueError(f"{path}: expected a pickled (sample_names, labels) pair of equal length")
    try:
        labels = [int(x) for x in obj[1]]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: labels must be integers ({exc})") from None
    if any(label != x for label, x in zip(labels, obj[1])):
        first = next(x for label, x in zip(labels, obj[1]) if label != x)
        raise ValueError(f"{path}: labels must be integers, got {first!r}")
    names = list(obj[0])
    seen: set = set()                                   # names key descriptions, features and scores
    for index, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{path}: sample name {name!r} appears more than once (again at index {index}); "
                             f"every sample needs a name of its own")
        seen.add(name)
    return names, labels


def file_sha256(path: os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks (model files: a YOLO checkpoint, a VLM folder's configs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def lines_sha256(lines: Sequence[str]) -> str:
    """sha256 of strings in order, each ended by a newline: a split's sample names (what row ``i`` of its text
    features belongs to) or its descriptions (what the features were encoded from)."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(str(line).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def load_sample_names(label_pkls) -> list:
    """Sample names of several splits' label pickles, in order (e.g. train then val)."""
    names: list = []
    for path in label_pkls:
        names.extend(load_label_pkl(path)[0])
    return names
