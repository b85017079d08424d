"""Atomic checkpoints: ``latest.pt`` plus periodic copies.

A checkpoint is a dict ``{model, optimizer, scheduler, epoch, step_in_epoch,
global_step, rng, config, extra}`` (and more: ``TrainProcessor.checkpoint_state``;
under DDP ``per_process``, each process's ``rng`` and running epoch means).  It is
written to a temporary file and renamed, so a crash while saving leaves the previous
``latest.pt`` readable.
"""
from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict

import torch

from feeder.io import atomic_open

__all__ = ["save_checkpoint", "load_checkpoint", "LATEST"]

logger = logging.getLogger(__name__)
LATEST = "latest.pt"


def _io_error(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: torch.save reports a failed write of its file object (ENOSPC, EDQUOT, EIO) as
    a RuntimeError of its zip writer ("unexpected pos 704 vs 598") raised while handling that OSError."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _write_error(path: Path, latest: Path, cause: OSError) -> OSError:
    """One line naming the file that could not be written, why, and what is left to resume from."""
    left = (f"{latest} still holds the last checkpoint written" if latest.is_file()
            else "no checkpoint of this run was written yet")
    message = f"cannot write the checkpoint {path}: {cause.strerror or cause}; {left}"
    return OSError(cause.errno, message) if cause.errno is not None else OSError(message)


def _write_atomically(path: Path, latest: Path, write: Callable[[BinaryIO], None]) -> None:
    try:
        with atomic_open(path, "wb") as handle:
            write(handle)
    except (OSError, RuntimeError) as exc:
        cause = _io_error(exc)
        if cause is None:
            raise
        raise _write_error(path, latest, cause) from exc


def save_checkpoint(state: Dict[str, Any], work_dir: Path, copy_name: str | None = None) -> Path:
    """Write ``latest.pt`` atomically (on disk, fsync'd, before it replaces the previous one); optionally keep
    a copy under ``copy_name``.  A failed write (a full disk) is an OSError naming the file."""
    work_dir = Path(work_dir)
    target = work_dir / LATEST
    _write_atomically(target, target, lambda handle: torch.save(state, handle))
    if copy_name:
        with open(target, "rb") as source:
            _write_atomically(work_dir / copy_name, target, lambda handle: shutil.copyfileobj(source, handle))
    return target


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", trusted: bool = True) -> Dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``: tensors and plain containers only, which
    is all this code writes.  A file that needs more (pickled objects, e.g. checkpoints of this code
    before 2026-12-02, whose numpy RNG state was an array) is read in full only when ``trusted`` (a
    run's own ``latest.pt``); otherwise it is refused, since unpickling it could run code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            if not trusted:
                raise ValueError(f"{path}: holds pickled objects beyond tensors and plain containers, not loaded "
                                 f"(unpickling could run code); if it is an AC-SAR checkpoint you trust, set "
                                 f"pretrained_format=acsar ({str(exc).splitlines()[0]})") from None
            return torch.load(path, map_location=map_location, weights_only=False)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or not a checkpoint: re-raised with the file named
        raise ValueError(f"{path}: cannot read as a torch checkpoint ({type(exc).__name__}: {exc})") from exc
