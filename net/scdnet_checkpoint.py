"""Key mapping between the official SCD-Net ``state_dict`` and ours (:class:`net.acsar.ACSAR`).

The layouts differ only by names (shapes are identical), so the mapping is a
table of prefix renames (ours <-> SCD-Net), applied under ``encoder_q.`` and
``encoder_k.`` alike; everything below these prefixes (CTR-GCN blocks
``l1.gcn1.convs.0.conv1``, Transformer ``layers.0.self_attn``, ...) is named the same:

=============================  ==============================
ours                           SCD-Net
=============================  ==============================
``encoder.stem_t.``            ``encoder.gcn_t.``
``encoder.stem_s.``            ``encoder.gcn_s.``
``encoder.embed_t.``           ``encoder.channel_t.``
``encoder.embed_s.``           ``encoder.channel_s.``
``encoder.transformer_t.``     ``encoder.t_encoder.``
``encoder.transformer_s.``     ``encoder.s_encoder.``
``proj_t.`` / ``proj_s.``      ``t_proj.`` / ``s_proj.``
``proj_g.``                    ``i_proj.`` (input ``[z_t, z_s]`` in both)
``queue_{t,s,g}.keys``         ``{t,s,i}_queue``
``queue_{t,s,g}.ptr``          ``{t,s,i}_queue_ptr``
``text.*``                     (none: dropped by :func:`to_scdnet`)
=============================  ==============================

A checkpoint file ``checkpoint.pth.tar`` holds ``{'epoch', 'state_dict', 'optimizer'}``;
:func:`read_state_dict` loads it on the CPU with ``weights_only=True`` (tensors
and plain containers only: no pickled code runs).  A ``module.`` prefix (DDP)
is stripped.  :func:`encoder_state_dict` extracts the query encoder
(:class:`net.encoder.DualBranchEncoder` keys) from any of: our ACSAR state,
an SCD-Net pretraining state, an SCD-Net / our downstream classifier state,
or a bare encoder state.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Mapping, Tuple, Union

import torch

__all__ = ["ENCODER_RENAMES", "RENAMES", "to_scdnet", "from_scdnet", "read_state_dict",
           "load_scdnet_checkpoint", "strip_module_prefix", "encoder_state_dict"]

logger = logging.getLogger(__name__)

#: (ours, SCD-Net) prefixes inside one DualBranchEncoder
ENCODER_RENAMES: Tuple[Tuple[str, str], ...] = (
    ("stem_t.", "gcn_t."),
    ("stem_s.", "gcn_s."),
    ("embed_t.", "channel_t."),
    ("embed_s.", "channel_s."),
    ("transformer_t.", "t_encoder."),
    ("transformer_s.", "s_encoder."),
)
_PROJECTOR_RENAMES = (("proj_t.", "t_proj."), ("proj_s.", "s_proj."), ("proj_g.", "i_proj."))
_QUEUE_RENAMES = tuple(
    pair for ours, theirs in (("t", "t"), ("s", "s"), ("g", "i"))
    for pair in ((f"queue_{ours}.keys", f"{theirs}_queue"), (f"queue_{ours}.ptr", f"{theirs}_queue_ptr")))

#: (ours, SCD-Net) prefixes of the whole pretraining model
RENAMES: Tuple[Tuple[str, str], ...] = tuple(
    (f"{side}.{ours}", f"{side}.{theirs}")
    for side in ("encoder_q", "encoder_k")
    for ours, theirs in (*[(f"encoder.{a}", f"encoder.{b}") for a, b in ENCODER_RENAMES], *_PROJECTOR_RENAMES)
) + _QUEUE_RENAMES

_TEXT_PREFIX = "text."
StateDict = Mapping[str, torch.Tensor]


def _rename(key: str, table: Iterable[Tuple[str, str]]) -> Union[str, None]:
    for old, new in table:
        if key == old or key.startswith(old) and (old.endswith(".") or key[len(old)] == "."):
            return new + key[len(old):]
    return None


def _apply(state: StateDict, table, direction: str) -> "OrderedDict[str, torch.Tensor]":
    out, unmapped = OrderedDict(), []
    for key, value in state.items():
        new = _rename(key, table)
        if new is None:
            unmapped.append(key)
        else:
            out[new] = value
    if unmapped:
        shown = ", ".join(unmapped[:10]) + (f", ... ({len(unmapped)} in all)" if len(unmapped) > 10 else "")
        raise KeyError(f"{direction}: no mapping for keys: {shown}")
    return out


def strip_module_prefix(state: StateDict) -> "OrderedDict[str, torch.Tensor]":
    """Drop a leading ``module.`` (DistributedDataParallel) from every key that has it."""
    return OrderedDict((k[len("module."):] if k.startswith("module.") else k, v) for k, v in state.items())


def to_scdnet(state: StateDict) -> "OrderedDict[str, torch.Tensor]":
    """Our ACSAR state dict -> SCD-Net key names (text-branch keys are dropped: SCD-Net has none)."""
    text_keys = [k for k in state if k.startswith(_TEXT_PREFIX)]
    if text_keys:
        logger.info("to_scdnet: dropping %d text-branch keys (no SCD-Net counterpart)", len(text_keys))
    return _apply({k: v for k, v in state.items() if not k.startswith(_TEXT_PREFIX)}, RENAMES, "to_scdnet")


def from_scdnet(state: StateDict) -> "OrderedDict[str, torch.Tensor]":
    """An SCD-Net pretraining state dict -> our ACSAR key names (no text keys: load with ``strict=False``
    when the text branch is on, or compare against ``ACSAR.state_dict()`` minus ``text.*``)."""
    return _apply(strip_module_prefix(state), [(b, a) for a, b in RENAMES], "from_scdnet")


def read_state_dict(path: Union[str, Path]) -> "OrderedDict[str, torch.Tensor]":
    """Load ``checkpoint.pth.tar`` (``{'state_dict': ...}``) or a bare state dict from ``path`` on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle with objects beyond tensors/containers: refuse, do not run code
        raise ValueError(f"{path}: not loadable with weights_only=True ({err}); "
                         f"re-save it as a plain state dict") from err
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict or {{'state_dict': ...}} of tensors")
    return strip_module_prefix(state)


def load_scdnet_checkpoint(path: Union[str, Path]) -> "OrderedDict[str, torch.Tensor]":
    """An official SCD-Net ``checkpoint.pth.tar`` -> our ACSAR state dict (skeleton parts + queues)."""
    return from_scdnet(read_state_dict(path))


def encoder_state_dict(state: StateDict) -> "OrderedDict[str, torch.Tensor]":
    """Query-encoder weights in :class:`net.encoder.DualBranchEncoder` key names.

    Accepts, after stripping ``module.``: a pretraining state (ours or SCD-Net:
    ``encoder_q.encoder.*``; the key encoder, projectors, queues and text branch
    are ignored), a downstream state (``encoder.*`` plus a head), or a bare
    encoder state; SCD-Net inner names are renamed to ours.
    """
    state = strip_module_prefix(state)
    for prefix in ("encoder_q.encoder.", "encoder."):
        if any(k.startswith(prefix) for k in state):
            state = OrderedDict((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))
            break
    table = [(b, a) for a, b in ENCODER_RENAMES] + [(a, a) for a, _ in ENCODER_RENAMES]
    out = OrderedDict()
    for key, value in state.items():
        out[_rename(key, table) or key] = value
    return out
