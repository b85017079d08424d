"""Base processor of the supervised downstream evaluations: linear, semi-supervised, fine-tuning.

A :class:`net.classifier.SkeletonClassifier` (the SCD-Net encoder + a linear head on
``[z_t, z_s]``, 2·C2 -> classes) is trained with cross-entropy on the labelled training
data (optionally a class-balanced ``label_fraction`` of it), with the paper's plateau
rule (reduce lr after 3 epochs without improvement, stop after 5; acsar_facts.md §7; the
factor, ``scheduler.gamma`` = 0.1, is ours: the paper gives none).

Monitored split (``monitor``): ``holdout`` (default) = a class-balanced, seeded
``holdout_fraction`` of the (labelled) training data, excluded from training; ``test`` =
the paper's protocol (the test split drives the lr schedule and the stop).  The weights of
the best monitored epoch are kept in ``best.pt``; at the end the test split is scored with
the last and with the best weights; both are reported, clearly labelled, and the test
scores are saved (``scores.pkl`` = best monitored epoch, ``scores_last.pkl`` = last epoch)
for :mod:`processor.fusion`.  ``report_epoch`` (``best`` | ``last``) names the one that is the
run's ``top1`` / ``top5`` and its confusion matrix: ``last`` suits a fixed schedule whose
monitored split is too small to pick an epoch (the demo's probe).

Frozen encoder (``freeze_encoder: true``, linear evaluation): the encoder stays in eval
mode without gradient; with ``cache_features: true`` its features of every split are
computed once (no augmentation: the downstream data has none, and dropout is off in eval
mode) and the head trains on them, the same computation as running the frozen encoder
every step, only faster.  After training a :class:`FrozenGuard` asserts that no encoder
weight or BatchNorm statistic changed.

Resume: the checkpoint records a digest of the encoder as set up from ``pretrained``; a resume
whose ``pretrained`` now gives other weights (the file was replaced) stops before any work
(:class:`PretrainedMismatch`), and so does a change of a key that selects the training samples
(``label_fraction``, ``subset_seed``, ``monitor``, ``holdout_fraction``, ``seed``) or of the data they are
drawn from (a digest of the training and held-out sample names and labels is in the checkpoint: data moved
to another ``data.root`` resumes, other data or another sample order does not).

Run dir outputs: ``results.json`` (``kind``, test top-1/top-5 at the last and best
monitored epoch, ...), ``metrics.jsonl``, ``scores.pkl``, ``scores_last.pkl``, ``best.pt``,
``subset_indices.json`` (semi-supervised), ``confusion_matrix.png``,
``training_curves.png``, ``report.md``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from feeder.datasets import DownstreamDataset
from feeder.io import atomic_path, lines_sha256, save_json_atomic, save_text_atomic
from feeder.splits import split_files
from net.classifier import SkeletonClassifier
from processor import runtime
from processor.base import TrainProcessor
from processor.checkpoint import LATEST, load_checkpoint
from processor.config import ConfigError
from processor.evaluation.encoder_loading import (PretrainedMismatch, encoder_config, expand_path, load_pretrained,
                                                  state_digest)
from processor.evaluation.features import FeatureDataset, extract_features
from processor.evaluation.figures import plot_confusion, plot_training_curves, read_metrics
from processor.evaluation.frozen import FrozenGuard
from processor.evaluation.scores import (confusion_matrix, load_class_names, require_finite, save_scores,
                                         topk_accuracy)
from processor.evaluation.subsets import class_balanced_subset, holdout_split
from processor.evaluation.markdown import markdown_table

__all__ = ["ClassificationEvaluation", "resolve_repo_path"]

logger = logging.getLogger(__name__)
MONITORS = ("holdout", "test")
REPORT_EPOCHS = ("best", "last")


def resolve_repo_path(path: Optional[str]) -> Optional[Path]:
    """A path as given, or relative to the repository root when it does not exist from the cwd."""
    if not path:
        return None
    p = Path(path)
    if not p.exists() and not p.is_absolute() and (runtime.REPO_ROOT / p).exists():
        return runtime.REPO_ROOT / p
    return p


class ClassificationEvaluation(TrainProcessor):
    """Shared by ``linear_evaluation``, ``semi_supervised`` and ``finetune`` (they differ by config)."""

    kind = "classification"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.guard: Optional[FrozenGuard] = None
        self.best_value: Optional[float] = None
        self.best_epoch = 0
        self.pretrained_info: Dict[str, Any] = {"path": None, "format": "random init"}
        self.cached = False
        self.split_sizes: Dict[str, int] = {}
        self.pretrained_digest: Optional[str] = None   # state_digest of the encoder as set up, before training
        self.class_names: Optional[list] = None        # read in build_data: a bad file fails before training
        self.samples_digest: Optional[str] = None      # lines_sha256 of the training and held-out samples
        self._best_unsaved = False                     # the epoch just evaluated improved: best.pt follows latest.pt

    # ------------------------------------------------------------------ data
    @property
    def monitor(self) -> str:
        return self._choice("monitor", MONITORS)

    @property
    def report_epoch(self) -> str:
        return self._choice("report_epoch", REPORT_EPOCHS)

    def _dataset(self, split: str, indices=None) -> DownstreamDataset:
        d = self.cfg.data
        files = split_files(d.root, split)
        return DownstreamDataset(files.data, files.num_frame, files.label, layout=d.layout, stream=d.stream,
                                 window=d.window, center_crop_ratio=d.center_crop_ratio, indices=indices,
                                 num_classes=int(d.num_classes))

    def build_data(self) -> None:
        d = self.cfg.data
        self.class_names = load_class_names(str(resolve_repo_path(d.class_names)) if d.class_names else None,
                                            int(d.num_classes))
        logger.info("monitored split: %s; reported test result: the %s epoch", self.monitor,
                    "best monitored" if self.report_epoch == "best" else "last")
        full = self._dataset(d.train_split)
        labels = full.all_labels
        labelled = np.arange(len(labels), dtype=np.int64)
        fraction = float(self.cfg.label_fraction)
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"label_fraction must lie in (0, 1] (a fraction: 0.01 for 1 %), got {fraction}")
        if fraction < 1.0:
            labelled = class_balanced_subset(labels, fraction, seed=int(self.cfg.subset_seed))
            logger.info("labelled subset: %d of %d training samples (%.1f %%, class-balanced, seed %d)",
                        len(labelled), len(labels), 100 * fraction, self.cfg.subset_seed)
        if self.monitor == "holdout":
            if not 0.0 < float(self.cfg.holdout_fraction) < 1.0:
                raise ConfigError(f"holdout_fraction must lie in (0, 1) (the share of the labelled training data "
                                  f"held out to monitor), got {self.cfg.holdout_fraction}; monitor=test uses none")
            keep, held = holdout_split(labels[labelled], float(self.cfg.holdout_fraction), seed=int(self.cfg.seed))
            train_idx, holdout_idx = labelled[keep], labelled[held]
            if len(holdout_idx) == 0:
                raise ConfigError(f"monitor: holdout leaves nothing to monitor: each class has at most one labelled "
                                  f"training sample ({len(labelled)} in all at label_fraction={fraction:g}); use "
                                  f"monitor=test (the paper's protocol) or a larger label_fraction")
            classes = len(np.unique(labels[labelled]))
            if len(np.unique(labels[holdout_idx])) < classes:
                logger.warning("monitor: holdout covers %d of %d classes (%d clips; classes with one labelled "
                               "sample keep it for training): its accuracy is a coarse guide; monitor=test is the "
                               "paper's protocol", len(np.unique(labels[holdout_idx])), classes, len(holdout_idx))
            self.monitor_set = self._dataset(d.train_split, holdout_idx)
        else:
            train_idx, holdout_idx = labelled, labelled[:0]
            self.monitor_set = None
        self._check_resumed_samples(full, train_idx, holdout_idx, split_files(d.root, d.train_split).label)
        if fraction < 1.0 and runtime.is_main_process():
            save_json_atomic(self.work_dir / "subset_indices.json", {
                "label_fraction": fraction, "subset_seed": int(self.cfg.subset_seed), "split": d.train_split,
                "num_samples": int(len(labelled)), "num_split": int(len(labels)),
                "indices": labelled.tolist(), "sample_names": [full.all_sample_names[i] for i in labelled]})
        self.train_set = self._dataset(d.train_split, train_idx)
        self.test_set = self._dataset(d.test_split)
        if self.monitor_set is None:
            self.monitor_set = self.test_set
        self.split_sizes = {"train": len(self.train_set), "monitor": len(self.monitor_set), "test": len(self.test_set)}
        logger.info("monitor split: %s (%d samples); training on %d, testing on %d", self.monitor,
                    len(self.monitor_set), len(self.train_set), len(self.test_set))

    def _check_resumed_samples(self, full: DownstreamDataset, train_idx: np.ndarray, holdout_idx: np.ndarray,
                               label_file: Path) -> None:
        """Digest the training and held-out samples (names and labels); on resume they must be the ones the
        interrupted run trained on (checked before subset_indices.json is rewritten)."""
        lines = [f"{part} {full.all_sample_names[i]} {int(full.all_labels[i])}"
                 for part, idx in (("train", train_idx), ("holdout", holdout_idx)) for i in idx]
        self.samples_digest = lines_sha256(lines)
        state = self.resume_checkpoint()
        saved = None if state is None else (state.get("extra") or {}).get("samples_digest")
        if state is not None and saved is None:
            logger.warning("%s holds no digest of its training samples (written by an older version): cannot check "
                           "that %s gives the samples the interrupted run trained on", self.work_dir / LATEST,
                           label_file)
        elif saved is not None and saved != self.samples_digest:
            raise ConfigError(
                f"{label_file}: the training samples it gives ({len(train_idx)} to train on, {len(holdout_idx)} held "
                f"out; digest {self.samples_digest[:12]}) differ from those the interrupted run in "
                f"{self.work_dir / LATEST} trained on (digest {saved[:12]}): the data under data.root changed (other "
                f"clips, labels or order). Point data.root at the original data, or start again (overwrite=true)")

    # ----------------------------------------------------------------- model
    def build_model(self) -> torch.nn.Module:
        return SkeletonClassifier.from_config(encoder_config(self.cfg), num_classes=int(self.cfg.data.num_classes),
                                              freeze_encoder=bool(self.cfg.freeze_encoder),
                                              head_init_std=float(self.cfg.head_init_std),
                                              head_norm=bool(self.cfg.head_norm))

    @property
    def net(self) -> SkeletonClassifier:
        return self.model.module if hasattr(self.model, "module") else self.model

    def check_config(self) -> None:
        super().check_config()
        self._choice("monitor", MONITORS)
        self._choice("report_epoch", REPORT_EPOCHS)
        if self.cfg.cache_features and not self.cfg.freeze_encoder:
            raise ConfigError("cache_features: true needs freeze_encoder: true (a trained encoder changes its "
                              "features); with freeze_encoder=false set cache_features=false too")
        if self.cfg.cache_features and runtime.world_size() > 1:
            raise ConfigError("cache_features: true runs in one process; launch without torchrun or set "
                              "cache_features=false")

    def setup(self) -> None:
        super().setup()
        if self.cfg.head_norm:
            world, n = runtime.world_size(), len(self.train_set)
            per_process = min(int(self.cfg.batch_size), max(1, n // world))
            synced = world > 1 and bool(self.cfg.get("sync_bn", True))     # statistics over the global batch
            if (per_process * world if synced else per_process) < 2:
                raise ConfigError(f"head_norm standardises each training batch by its own statistics and needs at "
                                  f"least 2 samples per batch; batch_size={self.cfg.batch_size} with {n} training "
                                  f"samples on {world} process(es) gives {per_process}: raise batch_size or set "
                                  f"head_norm=false")
        path = expand_path(self.cfg.pretrained, self.cfg.work_dir)
        if path is not None:
            self.pretrained_info = load_pretrained(self.net, path, self.cfg.pretrained_format, self.cfg,
                                                   check_config=bool(self.cfg.check_pretrained_config))
        else:
            logger.warning("pretrained: null: the encoder keeps its random initialisation (baseline)")
        self.pretrained_digest = state_digest(self.net.encoder)
        self._check_resumed_encoder(path)
        if self.cfg.freeze_encoder:
            self.guard = FrozenGuard(self.net.encoder)
        if self.cfg.cache_features:
            self._cache_features()

    def _check_resumed_encoder(self, path: Optional[Path]) -> None:
        """On resume: the encoder set up from ``pretrained`` must be the one the interrupted run started from
        (its features are cached and its weights guarded before the checkpoint's are restored)."""
        state = self.resume_checkpoint()
        if state is None:
            return
        checkpoint, source = self.work_dir / LATEST, path or "pretrained: null (random init)"
        saved = (state.get("extra") or {}).get("pretrained_digest")
        if saved is None:
            logger.warning("%s holds no digest of its pretrained encoder (written by an older version): cannot check "
                           "that %s is the encoder the interrupted run started from", checkpoint, source)
        elif saved != self.pretrained_digest:
            raise PretrainedMismatch(
                f"{source}: its encoder differs from the one the interrupted run in {checkpoint} started from "
                f"(weights digest {self.pretrained_digest[:12]} vs {saved[:12]}): the file was replaced or pretrained= "
                f"changed since. Point pretrained= at the original checkpoint, or start again (overwrite=true)")

    def resume_fixed_keys(self):
        """The keys that select the training samples: the labelled subset and, with monitor: holdout, the
        held-out part (drawn with ``seed``)."""
        keys = ["label_fraction", "monitor"]
        if float(self.cfg.label_fraction) < 1.0:
            keys.append("subset_seed")
        if self.cfg.monitor == "holdout":
            keys += ["holdout_fraction", "seed"]
        return keys

    def _cache_features(self) -> None:
        """Replace the raw datasets with the frozen encoder's features (computed once, eval mode)."""
        self.net.eval()
        sets = {"train": self.train_set, "monitor": self.monitor_set, "test": self.test_set}
        cached: Dict[int, FeatureDataset] = {}
        for name, dataset in sets.items():
            if id(dataset) not in cached:
                feats, labels, index = extract_features(self.net.features, dataset, int(self.cfg.eval_batch_size),
                                                        self.device, int(self.cfg.get("num_workers", 0)),
                                                        desc=f"features ({name})",
                                                        progress=bool(self.cfg.progress_bar))
                cached[id(dataset)] = FeatureDataset(feats, labels, index)
        self.raw_test_set = self.test_set
        self.train_set, self.monitor_set, self.test_set = (cached[id(sets[k])] for k in ("train", "monitor", "test"))
        self.cached = True
        logger.info("cached frozen features: train %s, test %s", tuple(self.train_set.tensors[0].shape),
                    tuple(self.test_set.tensors[0].shape))

    # -------------------------------------------------------------- training
    def make_loader(self, dataset, batch_size, epoch, shuffle, drop_last, start_batch=0, indices=None,
                    distributed=True):
        n = len(dataset) if indices is None else len(indices)
        world = runtime.world_size() if distributed else 1
        if batch_size * world > n:
            logger.warning("batch size %d x %d process(es) exceeds the %d training samples: using %d", batch_size,
                           world, n, max(1, n // world))
            batch_size = max(1, n // world)
        return super().make_loader(dataset, batch_size, epoch, shuffle, bool(self.cfg.drop_last), start_batch,
                                   indices, distributed)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.fc(x) if self.cached else self.model(x)

    def train_step(self, batch) -> Dict[str, torch.Tensor]:
        x, y, _ = batch
        out = self.logits(x)
        loss = F.cross_entropy(out, y)
        acc = (out.detach().argmax(1) == y).float().mean() * 100.0
        return {"loss": loss, "acc": acc}

    @torch.no_grad()
    def scores(self, dataset, desc: str):
        self.model.eval()
        out = extract_features(self.logits, dataset, int(self.cfg.eval_batch_size), self.device,
                               0 if self.cached else int(self.cfg.get("num_workers", 0)), desc=desc,
                               progress=bool(self.cfg.progress_bar))
        self.model.train()
        return out

    def evaluate(self, epoch: int) -> Dict[str, float]:
        logits, labels, _ = self.scores(self.monitor_set, f"{self.monitor} epoch {epoch + 1}")
        acc = topk_accuracy(logits, labels, (1, 5))
        loss = float(F.cross_entropy(torch.as_tensor(logits), torch.as_tensor(labels)))
        value = acc[1]
        if self.best_value is None or value > self.best_value:
            self.best_value, self.best_epoch = value, epoch + 1
            self._best_unsaved = True
        return {f"{self.monitor}_top1": acc[1], f"{self.monitor}_top5": acc[5], f"{self.monitor}_loss": loss}

    def monitored_value(self, metrics: Dict[str, float]) -> Optional[float]:
        return metrics.get(f"{self.monitor}_top1")

    def _trained_state(self) -> Dict[str, torch.Tensor]:
        """What training changes: the head alone when the encoder is frozen, else the whole classifier."""
        module = self.net.fc if self.cfg.freeze_encoder else self.net
        return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

    def _load_trained_state(self, state: Dict[str, torch.Tensor]) -> None:
        (self.net.fc if self.cfg.freeze_encoder else self.net).load_state_dict(state)

    def _save_best(self) -> None:
        if runtime.is_main_process():
            with atomic_path(self.work_dir / "best.pt") as tmp:
                torch.save({"epoch": self.best_epoch, "monitor": self.monitor, "value": self.best_value,
                            "head_only": bool(self.cfg.freeze_encoder), "model": self._trained_state()}, tmp)

    def extra_state(self) -> Dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch,
                "pretrained_digest": self.pretrained_digest, "samples_digest": self.samples_digest}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.best_value = state.get("best_value")
        self.best_epoch = int(state.get("best_epoch", 0))

    def save(self, epoch: int, step_in_epoch: int, periodic: bool = False) -> None:
        """The checkpoint, then best.pt when the epoch just ended improved: a run stopped between the two
        resumes from that epoch's own checkpoint, whose weights :meth:`try_resume` writes to best.pt."""
        super().save(epoch, step_in_epoch, periodic)
        if self._best_unsaved and not step_in_epoch:
            self._save_best()
            self._best_unsaved = False

    def try_resume(self) -> tuple[int, int]:
        """As the base class; then best.pt must hold the checkpoint's best monitored epoch: when the checkpoint is
        that epoch's own (stopped before best.pt followed it), best.pt is written from the restored weights."""
        epoch, step_in_epoch = super().try_resume()
        best_path = self.work_dir / "best.pt"
        if not self.best_epoch:
            return epoch, step_in_epoch
        saved = int(load_checkpoint(best_path).get("epoch", 0)) if best_path.is_file() else None
        if saved != self.best_epoch:
            if (epoch, step_in_epoch) == (self.best_epoch, 0):
                logger.info("%s holds epoch %s, the checkpoint's best monitored epoch is %d, its own: the run was "
                            "stopped between the two saves; best.pt is written from the checkpoint", best_path,
                            saved, self.best_epoch)
                self._save_best()
            else:
                # an older version wrote best.pt before latest.pt: the best epoch's weights are no longer saved
                logger.warning("%s holds epoch %s but the checkpoint's best monitored epoch is %d: the run was "
                               "stopped between the two saves; the epochs after %d are trained again and best.pt "
                               "is rewritten if one of them improves on it", best_path, saved, self.best_epoch,
                               self.best_epoch)
        return epoch, step_in_epoch

    # ----------------------------------------------------------------- results
    def _score_test(self, tag: str, filename: str, class_names) -> Dict[str, Any]:
        logits, labels, index = self.scores(self.test_set, f"test ({tag})")
        names = [self.test_sample_names[i] for i in index]
        require_finite(logits, names, f"{split_files(self.cfg.data.root, self.cfg.data.test_split).data} ({tag})")
        acc = topk_accuracy(logits, labels, (1, 5))
        if runtime.is_main_process():
            save_scores(self.work_dir / filename, names, logits, labels, class_names)
        return {"top1": acc[1], "top5": acc[5], "scores": filename, "pred": logits.argmax(1), "labels": labels}

    @property
    def test_sample_names(self):
        raw = getattr(self, "raw_test_set", self.test_set)
        return raw.all_sample_names

    def finalize(self) -> Dict[str, Any]:
        out = super().finalize()
        frozen = "not frozen (encoder trained)"
        if self.guard is not None:
            checked = self.guard.check()
            frozen = f"passed: {checked} encoder tensors (weights and BatchNorm statistics) unchanged"
            logger.info("frozen-encoder check %s", frozen)
        d = self.cfg.data
        num_classes = int(d.num_classes)
        class_names = self.class_names
        last = self._score_test("last epoch", "scores_last.pkl", class_names)
        best_path = self.work_dir / "best.pt"
        if best_path.is_file():
            self._load_trained_state(torch.load(best_path, map_location=self.device, weights_only=True)["model"])
        best = self._score_test("best monitored epoch", "scores.pkl", class_names)
        logger.info("test top-1/top-5 at the last epoch (%d): %.2f / %.2f", self.epoch, last["top1"], last["top5"])
        logger.info("test top-1/top-5 at the best %s epoch (%d, %s top-1 %.2f): %.2f / %.2f", self.monitor,
                    self.best_epoch, self.monitor, float("nan") if self.best_value is None else self.best_value, best["top1"], best["top5"])
        reported = best if self.report_epoch == "best" else last
        logger.info("reported (report_epoch: %s): top-1 %.2f", self.report_epoch, reported["top1"])
        out.update({
            "kind": self.kind,
            "processor": self.name,
            "dataset_root": d.root,
            "stream": d.stream,
            "num_classes": num_classes,
            "monitor": self.monitor,
            "monitor_note": ("class-balanced held-out part of the training set (holdout_fraction "
                             f"{self.cfg.holdout_fraction})" if self.monitor == "holdout"
                             else "the test split (the paper's protocol)"),
            "label_fraction": float(self.cfg.label_fraction),
            "freeze_encoder": bool(self.cfg.freeze_encoder),
            "cache_features": bool(self.cached),
            "pretrained": self.pretrained_info,
            "split_sizes": self.split_sizes,
            "frozen_check": frozen,
            "best_epoch": self.best_epoch,
            "best_monitor_top1": self.best_value,
            "test_last_epoch": {"epoch": self.epoch, "top1": last["top1"], "top5": last["top5"],
                                "scores": last["scores"]},
            "test_best_monitored_epoch": {"epoch": self.best_epoch, "top1": best["top1"], "top5": best["top5"],
                                          "scores": best["scores"]},
            "report_epoch": self.report_epoch,
            "top1": reported["top1"],
            "top5": reported["top5"],
        })
        if runtime.is_main_process() and self.cfg.figures:
            self._figures(reported, class_names, out)
        return out

    def _figures(self, reported: Dict[str, Any], class_names, out: Dict[str, Any]) -> None:
        num_classes = int(self.cfg.data.num_classes)
        cm = confusion_matrix(reported["pred"], reported["labels"], num_classes)
        epoch = (f"best {self.monitor} epoch {self.best_epoch}" if self.report_epoch == "best"
                 else f"last epoch {self.epoch}")
        title = (f"{self.name} ({self.cfg.data.stream}): confusion matrix, test top-1 {reported['top1']:.1f} % "
                 f"({epoch})")
        plot_confusion(cm, self.work_dir / "confusion_matrix.png", class_names, title=title)
        rows = read_metrics(self.work_dir / "metrics.jsonl")
        if rows:
            plot_training_curves(rows, self.work_dir / "training_curves.png",
                                 title=f"{self.name} ({self.cfg.name}): loss, accuracy, learning rate")
        best, last = out["test_best_monitored_epoch"], out["test_last_epoch"]
        mark = {"best": (" (reported)", ""), "last": ("", " (reported)")}[self.report_epoch]
        table = markdown_table(
            ["test split", "epoch", "top-1 (%)", "top-5 (%)"],
            [[f"best {self.monitor} epoch{mark[0]}", best["epoch"], best["top1"], best["top5"]],
             [f"last epoch{mark[1]}", last["epoch"], last["top1"], last["top5"]]])
        text = (f"# {self.cfg.name}\n\n{self.description}\n\n"
                f"- stream: {self.cfg.data.stream}; pretrained: {self.pretrained_info.get('path')} "
                f"({self.pretrained_info.get('format')})\n"
                f"- monitored split: {out['monitor']} ({out['monitor_note']})\n"
                f"- label fraction: {out['label_fraction']}; encoder frozen: {out['freeze_encoder']} "
                f"({out['frozen_check']})\n\n{table}\n"
                f"![confusion matrix](confusion_matrix.png)\n\n"
                + ("![training curves](training_curves.png)\n" if rows else ""))
        save_text_atomic(self.work_dir / "report.md", text)
