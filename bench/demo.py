#!/usr/bin/env python
"""The whole AC-SAR pipeline on the embedded synthetic demo data, as ordinary commands.

``python bench/demo.py`` (``make demo``) runs, printing each command before it runs:

1. ``data_gen/synth_gendata.py``  – genuine NTU-format ``.skeleton`` files of procedural motions;
2. ``data_gen/ntu_gendata.py``    – the NTU-60 x-sub arrays, exactly as for the real dataset;
3. ``data_gen/action_images.py``  – 5-frame stick-figure strips rendered from the skeletons;
4. ``data_gen/describe.py``       – one description per sample (kinematic describer; a VLM with
   ``--vlm-model DIR``);
5. ``data_gen/encode_text.py``    – token features (MiniLM; CLIP with ``--clip-checkpoint``);
6. ``main.py pretrain_acsar``     – joint, bone and motion streams with the text branch, and the
   joint stream without it (SCD-Net*);
7. ``main.py linear_evaluation``  – each of those, plus a randomly initialised encoder;
8. ``main.py fusion``             – J, B, M, JB, JM, BM, JBM;
9. ``main.py report``             – every evaluation in one table.

It ends with the results table and writes ``<work-dir>/demo/results.json`` (top-1 per stream and
fusion, with and without text, random-init baseline, wall time per step) and
``<work-dir>/demo/report.md`` (the table and links to the figures).  A step whose output is
already there is skipped, so an interrupted demo continues where it stopped.  ``--quick`` runs a
tiny version (for the test suite).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feeder.io import save_json_atomic, save_text_atomic  # noqa: E402
from processor.runtime import FINISHED_MARKER  # noqa: E402

logger = logging.getLogger("demo")

STREAMS = ("joint", "bone", "motion")
PRETRAIN_CONFIGS = {"joint": "pretrain", "bone": "pretrain_bone", "motion": "pretrain_motion",
                    "joint_notext": "pretrain_notext"}
LINEAR_CONFIGS = {"joint": "linear", "bone": "linear_bone", "motion": "linear_motion",
                  "joint_notext": "linear_notext", "joint_random": "linear_random"}

# --quick: a tiny data set and model, a few epochs (the test suite runs this end to end)
QUICK_SYNTH = ["--num-classes", "4", "--performers", "1-6", "--cameras", "1-2", "--replications", "1",
               "--max-frames", "80"]
QUICK_MODEL = ["model.stem_channels=[4, 8, 4]", "model.hidden_dim=16", "model.num_heads=2", "model.ff_dim=16",
               "model.proj_hidden=16", "model.proj_dim=8", "data.window=16", "data.num_classes=4"]
QUICK_PRETRAIN = ["epochs=2", "batch_size=8", "moco.queue_size=16"]
QUICK_LINEAR = ["epochs=4", "batch_size=16"]


class Step:
    """One command of the demo; ``done()`` says whether its output already exists."""

    def __init__(self, name: str, argv: List[str], done: Callable[[], bool]):
        self.name, self.argv, self.done = name, argv, done


def run_dir_finished(path: Path) -> Callable[[], bool]:
    return lambda: (path / FINISHED_MARKER).exists()


def file_exists(path: Path) -> Callable[[], bool]:
    return path.exists


def never() -> bool:
    return False


def build_steps(args) -> List[Step]:
    py = sys.executable
    data, work = Path(args.data_dir), Path(args.work_dir)
    bench = data / "xsub"
    demo_runs = work / "demo"
    text = "clip" if args.clip_checkpoint else "minilm"
    common = [f"work_dir={work}", f"data.root={bench}", f"data.class_names={data / 'raw' / 'class_names.txt'}"]
    if args.quick:
        common += QUICK_MODEL
    pretrain_common = list(common) + (QUICK_PRETRAIN if args.quick else [])
    if text == "clip":
        pretrain_common += ["data.text=clip", "text.feature_dim=512"]
    linear_common = list(common) + (QUICK_LINEAR if args.quick else [])

    steps = [
        Step("synthetic skeletons", [py, "data_gen/synth_gendata.py", "--out", str(data / "raw"), "--seed",
                                     str(args.seed), "--no-progress", *(QUICK_SYNTH if args.quick else [])],
             file_exists(data / "raw" / "class_names.txt")),
        Step("ntu_gendata", [py, "data_gen/ntu_gendata.py", "--data-path", str(data / "raw"), "--out-folder",
                             str(data), "--dataset", "ntu60", "--benchmark", "xsub", "--ignore-missing-list",
                             "--no-progress"],
             file_exists(bench / "val_label.pkl")),
        Step("action images", [py, "data_gen/action_images.py", "skeleton", "--data", str(bench), "--split", "train",
                               "--split", "val", "--layout", "ntu25", "--out", str(data / "action_images")],
             never),
    ]
    if args.vlm_model:
        describe = [py, "data_gen/describe.py", "vlm", "--images", str(data / "action_images"), "--model",
                    args.vlm_model, "--out", str(data / "descriptions"), "--label-pkl", str(bench / "train_label.pkl"),
                    "--label-pkl", str(bench / "val_label.pkl")]
    else:
        describe = [py, "data_gen/describe.py", "kinematic", "--data", str(bench), "--split", "train", "--split",
                    "val", "--layout", "ntu25", "--out", str(data / "descriptions")]
    steps.append(Step("descriptions", describe, never))
    encode = [py, "data_gen/encode_text.py", "--bench", str(bench), "--split", "train", "--split", "val",
              "--descriptions", str(data / "descriptions"), "--encoder", text]
    if args.clip_checkpoint:
        encode += ["--clip-checkpoint", args.clip_checkpoint]
    steps.append(Step("text features", encode, never))

    for key, config in PRETRAIN_CONFIGS.items():
        steps.append(Step(f"pretrain {key}", [py, "main.py", "pretrain_acsar", "--config", f"config/demo/{config}.yaml",
                                              *pretrain_common],
                          run_dir_finished(demo_runs / config)))
    for key, config in LINEAR_CONFIGS.items():
        steps.append(Step(f"linear {key}", [py, "main.py", "linear_evaluation", "--config",
                                            f"config/demo/{config}.yaml", *linear_common],
                          run_dir_finished(demo_runs / config)))
    steps.append(Step("fusion", [py, "main.py", "fusion", "--config", "config/demo/fusion.yaml", f"work_dir={work}"],
                      run_dir_finished(demo_runs / "fusion")))
    steps.append(Step("report", [py, "main.py", "report", f"work_dir={work}", "name=demo/report", "overwrite=true"],
                      never))
    return steps


def run_step(step: Step) -> Dict[str, object]:
    printable = " ".join(shlex.quote(a if a != sys.executable else "python") for a in step.argv)
    if step.done():
        logger.info("[skip, already done] %s", printable)
        return {"name": step.name, "command": printable, "wall_s": 0.0, "skipped": True}
    logger.info("$ %s", printable)
    started = time.time()
    proc = subprocess.run(step.argv, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    wall = time.time() - started
    if proc.returncode != 0:
        raise SystemExit(f"demo: step {step.name!r} failed (exit {proc.returncode}): {printable}")
    logger.info("  %s: %.1f s", step.name, wall)
    return {"name": step.name, "command": printable, "wall_s": round(wall, 2), "skipped": False}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def collect_results(work: Path, num_classes: int) -> Dict[str, object]:
    runs = work / "demo"
    fusion = read_json(runs / "fusion" / "results.json")
    table = {label: row["top1"] for label, row in fusion["combinations"].items()}
    linear = {key: read_json(runs / config / "results.json") for key, config in LINEAR_CONFIGS.items()}
    return {
        "top1_with_text": table,
        "top1_joint_without_text": linear["joint_notext"]["top1"],
        "top1_joint_random_encoder": linear["joint_random"]["top1"],
        "top5_with_text": {label: row["top5"] for label, row in fusion["combinations"].items()},
        "monitor": linear["joint"].get("monitor"),
        "chance_top1": 100.0 / num_classes,
        "num_test_samples": fusion["num_samples"],
    }


def results_markdown(res: Dict[str, object]) -> str:
    with_text = res["top1_with_text"]
    rows = [("J (joint)", with_text.get("J")), ("B (bone)", with_text.get("B")), ("M (motion)", with_text.get("M")),
            ("JB", with_text.get("JB")), ("JM", with_text.get("JM")), ("BM", with_text.get("BM")),
            ("JBM (3s-AC-SAR)", with_text.get("JBM")),
            ("J without text branch (SCD-Net*)", res["top1_joint_without_text"]),
            ("J, randomly initialised encoder", res["top1_joint_random_encoder"]),
            ("chance", res["chance_top1"])]
    lines = ["| stream / fusion | linear top-1 (%) |", "| --- | --- |"]
    lines += [f"| {name} | {value:.1f} |" for name, value in rows if value is not None]
    return "\n".join(lines)


def write_report(work: Path, res: Dict[str, object], steps: List[dict], quick: bool) -> Path:
    runs = work / "demo"
    figures = []
    for config in ("linear", "linear_notext", "fusion"):
        for png in sorted((runs / config).glob("*.png")):
            figures.append(png.relative_to(runs))
    def wall(step: dict) -> str:
        return "skipped" if step["skipped"] else f"{step['wall_s']:.1f} s"

    timing = "\n".join(f"| {s['name']} | {wall(s)} | `{s['command']}` |" for s in steps)
    text = (f"# AC-SAR demo{' (quick)' if quick else ''}\n\n"
            f"{dt.datetime.now().isoformat(timespec='seconds')} on {socket.gethostname()}; test set: "
            f"{res['num_test_samples']} clips; linear probes monitored on the {res['monitor']} split.\n\n"
            f"{results_markdown(res)}\n\n## Steps\n\n| step | wall time | command |\n| --- | --- | --- |\n{timing}\n\n"
            "## Figures\n\n" + "".join(f"![{p}]({p})\n\n" for p in figures)
            + "\nEvery evaluation: [report/report.md](report/report.md)\n")
    path = runs / "report.md"
    save_text_atomic(path, text)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny data and model, a few epochs (about a minute)")
    parser.add_argument("--work-dir", default=None, help="runs go to <work-dir>/demo/ (default: work_dir, "
                                                         "or work_dir/quick with --quick)")
    parser.add_argument("--data-dir", default=None, help="demo data folder (default: data/demo, data/demo_quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--vlm-model", default=None, help="local Hugging Face VLM folder: describe with it "
                                                          "instead of the kinematic describer")
    parser.add_argument("--clip-checkpoint", default=None, help="local open_clip ViT-B-32 checkpoint: encode with "
                                                                "CLIP instead of MiniLM")
    args = parser.parse_args(argv)
    args.work_dir = Path(args.work_dir or ("work_dir/quick" if args.quick else "work_dir")).resolve()
    args.data_dir = Path(args.data_dir or ("data/demo_quick" if args.quick else "data/demo")).resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo: %(message)s", datefmt="%H:%M:%S")

    started = time.time()
    steps = [run_step(step) for step in build_steps(args)]
    num_classes = len((args.data_dir / "raw" / "class_names.txt").read_text().split("\n")) - 1
    res = collect_results(args.work_dir, num_classes)
    res.update(date=dt.datetime.now().isoformat(timespec="seconds"), host=socket.gethostname(), quick=args.quick,
               steps=steps, total_wall_s=round(time.time() - started, 1),
               text_encoder="clip" if args.clip_checkpoint else "minilm",
               describer="vlm" if args.vlm_model else "kinematic")
    report = write_report(args.work_dir, res, steps, args.quick)
    res["report"] = str(report)
    save_json_atomic(args.work_dir / "demo" / "results.json", res)
    print(f"\nAC-SAR demo{' (quick)' if args.quick else ''}: linear evaluation on the synthetic test split\n")
    print(results_markdown(res))
    print(f"\ntotal wall time {res['total_wall_s']:.0f} s; report: {report}\n"
          f"results: {args.work_dir / 'demo' / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
