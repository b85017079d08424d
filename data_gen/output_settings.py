"""Settings sidecar of a resumable per-sample output folder (descriptions, action images).

The per-sample scripts skip a sample whose output file exists.  That is only right
when the file was made with the settings asked now, so the settings that determine
the outputs are recorded in a small JSON file in the folder (written atomically):

- no sidecar, no outputs: a fresh folder; the sidecar is written and the run starts.
- same settings: resume (finished samples are skipped).
- other settings: :class:`SettingsMismatch` naming the folder and each differing key,
  unless ``overwrite``, which moves the folder's old outputs (and their record) into
  ``<out>/overwritten/<UTC time>/`` and redoes every sample (or the folder holds no
  outputs yet, when the record is simply replaced).
- outputs but no sidecar (made by an older version): resume with a warning, then record
  the current settings so that later runs are checked.
- a sidecar that records every key it holds as asked but lacks keys asked now (written by
  an older version, before those keys were recorded): resume with a warning naming the
  keys, then record the current settings.

Outputs are the folder's ``*<suffix>`` files except hidden ones (``.*``): the atomic
writers' temporary files (``.<name>.tmp-<pid><suffix>``, :func:`feeder.io.temp_path_for`)
are never taken as outputs, and :func:`start_output_dir` deletes those a killed run left
(its process gone and the file over a minute old), with a log line.

Use :func:`check_output_settings` before any slow work (model loading), then
:func:`start_output_dir` just before the first output is written.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

from feeder.io import move_to_overwritten, save_json_atomic

logger = logging.getLogger(__name__)

__all__ = ["SettingsMismatch", "read_settings_file", "output_files", "remove_stale_temp_files",
           "check_output_settings", "start_output_dir"]

#: :func:`feeder.io.temp_path_for`'s names: ``.<stem>.tmp-<pid><suffix>``
_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)(\.[^.]*)?$")
#: a temporary file younger than this is left alone even when its process is not seen (another host)
STALE_TEMP_AGE_S = 60.0


class SettingsMismatch(ValueError):
    """An output folder holds results made with other settings than the ones asked."""


def _normalise(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """The settings as they read back from JSON (tuples -> lists, paths -> strings)."""
    return json.loads(json.dumps(dict(settings), default=str))


def read_settings_file(path: Path) -> Dict[str, Any]:
    """The settings object in ``path``; not JSON or not an object: a ``ValueError`` naming it (and the line)."""
    path = Path(path)
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); expected the JSON settings "
                         f"object this script writes (delete the file or pass --overwrite to redo every "
                         f"sample)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); expected the settings object this "
                         f"script writes (delete the file or pass --overwrite to redo every sample)") from None
    if not isinstance(recorded, dict):
        raise ValueError(f"{path}: expected a JSON object of settings, got {type(recorded).__name__} "
                         f"(delete the file or pass --overwrite to redo every sample)")
    return recorded


def output_files(out_dir: Path, suffix: str) -> List[Path]:
    """The folder's ``*suffix`` files, sorted, without hidden ones (temporary files of atomic writes)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.glob(f"*{suffix}") if not p.name.startswith(".") and p.is_file())



def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):   # exists but not ours, or not a valid pid: keep the file
        return True
    return True


def remove_stale_temp_files(out_dir: Path, suffixes: Sequence[str], min_age_s: float = STALE_TEMP_AGE_S) -> int:
    """Delete the temporary files (``.<stem>.tmp-<pid><suffix>``) a killed run left in ``out_dir``.

    Only files with one of ``suffixes`` whose process no longer runs here and that are older than
    ``min_age_s`` (a run on another host sharing the folder is not seen as a process) are deleted;
    one log line gives their number.  Returns it.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return 0
    removed, now = [], time.time()
    for path in out_dir.iterdir():
        match = _TEMP_NAME.match(path.name)
        if not match or (match.group(2) or "") not in suffixes or not path.is_file():
            continue
        try:
            if _process_alive(int(match.group(1))) or now - path.stat().st_mtime < min_age_s:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path.name)
    if removed:
        logger.warning("%s: removed %d temporary file(s) left by an interrupted run (e.g. %s)",
                       out_dir, len(removed), sorted(removed)[0])
    return len(removed)


def check_output_settings(out_dir: Path, settings: Mapping[str, Any], sidecar: str, suffix: str,
                          overwrite: bool = False, what: str = "outputs") -> None:
    """Refuse to resume into ``out_dir`` when its recorded settings differ from ``settings``.

    Nothing is written here.  Raises :class:`SettingsMismatch` (listing ``key: old there, new
    asked``) unless ``overwrite``; an unreadable sidecar is a ``ValueError`` naming it (with the
    line) unless ``overwrite``.  Logs a warning for outputs without a sidecar.
    """
    out_dir = Path(out_dir)
    path = out_dir / sidecar
    if overwrite:
        return
    if not path.is_file():
        old = output_files(out_dir, suffix)
        if old:
            logger.warning("%s holds %d %s but no %s (made by an older version): assuming they were made with "
                           "the current settings and resuming; pass --overwrite to redo every sample",
                           out_dir, len(old), what, sidecar)
        return
    recorded, wanted = read_settings_file(path), _normalise(settings)
    if recorded == wanted:
        return
    if not output_files(out_dir, suffix):
        logger.info("%s: no %s yet, so the settings recorded in %s are replaced", out_dir, what, path)
        return
    new_keys = sorted(set(wanted) - set(recorded))
    if new_keys and set(recorded) <= set(wanted) and all(recorded[k] == wanted[k] for k in recorded):
        logger.warning("%s was written by an older version that did not record %s: assuming the %s there were "
                       "made with the current values and resuming; pass --overwrite to redo every sample",
                       path, ", ".join(new_keys), what)
        return
    missing = "(not recorded)"
    lines = [f"  {key}: {recorded.get(key, missing)!r} there, {wanted.get(key, missing)!r} asked"
             for key in sorted(set(recorded) | set(wanted)) if recorded.get(key, missing) != wanted.get(key, missing)]
    raise SettingsMismatch(
        f"{out_dir} holds {what} made with other settings (recorded in {path}):\n" + "\n".join(lines) +
        f"\nResuming would keep those {what}: choose another --out, or pass --overwrite to redo every sample there.")


def start_output_dir(out_dir: Path, settings: Mapping[str, Any], sidecar: str, suffix: str,
                     overwrite: bool = False, what: str = "outputs") -> None:
    """Create ``out_dir`` and record ``settings`` in ``out_dir/sidecar`` (atomically).

    Temporary files a killed run left there are deleted first (:func:`remove_stale_temp_files`).

    With ``overwrite`` the folder's existing ``*suffix`` files and sidecar are first moved into
    ``out_dir/overwritten/<UTC time>/`` (logged; nothing is deleted), so that an interrupted redo
    resumes with only outputs of the new settings in the folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / sidecar
    remove_stale_temp_files(out_dir, (suffix, Path(sidecar).suffix))
    if overwrite:
        old = output_files(out_dir, suffix) + ([path] if path.is_file() else [])
        if old:
            kept = move_to_overwritten(out_dir, old)
            logger.warning("--overwrite: %d old %s of %s moved into %s", len(old), what, out_dir, kept)
    wanted = _normalise(settings)
    if overwrite or not path.is_file() or read_settings_file(path) != wanted:
        save_json_atomic(path, wanted)
