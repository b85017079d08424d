"""``knn_evaluation``: k-nearest-neighbour retrieval on the frozen [Z_t, Z_s] features (C²VL / SCD-Net kNN).

The pretrained encoder (as in linear evaluation: ``pretrained``, ``pretrained_format``)
embeds the training and the test split without augmentation (centre crop); each test
sample takes the majority class of its ``k`` most cosine-similar training samples
(L2-normalised features, ties -> the nearest; :mod:`processor.evaluation.knn`), computed
in ``test_chunk x train_chunk`` blocks.  Writes ``results.json`` (kind ``knn``, top-1),
``scores.pkl`` (one-hot votes as scores), the confusion matrix and ``report.md``.
"""
from __future__ import annotations

import logging
from typing import Any, Dict

import numpy as np
import torch

from feeder.datasets import DownstreamDataset
from feeder.io import save_text_atomic
from feeder.splits import split_files
from net.classifier import SkeletonClassifier
from processor import runtime
from processor.base import Processor
from processor.config import ConfigError
from processor.evaluation.classification import resolve_repo_path
from processor.evaluation.encoder_loading import encoder_config, expand_path, load_pretrained
from processor.evaluation.features import extract_features
from processor.evaluation.figures import plot_confusion
from processor.evaluation.frozen import FrozenGuard
from processor.evaluation.knn import knn_classify
from processor.evaluation.markdown import markdown_table
from processor.evaluation.scores import confusion_matrix, load_class_names, require_finite, save_scores
from processor.registry import register

logger = logging.getLogger(__name__)


@register("knn_evaluation")
class KnnEvaluation(Processor):
    description = "kNN evaluation: cosine k-nearest-neighbour classification on frozen [Z_t, Z_s] features"
    has_model = True
    kind = "knn"

    def check_config(self) -> None:
        super().check_config()
        self.require_data_root()

    def build_model(self) -> SkeletonClassifier:
        return SkeletonClassifier.from_config(encoder_config(self.cfg), num_classes=int(self.cfg.data.num_classes),
                                              freeze_encoder=True)

    def summary(self) -> str:
        model = self.build_model()
        return f"{self.name}: {type(model).__name__} encoder {sum(p.numel() for p in model.encoder.parameters()):,}"

    def _dataset(self, split: str) -> DownstreamDataset:
        d = self.cfg.data
        files = split_files(d.root, split)
        return DownstreamDataset(files.data, files.num_frame, files.label, layout=d.layout, stream=d.stream,
                                 window=d.window, center_crop_ratio=d.center_crop_ratio,
                                 num_classes=int(d.num_classes))

    def execute(self) -> Dict[str, Any]:
        cfg, d = self.cfg, self.cfg.data
        ks = list(cfg.k)                       # its items and the chunks: positive integers (declared _types_)
        if not ks:
            raise ConfigError(f"k must be a non-empty list of positive integers (the first is reported), got {cfg.k!r}")
        num_classes = int(d.num_classes)       # a bad class-name file fails before the features are extracted
        class_names = load_class_names(str(resolve_repo_path(d.class_names)) if d.class_names else None, num_classes)
        device = runtime.resolve_device(cfg.device)
        runtime.seed_everything(cfg.seed, bool(cfg.get("deterministic")))
        train_set, test_set = self._dataset(d.train_split), self._dataset(d.test_split)
        if max(ks) > len(train_set):       # before the features: NTU-120's take long to extract
            raise ConfigError(f"k={ks}: {max(ks)} neighbours asked for, but the training split "
                              f"{split_files(d.root, d.train_split).data} holds {len(train_set)} samples; "
                              f"k may be at most {len(train_set)}")
        model = self.build_model().to(device)
        path = expand_path(cfg.pretrained, cfg.work_dir)
        info: Dict[str, Any] = {"path": None, "format": "random init"}
        if path is not None:
            info = load_pretrained(model, path, cfg.pretrained_format, cfg, bool(cfg.check_pretrained_config))
        else:
            logger.warning("pretrained: null: kNN on a randomly initialised encoder (baseline)")
        guard = FrozenGuard(model.encoder)
        model.eval()
        kw = dict(batch_size=int(cfg.eval_batch_size), device=device, num_workers=int(cfg.num_workers),
                  progress=bool(cfg.progress_bar))
        train_f, train_y, train_i = extract_features(model.features, train_set, desc="features (train)", **kw)
        test_f, test_y, test_i = extract_features(model.features, test_set, desc="features (test)", **kw)
        guard.check()
        for split, feats, dataset, order in ((d.train_split, train_f, train_set, train_i),
                                             (d.test_split, test_f, test_set, test_i)):
            require_finite(feats, [dataset.all_sample_names[i] for i in order], str(split_files(d.root, split).data),
                           what="features")
        results: Dict[str, Any] = {"kind": self.kind, "processor": self.name, "dataset_root": d.root,
                                   "stream": d.stream, "num_classes": num_classes, "pretrained": info,
                                   "feature_dim": int(train_f.shape[1]),
                                   "split_sizes": {"train": len(train_y), "test": len(test_y)}}
        per_k = {}
        for k in ks:
            res = knn_classify(torch.from_numpy(train_f), torch.from_numpy(train_y), torch.from_numpy(test_f), k=k,
                               num_classes=num_classes, test_chunk=int(cfg.test_chunk),
                               train_chunk=int(cfg.train_chunk), device=device)
            top1 = float(100.0 * (res.pred == test_y).mean())
            per_k[k] = (top1, res.pred)
            logger.info("kNN k=%d: test top-1 %.2f %%", k, top1)
        results["top1_by_k"] = {str(k): v[0] for k, v in per_k.items()}
        main_k = ks[0]
        top1, pred = per_k[main_k]
        results.update(k=main_k, top1=top1, top5=None, similarity="cosine (L2-normalised features)")
        names = [test_set.all_sample_names[i] for i in test_i]
        scores = np.eye(num_classes, dtype=np.float32)[pred]
        if runtime.is_main_process():
            save_scores(self.work_dir / "scores.pkl", names, scores, test_y, class_names)
            if cfg.figures:
                cm = confusion_matrix(pred, test_y, num_classes)
                plot_confusion(cm, self.work_dir / "confusion_matrix.png", class_names,
                               title=f"kNN (k={main_k}, {d.stream}): confusion matrix, test top-1 {top1:.1f} %")
                table = markdown_table(["k", "test top-1 (%)"], [[k, v[0]] for k, v in per_k.items()])
                save_text_atomic(self.work_dir / "report.md",
                                 f"# {cfg.name}\n\n{self.description}\n\n- stream: {d.stream}; pretrained: "
                                 f"{info.get('path')} ({info.get('format')})\n\n{table}\n"
                                 f"![confusion matrix](confusion_matrix.png)\n")
        return results
