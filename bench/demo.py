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
7. ``main.py linear_evaluation``  – each of those, plus a randomly initialised encoder per stream;
8. ``main.py fusion``             – J, B, M, JB, JM, BM, JBM, of the pretrained and of the random encoders;
9. ``main.py report``             – every evaluation in one table.

It ends with the results table and writes ``<work-dir>/demo/results.json`` (top-1 per stream and
fusion, with and without text, the same for randomly initialised encoders, wall time per step) and
``<work-dir>/demo/report.md`` (the table and links to the figures).  A step whose output is
already there is skipped (an interrupted pretraining or probe continues with ``--resume``), so an
interrupted demo continues where it stopped; a data folder made with another ``--seed``, or a work dir
whose runs used other settings or another describer's text, is refused rather than reused.  Independent
steps run side by side (``--jobs``, default 2, each with ``cores // jobs`` torch threads: on 2 cores two
one-thread pretrainings beat one two-thread pretraining at a time); each step's output goes to ``<work-dir>/demo/logs/<step_name>.log``.  ``--quick``
runs a tiny version (for the test suite).  ``--pretrain-set KEY=VALUE`` (repeatable) changes the four
pretrainings, e.g. their length: ``--pretrain-set epochs=120 --pretrain-set 'scheduler.milestones=[100]'``
(bench/EXPERIMENTS.md §1.4: what longer pretraining changes); ``--run-seed`` the seed of every run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from pipeline import (Step, StepResult, changed_settings, pin_settings, reported_epoch, resolved_settings,
                      run_finished, run_steps)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feeder.io import save_json_atomic, save_text_atomic  # noqa: E402

logger = logging.getLogger("demo")

STREAMS = ("joint", "bone", "motion")
PRETRAIN_CONFIGS = {"joint": "pretrain", "bone": "pretrain_bone", "motion": "pretrain_motion",
                    "joint_notext": "pretrain_notext"}
LINEAR_CONFIGS = {"joint": "linear", "bone": "linear_bone", "motion": "linear_motion",
                  "joint_notext": "linear_notext", "joint_random": "linear_random",
                  "bone_random": "linear_random_bone", "motion_random": "linear_random_motion"}
#: fusion steps: (config/demo/<run>.yaml and <work-dir>/demo/<run>, the probe steps it fuses)
FUSIONS = {"fusion": ("fusion", [f"linear {key}" for key in STREAMS]),
           "fusion random": ("fusion_random", [f"linear {key}_random" for key in STREAMS])}

# --quick: a tiny data set and model, a few epochs (the test suite runs this end to end)
#: what made the data in --data-dir (the synthetic generator's seed) and the text the pretrainings in
#: <work-dir>/demo read (describer, encoder): later invocations must ask for the same (pipeline.pin_settings)
DATA_SETTINGS = "demo_data_settings.json"
TEXT_SETTINGS = "text_settings.json"
QUICK_NOTE = ("Quick mode is a smoke test of the commands (a few clips, a tiny model, 2 epochs): its accuracies "
              "carry no meaning; `make demo` gives the real table.")
QUICK_SYNTH = ["--num-classes", "4", "--performers", "1-6", "--cameras", "1-2", "--replications", "1",
               "--max-frames", "80"]
QUICK_MODEL = ["model.stem_channels=[4, 8, 4]", "model.hidden_dim=16", "model.num_heads=2", "model.ff_dim=16",
               "model.proj_hidden=16", "model.proj_dim=8", "data.window=16", "data.num_classes=4"]
QUICK_PRETRAIN = ["epochs=2", "batch_size=8", "moco.queue_size=16"]
QUICK_LINEAR = ["epochs=4", "batch_size=16"]


def file_exists(path: Path) -> Callable[[], bool]:
    return path.exists


def never() -> bool:
    return False


DATA_STEPS = ("synthetic skeletons", "ntu_gendata", "action images", "descriptions", "text features")


def run_overrides(args) -> Dict[str, List[str]]:
    """The key=value arguments of the demo's pretraining and linear-probe commands."""
    data, work = Path(args.data_dir), Path(args.work_dir)
    common = [f"work_dir={work}", f"data.root={data / 'xsub'}", f"data.class_names={data / 'raw' / 'class_names.txt'}",
              "progress_bar=false"]                                    # the output goes to a log file
    if args.quick:
        common += QUICK_MODEL
    if args.run_seed is not None:
        common.append(f"seed={args.run_seed}")
    pretrain = list(common) + (QUICK_PRETRAIN if args.quick else [])
    if args.clip_checkpoint:
        pretrain += ["data.text=clip", "text.feature_dim=512"]
    pretrain += args.pretrain_set                                      # last, so they win
    return {"pretrain": pretrain, "linear": list(common) + (QUICK_LINEAR if args.quick else [])}


def build_steps(args) -> List[Step]:
    py = sys.executable
    data, work = Path(args.data_dir), Path(args.work_dir)
    bench = data / "xsub"
    demo_runs = work / "demo"
    text = "clip" if args.clip_checkpoint else "minilm"
    overrides = run_overrides(args)
    pretrain_common, linear_common = overrides["pretrain"], overrides["linear"]

    chain = lambda i: [DATA_STEPS[i - 1]] if i else []    # noqa: E731  the data steps run one after another
    steps = [
        Step(DATA_STEPS[0], [py, "data_gen/synth_gendata.py", "--out", str(data / "raw"), "--seed",
                             str(args.seed), "--no-progress", *(QUICK_SYNTH if args.quick else [])],
             file_exists(data / "raw" / "class_names.txt")),
        Step(DATA_STEPS[1], [py, "data_gen/ntu_gendata.py", "--data-path", str(data / "raw"), "--out-folder",
                             str(data), "--dataset", "ntu60", "--benchmark", "xsub", "--ignore-missing-list",
                             "--no-progress"],
             file_exists(bench / "val_label.pkl"), chain(1)),
        Step(DATA_STEPS[2], [py, "data_gen/action_images.py", "skeleton", "--data", str(bench), "--split", "train",
                             "--split", "val", "--layout", "ntu25", "--out", str(data / "action_images")],
             never, chain(2)),
    ]
    if args.vlm_model:
        describe = [py, "data_gen/describe.py", "vlm", "--images", str(data / "action_images"), "--model",
                    args.vlm_model, "--out", str(data / "descriptions_vlm"), "--label-pkl", str(bench / "train_label.pkl"),
                    "--label-pkl", str(bench / "val_label.pkl")]
    else:
        describe = [py, "data_gen/describe.py", "kinematic", "--data", str(bench), "--split", "train", "--split",
                    "val", "--layout", "ntu25", "--out", str(data / "descriptions")]
    steps.append(Step(DATA_STEPS[3], describe, never, chain(3)))
    descriptions = data / ("descriptions_vlm" if args.vlm_model else "descriptions")  # each describer its own folder
    encode = [py, "data_gen/encode_text.py", "--bench", str(bench), "--split", "train", "--split", "val",
              "--descriptions", str(descriptions), "--encoder", text]
    if args.clip_checkpoint:
        encode += ["--clip-checkpoint", args.clip_checkpoint]
    steps.append(Step(DATA_STEPS[4], encode, never, chain(4)))

    for key, config in PRETRAIN_CONFIGS.items():
        steps.append(Step(f"pretrain {key}", [py, "main.py", "pretrain_acsar", "--config", f"config/demo/{config}.yaml",
                                              *pretrain_common],
                          run_finished(demo_runs / config), [DATA_STEPS[-1]], resume=demo_runs / config))
    for key, config in LINEAR_CONFIGS.items():
        needs = [f"pretrain {key}"] if key in PRETRAIN_CONFIGS else [DATA_STEPS[-1]]
        steps.append(Step(f"linear {key}", [py, "main.py", "linear_evaluation", "--config",
                                            f"config/demo/{config}.yaml", *linear_common],
                          run_finished(demo_runs / config), needs, resume=demo_runs / config))
    for name, (run, probes) in FUSIONS.items():
        steps.append(Step(name, [py, "main.py", "fusion", "--config", f"config/demo/{run}.yaml", f"work_dir={work}"],
                          run_finished(demo_runs / run), probes))
    steps.append(Step("report", [py, "main.py", "report", f"work_dir={work}", "name=demo/report", "overwrite=true"],
                      never, [f"linear {key}" for key in LINEAR_CONFIGS] + list(FUSIONS)))
    return steps


def check_pretrain_overrides(args) -> None:
    """Resolve the four pretraining configs with ``--pretrain-set`` / ``--run-seed`` before any step
    runs, so a typo fails before the data steps rather than after them (strict keys, as main.py); and
    refuse a work dir whose finished pretrainings were run with other values of those keys (or another
    length or seed), which the demo would otherwise reuse without a word."""
    from processor.config import ConfigError

    overrides = run_overrides(args)["pretrain"]
    earlier = args.work_dir / "demo" / "results.json"            # work dirs from before text_settings.json
    if earlier.is_file() and any(run_finished(args.work_dir / "demo" / c)() for c in PRETRAIN_CONFIGS.values()):
        before = read_json(earlier)
        differ = [f"{k}={before.get(k)!r} there, {v!r} asked" for k, v in text_source(args).items()
                  if before.get(k, v) != v]
        if differ:
            raise SystemExit(f"demo: {args.work_dir / 'demo'} holds pretrainings on other text ({'; '.join(differ)}); "
                             "give a fresh --work-dir")
    checked = {"epochs", "seed", "data.text"} | {item.partition("=")[0].strip() for item in args.pretrain_set}
    for config in PRETRAIN_CONFIGS.values():
        try:
            wanted = resolved_settings("pretrain_acsar", ROOT / "config" / "demo" / f"{config}.yaml", overrides)
        except ConfigError as err:
            raise SystemExit(f"demo: --pretrain-set / --run-seed: {err}") from None
        run = args.work_dir / "demo" / config
        differ = changed_settings(run, wanted, checked)
        if differ:
            raise SystemExit(f"demo: {run} holds a run with other settings ({'; '.join(differ)}); "
                             "give a fresh --work-dir")
    pin_demo_settings(args, dry_run=True)


def pin_demo_settings(args, dry_run: bool = False) -> None:
    """Refuse a data folder made with another ``--seed`` (or ``--quick``) and a work dir whose pretrainings
    read another describer's or encoder's text; record both when the demo starts (``dry_run``: only check).
    Until the data, or a pretraining, exists the record follows what is asked (a first attempt that stopped
    early binds nothing).  Data made before this record existed is taken as made with the seed asked."""
    pin_settings(args.data_dir / DATA_SETTINGS, {"seed": args.seed, "quick": args.quick},
                 f"demo: the data in {args.data_dir} (--data-dir)", dry_run,
                 binding=(args.data_dir / "raw" / "class_names.txt").is_file())
    pretrained = any((args.work_dir / "demo" / c / "config.yaml").is_file() for c in PRETRAIN_CONFIGS.values())
    pin_settings(args.work_dir / "demo" / TEXT_SETTINGS, text_source(args),
                 f"demo: the pretrainings in {args.work_dir / 'demo'} (--work-dir)", dry_run, binding=pretrained)


def text_source(args) -> Dict[str, str]:
    """What the pretrainings' text is made with, as results.json and text_settings.json record it."""
    return {"describer": "vlm" if args.vlm_model else "kinematic",
            "text_encoder": "clip" if args.clip_checkpoint else "minilm"}


def step_record(result: StepResult) -> Dict[str, object]:
    """One entry of results.json's ``steps``."""
    return {"name": result.name, "command": result.command, "wall_s": result.wall_s,
            "skipped": result.status == "skipped"}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def fused(fusion: dict, metric: str = "top1") -> Dict[str, float]:
    """``{J, B, ..., JBM: metric}`` of a fusion run's results.json."""
    return {label: row[metric] for label, row in fusion["combinations"].items()}


def collect_results(work: Path, num_classes: int) -> Dict[str, object]:
    runs = work / "demo"
    fusion = read_json(runs / "fusion" / "results.json")
    linear = {key: read_json(runs / config / "results.json") for key, config in LINEAR_CONFIGS.items()}
    return {
        "top1_with_text": fused(fusion),
        "top1_joint_without_text": linear["joint_notext"]["top1"],
        "top1_joint_random_encoder": linear["joint_random"]["top1"],
        "top1_random_encoder": fused(read_json(runs / "fusion_random" / "results.json")),
        "top5_with_text": fused(fusion, "top5"),
        "monitor": linear["joint"].get("monitor"),
        "report_epoch": linear["joint"].get("report_epoch", "best"),
        "chance_top1": 100.0 / num_classes,
        "num_test_samples": fusion["num_samples"],
    }


def results_markdown(res: Dict[str, object]) -> str:
    """The demo's table: each stream and fusion pretrained (with text) beside the same probe and fusion on
    randomly initialised encoders; then the joint stream pretrained without text, and chance."""
    with_text, baseline = res["top1_with_text"], res["top1_random_encoder"]
    names = {"J": "J (joint)", "B": "B (bone)", "M": "M (motion)", "JBM": "JBM (3s-AC-SAR)"}
    rows = [(names.get(label, label), with_text.get(label), baseline.get(label))
            for label in ("J", "B", "M", "JB", "JM", "BM", "JBM")]
    rows += [("J without text branch (SCD-Net*)", res["top1_joint_without_text"], None),
             ("chance", res["chance_top1"], res["chance_top1"])]
    lines = ["| stream / fusion | linear top-1 (%), pretrained | randomly initialised encoders |",
             "| --- | --- | --- |"]
    lines += [f"| {name} | {value:.1f} | {'–' if base is None else f'{base:.1f}'} |"
              for name, value, base in rows if value is not None]
    return "\n".join(lines)


def write_report(work: Path, res: Dict[str, object], steps: List[dict], quick: bool) -> Path:
    runs = work / "demo"
    figures = []
    for config in ("linear", "linear_notext", "fusion"):
        for png in sorted((runs / config).glob("*.png")):
            figures.append(png.relative_to(runs))
    def wall(step: dict) -> str:
        return "skipped" if step["skipped"] else f"{step['wall_s']:.1f} s"

    settings = QUICK_NOTE + "\n\n" if quick else ""
    if res.get("pretrain_overrides") or res.get("run_seed") is not None:
        seed = "the configs' own" if res["run_seed"] is None else res["run_seed"]
        overrides = " ".join(res["pretrain_overrides"]) or "none"
        settings += f"Not the default demo: pretraining overrides {overrides}; run seed {seed}.\n\n"
    timing = "\n".join(f"| {s['name']} | {wall(s)} | `{s['command']}` |" for s in steps)
    text = (f"# AC-SAR demo{' (quick)' if quick else ''}\n\n"
            f"{dt.datetime.now().isoformat(timespec='seconds')} on {socket.gethostname()}; test set: "
            f"{res['num_test_samples']} clips; linear probes: {reported_epoch(runs / 'linear')}.\n\n"
            f"{settings}{results_markdown(res)}\n\n## Steps\n\n| step | wall time | command |\n| --- | --- | --- |\n{timing}\n\n"
            "## Figures\n\n" + "".join(f"![{p}]({p})\n\n" for p in figures)
            + "\nEvery evaluation: [report/report.md](report/report.md)\n")
    path = runs / "report.md"
    save_text_atomic(path, text)
    return path


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
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
    parser.add_argument("--pretrain-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for the four pretrainings (repeatable), e.g. "
                             "--pretrain-set epochs=120 --pretrain-set 'scheduler.milestones=[100]'; "
                             "with a fresh --work-dir (finished runs with other settings are refused)")
    parser.add_argument("--run-seed", type=int, default=None,
                        help="seed of the pretrainings and linear probes (model init, sampling, augmentation; "
                             "default: the configs' seed); --seed is the data's")
    cores = os.cpu_count() or 1
    parser.add_argument("--jobs", type=int, default=min(2, cores),
                        help="independent steps (the four pretrainings, the probes) run side by side "
                             "(default: 2 on 2+ cores)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per step (default: cores // jobs)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--jobs and --threads must be at least 1")
    for item in args.pretrain_set:
        if "=" not in item or item.startswith("="):
            parser.error(f"--pretrain-set expects KEY=VALUE, got {item!r}")
    args.threads = args.threads or max(1, cores // args.jobs)
    args.work_dir = Path(args.work_dir or ROOT / ("work_dir/quick" if args.quick else "work_dir")).resolve()
    args.data_dir = Path(args.data_dir or ROOT / ("data/demo_quick" if args.quick else "data/demo")).resolve()
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo: %(message)s", datefmt="%H:%M:%S")
    check_pretrain_overrides(args)
    pin_demo_settings(args)

    started = time.time()
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    logs = args.work_dir / "demo" / "logs"
    logger.info("%d step(s) side by side, %d torch thread(s) each; each step's output: %s/<step_name>.log",
                args.jobs, args.threads, logs)
    results = run_steps(build_steps(args), jobs=args.jobs, cwd=ROOT, env=env, logs=logs)
    failed = [r.name for r in results if r.status == "failed"]
    if failed:
        raise SystemExit(f"demo: step(s) failed: {', '.join(failed)} (logs in {logs})")
    steps = [step_record(r) for r in results]
    num_classes = len((args.data_dir / "raw" / "class_names.txt").read_text().split("\n")) - 1
    res = collect_results(args.work_dir, num_classes)
    res.update(date=dt.datetime.now().isoformat(timespec="seconds"), host=socket.gethostname(), quick=args.quick,
               steps=steps, total_wall_s=round(time.time() - started, 1),
               **text_source(args),
               pretrain_overrides=list(args.pretrain_set), run_seed=args.run_seed)
    report = write_report(args.work_dir, res, steps, args.quick)
    res["report"] = str(report)
    save_json_atomic(args.work_dir / "demo" / "results.json", res)
    print(f"\nAC-SAR demo{' (quick)' if args.quick else ''}: linear evaluation on the synthetic test split\n")
    print(results_markdown(res))
    if args.quick:
        print(f"\n{QUICK_NOTE}")
    print(f"\ntotal wall time {res['total_wall_s']:.0f} s; report: {report}\n"
          f"results: {args.work_dir / 'demo' / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
