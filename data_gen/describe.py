"""Describers: one short description per sample, ``<out>/<sample>.txt`` (one line).

Two describers (paper §3.3, §5.1; acsar_facts.md §2, the developers' notes):

- ``vlm``: a Hugging Face image-text-to-text model loaded from a local folder
  (``AutoProcessor`` / ``AutoModelForImageTextToText``, ``local_files_only=True``)
  reads the action image ``<images>/<sample>.jpg`` (made by
  ``data_gen/action_images.py``) with the paper's prompt; batched greedy decoding.
  Supported: the image-text-to-text models built into the installed transformers, e.g.
  Ovis2 and Ovis2.5 in transformers format (``model_type: ovis2`` / ``ovis2_5``, e.g.
  ``thisisiron/Ovis2-2B-hf``, ``ovis-community/Ovis2.5-2B``; Ovis2.5 is built into recent
  releases such as 5.25, which this repository was tested with), and remote-code models whose
  ``config.json`` ``auto_map`` names ``AutoModelForImageTextToText`` (with
  ``--trust-remote-code``).  **Not supported**: the original Ovis 1.x / 2 / 2.5 remote-code
  releases (``AIDC-AI/Ovis*``: their ``auto_map`` has only ``AutoConfig`` /
  ``AutoModelForCausalLM``, their config nests ``llm_config`` / ``vit_config``, and they need
  their own preprocessing), even where their ``model_type`` is one transformers now builds;
  such a folder is refused before anything is loaded, with an error naming the
  transformers-format conversion to use instead.
- ``kinematic``: :class:`data_gen.kinematic_describer.KinematicDescriber` on the
  gendata skeletons; no model at all.

Every output is cleaned to one line and cut to ``--max-chars`` (paper: 75) on a
word boundary.  The paper's limit can be read two ways: §5.2 limits the generated text to 75
characters, while its Fig. 3 puts the limit in the prompt and shows Ovis outputs of 83-99
characters kept whole (and §5.4.3 / Table 8 compare a maximum length of 512 with 75, no unit).
The hard cut is our reading [ours]; ``--max-chars 100000`` keeps whole outputs, and
``--max-new-tokens`` sets the generation budget.

Samples whose ``.txt`` exists are skipped (resume); each file is written atomically as
soon as its batch is done, so an interrupted run loses at most one batch.  The settings
that determine the texts (describer, model: its path and :func:`model_files`, i.e. its
configs / tokenizer by content and its weights by size, prompt, token budget, dtype, batch size,
character limit / layout, and for ``vlm`` the
settings the action images were made with, i.e. the content of
``<images>/images_settings.json``) are recorded in ``<out>/describe_settings.json``;
a rerun with other settings into the same folder -- including one on an images
folder remade with other settings, e.g. 3 frames -- is refused
(:mod:`data_gen.output_settings`) unless ``--overwrite``, which moves the folder's
old texts into ``<out>/overwritten/<UTC time>/`` and describes every sample again.
The VLM's ``--batch-size`` is recorded because batched generation is not provably
batch-independent: the prompts are left-padded to the batch's longest, and in
bfloat16 / float16 (or with other kernels on a GPU) the padded batch can round
differently and so change a greedy choice.  The kinematic describer is per sample,
so its batch size is not recorded.  Input folders and the device are not recorded
(samples are matched by name).  Hidden files (e.g. ``.S001.tmp-123.jpg`` left by a
killed ``action_images.py``) are never taken as samples; an unreadable image is an
error naming it.

Usage::

    python data_gen/describe.py vlm --images data/ntu60/action_images --model weights/Ovis2-8B-hf \\
        --out data/ntu60/descriptions [--label-pkl data/ntu60/xsub/train_label.pkl] [--device cuda:0]
    python data_gen/describe.py kinematic --data data/ntu60/xsub --split train --split val \\
        --layout ntu25 --out data/ntu60/descriptions
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_gen import offline  # noqa: E402,F401  (offline switches before transformers is imported)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
from typing import Callable, Dict, List, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from feeder.io import file_sha256, load_sample_names, save_text_atomic  # noqa: E402
from feeder.splits import load_split  # noqa: E402
from data_gen.cli import exit_code_of, positive_int  # noqa: E402
from data_gen.output_settings import (check_output_settings, output_files, read_settings_file,  # noqa: E402
                                      start_output_dir)

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PROMPT", "SETTINGS_FILE", "clean_description", "check_image_text_to_text_folder",
           "VLMDescriber", "load_image", "images_settings", "describe_samples", "model_files",
           "output_settings", "main"]

#: The paper's prompt, verbatim from its Fig. 3 (English; §5.2 renders it in Chinese, "这是一个沿时间结构拼接的
#: 动作图像,请描述其中的动作变化", and adds that the generated text is limited to 75 characters: the limit is
#: part of the prompt, which the Fig. 3 prompt shows).
DEFAULT_PROMPT = ("This is an image of action behavior spliced along a temporal structure. "
                  "Please briefly describe the action changes, no more than 75 characters.")

#: Sidecar in the output folder with the settings its descriptions were made with.
SETTINGS_FILE = "describe_settings.json"
#: The paper's description length limit in characters (§5.2).
PAPER_MAX_CHARS = 75
#: Files of a VLM folder recorded by content in the settings (:func:`model_files`) ...
MODEL_FILES_HASHED = (".json", ".jinja", ".txt", ".model", ".py")
#: ... and its weight files, recorded by size.
MODEL_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def clean_description(text: str, max_chars: int = PAPER_MAX_CHARS) -> str:
    """One line, single spaces, no surrounding quotes, at most ``max_chars`` (cut on a word boundary)."""
    text = re.sub(r"\s+", " ", str(text)).strip().strip("\"'` ").strip()
    if len(text) > max_chars:
        cut = text[: max_chars + 1]
        text = cut.rsplit(" ", 1)[0] if " " in cut else text[:max_chars]
        text = text[:max_chars].rstrip(" ,;:-")
    return text


def check_image_text_to_text_folder(model_dir: Path) -> None:
    """Refuse a model folder ``AutoModelForImageTextToText`` cannot load, with the reason.

    Accepted: a ``model_type`` built into the installed transformers as image-text-to-text (e.g.
    ``ovis2``, ``ovis2_5``), or an ``auto_map`` entry ``AutoModelForImageTextToText`` (remote code).
    Refused first: a remote-code layout whose ``auto_map`` names ``AutoModelForCausalLM`` but not
    ``AutoModelForImageTextToText`` (the original Ovis releases), whatever its ``model_type``: the
    built-in class would read the remote code's config keys as unknown and build another model.
    A folder without ``config.json`` is refused too (a ``FileNotFoundError`` naming it, and the subfolders
    that have one: ``--model`` given the folder above the model's).
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    cfg_path = Path(model_dir) / "config.json"
    if not cfg_path.is_file():
        inside = sorted(p.parent.name for p in Path(model_dir).glob("*/config.json"))
        hint = f"; its subfolders {inside} have one: give one of them" if inside else ""
        raise FileNotFoundError(f"{cfg_path} not found: expected a transformers-format model folder (config.json, "
                                f"the weights, the tokenizer and processor files, e.g. a local copy of "
                                f"thisisiron/Ovis2-2B-hf){hint}")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{cfg_path}: not a readable JSON model config ({err})") from err
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_path}: expected a JSON object (a transformers model config), got {type(cfg).__name__}")
    model_type = cfg.get("model_type")
    auto_map = cfg.get("auto_map") or {}
    native_ovis = sorted(t for t in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES if str(t).startswith("ovis"))
    supported = ("only image-text-to-text models are supported: those built into the installed transformers "
                 f"(its Ovis model types: {native_ovis}; e.g. thisisiron/Ovis2-2B-hf, ovis-community/Ovis2.5-2B) "
                 "or remote code whose auto_map names AutoModelForImageTextToText")
    if "AutoModelForCausalLM" in auto_map and "AutoModelForImageTextToText" not in auto_map:
        raise ValueError(
            f"{cfg_path}: this folder's config maps only {sorted(auto_map)} (model_type {model_type!r}; "
            f"remote code loaded through AutoModelForCausalLM with its own preprocessing, like the original "
            f"Ovis 1.x / 2 / 2.5 releases), which data_gen/describe.py does not implement, with or without "
            f"--trust-remote-code; use the model's transformers-format conversion instead; {supported}")
    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES or "AutoModelForImageTextToText" in auto_map:
        return
    raise ValueError(f"{cfg_path}: model_type {model_type!r} is not an image-text-to-text model "
                     f"(AutoModelForImageTextToText cannot load it); {supported}")


class VLMDescriber:
    """Batched greedy captioning with a local image-text-to-text model.

    Args:
        model_dir: local folder with the model and its processor (nothing is downloaded).
        prompt: instruction given with each image (default: the paper's prompt).
        max_new_tokens: generation budget; ``max_chars`` cuts the cleaned text.
        device: torch device string.
        dtype: ``"auto"`` (checkpoint dtype), ``"float32"``, ``"bfloat16"``, ``"float16"``.
        trust_remote_code: allow the checkpoint's own code (only for an ``auto_map`` entry
            ``AutoModelForImageTextToText``; the original Ovis remote-code releases are refused, see the
            module docstring).
    """

    def __init__(self, model_dir: str | Path, prompt: str = DEFAULT_PROMPT, max_new_tokens: int = 48,
                 max_chars: int = PAPER_MAX_CHARS, device: str = "cpu", dtype: str = "auto",
                 trust_remote_code: bool = False) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"VLM folder not found: {model_dir} (give a local model directory)")
        check_image_text_to_text_folder(model_dir)
        self.processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True,
                                                       trust_remote_code=trust_remote_code)
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForImageTextToText.from_pretrained(
            model_dir, local_files_only=True, trust_remote_code=trust_remote_code, dtype=torch_dtype).to(device)
        self.model.eval()
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # decoder-only batching: pad on the left
        self.prompt = prompt
        self.max_new_tokens = int(max_new_tokens)
        self.max_chars = int(max_chars)
        self.device = device
        self.model_dir = model_dir
        self._text = self._prompt_text()

    def _prompt_text(self) -> str:
        """The prompt in the processor's chat template; without one, ``<image token>\\n<prompt>`` (logged)."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.prompt}]}]
        if getattr(self.processor, "chat_template", None):
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        image_token = getattr(self.processor, "image_token", "<image>")
        in_tokenizer = bool(getattr(getattr(self.processor, "tokenizer", None), "chat_template", None))
        logger.warning("%s: its processor has no chat template (chat_template.jinja / chat_template.json%s), so "
                       "the model gets the bare prompt '%s\\n<prompt>' without the chat format it was tuned on; "
                       "its descriptions may suffer: add the model's processor chat template to the folder",
                       self.model_dir, "; the tokenizer's own template is not used" if in_tokenizer else "",
                       image_token)
        return f"{image_token}\n{self.prompt}"

    def __call__(self, images: Sequence) -> List[str]:
        """Descriptions for a batch of RGB images (PIL images or ``(H, W, 3)`` uint8 arrays)."""
        import torch
        from PIL import Image

        pil = [im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im, np.uint8)) for im in images]
        inputs = self.processor(images=pil, text=[self._text] * len(pil), return_tensors="pt", padding=True)
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        texts = self.processor.batch_decode(new, skip_special_tokens=True)
        return [clean_description(t, self.max_chars) for t in texts]


def load_image(path: Path):
    """The action image at ``path`` as an RGB PIL image, fully decoded; an unreadable, truncated or
    non-image file is an ``OSError`` naming it."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.convert("RGB")          # convert() decodes every pixel: truncation shows here
    except Exception as err:  # noqa: BLE001  (PIL raises many types; ultralytics' Image.open patch, when
        # ultralytics is imported in the process, even a ModuleNotFoundError for a file PIL cannot identify)
        raise OSError(f"{path}: cannot read the action image ({type(err).__name__}: {err}); expected a "
                      f"complete JPEG made by data_gen/action_images.py (delete it and rerun that script to "
                      f"remake it)") from err


def describe_samples(names: Sequence[str], describe: Callable[[List[str]], List[str]], out_dir: Path,
                     batch_size: int = 8, limit: Optional[int] = None, desc: str = "describe") -> int:
    """Write ``describe(batch_of_names)`` to ``out_dir/<name>.txt`` for names without a file.

    Returns the number of descriptions written in this call (finished samples are skipped).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [n for n in dict.fromkeys(names) if not (out_dir / f"{n}.txt").exists()]
    if limit is not None:
        todo = todo[:limit]
    logger.info("%d of %d samples to describe into %s", len(todo), len(names), out_dir)
    written = 0
    with tqdm(total=len(todo), desc=desc, unit="sample") as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            texts = describe(batch)
            if len(texts) != len(batch):
                raise RuntimeError(f"describer returned {len(texts)} texts for {len(batch)} samples")
            for name, text in zip(batch, texts):
                if not text:
                    logger.warning("%s: empty description (written as it is; encode_text.py refuses it: write "
                                   "one line into %s by hand, or delete it and rerun with other settings)",
                                   name, out_dir / f"{name}.txt")
                save_text_atomic(out_dir / f"{name}.txt", text + "\n")
                written += 1
            bar.update(len(batch))
    return written



def images_settings(images: Path) -> Optional[dict]:
    """The settings recorded with the action images (``<images>/images_settings.json``), or None when the
    folder has none (made by an older version, or not by ``data_gen/action_images.py``)."""
    from data_gen.action_images import SETTINGS_FILE as IMAGES_SETTINGS_FILE

    path = Path(images) / IMAGES_SETTINGS_FILE
    if not path.is_file():
        logger.warning("%s: no %s, so the settings of these images are not recorded with the descriptions",
                       images, IMAGES_SETTINGS_FILE)
        return None
    return read_settings_file(path)


def model_files(model_dir: Path) -> Dict[str, Dict[str, object]]:
    """What identifies the model in a VLM folder: ``{file name: {"size": bytes[, "sha256": hex]}}``.

    The folder's configs, tokenizer, processor / chat template and code (:data:`MODEL_FILES_HASHED`, small)
    are recorded by content; its weights (:data:`MODEL_WEIGHTS`) by size only, as hashing gigabytes on every
    resume would be slow: another model at the same path (2B -> 8B, Ovis2 -> Ovis2.5) differs in both, a
    copy of the folder (new mtimes) does not.  Other files (README, images) are left out.  A missing folder:
    ``{}`` (:class:`VLMDescriber` names it).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return {}
    files = {}
    for path in sorted(model_dir.iterdir()):
        suffix = path.suffix.lower()
        if path.name.startswith(".") or not path.is_file() or suffix not in MODEL_FILES_HASHED + MODEL_WEIGHTS:
            continue
        entry: Dict[str, object] = {"size": path.stat().st_size}
        if suffix in MODEL_FILES_HASHED:
            entry["sha256"] = file_sha256(path)
        files[path.name] = entry
    return files


def output_settings(args: argparse.Namespace) -> dict:
    """The settings that determine the descriptions (recorded in :data:`SETTINGS_FILE`)."""
    if args.describer == "vlm":
        return {"describer": "vlm", "model": str(Path(args.model).resolve()),
                "model_files": model_files(args.model), "prompt": args.prompt,
                "max_new_tokens": args.max_new_tokens, "max_chars": args.max_chars, "dtype": args.dtype,
                "batch_size": args.batch_size, "images_settings": images_settings(args.images)}
    return {"describer": "kinematic", "layout": args.layout, "max_chars": args.max_chars}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="describer", required=True)
    vlm = sub.add_parser("vlm", help="a local image-text-to-text model on the action images")
    kin = sub.add_parser("kinematic", help="model-free sentences from the gendata skeletons")
    for p in (vlm, kin):
        p.add_argument("--out", type=Path, required=True, help="descriptions folder (<sample>.txt)")
        p.add_argument("--max-chars", type=positive_int, default=PAPER_MAX_CHARS, help="character limit (paper: 75)")
        p.add_argument("--limit", type=positive_int, default=None, help="describe at most this many new samples")
        p.add_argument("--batch-size", type=positive_int, default=8, help="samples per batch (default: %(default)s)")
        p.add_argument("--overwrite", action="store_true",
                       help="--out holds descriptions made with other settings: move them into "
                            "<out>/overwritten/<time>/ and describe every sample again (default: refuse)")
        p.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    vlm.add_argument("--images", type=Path, required=True, help="folder of <sample>.jpg action images")
    vlm.add_argument("--model", type=Path, required=True, help="local model folder")
    vlm.add_argument("--label-pkl", type=Path, action="append", default=[],
                     help="describe these samples (default: every image in --images)")
    vlm.add_argument("--prompt", default=DEFAULT_PROMPT,
                     help="instruction given with each image (default: the paper's, Fig. 3, which states the "
                          "75-character limit)")
    vlm.add_argument("--max-new-tokens", type=positive_int, default=48,
                     help="generation budget before the --max-chars cut (default: %(default)s)")
    vlm.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: %(default)s)")
    vlm.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                     help="model weights dtype; auto = the folder's config (default: %(default)s)")
    vlm.add_argument("--trust-remote-code", action="store_true",
                     help="run the checkpoint's own code (remote-code models whose config.json auto_map names "
                          "AutoModelForImageTextToText; the original Ovis 1.x / 2 / 2.5 releases map only "
                          "AutoModelForCausalLM and are not supported: use their transformers-format conversions)")
    kin.add_argument("--data", type=Path, required=True, help="folder with {split}_data_joint.npy etc.")
    kin.add_argument("--split", action="append", required=True, help="split to describe (repeatable: train, val)")
    kin.add_argument("--layout", default="ntu25", help="skeleton layout (net/graph.py; default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    settings = output_settings(args)
    check_output_settings(args.out, settings, SETTINGS_FILE, ".txt", args.overwrite, what="descriptions")

    if args.describer == "vlm":
        names = load_sample_names(args.label_pkl) or [p.stem for p in output_files(args.images, ".jpg")]
        missing = [n for n in names if not (args.images / f"{n}.jpg").is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} action images missing in {args.images}, e.g. {missing[0]}.jpg")
        model = VLMDescriber(args.model, args.prompt, args.max_new_tokens, args.max_chars, args.device,
                             args.dtype, args.trust_remote_code)
        start_output_dir(args.out, settings, SETTINGS_FILE, ".txt", args.overwrite, what="descriptions")

        def run(batch: List[str]) -> List[str]:
            return model([load_image(args.images / f"{n}.jpg") for n in batch])

        written = describe_samples(names, run, args.out, args.batch_size, args.limit)
    else:
        from data_gen.kinematic_describer import KinematicDescriber
        from net.graph import get_layout

        describer = KinematicDescriber(get_layout(args.layout), max_chars=args.max_chars)
        splits = [load_split(args.data, split) for split in args.split]  # memmaps: bad input fails before any write
        start_output_dir(args.out, settings, SETTINGS_FILE, ".txt", args.overwrite, what="descriptions")
        written = 0
        def describe_one(split: str, data, num_frame, row: int, name: str) -> str:
            try:
                return describer.describe(np.asarray(data[row]), int(num_frame[row]))
            except ValueError as err:
                raise ValueError(f"{args.data} split {split!r}, sample {name!r} (row {row}): {err}") from err

        for split, (data, num_frame, names, _) in zip(args.split, splits):
            index = {n: i for i, n in enumerate(names)}
            limit = None if args.limit is None else max(0, args.limit - written)
            written += describe_samples(
                names, lambda b: [describe_one(split, data, num_frame, index[n], n) for n in b],
                args.out, args.batch_size, limit, desc=split)
    logger.info("wrote %d descriptions", written)
    return 0


if __name__ == "__main__":
    sys.exit(exit_code_of(main))
