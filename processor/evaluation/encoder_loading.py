"""Load a pretrained skeleton encoder into a downstream :class:`net.classifier.SkeletonClassifier`.

Two checkpoint formats:

- ``acsar``: our pretraining checkpoint ``latest.pt`` = ``{model: ACSAR state_dict, config:
  resolved config, ...}`` (processor/checkpoint.py).  Its ``config["model"]`` and
  ``config["data"]`` (layout, window) describe the encoder; they must equal the evaluation
  config's, else :class:`PretrainedMismatch` lists every differing key.  The epoch it was saved
  at is recorded beside the configured length, and a checkpoint from before the end of its
  pretraining (a periodic one, or ``latest.pt`` of a run still going) is named in a warning.
- ``scdnet``: an official SCD-Net ``checkpoint.pth.tar`` (``{state_dict: ...}``), read with
  ``weights_only=True`` and mapped by :mod:`net.scdnet_checkpoint`; it carries no config, so
  only the tensor shapes are checked (by ``load_encoder_state``; a mismatch is a :class:`PretrainedMismatch`).

``auto`` tries the SCD-Net reader first (a plain tensor file) and falls back to ours.
Paths may contain ``{work_dir}``, replaced by the config's ``work_dir``.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch

from net.encoder import ENCODER_KWARGS
from net.scdnet_checkpoint import read_state_dict
from processor.checkpoint import load_checkpoint

__all__ = ["PretrainedMismatch", "expand_path", "encoder_config", "compare_encoder_configs", "load_pretrained",
           "state_digest"]

logger = logging.getLogger(__name__)
FORMATS = ("auto", "acsar", "scdnet")


class PretrainedMismatch(ValueError):
    """The pretrained checkpoint's encoder differs from the one the config builds."""


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and bytes, in order): the identity of its weights,
    cheap next to reading them (well under a second for a 300 MB encoder)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def expand_path(path: Optional[str], work_dir: str) -> Optional[Path]:
    if path is None:
        return None
    return Path(str(path).replace("{work_dir}", str(work_dir))).expanduser()


def encoder_config(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The encoder's constructor arguments from a resolved config (``model`` + ``data.layout``/``window``)."""
    model, data = dict(cfg["model"]), dict(cfg["data"])
    out = {k: model[k] for k in ENCODER_KWARGS if k in model}
    out["layout"] = data["layout"]
    out["num_frame"] = data["window"]
    return out


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def compare_encoder_configs(ours: Mapping[str, Any], saved: Mapping[str, Any]) -> Dict[str, tuple]:
    """{key: (ours, checkpoint)} for every encoder key present in both and different."""
    return {k: (ours[k], saved[k]) for k in ours if k in saved and _norm(ours[k]) != _norm(saved[k])}


def _read_acsar(path: Path, trusted: bool = False):
    state = load_checkpoint(path, map_location="cpu", trusted=trusted)
    if not isinstance(state, Mapping) or "model" not in state or "config" not in state:
        raise ValueError(f"{path}: not an AC-SAR checkpoint (expected a dict with 'model' and 'config')")
    position = {"epoch": state.get("epoch"), "step_in_epoch": int(state.get("step_in_epoch") or 0)}
    return "acsar", state["model"], state["config"], position


def _read(path: Path, fmt: str):
    """(format found, state dict, saved config or None, saved position ``{epoch, step_in_epoch}`` or None).
    ``auto`` tries the likelier reader first by suffix (``.tar`` / ``.pth``: SCD-Net; otherwise ours) and
    falls back to the other one."""
    if fmt not in FORMATS:
        raise ValueError(f"pretrained_format must be one of {FORMATS}, got {fmt!r}")
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.pt"))
        raise FileNotFoundError(f"pretrained={path} is a folder; expected a checkpoint file"
                                + (f", e.g. {path / ('latest.pt' if 'latest.pt' in inside else inside[0])}"
                                   if inside else " (it holds no .pt file)"))
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint not found: {path} (a pretraining run writes its latest.pt: run "
                                f"`python main.py pretrain_acsar --config ...` first; pretrained=null evaluates a "
                                f"randomly initialised encoder)")
    if fmt == "acsar":
        return _read_acsar(path, trusted=True)  # the user says it is ours: an older one may hold numpy objects
    if fmt == "scdnet":
        return "scdnet", read_state_dict(path), None, None
    readers = [_read_acsar, lambda p: ("scdnet", read_state_dict(p), None, None)]
    if path.suffix in (".tar", ".pth"):
        readers.reverse()
    errors = []
    for reader in readers:
        try:
            return reader(path)
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            errors.append(str(err))
    raise ValueError(f"{path}: neither an AC-SAR checkpoint nor an SCD-Net state dict ({'; '.join(errors)})")


def load_pretrained(classifier: torch.nn.Module, path: Path, fmt: str, cfg: Mapping[str, Any],
                    check_config: bool = True) -> Dict[str, Any]:
    """Load the encoder weights into ``classifier``; return a record for results.json."""
    path = Path(path)
    found, state, saved_cfg, position = _read(path, fmt)
    info: Dict[str, Any] = {"path": str(path), "format": found}
    if saved_cfg is not None:
        ours = encoder_config(cfg)
        theirs = encoder_config(saved_cfg)
        diff = compare_encoder_configs(ours, theirs)
        if diff and check_config:
            lines = "; ".join(f"{k}: config {a!r} vs checkpoint {b!r}" for k, a, b in
                              ((k, *v) for k, v in sorted(diff.items())))
            raise PretrainedMismatch(f"{path}: the encoder in the config differs from the pretrained one ({lines}); "
                                     f"set the model/data keys to the pretraining values")
        saved_stream = saved_cfg.get("data", {}).get("stream")
        info["pretrain_stream"] = saved_stream
        if saved_stream and saved_stream != cfg["data"]["stream"]:
            logger.warning("%s was pretrained on the %s stream but this evaluation uses %s", path, saved_stream,
                           cfg["data"]["stream"])
        info["pretrain_text_mode"] = (saved_cfg.get("text") or {}).get("mode")
        info["pretrain_epochs"] = saved_cfg.get("epochs")
        reached, step = position["epoch"], position["step_in_epoch"]
        info["pretrain_epoch_reached"], info["pretrain_step_in_epoch"] = reached, step
        complete = reached is not None and step == 0 and info["pretrain_epochs"] is not None \
            and int(reached) >= int(info["pretrain_epochs"])
        info["pretrain_complete"] = bool(complete)
        if not complete:
            where = f"after epoch {reached}" + (f" and {step} steps of the next" if step else "")
            logger.warning("%s was saved %s of its %s pretraining epochs: this evaluates an intermediate encoder "
                           "(a periodic checkpoint, or the latest.pt of a run that has not finished)", path, where,
                           info["pretrain_epochs"])
    try:
        classifier.load_encoder_state(state)
    except KeyError as err:   # missing, unexpected or mis-shaped tensors: another encoder than the config builds
        raise PretrainedMismatch(f"{path} ({found} format): {err.args[0]}; set the model/data keys (data.layout, "
                                 f"model.num_person, data.window, model.*) to the pretraining values") from err
    logger.info("loaded the pretrained encoder from %s (%s format)", path, found)
    return info
