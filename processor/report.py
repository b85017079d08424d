"""``report``: one table of every finished evaluation under a work dir.

``python main.py report work_dir=work_dir`` (no config needed) walks ``work_dir`` for
``results.json`` files beside a ``FINISHED`` marker whose ``kind`` is one of ``kinds``
(linear, semi, finetune, knn, fusion; written by the evaluation processors) and writes
``report.md`` and ``report.csv`` into its own run dir (``<work_dir>/report`` by default):
one row per evaluation (run, kind, stream, label fraction, monitored split, which epoch the
run reports (``report_epoch``) with its test top-1 / top-5, then the test top-1 at the best
monitored epoch and at the last epoch, each with its epoch) and, per fusion run, one row
per stream combination.  The Markdown table is also printed.  A run without its ``FINISHED`` marker
(crashed, interrupted or still running: its run record ``run_info.json``, written when a run starts, or an
evaluation's ``results.json`` without the marker) is left out of the table and named in the log and under
the table; a ``results.json`` with no evaluation ``kind`` (``bench/demo.py``'s summary of a whole demo) is
not a run and is passed over.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Tuple

from feeder.io import save_text_atomic
from processor.base import Processor
from processor.evaluation.markdown import csv_text, markdown_table
from processor.registry import register
from processor.runtime import FINISHED_MARKER, OVERWRITTEN_DIR, RUN_RECORD

logger = logging.getLogger(__name__)

HEADER = ["run", "kind", "stream", "label fraction", "monitor", "reported epoch", "top-1 (%)", "top-5 (%)",
          "top-1 best epoch (%)", "best epoch", "top-1 last epoch (%)", "last epoch", "pretrained"]
#: the ``kind`` values the evaluation processors write into results.json
KNOWN_KINDS = ("linear", "semi", "finetune", "knn", "fusion")


def _skipped(run_dir: Path, work_dir: Path, exclude: Path = None) -> bool:
    if OVERWRITTEN_DIR in run_dir.relative_to(work_dir).parts:
        return True  # an earlier run that overwrite=true replaced
    return exclude is not None and run_dir.resolve() == Path(exclude).resolve()


def collect(work_dir: Path, kinds: List[str], exclude: Path = None) -> Tuple[List[Dict[str, Any]], List[str]]:
    """(finished runs under ``work_dir`` with a ``kind`` in ``kinds``, as ``{run, results}``; the names of the
    unfinished runs: a run record or an evaluation's results.json but no FINISHED marker)."""
    unknown = sorted(set(kinds) - set(KNOWN_KINDS))
    if unknown:
        raise ValueError(f"report: kinds names {unknown}, which no evaluation writes; known kinds: {list(KNOWN_KINDS)}")
    work_dir = Path(work_dir)
    found, unfinished = [], set()
    for path in work_dir.rglob(RUN_RECORD):
        # a run that crashed or was stopped has its run record (written at its start) but no results.json
        if not _skipped(path.parent, work_dir, exclude) and not (path.parent / FINISHED_MARKER).exists():
            unfinished.add(str(path.parent.relative_to(work_dir)))
    for path in sorted(work_dir.rglob("results.json")):
        run_dir = path.parent
        if _skipped(run_dir, work_dir, exclude):
            continue
        finished = (run_dir / FINISHED_MARKER).exists()
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            if finished:
                logger.warning("%s: unreadable (%s), skipped", path, err)
            else:
                unfinished.add(str(run_dir.relative_to(work_dir)))
            continue
        if not isinstance(results, dict) or results.get("kind") not in KNOWN_KINDS:
            continue  # not an evaluation's results (e.g. bench/demo.py's summary of a whole demo)
        if not finished:
            unfinished.add(str(run_dir.relative_to(work_dir)))
        elif results["kind"] in kinds:
            found.append({"run": str(run_dir.relative_to(work_dir)), "results": results})
    if unfinished:
        logger.warning("report: %d run(s) without a %s marker (crashed, interrupted or running) left out: %s",
                       len(unfinished), FINISHED_MARKER, ", ".join(sorted(unfinished)))
    return found, sorted(unfinished)


def rows_of(entry: Dict[str, Any]) -> List[List[Any]]:
    run, r = entry["run"], entry["results"]
    if r["kind"] == "fusion":
        return [[f"{run} [{label}]", "fusion", "+".join(c["streams"]), None, None, None, c["top1"], c["top5"],
                 None, None, None, None, None] for label, c in r.get("combinations", {}).items()]
    best = r.get("test_best_monitored_epoch") or {}
    last = r.get("test_last_epoch") or {}
    kind = r["kind"] if r["kind"] != "knn" else f"knn (k={r.get('k')})"
    frozen = r.get("freeze_encoder")      # semi_supervised / linear_evaluation can fine-tune, finetune can freeze
    if frozen is False and r["kind"] != "finetune":
        kind += " (encoder trained)"
    elif frozen is True and r["kind"] == "finetune":
        kind += " (encoder frozen)"
    pretrained = r.get("pretrained") or {}
    pre = pretrained.get("path") or "random init"
    if pretrained.get("pretrain_complete") is False:       # an intermediate checkpoint: say how far it got
        pre += f" (epoch {pretrained.get('pretrain_epoch_reached')} of {pretrained.get('pretrain_epochs')})"
    fraction = r.get("label_fraction")        # as given (0.005), not with the accuracies' two decimals (0.01)
    if isinstance(fraction, (int, float)) and not isinstance(fraction, bool):
        fraction = f"{fraction:g}"
    return [[run, kind, r.get("stream"), fraction, r.get("monitor"), r.get("report_epoch"),
             r.get("top1"), r.get("top5"), best.get("top1"), best.get("epoch"), last.get("top1"), last.get("epoch"),
             pre]]


@register("report")
class Report(Processor):
    description = "collect every finished evaluation under work_dir into one Markdown / CSV table"

    def execute(self) -> Dict[str, Any]:
        work_dir = Path(self.cfg.work_dir)
        entries, unfinished = collect(work_dir, list(self.cfg.kinds), exclude=self.work_dir)
        rows = [row for e in entries for row in rows_of(e)]
        md = markdown_table(HEADER, rows)
        left_out = ""
        if unfinished:
            left_out = (f"\nNot finished (no {FINISHED_MARKER} marker: crashed, interrupted or still running), left "
                        f"out: {', '.join(f'`{run}`' for run in unfinished)}\n")
        save_text_atomic(self.work_dir / "report.md", f"# Evaluations under {work_dir}\n\n{md}{left_out}")
        save_text_atomic(self.work_dir / "report.csv", csv_text(HEADER, rows))
        print(md)  # the CLI's final table
        logger.info("report: %d evaluations, %d rows -> %s", len(entries), len(rows), self.work_dir / "report.md")
        return {"kind": "report", "num_runs": len(entries), "runs": [e["run"] for e in entries],
                "unfinished": unfinished}
