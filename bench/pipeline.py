"""Run a pipeline of ordinary commands with dependencies, several side by side (bench/demo.py, bench/nwucla.py).

Each :class:`Step` is one command line (``python data_gen/...`` or ``python main.py ...``),
printed before it starts; its output goes to ``<logs>/<step_name>.log`` (spaces as ``_``).  While
steps run, a line every ``heartbeat_s`` says how long each has run and what its log said last
(e.g. ``epoch 7/20``), so a long pipeline is never silent for minutes.  A step whose
``done()`` is already true is skipped; a step whose ``resume`` run dir holds an unfinished
run (``latest.pt``) is continued with ``--resume``.  Up to ``jobs`` steps whose dependencies
have finished run at once; a failed step marks every step that needs it as failed too (the
others go on), and its log's last lines are printed.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from feeder.io import save_json_atomic  # noqa: E402
from processor.runtime import FINISHED_MARKER  # noqa: E402

__all__ = ["Step", "StepResult", "run_steps", "run_finished", "reported_epoch", "resolved_settings",
           "changed_settings", "pin_settings"]


@dataclass
class Step:
    name: str
    cmd: List[str]
    done: Callable[[], bool]
    deps: List[str] = field(default_factory=list)
    resume: Optional[Path] = None          # run dir: add --resume when it holds an unfinished run


@dataclass
class StepResult:
    name: str
    command: str                           # as printed (the interpreter shown as ``python``)
    status: str                            # done | skipped | failed
    wall_s: float = 0.0


def run_finished(run_dir: Path) -> Callable[[], bool]:
    """A ``Step.done`` for a ``main.py`` run: true once ``run_dir`` holds the processor's finished marker."""
    return lambda: (run_dir / FINISHED_MARKER).is_file()


def resolved_settings(processor: str, config: Path, overrides: Sequence[str]) -> Dict[str, Any]:
    """The flattened config ``main.py <processor> --config <config> <overrides>`` would run with
    (strict keys: an unknown override raises :class:`processor.config.ConfigError`)."""
    from processor.config import flatten, resolve_config
    from processor.registry import get_processor

    return flatten(resolve_config(get_processor(processor).defaults_path(), config, overrides))


def changed_settings(run_dir: Path, wanted: Mapping[str, Any], keys: Iterable[str]) -> List[str]:
    """For a run in ``run_dir`` that is finished or has a checkpoint: ``"key=<saved> there, <wanted> asked"``
    for each of ``keys`` whose value in the run's saved ``config.yaml`` differs from ``wanted`` (a flattened
    config); ``[]`` otherwise.  A pipeline skips a finished run and resumes one with a ``latest.pt``
    (``Step.resume``), so either would stand for a run with the settings asked; a run killed before its
    first checkpoint starts again from scratch."""
    from processor.config import flatten, load_yaml

    reused = (run_dir / FINISHED_MARKER).is_file() or (run_dir / "latest.pt").is_file()
    if not reused or not (run_dir / "config.yaml").is_file():
        return []                                      # nothing there a pipeline would skip or resume
    done = flatten(load_yaml(run_dir / "config.yaml"))
    return [f"{key}={done.get(key)!r} there, {wanted[key]!r} asked" for key in sorted(set(keys))
            if key in wanted and done.get(key) != wanted[key]]


def pin_settings(path: Path, asked: Mapping[str, Any], what: str, dry_run: bool = False,
                 binding: bool = True) -> None:
    """Record ``asked`` (settings that no run's config holds, e.g. the describer of the text features or the
    seed of generated data) in ``path``; refuse with ``SystemExit`` when a later invocation asks for other
    values, whose outputs the pipeline would otherwise mix with the recorded ones.  ``binding=False`` (no
    output made with the recorded values exists yet, e.g. a first attempt stopped before its first
    pretraining) lets other values replace the record.  ``dry_run``: check only, write nothing."""
    if path.is_file() and binding:
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise SystemExit(f"{path}: unreadable ({err}); remove it only if {what} was made with the settings "
                             f"asked now") from None
        differ = [f"{key}={before.get(key)!r} there, {value!r} asked" for key, value in asked.items()
                  if key in before and before[key] != value]
        if differ:
            raise SystemExit(f"{what} was made with other settings ({'; '.join(differ)}; recorded in {path}); "
                             f"give a fresh folder")
        if all(key in before for key in asked):
            return
        asked = {**before, **asked}
    if not dry_run:
        save_json_atomic(path, dict(asked))


def reported_epoch(run_dir: Path) -> str:
    """Which epoch's test result the classification run in ``run_dir`` reports, in words for a results table,
    from its saved ``config.yaml`` (``report_epoch``, and for ``last`` the schedule that ended the run)."""
    from processor.config import load_yaml

    path = run_dir / "config.yaml"
    cfg = load_yaml(path) if path.is_file() else {}
    if cfg.get("report_epoch", "best") != "last":
        return f"best {cfg.get('monitor', 'monitored')} epoch"
    sched = cfg.get("scheduler") or {}
    if sched.get("name") == "plateau":
        return (f"last epoch of the plateau rule on the {cfg.get('monitor')} split (lr x{sched.get('gamma')} after "
                f"{sched.get('patience')} epochs without a gain, stop after {sched.get('stop_patience')})")
    return "last epoch of a fixed schedule"


def printable(cmd: List[str]) -> str:
    return shlex.join("python" if a == sys.executable else a for a in cmd)


def log_path(logs: Path, name: str) -> Path:
    """``<logs>/<name>.log`` with the step name's spaces as underscores (no quoting needed in a shell)."""
    return logs / f"{name.replace(' ', '_')}.log"


def _log_tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n  ".join(text)


def _progress(path: Path) -> str:
    """The newest ``epoch i/n`` of a step's log (the processors log one line per epoch), or ''."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 8192))
            tail = handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(tail):
        words = line.split()
        for i, word in enumerate(words[:-1]):
            if word == "epoch" and "/" in words[i + 1]:
                return f"epoch {words[i + 1]}"
    return ""


def run_steps(steps: List[Step], *, jobs: int, cwd: Path, env: Mapping[str, str], logs: Path,
              dry_run: bool = False, on_finish: Optional[Callable[[StepResult], None]] = None,
              heartbeat_s: float = 60.0) -> List[StepResult]:
    """Run ``steps`` (in dependency order, ``jobs`` at a time); one :class:`StepResult` per step, in input order."""
    names = [s.name for s in steps]
    unknown = {d for s in steps for d in s.deps} - set(names)
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"pipeline: unknown dependencies {sorted(unknown)} or repeated step names in {names}")
    if not dry_run:                                       # a dry run writes nothing
        logs.mkdir(parents=True, exist_ok=True)
    results: Dict[str, StepResult] = {}
    for s in steps:
        if s.done():
            results[s.name] = StepResult(s.name, printable(s.cmd), "skipped")
            print(f"[skip] {s.name}: already finished", flush=True)
    running: Dict[str, tuple] = {}
    last_beat = time.time()
    while True:
        failed = {name for name, r in results.items() if r.status == "failed"}
        propagated = True
        while propagated:                                  # a failed dependency fails its dependants, and theirs
            propagated = False
            for s in steps:
                if s.name not in results and failed.intersection(s.deps):
                    results[s.name] = StepResult(s.name, printable(s.cmd), "failed")
                    failed.add(s.name)
                    propagated = True
                    print(f"[skip] {s.name}: a step it needs failed", flush=True)
        ready = [s for s in steps if s.name not in results and s.name not in running
                 and all(d in results and results[d].status != "failed" for d in s.deps)]
        launched = False
        while ready and len(running) < jobs:
            s = ready.pop(0)
            launched = True
            cmd = list(s.cmd)
            if s.resume is not None and (s.resume / "latest.pt").is_file():
                cmd.append("--resume")
            print(f"[run ] {s.name}: {printable(cmd)}", flush=True)
            if dry_run:
                results[s.name] = StepResult(s.name, printable(cmd), "done")
                continue
            log = open(log_path(logs, s.name), "w", encoding="utf-8")
            proc = subprocess.Popen(cmd, cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
            running[s.name] = (proc, time.time(), log, printable(cmd))
        if not running:
            if launched:                                   # dry run: the launched steps are "done" at once
                continue
            break                                          # nothing runs and nothing can start
        time.sleep(0.5)
        if time.time() - last_beat >= heartbeat_s:
            last_beat = time.time()
            states = []
            for name, (_, start, _, _) in running.items():
                progress = _progress(log_path(logs, name))
                states.append(f"{name} {(last_beat - start) / 60:.1f} min" + (f", {progress}" if progress else ""))
            print(f"[... ] {'; '.join(states)}", flush=True)
        for name, (proc, start, log, shown) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[name]
            result = StepResult(name, shown, "done" if proc.returncode == 0 else "failed",
                                round(time.time() - start, 1))
            results[name] = result
            if result.status == "done":
                print(f"[done] {name} in {result.wall_s:.1f} s", flush=True)
            else:
                print(f"[FAIL] {name} (exit {proc.returncode}): {shown}\n  log {log_path(logs, name)}:\n  "
                      f"{_log_tail(log_path(logs, name))}", flush=True)
            if on_finish is not None:
                on_finish(result)
    return [results[s.name] for s in steps if s.name in results]
