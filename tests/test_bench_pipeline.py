"""bench/pipeline.py: dependency order, side-by-side steps, skips, --resume, failure propagation, settings checks."""
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from pipeline import Step, changed_settings, pin_settings, printable, reported_epoch, run_steps  # noqa: E402


def _append(path: Path, text: str, fail: bool = False) -> list:
    code = f"open({str(path)!r}, 'a').write({text!r} + '\\n')" + ("; raise SystemExit(3)" if fail else "")
    return [sys.executable, "-c", code]


def _run(steps, tmp_path, jobs=2):
    return run_steps(steps, jobs=jobs, cwd=tmp_path, env=os.environ, logs=tmp_path / "logs")


def test_dependencies_run_first_and_results_keep_input_order(tmp_path):
    order = tmp_path / "order.txt"
    steps = [Step("c", _append(order, "c"), lambda: False, ["a", "b"]),
             Step("a", _append(order, "a"), lambda: False),
             Step("b", _append(order, "b"), lambda: False, ["a"])]
    results = _run(steps, tmp_path)
    assert [r.name for r in results] == ["c", "a", "b"]
    assert all(r.status == "done" and r.wall_s >= 0 for r in results)
    assert order.read_text().split() == ["a", "b", "c"]
    assert (tmp_path / "logs" / "a.log").is_file()


def test_done_steps_are_skipped_and_unfinished_runs_resume(tmp_path):
    log = tmp_path / "argv.txt"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "latest.pt").write_bytes(b"")
    record_argv = [sys.executable, "-c", f"import sys; open({str(log)!r}, 'w').write(' '.join(sys.argv[1:]))"]
    steps = [Step("old", _append(tmp_path / "never.txt", "x"), lambda: True),
             Step("train", record_argv, lambda: False, ["old"], resume=run_dir)]
    results = _run(steps, tmp_path)
    assert [r.status for r in results] == ["skipped", "done"]
    assert not (tmp_path / "never.txt").exists()
    assert log.read_text() == "--resume"


def test_a_failure_fails_its_dependants_only(tmp_path, capsys):
    out = tmp_path / "out.txt"
    steps = [Step("bad", _append(out, "bad", fail=True), lambda: False),
             Step("after_bad", _append(out, "after_bad"), lambda: False, ["bad"]),
             Step("other", _append(out, "other"), lambda: False)]
    results = _run(steps, tmp_path, jobs=1)
    assert {r.name: r.status for r in results} == {"bad": "failed", "after_bad": "failed", "other": "done"}
    assert sorted(out.read_text().split()) == ["bad", "other"]
    printed = capsys.readouterr().out
    # the failed command and its log are named together (with steps side by side its "[run ]" line is far above)
    fail = printed[printed.index("[FAIL] bad (exit 3)"):].splitlines()
    assert fail[0].endswith(printable(steps[0].cmd)) and fail[1] == f"  log {tmp_path / 'logs' / 'bad.log'}:"


def test_a_failure_fails_every_step_downstream_of_it(tmp_path, capsys):
    """Dependants of dependants are failed (and reported) too, whatever the order the steps are listed in."""
    out = tmp_path / "out.txt"
    steps = [Step("last", _append(out, "last"), lambda: False, ["middle"]),
             Step("bad", _append(out, "bad", fail=True), lambda: False),
             Step("middle", _append(out, "middle"), lambda: False, ["first"]),
             Step("first", _append(out, "first"), lambda: False, ["bad"])]
    results = _run(steps, tmp_path, jobs=1)
    assert [(r.name, r.status) for r in results] == [("last", "failed"), ("bad", "failed"), ("middle", "failed"),
                                                     ("first", "failed")]
    assert out.read_text().split() == ["bad"]
    printed = capsys.readouterr().out
    assert all(f"[skip] {name}: a step it needs failed" in printed for name in ("first", "middle", "last"))


def test_unknown_dependency_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown dependencies"):
        _run([Step("a", _append(tmp_path / "x", "a"), lambda: False, ["missing"])], tmp_path)


def test_logs_have_no_spaces_and_a_heartbeat_reports_the_latest_epoch(tmp_path, capsys):
    code = ("import time; print('epoch 1/3  lr 0.1', flush=True); time.sleep(0.6); "
            "print('epoch 2/3  lr 0.1', flush=True); time.sleep(1.6)")   # 4 heartbeats' time after epoch 2: a busy
                                                                             # machine still gets one in
    steps = [Step("pretrain joint", [sys.executable, "-c", code], lambda: False)]
    results = run_steps(steps, jobs=1, cwd=tmp_path, env=os.environ, logs=tmp_path / "logs", heartbeat_s=0.4)
    assert results[0].status == "done"
    assert (tmp_path / "logs" / "pretrain_joint.log").read_text().splitlines()[-1].startswith("epoch 2/3")
    beats = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[... ] pretrain joint")]
    assert beats and "min, epoch 2/3" in beats[-1]


def test_reported_epoch_reads_the_run_config(tmp_path):
    """The words for a results table come from the run's saved config: best monitored epoch, or the last
    epoch of a fixed schedule, or of the plateau rule with its own patience figures."""
    def run(name, text):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(text)
        return tmp_path / name

    assert reported_epoch(run("best", "report_epoch: best\nmonitor: holdout\n")) == "best holdout epoch"
    assert reported_epoch(run("fixed", "report_epoch: last\nscheduler: {name: multistep, milestones: [40]}\n")) \
        == "last epoch of a fixed schedule"
    plateau = run("plateau", "report_epoch: last\nmonitor: holdout\n"
                             "scheduler: {name: plateau, gamma: 0.1, patience: 10, stop_patience: 20}\n")
    assert reported_epoch(plateau) == ("last epoch of the plateau rule on the holdout split (lr x0.1 after 10 epochs "
                                       "without a gain, stop after 20)")
    assert reported_epoch(tmp_path / "missing") == "best monitored epoch"


def test_changed_settings_reads_unfinished_runs_too(tmp_path):
    """An unfinished run is resumed by the pipeline: its settings count as much as a finished run's."""
    run = tmp_path / "run"
    assert changed_settings(run, {"seed": 2}, ["seed"]) == []             # no run there
    run.mkdir()
    (run / "config.yaml").write_text("seed: 1\nepochs: 20\n")
    assert changed_settings(run, {"seed": 2}, ["seed"]) == []             # killed before its first checkpoint:
    (run / "latest.pt").write_bytes(b"")                                  # started again; with one, resumed
    assert changed_settings(run, {"seed": 2, "epochs": 20}, ["seed", "epochs"]) == ["seed=1 there, 2 asked"]
    assert changed_settings(run, {"seed": 1, "epochs": 20}, ["seed", "epochs"]) == []


def test_pin_settings_records_once_and_refuses_other_values(tmp_path):
    pin = tmp_path / "data" / "settings.json"
    pin_settings(pin, {"seed": 0}, "the data", dry_run=True)
    assert not pin.exists()                                               # a check writes nothing
    pin_settings(pin, {"seed": 7}, "the data")
    pin_settings(pin, {"seed": 0}, "the data", binding=False)             # nothing made yet: the record follows
    assert json.loads(pin.read_text()) == {"seed": 0}
    pin_settings(pin, {"seed": 0, "quick": False}, "the data")            # a new key is added
    assert json.loads(pin.read_text()) == {"seed": 0, "quick": False}
    with pytest.raises(SystemExit, match=r"the data was made with other settings \(seed=0 there, 5 asked; "
                                         r"recorded in .*settings\.json\); give a fresh folder"):
        pin_settings(pin, {"seed": 5, "quick": False}, "the data")
    pin.write_text("{cut")
    with pytest.raises(SystemExit, match="unreadable"):
        pin_settings(pin, {"seed": 0}, "the data")


def test_run_all_fails_when_one_case_of_a_script_failed():
    import run_all

    ok = {"rows": [{"config": "paper", "s_per_step": 12.0}]}
    one_case = {"rows": [{"config": "paper", "s_per_step": 12.0}, {"config": "demo", "error": "timeout 1800 s"}]}
    assert run_all.failed_scripts({"train_step": ok, "gendata": {"rows": []}}) == []
    assert run_all.failed_scripts({"train_step": one_case, "gendata": {"error": "exit 1"}}) == ["train_step", "gendata"]
