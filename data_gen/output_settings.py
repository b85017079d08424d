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

Use :func:`check_output_settings` before any slow work (model loading), then
:func:`start_output_dir` just before the first output is written.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Mapping

from feeder.io import move_to_overwritten, save_json_atomic

logger = logging.getLogger(__name__)

__all__ = ["SettingsMismatch", "check_output_settings", "start_output_dir"]


class SettingsMismatch(ValueError):
    """An output folder holds results made with other settings than the ones asked."""


def _normalise(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """The settings as they read back from JSON (tuples -> lists, paths -> strings)."""
    return json.loads(json.dumps(dict(settings), default=str))


def _read_sidecar(path: Path) -> Dict[str, Any]:
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); expected the settings object this "
                         f"script writes (delete the file or pass --overwrite to redo every sample)") from None
    if not isinstance(recorded, dict):
        raise ValueError(f"{path}: expected a JSON object of settings, got {type(recorded).__name__} "
                         f"(delete the file or pass --overwrite to redo every sample)")
    return recorded


def _outputs(out_dir: Path, suffix: str) -> list:
    return sorted(p for p in out_dir.glob(f"*{suffix}") if p.is_file()) if out_dir.is_dir() else []


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
        old = _outputs(out_dir, suffix)
        if old:
            logger.warning("%s holds %d %s but no %s (made by an older version): assuming they were made with "
                           "the current settings and resuming; pass --overwrite to redo every sample",
                           out_dir, len(old), what, sidecar)
        return
    recorded, wanted = _read_sidecar(path), _normalise(settings)
    if recorded == wanted:
        return
    if not _outputs(out_dir, suffix):
        logger.info("%s: no %s yet, so the settings recorded in %s are replaced", out_dir, what, path)
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

    With ``overwrite`` the folder's existing ``*suffix`` files and sidecar are first moved into
    ``out_dir/overwritten/<UTC time>/`` (logged; nothing is deleted), so that an interrupted redo
    resumes with only outputs of the new settings in the folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / sidecar
    if overwrite:
        old = _outputs(out_dir, suffix) + ([path] if path.is_file() else [])
        if old:
            kept = move_to_overwritten(out_dir, old)
            logger.warning("--overwrite: %d old %s of %s moved into %s", len(old), what, out_dir, kept)
    wanted = _normalise(settings)
    if overwrite or not path.is_file() or _read_sidecar(path) != wanted:
        save_json_atomic(path, wanted)
