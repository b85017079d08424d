"""The README's main job, in its --quick form, end to end (synthetic data -> descriptions -> text ->
pretraining of three streams with and without text -> linear probes -> fusion -> report)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_quick_demo_end_to_end(tmp_path, repo_root):
    work, data = tmp_path / "work", tmp_path / "data"
    cmd = [sys.executable, str(repo_root / "bench" / "demo.py"), "--quick", "--work-dir", str(work),
           "--data-dir", str(data)]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "JBM (3s-AC-SAR)" in proc.stdout and "report:" in proc.stdout
    assert "| stream / fusion | linear top-1 (%), pretrained | randomly initialised encoders |" in proc.stdout

    results = json.loads((work / "demo" / "results.json").read_text())
    assert set(results["top1_with_text"]) == {"J", "B", "M", "JB", "JM", "BM", "JBM"}
    # the same probes and fusion on randomly initialised encoders, row by row; the single-stream J of that
    # fusion (scores_last.pkl) is the joint random probe's own last-epoch top-1
    assert set(results["top1_random_encoder"]) == set(results["top1_with_text"])
    assert results["top1_random_encoder"]["J"] == pytest.approx(results["top1_joint_random_encoder"], abs=1e-6)
    for value in [*results["top1_with_text"].values(), results["top1_joint_without_text"],
                  results["top1_joint_random_encoder"]]:
        assert 0.0 <= value <= 100.0
    assert results["chance_top1"] == 25.0
    # well above chance (a seeded run reads J/B/M 81-94 %, JBM 100 % on 16 test clips): the probes learn
    top1 = results["top1_with_text"]
    assert top1["JBM"] >= 60.0 and min(top1["J"], top1["B"], top1["M"]) >= 40.0
    assert results["top1_joint_without_text"] >= 40.0
    names = [s["name"] for s in results["steps"]]
    assert names[:5] == ["synthetic skeletons", "ntu_gendata", "action images", "descriptions", "text features"]
    assert all(s["wall_s"] >= 0 for s in results["steps"])

    # every intermediate artefact is where the README says
    assert len(list((data / "raw").glob("*.skeleton"))) == 4 * 6 * 2
    assert (data / "xsub" / "text" / "train_minilm.npy").is_file()
    assert len(list((data / "descriptions").glob("*.txt"))) == 4 * 6 * 2
    assert len(list((data / "action_images").glob("*.jpg"))) == 4 * 6 * 2
    for run in ("pretrain", "pretrain_bone", "pretrain_motion", "pretrain_notext", "linear", "linear_bone",
                "linear_motion", "linear_notext", "linear_random", "linear_random_bone", "linear_random_motion",
                "fusion", "fusion_random"):
        assert (work / "demo" / run / "FINISHED").is_file(), run
    report = (work / "demo" / "report.md").read_text()
    assert "| JBM (3s-AC-SAR) |" in report and ".png" in report
    assert results["report_epoch"] == "last"                   # config/demo/linear.yaml reads its last epoch
    assert "linear probes: last epoch of a fixed schedule" in report

    # a second run finds everything done and only re-collects
    again = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    steps = json.loads((work / "demo" / "results.json").read_text())["steps"]
    assert all(s["skipped"] for s in steps if s["name"].startswith(("pretrain", "linear", "fusion")))


def _demo_module():
    import importlib
    bench = str(Path(__file__).resolve().parents[1] / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module("demo")


def test_pretrain_set_and_run_seed_reach_the_right_commands(tmp_path):
    demo = _demo_module()
    args = demo.parse_args(["--work-dir", str(tmp_path / "w"), "--data-dir", str(tmp_path / "d"),
                            "--pretrain-set", "epochs=7", "--pretrain-set", "scheduler.milestones=[5]",
                            "--run-seed", "3"])
    steps = {step.name: step.cmd for step in demo.build_steps(args)}
    pretrain = [name for name in steps if name.startswith("pretrain")]
    linear = [name for name in steps if name.startswith("linear")]
    assert len(pretrain) == 4 and len(linear) == 7
    for name in pretrain:       # the overrides come last, so they win over the config and the defaults
        assert steps[name][-2:] == ["epochs=7", "scheduler.milestones=[5]"], name
        assert "seed=3" in steps[name]
    for name in linear:         # the probes share the seed (random-encoder init, holdout) but not the length
        assert "seed=3" in steps[name] and "epochs=7" not in steps[name], name
    for name in ("synthetic skeletons", "ntu_gendata", "fusion", "fusion random"):
        assert "seed=3" not in steps[name]

    plain = demo.build_steps(demo.parse_args(["--work-dir", str(tmp_path / "w"), "--data-dir", str(tmp_path / "d")]))
    assert not any(part.startswith(("seed=", "epochs=")) for step in plain for part in step.cmd)


def test_pretrain_set_typo_fails_before_any_step(tmp_path, capsys):
    demo = _demo_module()
    work, data = tmp_path / "w", tmp_path / "d"
    with pytest.raises(SystemExit) as err:
        demo.main(["--work-dir", str(work), "--data-dir", str(data), "--pretrain-set", "epoch=3"])
    assert "unknown config key 'epoch'" in str(err.value) and "'epochs'" in str(err.value)
    with pytest.raises(SystemExit):
        demo.parse_args(["--pretrain-set", "epochs"])
    assert "expects KEY=VALUE" in capsys.readouterr().err
    assert not work.exists() and not data.exists()      # nothing ran, nothing written


def test_finished_runs_with_other_settings_are_refused_not_reused(tmp_path):
    demo = _demo_module()
    work, data = tmp_path / "w", tmp_path / "d"
    run = work / "demo" / "pretrain"              # a finished 20-epoch joint pretraining, as make demo leaves it
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\nepochs: 20\nscheduler:\n  milestones: [15]\ndata:\n  text: minilm\n")
    (run / "FINISHED").write_text("")

    base = ["--work-dir", str(work), "--data-dir", str(data)]
    demo.check_pretrain_overrides(demo.parse_args(base))               # the same settings: reused, no error
    for extra, named in ((["--pretrain-set", "epochs=120"], "epochs=20 there, 120 asked"),
                         (["--run-seed", "2"], "seed=1 there, 2 asked"),
                         (["--pretrain-set", "scheduler.milestones=[100]"], "[15] there, [100] asked"),
                         (["--clip-checkpoint", str(tmp_path / "clip.pt")], "data.text='minilm' there, 'clip' asked")):
        with pytest.raises(SystemExit) as err:
            demo.main(base + extra)
        assert str(run) in str(err.value) and named in str(err.value) and "fresh --work-dir" in str(err.value)
    # a work dir from before text_settings.json: the describer is in the demo's results.json only
    (work / "demo" / "results.json").write_text('{"describer": "kinematic", "text_encoder": "minilm"}')
    with pytest.raises(SystemExit, match="describer='kinematic' there, 'vlm' asked.*fresh --work-dir"):
        demo.main(base + ["--vlm-model", str(tmp_path / "vlm")])
    assert not data.exists() and sorted(p.name for p in run.iterdir()) == ["FINISHED", "config.yaml"]
    (run / "FINISHED").unlink()                   # interrupted instead: it would be resumed under the new settings
    (run / "latest.pt").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"pretrain holds a run with other settings \(seed=1 there, 2 asked\)"):
        demo.main(base + ["--run-seed", "2"])


def test_interrupted_demo_keeps_its_data_seed_and_text_source(tmp_path):
    """What the data and the pretrainings were made from is recorded when the demo starts, so an interrupted
    demo (no results.json yet) refuses another --seed or describer; interrupted probes resume."""
    demo = _demo_module()
    work, data = tmp_path / "w", tmp_path / "d"
    args = demo.parse_args(["--work-dir", str(work), "--data-dir", str(data)])
    demo.check_pretrain_overrides(args)
    assert not data.exists() and not work.exists()                   # checking writes nothing
    demo.pin_demo_settings(args)                                      # what main() does before the first step
    (data / "raw").mkdir(parents=True)                               # then the data and a pretraining exist
    (data / "raw" / "class_names.txt").write_text("a\n")
    (work / "demo" / "pretrain").mkdir(parents=True)
    (work / "demo" / "pretrain" / "config.yaml").write_text("seed: 1\n")
    assert json.loads((data / demo.DATA_SETTINGS).read_text()) == {"seed": 0, "quick": False}
    for extra, named in ((["--seed", "5"], r"the data in .*d \(--data-dir\) was made with other settings "
                                           r"\(seed=0 there, 5 asked"),
                         (["--vlm-model", str(tmp_path / "vlm")], r"pretrainings in .*demo \(--work-dir\) was made "
                                                                   r"with other settings \(describer='kinematic'")):
        with pytest.raises(SystemExit, match=named):
            demo.main(["--work-dir", str(work), "--data-dir", str(data), *extra])
    # a first attempt that stopped before any pretraining or data binds nothing: another ask replaces the record
    other_work, other_data = tmp_path / "w2", tmp_path / "d2"
    first = demo.parse_args(["--work-dir", str(other_work), "--data-dir", str(other_data), "--seed", "3",
                             "--clip-checkpoint", str(tmp_path / "missing.pt")])
    demo.pin_demo_settings(first)
    again = demo.parse_args(["--work-dir", str(other_work), "--data-dir", str(other_data)])
    demo.check_pretrain_overrides(again)
    demo.pin_demo_settings(again)
    assert json.loads((other_work / "demo" / demo.TEXT_SETTINGS).read_text())["text_encoder"] == "minilm"
    assert json.loads((other_data / demo.DATA_SETTINGS).read_text())["seed"] == 0
    probe = work / "demo" / "linear"
    probe.mkdir(parents=True)
    (probe / "latest.pt").write_bytes(b"")
    step = next(s for s in demo.build_steps(args) if s.name == "linear joint")
    assert step.resume == probe
