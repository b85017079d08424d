"""``fusion``: multi-stream decision-level fusion of the evaluations' test scores (3s-AC-SAR, paper §4, Table 3).

Reads ``<run dir>/scores.pkl`` of every stream in ``streams`` (name -> run dir of a
finished linear / semi-supervised / fine-tuning evaluation; ``{work_dir}`` expands; a kNN run is
refused, its scores being one-hot votes),
checks that they hold the same test samples (same names; the order may differ and is
aligned by name) with the same labels, and for every combination of streams adds the
softmax probabilities with the streams' ``weights`` (paper: 0.5 each, facts §7) and
takes the arg-max.  Combinations default to every non-empty subset in the order of
``streams`` (J, B, M, JB, JM, BM, JBM); a combination's label is the streams'
abbreviations (first letter, upper case, unless ``abbreviations`` says otherwise).

Writes ``fusion.md`` / ``fusion.csv`` (top-1, top-5 per combination), ``results.json``
(kind ``fusion``; its ``top1`` / ``top5`` are those of the ``headline`` combination: every stream fused, else
the last listed), ``per_class_<A>_vs_<B>.png`` (paper Fig. 4) and ``report.md``,
and prints the table.
"""
from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from feeder.io import save_text_atomic
from processor.base import Processor
from processor.config import ConfigError, parse_type
from processor.evaluation.classification import resolve_repo_path
from processor.evaluation.encoder_loading import expand_path
from processor.evaluation.figures import plot_per_class_comparison
from processor.evaluation.markdown import csv_text, markdown_table
from processor.evaluation.scores import load_class_names, load_scores, per_class_accuracy, softmax, topk_accuracy
from processor.registry import register
from processor.runtime import FINISHED_MARKER

__all__ = ["Fusion", "align_scores", "fuse"]

logger = logging.getLogger(__name__)


POSITIVE_NUMBER = parse_type("positive number")   # a stream weight (as default_weight is declared)


class ScoreMismatch(ValueError):
    """The streams' scores cannot be fused: a run that did not finish, kNN votes, or score files that do
    not cover the same test samples."""


def align_scores(scores: Dict[str, dict], sources: Optional[Dict[str, str]] = None
                 ) -> Tuple[List[str], np.ndarray, Dict[str, np.ndarray]]:
    """Check the streams cover the same samples with the same labels; return (names, labels, {stream: logits})
    in the first stream's order.  ``sources`` (stream -> score file) names the files in the errors."""
    streams, sources = list(scores), sources or {}
    where = {s: f" ({sources[s]})" if s in sources else "" for s in streams}
    ref = scores[streams[0]]
    ref_names = list(ref["names"])
    ref_set = set(ref_names)
    if len(ref_set) != len(ref_names):
        raise ScoreMismatch(f"stream {streams[0]!r}{where[streams[0]]}: duplicate sample names in its scores")
    problems = []
    for name in streams[1:]:
        other = set(scores[name]["names"])
        missing, extra = sorted(ref_set - other), sorted(other - ref_set)
        if missing or extra or len(other) != len(scores[name]["names"]):
            problems.append(f"{name!r}{where[name]} vs {streams[0]!r}{where[streams[0]]}: {len(missing)} missing "
                            f"{missing[:10]}, {len(extra)} extra {extra[:10]}")
    if problems:
        raise ScoreMismatch("the streams' scores do not cover the same test samples: " + "; ".join(problems))
    labels = np.asarray(ref["labels"], dtype=np.int64)
    logits = {}
    for name in streams:
        pos = {n: i for i, n in enumerate(scores[name]["names"])}
        order = np.array([pos[n] for n in ref_names], dtype=np.int64)
        lab = np.asarray(scores[name]["labels"], dtype=np.int64)[order]
        if not np.array_equal(lab, labels):
            bad = [ref_names[i] for i in np.flatnonzero(lab != labels)[:10]]
            raise ScoreMismatch(f"stream {name!r}{where[name]} has different labels than {streams[0]!r}"
                                f"{where[streams[0]]} for {bad}")
        arr = np.asarray(scores[name]["logits"])[order]
        if arr.shape[1] != np.asarray(ref["logits"]).shape[1]:
            raise ScoreMismatch(f"stream {name!r}{where[name]} has {arr.shape[1]} classes, {streams[0]!r}"
                                f"{where[streams[0]]} has {np.asarray(ref['logits']).shape[1]}")
        logits[name] = arr
    return ref_names, labels, logits


def _run_kind(run_dir: Path) -> Optional[str]:
    """The ``kind`` in a run dir's results.json (None when it has none or it is unreadable)."""
    try:
        return json.loads((run_dir / "results.json").read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def fuse(logits: Dict[str, np.ndarray], weights: Dict[str, float], combo: Sequence[str]) -> np.ndarray:
    """sum_s weight_s * softmax(logits_s) over the streams of ``combo``."""
    return sum(float(weights[s]) * softmax(logits[s]) for s in combo)


@register("fusion")
class Fusion(Processor):
    description = "multi-stream fusion: weighted sum of the streams' softmax scores (J, B, M, JB, JM, BM, JBM)"
    kind = "fusion"

    def _abbrev(self, stream: str) -> str:
        return str((self.cfg.abbreviations or {}).get(stream, stream[:1].upper()))

    def combinations(self, streams: List[str]) -> List[Tuple[str, ...]]:
        if self.cfg.combinations:
            by_label = {}
            for r in range(1, len(streams) + 1):
                for combo in itertools.combinations(streams, r):
                    by_label["".join(self._abbrev(s) for s in combo)] = combo
            out = []
            for item in self.cfg.combinations:
                if isinstance(item, str):
                    if item not in by_label:
                        raise ConfigError(f"fusion: unknown combination {item!r}; known: {', '.join(by_label)}")
                    out.append(by_label[item])
                else:
                    unknown = [s for s in item if s not in streams]
                    if unknown:
                        raise ConfigError(f"fusion: combination {item} names unknown streams {unknown}")
                    out.append(tuple(item))
            return out
        return [c for r in range(1, len(streams) + 1) for c in itertools.combinations(streams, r)]

    def check_config(self) -> None:
        super().check_config()
        streams, _ = self.streams_and_weights()
        self.combinations(streams)                            # unknown combination labels or streams

    def streams_and_weights(self) -> Tuple[List[str], Dict[str, float]]:
        """The stream names and their weights, every config mistake about them a ConfigError."""
        cfg = self.cfg
        streams = list((cfg.streams or {}).keys())
        if not streams:
            raise ConfigError("fusion: streams is empty; give {name: run dir} for each stream")
        for key in ("weights", "abbreviations"):
            unknown = sorted(set(cfg.get(key) or {}) - set(streams))
            if unknown:
                raise ConfigError(f"fusion: {key} names {unknown}, which are not streams ({', '.join(streams)})")
        labels_of = {}
        for s in streams:
            labels_of.setdefault(self._abbrev(s), []).append(s)
        clashes = {a: names for a, names in labels_of.items() if len(names) > 1}
        if clashes:
            raise ConfigError(f"fusion: streams share an abbreviation, so their combinations would share labels: "
                              f"{clashes}; give each its own, e.g. abbreviations={{{clashes[next(iter(clashes))][1]}: X}}")
        weights = {}
        for s in streams:
            given = (cfg.weights or {}).get(s, cfg.default_weight)
            if POSITIVE_NUMBER.problem(given):             # the open weights mapping: checked as _types_ would
                raise ConfigError(f"fusion: weights.{s} must be a number > 0, got {given!r}")
            weights[s] = float(given)
            if not isinstance(cfg.streams[s], str) or not cfg.streams[s]:
                raise ConfigError(f"fusion: stream {s!r} must name a run dir or a score file, got {cfg.streams[s]!r}")
        return streams, weights

    def execute(self) -> Dict[str, Any]:
        cfg = self.cfg
        streams, weights = self.streams_and_weights()
        scores, sources = {}, {}
        for s in streams:
            run_dir = expand_path(cfg.streams[s], cfg.work_dir)
            if run_dir.is_dir() and not (run_dir / FINISHED_MARKER).is_file():
                raise ScoreMismatch(f"fusion: stream {s!r}: {run_dir} holds no finished evaluation (no "
                                    f"{FINISHED_MARKER} marker: it failed, was interrupted, is still running or is "
                                    f"being overwritten; its log.txt says which)")
            if run_dir.is_dir() and _run_kind(run_dir) == "knn":
                raise ScoreMismatch(f"fusion: stream {s!r}: {run_dir} is a kNN evaluation, whose scores.pkl "
                                    f"holds one-hot votes, not class scores; fuse linear, semi-supervised or "
                                    f"fine-tuning runs")
            path = run_dir / cfg.scores_file if run_dir.is_dir() else run_dir
            scores[s] = load_scores(path)
            sources[s] = str(path)
        names, labels, logits = align_scores(scores, sources)
        num_classes = next(iter(logits.values())).shape[1]
        class_names = next((sc.get("class_names") for sc in scores.values() if sc.get("class_names")), None)
        if cfg.class_names:
            class_names = load_class_names(str(resolve_repo_path(cfg.class_names)), num_classes)
        rows, table, preds = [], {}, {}
        for combo in self.combinations(streams):
            label = "".join(self._abbrev(s) for s in combo)
            fused = fuse(logits, weights, combo)
            acc = topk_accuracy(fused, labels, (1, 5))
            preds[label] = fused.argmax(1)
            table[label] = {"streams": list(combo), "top1": acc[1], "top5": acc[5]}
            rows.append([label, " + ".join(f"{weights[s]:g}·{s}" for s in combo), acc[1], acc[5]])
        header = ["streams", "fused (weight·stream)", "top-1 (%)", "top-5 (%)"]
        md = markdown_table(header, rows)
        save_text_atomic(self.work_dir / "fusion.md", md)
        save_text_atomic(self.work_dir / "fusion.csv", csv_text(header, rows))
        print(md)  # the CLI's final table
        figures = []
        compare = list(cfg.compare or [])
        if len(compare) == 2 and all(c in preds for c in compare):
            a, b = compare
            path = self.work_dir / f"per_class_{a}_vs_{b}.png"
            plot_per_class_comparison(per_class_accuracy(preds[a], labels, num_classes),
                                      per_class_accuracy(preds[b], labels, num_classes), a, b, path, class_names,
                                      title=f"Per-class top-1: {a} vs {b} fusion")
            figures.append(path.name)
        elif compare:
            logger.warning("fusion: compare=%s skipped (combinations available: %s)", compare, ", ".join(preds))
        report = (f"# {cfg.name}\n\n{self.description}\n\nScores: "
                  + ", ".join(f"{s} = `{p}`" for s, p in sources.items())
                  + f"; {len(names)} test samples.\n\n{md}\n" + "".join(f"![{f}]({f})\n" for f in figures))
        save_text_atomic(self.work_dir / "report.md", report)
        best = max(table.values(), key=lambda r: r["top1"])
        # the run's top-1 / top-5: the fusion of every stream (3s-AC-SAR's JBM) when it is in the table, else the
        # last combination listed (not simply the last: combinations=[JBM, J] would report J)
        headline = next((label for label, row in table.items() if set(row["streams"]) == set(streams)), rows[-1][0])
        return {"kind": self.kind, "processor": self.name, "streams": sources, "weights": weights,
                "num_samples": len(names), "combinations": table, "figures": figures, "headline": headline,
                "top1": table[headline]["top1"], "top5": table[headline]["top5"],
                "best_combination": {"label": next(k for k, v in table.items() if v is best), **best}}
