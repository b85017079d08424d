#!/usr/bin/env python
"""NW-UCLA cross-view end to end on CPU: data, descriptions, text features, pretraining, evaluations.

Every step is an ordinary command (``python data_gen/<x>.py ...`` or ``python main.py ...``),
printed before it runs; its output goes to ``<work-dir>/nwucla_logs/<step_name>.log``.  A step
that is already done is skipped: data files present, one description per sample, or the
run dir's ``FINISHED`` marker (an unfinished run with a ``latest.pt`` is continued with
``--resume``); ``encode_text.py`` always runs and skips what is up to date itself.  A run dir whose run
(finished or not) used another seed, length or text encoder than asked, or a work dir whose pretrainings
read another describer's text (``<work-dir>/nwucla/xview/text_settings.json``), is refused rather than
reused.  Independent steps run side by side (``--jobs``, default 2 = one per core, each with one thread).
At the end ``<work-dir>/nwucla_results.md`` holds the results table (linear J/B/M and their fusions, kNN,
10 % semi-supervised; with and without the text branch) and the wall time of every step; it is also printed.

Steps (configs in ``config/nwucla/xview/``):

1. ``gendata``: ``data_gen/ucla_gendata.py`` -> ``<data>/xview`` (one person per sample, M = 1);
2. ``images``: ``data_gen/action_images.py skeleton`` -> ``<data>/action_images`` (5 rendered frames);
3. ``describe``: ``data_gen/describe.py kinematic`` -> ``<data>/descriptions``, or with ``--vlm DIR``
   ``describe.py vlm`` on the action images -> ``<data>/descriptions_vlm``;
4. ``encode``: ``data_gen/encode_text.py`` -> ``<data>/xview/text/{split}_minilm.npy`` (``--clip-checkpoint``:
   CLIP ViT-B/32, ``_clip.npy``);
5. pretraining: joint / bone / motion, with the text branch and without (SCD-Net*);
6. evaluations: linear (6), kNN and semi-supervised 10 % (joint, with / without text), JBM fusion
   (with / without text), and the same on randomly initialised encoders (``*_random*``: linear J, B, M
   and their fusion, kNN and semi-supervised 10 % on the joint stream), ``main.py report``.

Usage::

    python bench/nwucla.py                                   # defaults: ../shared/data/nw_ucla, data/nwucla, work_dir
    python bench/nwucla.py --source PATH --data data/nwucla --work-dir work_dir/nwucla_cpu
    python bench/nwucla.py --vlm weights/Ovis2-1B-hf --clip-checkpoint weights/ViT-B-32.pt
    python bench/nwucla.py --epochs 10 --dry-run               # print the commands only
    python bench/nwucla.py --run-seed 2 --work-dir work_dir/nwucla_seed2   # another seed of every run
    python bench/nwucla.py --quick --work-dir /tmp/nwucla_smoke  # smoke test of every step (minutes)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

from pipeline import (Step, StepResult, changed_settings, pin_settings, reported_epoch, resolved_settings,
                      run_finished, run_steps)

from feeder.io import save_json_atomic, save_text_atomic  # noqa: E402  (pipeline put the repository root on sys.path)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "config/nwucla/xview"
RUN = "nwucla/xview"          # run dirs: <work-dir>/nwucla/xview/<config name>
SPLITS = ("train", "val")
TEXT_SETTINGS = "text_settings.json"   # describer and encoder of the text the pretrainings read (pin_settings)
# the settings this script's options change: a run (finished or not) with other values is refused, not reused
CHECKED_KEYS = ("seed", "epochs", "scheduler.milestones", "data.text", "report_epoch", "scores_file")
#: the J, B, M linear probes of each row of the table (run dirs), by suffix: with text, without, random encoders;
#: the row's fusion, kNN and semi-supervised runs are fusion<suffix>, knn<suffix>, semi_10<suffix>
LINEAR_RUNS = {t: tuple(f"linear{s}{t}" for s in ("", "_bone", "_motion")) for t in ("", "_notext")}
LINEAR_RUNS["_random"] = ("linear_random", "linear_random_bone", "linear_random_motion")
#: the joint stream's other evaluations (processor, run dir prefix); each row has run<suffix>
JOINT_EVALS = (("knn_evaluation", "knn"), ("semi_supervised", "semi_10"))


def _finished(work: Path, name: str) -> Callable[[], bool]:
    return run_finished(work / RUN / name)


def _count(folder: Path, suffix: str) -> int:
    return sum(1 for _ in folder.glob(f"*{suffix}")) if folder.is_dir() else 0


def _num_samples(bench: Path) -> Optional[int]:
    sys.path.insert(0, str(ROOT))
    from feeder.io import load_label_pkl

    try:
        return sum(len(load_label_pkl(bench / f"{s}_label.pkl")[0]) for s in SPLITS)
    except (OSError, ValueError):
        return None


def build_steps(args) -> List[Step]:
    py = [sys.executable]
    data, work = Path(args.data), Path(args.work_dir)
    bench = data / "xview"
    text_name = "clip" if args.clip_checkpoint else "minilm"
    desc = data / ("descriptions_vlm" if args.vlm else "descriptions")
    steps: List[Step] = []
    gen_files = [bench / f"{s}_{k}" for s in SPLITS for k in ("data_joint.npy", "num_frame.npy", "label.pkl")]
    steps.append(Step("gendata", py + ["data_gen/ucla_gendata.py", "--data-path", str(args.source), "--out-folder",
                                       str(data), "--num-persons", "1", "--no-progress"],
                      lambda: all(f.is_file() for f in gen_files)))
    splits = [a for s in SPLITS for a in ("--split", s)]
    def complete(folder: Path, suffix: str) -> Callable[[], bool]:
        def done() -> bool:
            n = _num_samples(bench)
            return n is not None and _count(folder, suffix) >= n
        return done

    if not args.no_images or args.vlm:
        steps.append(Step("images", py + ["data_gen/action_images.py", "skeleton", "--data", str(bench), *splits,
                                          "--layout", "kinect_v1", "--out", str(data / "action_images")],
                          complete(data / "action_images", ".jpg"), ["gendata"]))
    if args.vlm:
        pkls = [a for s in SPLITS for a in ("--label-pkl", str(bench / f"{s}_label.pkl"))]
        steps.append(Step("describe", py + ["data_gen/describe.py", "vlm", "--images", str(data / "action_images"),
                                            "--model", str(args.vlm), *pkls, "--out", str(desc), "--device",
                                            args.device], complete(desc, ".txt"), ["images"]))
    else:
        steps.append(Step("describe", py + ["data_gen/describe.py", "kinematic", "--data", str(bench), *splits,
                                            "--layout", "kinect_v1", "--out", str(desc), "--batch-size", "64"],
                          complete(desc, ".txt"), ["gendata"]))
    enc = py + ["data_gen/encode_text.py", "--bench", str(bench), *splits, "--descriptions", str(desc),
                "--encoder", text_name]
    if args.clip_checkpoint:
        enc += ["--clip-checkpoint", str(args.clip_checkpoint)]
    # always run: encode_text skips a split by itself when its features match the descriptions, names and
    # encoder (the .json beside them), and recomputes it when they do not (another describer, say)
    steps.append(Step("encode", enc, lambda: False, ["describe"]))

    common = [f"work_dir={work}", f"data.root={bench}"]
    if args.run_seed is not None:
        common.append(f"seed={args.run_seed}")
    train = list(common)
    epochs = 1 if args.quick else args.epochs
    if epochs is not None:
        train += [f"epochs={epochs}", f"scheduler.milestones=[{max(1, int(epochs * 0.75))}]"]
    quick_eval = ["epochs=2"] if args.quick else []
    text_over = ["data.text=clip", "text.feature_dim=512"] if args.clip_checkpoint else []
    for stream in ("", "_bone", "_motion"):
        for notext in ("", "_notext"):
            name = f"pretrain{stream}{notext}"
            over = train + ([] if notext else text_over) + ["progress_bar=false"]
            steps.append(Step(name, py + ["main.py", "pretrain_acsar", "--config", f"{CONFIG}/{name}.yaml", *over],
                              _finished(work, name), ["gendata"] if notext else ["encode"], resume=work / RUN / name))
    # evaluations: (processor, run name, config, the step it needs, extra overrides); the baselines are each
    # evaluation of the joint stream, and the linear probes of every stream, on a randomly initialised encoder
    # (the configs of the pretrained runs with pretrained=null, in their own run dirs)
    evals = [("linear_evaluation", f"linear{s}{t}", f"linear{s}{t}", f"pretrain{s}{t}", [])
             for t in ("", "_notext") for s in ("", "_bone", "_motion")]
    evals += [(proc, f"{run}{t}", f"{run}{t}", f"pretrain{t}", [])
              for proc, run in JOINT_EVALS for t in ("", "_notext")]
    baselines = [("linear_evaluation", run, config) for run, config in zip(LINEAR_RUNS["_random"], LINEAR_RUNS[""])]
    baselines += [(proc, f"{run}_random", run) for proc, run in JOINT_EVALS]
    evals += [(proc, name, config, "gendata", ["pretrained=null", f"name={RUN}/{name}"])
              for proc, name, config in baselines]
    for proc, name, config, dep, over in evals:
        extra = quick_eval if proc != "knn_evaluation" else []
        steps.append(Step(name, py + ["main.py", proc, "--config", f"{CONFIG}/{config}.yaml", *common, *extra, *over,
                                      "progress_bar=false"], _finished(work, name), [dep], resume=work / RUN / name))
    for t, probes in LINEAR_RUNS.items():
        steps.append(Step(f"fusion{t}", py + ["main.py", "fusion", "--config", f"{CONFIG}/fusion{t}.yaml",
                                              f"work_dir={work}"], _finished(work, f"fusion{t}"), list(probes)))
    return steps


def _read(work: Path, name: str) -> Optional[dict]:
    path = work / RUN / name / "results.json"
    if not _finished(work, name)():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def results_table(work: Path, text_label: str) -> str:
    def f(v):
        return "–" if v is None else f"{v:.1f}"

    header = ["pretraining", "J linear", "B linear", "M linear", "JB", "JM", "BM", "JBM", "J kNN (k=1)",
              "J semi 10 %"]
    rows = []
    for label, t in ((f"AC-SAR (text: {text_label})", ""), ("SCD-Net* (no text)", "_notext"),
                     ("random init (no pretraining)", "_random")):
        lin = [(_read(work, run) or {}).get("top1") for run in LINEAR_RUNS[t]]
        fus = (_read(work, f"fusion{t}") or {}).get("combinations", {})
        fused = [fus.get(c, {}).get("top1") for c in ("JB", "JM", "BM", "JBM")]
        knn = (_read(work, f"knn{t}") or {}).get("top1")
        semi = (_read(work, f"semi_10{t}") or {}).get("top1")
        rows.append([label, *map(f, lin), *map(f, fused), f(knn), f(semi)])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def check_finished_runs(steps: List[Step], work: Path) -> None:
    """Resolve every ``main.py`` step's config with its overrides before anything runs (a bad key fails at
    once), and refuse a work dir whose finished runs used another seed, length or text encoder than asked:
    the pipeline would otherwise skip them and report their results as this run's."""
    from processor.config import ConfigError          # importable: pipeline put ROOT on sys.path

    for step in steps:
        if step.cmd[1:2] != ["main.py"] or step.cmd[3:4] != ["--config"]:    # [py, main.py, proc, --config, yaml, ...]
            continue
        run_dir = work / RUN / step.name
        try:
            wanted = resolved_settings(step.cmd[2], ROOT / step.cmd[4], step.cmd[5:])
        except ConfigError as err:
            raise SystemExit(f"nwucla: {step.name}: {err}") from None
        differ = changed_settings(run_dir, wanted, CHECKED_KEYS)
        if differ:
            raise SystemExit(f"nwucla: {run_dir} holds a run with other settings ({'; '.join(differ)}); "
                             "give a fresh --work-dir")


def source_problem(source: Path) -> Optional[str]:
    """Why ``ucla_gendata.py --data-path source`` cannot read NW-UCLA there, or None when it can."""
    if not source.is_dir():
        return f"{source} does not exist" if not source.exists() else f"{source} is not a folder"
    if (source / "all_sqe").is_dir() or next(source.glob("*.json"), None) is not None:
        return None
    return f"{source} holds neither an all_sqe/ folder nor .json sequences"


def check_source(steps: List[Step], source: Path, dry_run: bool) -> bool:
    """False (after an error message) when the data still has to be prepared and ``source`` cannot give it."""
    gendata = next(s for s in steps if s.name == "gendata")
    problem = None if gendata.done() else source_problem(source)
    if problem is None:
        return True
    message = (f"NW-UCLA source: {problem}; the gendata step reads it. Get the preprocessed all_sqe/ release "
               f"(README, Data preparation) and pass --source PATH (default: ../shared/data/nw_ucla next to "
               f"the checkout)")
    if dry_run:
        print(f"warning: {message}. A real run would stop here.", file=sys.stderr, flush=True)
        return True
    print(f"error: {message}.", file=sys.stderr, flush=True)
    return False


def run(args) -> int:
    steps = build_steps(args)
    if not check_source(steps, Path(args.source), args.dry_run):
        return 2
    work = Path(args.work_dir)
    check_finished_runs(steps, work)
    pretrained = any((work / RUN / s.name / "config.yaml").is_file() for s in steps if s.name.startswith("pretrain"))
    pin_settings(work / RUN / TEXT_SETTINGS, {"describer": "vlm" if args.vlm else "kinematic",
                                              "text_encoder": "clip" if args.clip_checkpoint else "minilm"},
                 f"the pretrainings in {work / RUN} (--work-dir)", dry_run=args.dry_run, binding=pretrained)
    logs = work / "nwucla_logs"
    if not args.dry_run:
        logs.mkdir(parents=True, exist_ok=True)
    times_path = work / "nwucla_step_times.json"
    try:
        times: Dict[str, float] = json.loads(times_path.read_text()) if times_path.is_file() else {}
    except ValueError:
        times = {}                                             # unreadable: the times start again
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    def record(result: StepResult) -> None:
        if result.status == "done":
            times[result.name] = result.wall_s
            save_json_atomic(times_path, times)

    results = run_steps(steps, jobs=args.jobs, cwd=ROOT, env=env, logs=logs, dry_run=args.dry_run, on_finish=record)
    failed = [r.name for r in results if r.status == "failed"]
    if args.dry_run:
        return 0
    report = subprocess.run([sys.executable, "main.py", "report", f"work_dir={work}"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    if report.returncode:
        failed.append("report")
        print(f"[FAIL] report (exit {report.returncode}):\n  " + "\n  ".join(
            (report.stdout + report.stderr).strip().splitlines()[-15:]), file=sys.stderr, flush=True)
    text_label = ("VLM" if args.vlm else "kinematic describer") + " + " + ("CLIP" if args.clip_checkpoint
                                                                          else "MiniLM")
    table = results_table(work, text_label)
    step_rows = "\n".join(f"| {k} | {v / 60:.1f} |" for k, v in times.items())
    seed = "the configs' own" if args.run_seed is None else args.run_seed
    md = (f"# NW-UCLA x-view (view 3 test), CPU settings of config/nwucla/xview\n\n"
          f"Test top-1 (%); linear: {reported_epoch(work / RUN / 'linear')}, semi 10 %: "
          f"{reported_epoch(work / RUN / 'semi_10')}; run seed: {seed}. Reference: raw-coordinate 1-NN 60.8, "
          f"logistic regression 47.2; published self-supervised linear 74-90.\n\n{table}\n\n"
          f"Step wall times (the latest run of each step in this work dir; this invocation: --jobs {args.jobs}, "
          f"{args.threads} thread(s) each):\n\n"
          f"| step | minutes |\n|---|---|\n{step_rows}\n")
    save_text_atomic(work / "nwucla_results.md", md)
    print(md)
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "nw_ucla",
                   help="NW-UCLA folder with all_sqe/ and val_label.pkl (default: ../shared/data/nw_ucla, next to "
                        "the checkout: the developers' copy)")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "nwucla", help="prepared data folder (default: data/nwucla)")
    p.add_argument("--work-dir", type=Path, default=ROOT / "work_dir", help="root of the run dirs (default: work_dir)")
    p.add_argument("--vlm", type=Path, default=None, help="local VLM folder: describe the action images with it (default: the kinematic describer)")
    p.add_argument("--clip-checkpoint", type=Path, default=None, help="local CLIP ViT-B/32 checkpoint (else MiniLM)")
    p.add_argument("--device", default="cpu", help="device of the VLM (default: cpu)")
    p.add_argument("--no-images", action="store_true", help="skip the action images (not needed by kinematic)")
    p.add_argument("--epochs", type=int, default=None, help="pretraining epochs (default: the configs')")
    p.add_argument("--run-seed", type=int, default=None,
                   help="seed of every pretraining and evaluation (model init, data order, augmentation; default: "
                        "the configs' seed); the 10 %% labelled subset keeps its own subset_seed")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 pretraining epoch, 2 evaluation epochs (use a separate --work-dir)")
    p.add_argument("--jobs", type=int, default=2, help="steps run side by side (default: 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per step (default: 1)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        p.error("--jobs and --threads must be at least 1")
    for attr in ("source", "data", "work_dir"):
        setattr(args, attr, getattr(args, attr).resolve())
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
