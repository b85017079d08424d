"""``tsne``: t-SNE of skeleton, raw text and skeleton-modulated (FiLM) text features (paper Fig. 6).

Reads a pretraining checkpoint of ours (``checkpoint``: ``latest.pt`` = ``{model, config}``;
the model is rebuilt from the saved config with the pretraining processor's
``acsar_kwargs``), samples ``max_samples`` clips of ``split`` (seeded; paper: 12,000 of
NTU-60 x-sub), and computes in eval mode, per sample:

- skeleton: ``[Z_t, Z_s]`` (``skeleton_feature: encoder``) or q_g = F_g([Z_t, Z_s])
  (``global``, the space the text is aligned with);
- raw text: q'_text, the text branch's token projection + MLP output before the
  interaction (N, C3);
- modulated text: q*_text = gamma(q_g) * q'_text + beta(q_g) (the branch's mode; FiLM in the paper).

Each set is embedded by t-SNE and coloured by its own k-means pseudo-labels
(``clusters``, paper: 60) or by the true labels (``color_by: label``).  Writes
``tsne.png``, ``tsne_features.npz`` and ``report.md`` into the run dir.
"""
from __future__ import annotations

import logging
from typing import Any, Dict

import numpy as np
import torch

from feeder.datasets import DownstreamDataset, check_text_features
from feeder.io import atomic_path, load_npy, save_text_atomic
from feeder.splits import split_files
from net.acsar import ACSAR
from processor import runtime
from processor.base import Processor
from processor.checkpoint import load_checkpoint
from processor.config import ConfigError
from processor.evaluation.encoder_loading import expand_path
from processor.evaluation.figures import plot_embeddings
from processor.evaluation.tsne import MIN_POINTS, kmeans_labels, tsne_2d
from processor.registry import register

logger = logging.getLogger(__name__)
COLOR_BY = ("kmeans", "label")
SKELETON_FEATURES = ("global", "encoder")


@register("tsne")
class TSNEFigure(Processor):
    description = "t-SNE figure: skeleton, raw text and FiLM-modulated text features of a pretrained model"
    kind = "figure"

    def check_config(self) -> None:
        super().check_config()
        self._choice("color_by", COLOR_BY)
        self._choice("skeleton_feature", SKELETON_FEATURES)
        if self.cfg.checkpoint is None:
            raise ConfigError("tsne: set checkpoint (a pretraining latest.pt)")

    def execute(self) -> Dict[str, Any]:
        from processor.pretrain_acsar import acsar_kwargs, check_switches

        cfg = self.cfg
        device = runtime.resolve_device(cfg.device)
        runtime.seed_everything(cfg.seed, bool(cfg.get("deterministic")))
        path = expand_path(cfg.checkpoint, cfg.work_dir)
        state = load_checkpoint(path)
        if "config" not in state or "model" not in state:
            raise ValueError(f"{path}: expected our pretraining checkpoint {{model, config}}")
        pcfg = state["config"]
        if (pcfg.get("text") or {}).get("mode", "none") == "none":
            raise ValueError(f"{path}: the model was pretrained without the text branch (text.mode none)")
        check_switches(pcfg, where=f"{path}: the checkpoint's config: ")   # as pretraining checks it
        model = ACSAR(**acsar_kwargs(pcfg))
        model.load_state_dict(state["model"])
        model.to(device).eval()
        data = dict(pcfg["data"])
        data.update({k: v for k, v in (cfg.data or {}).items() if v is not None})
        files = split_files(data["root"], cfg.split, data["text"])
        dataset = DownstreamDataset(files.data, files.num_frame, files.label, layout=data["layout"],
                                    stream=data["stream"], window=data["window"],
                                    center_crop_ratio=cfg.center_crop_ratio)
        n = len(dataset)
        rng = np.random.default_rng(int(cfg.seed))
        chosen = np.sort(rng.permutation(n)[:min(int(cfg.max_samples), n)])
        if len(chosen) < MIN_POINTS:
            raise ConfigError(f"tsne: {len(chosen)} sample(s) of the {cfg.split} split of {files.data} "
                              f"(max_samples={cfg.max_samples}): a t-SNE needs at least {MIN_POINTS}")
        check_text_features(files.text, files.data, len(dataset.all_sample_names), dataset.all_sample_names,
                            files.label)
        text_all = load_npy(files.text, mmap_mode="r")
        skel, raw, mod = [], [], []
        with torch.no_grad():
            for start in range(0, len(chosen), int(cfg.batch_size)):
                idx = chosen[start:start + int(cfg.batch_size)]
                x = torch.from_numpy(np.stack([dataset[int(i)][0] for i in idx])).to(device)
                text = torch.from_numpy(np.asarray(text_all[idx], dtype=np.float32)).to(device)
                enc = model.encoder_q
                z_t, z_s = enc.encoder(x)
                z = torch.cat([z_t, z_s], dim=1)
                q_g = enc.proj_g(z)
                skel.append((z if cfg.skeleton_feature == "encoder" else q_g).cpu().numpy())
                tokens, q_text = model.text.embed(text)
                raw.append(q_text.cpu().numpy())
                mod.append(model.text.modulate(tokens, q_text, q_g).cpu().numpy())
        feats = {"skeleton": np.concatenate(skel), "text": np.concatenate(raw), "modulated": np.concatenate(mod)}
        labels = dataset.all_labels[chosen]
        titles = {"skeleton": f"skeleton features ({'[Z_t, Z_s]' if cfg.skeleton_feature == 'encoder' else 'q_g'})",
                  "text": "text features before modulation",
                  "modulated": f"text features after {'FiLM' if model.text.mode == 'film' else model.text.mode} modulation"}
        panels, saved = [], {"indices": chosen, "labels": labels}
        for key, x in feats.items():
            emb = tsne_2d(x, seed=int(cfg.seed), perplexity=float(cfg.perplexity))
            colours = labels if cfg.color_by == "label" else kmeans_labels(x, int(cfg.clusters), int(cfg.seed))
            panels.append((titles[key], emb, colours))
            saved[f"{key}_tsne"] = emb
            saved[f"{key}_colour"] = colours
        clusters = min(int(cfg.clusters), len(chosen))         # kmeans_labels' own cap: no more clusters than samples
        colour_note = "true labels" if cfg.color_by == "label" else f"k-means pseudo-labels (k={clusters})"
        title = f"t-SNE of {len(chosen)} {cfg.split} samples, coloured by {colour_note}"
        plot_embeddings(panels, self.work_dir / "tsne.png", title=title)
        with atomic_path(self.work_dir / "tsne_features.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **saved)
        save_text_atomic(self.work_dir / "report.md", f"# {cfg.name}\n\n{self.description}\n\n"
                         f"Checkpoint `{path}`; {title}.\n\n![t-SNE](tsne.png)\n")
        return {"kind": self.kind, "figure": "tsne.png", "checkpoint": str(path), "num_samples": int(len(chosen))}
