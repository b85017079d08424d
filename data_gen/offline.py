"""Offline switches for every hub-aware library, set in one place.

Import this module (``from data_gen import offline``) **before** importing
``transformers``, ``huggingface_hub``, ``open_clip`` or ``ultralytics``.  It sets
the environment variables those libraries read at import time so that no call
reaches for a model hub, and :func:`configure_ultralytics` turns off the
settings sync of ultralytics (called by the YOLO loader after its import).

Variables (existing values are kept, so a user can still override them):

- ``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``, ``HF_DATASETS_OFFLINE=1``,
  ``HF_HUB_DISABLE_TELEMETRY=1``: Hugging Face libraries read local files only.
- ``YOLO_OFFLINE=1``, ``YOLO_AUTOINSTALL=false``, ``YOLO_VERBOSE=false``: ultralytics
  neither downloads assets nor pip-installs missing requirements.
- ``YOLO_CONFIG_DIR``: a writable folder for ultralytics' settings file
  (default ``$TMPDIR/acsar-yolo-config``).
- ``TOKENIZERS_PARALLELISM=false``: no fork warnings from tokenizers.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["OFFLINE_ENV", "set_offline_env", "configure_ultralytics"]

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "YOLO_VERBOSE": "false",
    "TOKENIZERS_PARALLELISM": "false",
}


def set_offline_env(yolo_config_dir: os.PathLike | None = None) -> None:
    """Set the offline environment variables (keeping values a user already set)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if yolo_config_dir is not None:
        os.environ["YOLO_CONFIG_DIR"] = str(yolo_config_dir)
    else:
        os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "acsar-yolo-config"))
    Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)


def configure_ultralytics() -> None:
    """Import ultralytics with the offline variables set and disable its settings sync."""
    set_offline_env()
    from ultralytics.utils import SETTINGS  # noqa: WPS433 (import after the env is set)

    SETTINGS.update(sync=False)


set_offline_env()
