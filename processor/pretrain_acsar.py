"""``pretrain_acsar``: self-supervised pretraining of the AC-SAR skeleton encoder.

Each step takes two independently augmented views of a batch (and the
samples' text token features), runs :class:`net.acsar.ACSAR` and minimises
``L_domain + λ·L_cross`` (paper eq. 3-12; acsar_facts.md §3-4).  Logged per
step and epoch: ``loss``, ``loss_domain``, ``loss_cross`` and the accuracy of
the positive among the logits (``acc_domain``, ``acc_cross``), and ``acc_cross_rolled``, the
cross-modal accuracy with each skeleton given another sample's text: level with ``acc_cross``
when the text branch ignores the text (:class:`net.acsar.ACSAR`).  A run without the text branch
(``text.mode: none``) logs ``loss``, ``loss_domain`` and ``acc_domain`` only.  The accuracies are logged
(log line, ``metrics.jsonl``, TensorBoard) in percent, as the evaluations' ``train/acc`` and
``eval/*_top1`` are; the model returns them as fractions.

``compile: true`` compiles the query and key encoders in place with
:meth:`torch.nn.Module.compile` (see :func:`compile_encoders`): the module tree,
state_dict keys, checkpoints and resume are those of the eager model.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Mapping

import torch

from feeder.batch_augment import BatchAugmenter
from feeder.datasets import PretrainDataset
from feeder.splits import split_files
from feeder.transforms import build_pretrain_transform
from net.acsar import ACSAR
from net.graph import get_layout
from net.text_branch import TEXT_LEVELS, TEXT_MODES
from processor import runtime
from processor.base import TrainProcessor
from processor.config import ConfigError
from processor.registry import register

logger = logging.getLogger(__name__)

PERCENT_KEYS = ("acc_domain", "acc_cross", "acc_cross_rolled")    # logged in %, the model gives fractions
DOMAIN_KEYS = ("loss", "loss_domain", "acc_domain")               # logged by every run
TEXT_KEYS = ("loss_cross", "acc_cross", "acc_cross_rolled")       # logged when the text branch is on
AMP_MODES = ("none", "bf16")                                      # the choices of the amp key


def acsar_kwargs(cfg) -> Dict[str, Any]:
    """ACSAR constructor arguments from a resolved config (model, data, moco and text sections)."""
    kwargs = dict(cfg["model"])
    kwargs.update(layout=cfg["data"]["layout"], num_frame=cfg["data"]["window"], **cfg["moco"])
    kwargs["text"] = dict(cfg["text"])    # mode none builds no branch; ACSAR checks the text switches
    return kwargs


def check_switches(cfg: Mapping[str, Any], where: str = "") -> None:
    """Config mistakes that the model would only meet after the data is read, as ConfigErrors naming the key
    (``where``, e.g. a checkpoint's path, goes before the message).  Also run by ``tsne`` on the config saved in
    a checkpoint, which it builds the model from."""
    text = cfg["text"]
    for key, known in (("mode", TEXT_MODES), ("level", TEXT_LEVELS)):
        if text.get(key) not in known:
            raise ConfigError(f"{where}text.{key}={text.get(key)!r}: expected one of {', '.join(known)}")
    if cfg.get("amp", "none") not in AMP_MODES:
        raise ConfigError(f"{where}amp={cfg['amp']!r}: expected one of {', '.join(AMP_MODES)}")
    if text.get("pairwise", False) and text["mode"] != "film":
        raise ConfigError(f"{where}text.pairwise=true scores FiLM-modulated texts: it needs text.mode=film, "
                          f"got text.mode={text['mode']}")
    if not 0.0 <= cfg["moco"]["momentum"] <= 1.0:
        raise ConfigError(f"{where}moco.momentum={cfg['moco']['momentum']}: the key encoder's EMA coefficient alpha "
                          f"must lie in [0, 1] (paper eq. 1)")


def compile_encoders(model: ACSAR, **options: Any) -> None:
    """Compile ``model.encoder_q`` and ``model.encoder_k`` in place with :meth:`torch.nn.Module.compile`.

    ``options`` go to ``torch.compile`` (default: the inductor backend, default mode).

    In-place compilation keeps the module tree (no ``_orig_mod.`` wrapper), so state_dict keys,
    checkpoints and resume are unchanged.  Parameters are inputs of the compiled graphs, so the
    key encoder sees the in-place momentum update (``torch._foreach_lerp_``) of every step.  The
    compilation itself happens lazily on the first forward (the first steps pay its time); call
    this before wrapping the model in DistributedDataParallel.  Transformer dropout under
    compilation draws from inductor's own random stream, so with ``dropout > 0`` a compiled run
    is not bit-identical to an eager one (the same model, other dropout masks).
    """
    model.encoder_q.compile(**options)
    model.encoder_k.compile(**options)


@register("pretrain_acsar")
class PretrainACSAR(TrainProcessor):
    description = "pretrain the skeleton encoder: SCD-Net MoCo v2 + FiLM-modulated text alignment"

    @property
    def use_text(self) -> bool:
        return self.cfg.text.mode != "none"

    def check_config(self) -> None:
        super().check_config()
        check_switches(self.cfg)
        self._check_batch_size()
        self._check_augmentations()
        if self.use_text and not self.cfg.data.text:
            raise ConfigError(f"the text branch is on (text.mode={self.cfg.text.mode}) but data.text names no text "
                              f"features; set data.text (e.g. clip, minilm) or text.mode=none")

    def _check_augmentations(self) -> None:
        """Build the view pipeline once from the config: the checks that need two values or the layout
        (a reversed range, more masked joints than the skeleton has) are config errors before any data is read,
        not a ValueError from the dataset after the run folder exists."""
        d = self.cfg.data
        try:
            build_pretrain_transform(self.cfg.augment.to_dict(), get_layout(d.layout), int(d.window), d.stream)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def _check_batch_size(self) -> None:
        """Refuse a batch of one sample where a loss needs two: L_cross contrasts each sample with the rest of the
        (gathered) batch, alone it is 0 at 100 % accuracy and the text branch gets no gradient; the projectors'
        BatchNorm1d (``model.proj_norm``) has no batch statistics (over the processes when they are synced)."""
        world, batch = runtime.world_size(), int(self.cfg.batch_size)
        synced = world > 1 and bool(self.cfg.get("sync_bn", True))
        needs = []
        if self.use_text and batch * world < 2:
            needs.append(f"text.mode={self.cfg.text.mode} (L_cross contrasts each sample with the others of its batch)")
        if self.cfg.model.get("proj_norm") and (batch * world if synced else batch) < 2:
            needs.append("model.proj_norm (BatchNorm1d over the batch)")
        if needs:
            raise ConfigError(f"{' and '.join(needs)} needs at least 2 samples per batch; batch_size={batch} on "
                              f"{world} process(es) gives {batch} sample per batch: raise batch_size, or set "
                              f"text.mode=none / model.proj_norm=false")

    def build_data(self) -> None:
        d = self.cfg.data
        files = split_files(d.root, d.train_split, d.text if self.use_text else None)
        self.train_set = PretrainDataset(
            files.data, files.num_frame, files.label, text_path=files.text, layout=d.layout, stream=d.stream,
            window=d.window, transform=self.cfg.augment.to_dict(), seed=self.cfg.seed,
            return_raw=bool(self.cfg.augment_on_device), raw_params=bool(self.cfg.augment_on_device))
        if self.use_text:
            _, length, dim = self.train_set.text_shape
            expected = (self.cfg.text.num_tokens if self.cfg.text.level == "token" else 1, self.cfg.text.feature_dim)
            if (length, dim) != expected:
                raise ValueError(f"text features {files.text} are (N, {length}, {dim}) but the config expects "
                                 f"(N, {expected[0]}, {expected[1]}): set text.num_tokens / text.feature_dim / "
                                 f"text.level to match the encoder that wrote them, or data.text to the features "
                                 f"wanted (e.g. data.text=minilm_sentence for encode_text.py --level sentence)")
        self.augmenter = (BatchAugmenter(self.train_set.pipeline, self.cfg.seed)
                          if self.cfg.augment_on_device else None)

    def build_acsar(self) -> ACSAR:
        """The eager ACSAR of the config (``compile`` is a bool: the config loader checks its kind)."""
        return ACSAR(**acsar_kwargs(self.cfg))

    def build_model(self) -> torch.nn.Module:
        """ACSAR, its encoders compiled in place when ``compile: true`` (before any DDP wrapping)."""
        model = self.build_acsar()
        if self.cfg.compile:
            compile_encoders(model)
            logger.info("compile: query and key encoders compiled in place with torch.compile "
                        "(on their first forward: the first steps include the compilation time)")
        return model

    def train_step(self, batch) -> Dict[str, torch.Tensor]:
        if self.augmenter is not None:
            # the views' parameters were sampled in the data loader and reach the device (pinned, non-blocking)
            # with the clips: nothing is read back from the device, which would wait for the queued GPU work
            clip, params, text, index = batch
            x1 = self.augmenter(clip, params=params[0])
            x2 = self.augmenter(clip, params=params[1])
        else:
            x1, x2, text, index = batch
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp == "bf16"):
            out = self.model(x1, x2, text if self.use_text else None)
        keys = DOMAIN_KEYS + (TEXT_KEYS if self.use_text else ())      # without the text branch none of its keys
        return {k: out[k] * 100.0 if k in PERCENT_KEYS else out[k] for k in keys}   # fractions -> %

    def summary(self) -> str:
        check_switches(self.cfg)
        model = self.build_acsar()
        table = model.summary()
        table["query side (encoder + projectors)"] = table["query encoder"] + table["query projectors"]
        width = max(len(k) for k in table)
        lines = [f"{self.name}: ACSAR (text mode: {self.cfg.text.mode}, level: {self.cfg.text.level})"]
        lines += [f"  {k:<{width}}  {v:>14,}" for k, v in table.items()]
        return "\n".join(lines)

    def finalize(self) -> Dict[str, Any]:
        out = super().finalize()
        out.update(kind="pretrain", stream=self.cfg.data.stream, text_mode=self.cfg.text.mode,
                   checkpoint=str(self.work_dir / "latest.pt"))
        return out
