"""bench/nwucla.py: --run-seed reaches every run, and finished runs with other settings are refused."""
import importlib.util
import sys
from pathlib import Path

import pytest

from processor.runtime import FINISHED_MARKER

ROOT = Path(__file__).resolve().parents[1]


def _nwucla_module():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("nwucla_bench", ROOT / "bench" / "nwucla.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dry_run(module, tmp_path, *extra):
    return module.main(["--dry-run", "--source", str(tmp_path / "src"), "--data", str(tmp_path / "data"),
                        "--work-dir", str(tmp_path / "work"), *extra])


def test_run_seed_reaches_every_training_and_evaluation(tmp_path, capsys):
    nwucla = _nwucla_module()
    assert _dry_run(nwucla, tmp_path, "--run-seed", "7") == 0
    runs = [line for line in capsys.readouterr().out.splitlines() if " main.py " in line]
    seeded = [line.split(":")[0] for line in runs if line.endswith("seed=7") or " seed=7 " in line]
    unseeded = sorted(line.split(":")[0] for line in runs if "seed=7" not in line)
    # 6 pretrainings, 6 linear, 2 kNN, 2 semi-supervised; on random encoders 3 linear, 1 kNN, 1 semi-supervised
    assert len(seeded) == 21
    assert unseeded == ["[run ] fusion", "[run ] fusion_notext", "[run ] fusion_random"]   # score averaging
    assert _dry_run(nwucla, tmp_path) == 0
    runs = [line for line in capsys.readouterr().out.splitlines() if " main.py " in line]
    assert len(runs) == 24 and not [line for line in runs if "seed=" in line]    # default: the configs' own seed
    baselines = [line for line in runs if "pretrained=null" in line]
    assert sorted(line.split(":")[0] for line in baselines) == [
        "[run ] knn_random", "[run ] linear_random", "[run ] linear_random_bone", "[run ] linear_random_motion",
        "[run ] semi_10_random"]
    assert all("name=nwucla/xview/" in line for line in baselines)   # each in its own run dir


def test_finished_runs_with_other_settings_are_refused_not_reused(tmp_path, capsys):
    nwucla = _nwucla_module()
    run = tmp_path / "work" / "nwucla" / "xview" / "pretrain"     # a finished default joint pretraining
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\nepochs: 80\nscheduler:\n  milestones: [60]\n"
                                     "data:\n  text: minilm\n")
    (run / FINISHED_MARKER).write_text("")
    assert _dry_run(nwucla, tmp_path) == 0                       # the same settings: reused
    out = capsys.readouterr().out
    assert "[skip] pretrain: already finished" in out and "[run ] pretrain:" not in out
    for extra, named in ((["--run-seed", "2"], "seed=1 there, 2 asked"),
                         (["--epochs", "40"], "epochs=80 there, 40 asked")):
        with pytest.raises(SystemExit) as err:
            _dry_run(nwucla, tmp_path, *extra)
        assert str(run) in str(err.value) and named in str(err.value) and "fresh --work-dir" in str(err.value)
    assert sorted(p.name for p in run.iterdir()) == sorted([FINISHED_MARKER, "config.yaml"])
    assert not (tmp_path / "data").exists()
    (run / FINISHED_MARKER).unlink()                             # interrupted instead: it would be resumed
    (run / "latest.pt").write_bytes(b"")
    with pytest.raises(SystemExit, match="seed=1 there, 2 asked"):
        _dry_run(nwucla, tmp_path, "--run-seed", "2")
    capsys.readouterr()
    assert _dry_run(nwucla, tmp_path) == 0                       # the same settings: resumed
    assert next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("[run ] pretrain:")).endswith("--resume")


def test_interrupted_evaluations_resume_and_text_features_are_always_checked(tmp_path, capsys):
    """Every run the script starts continues from its latest.pt; encode_text runs every time (it skips up-to-date
    splits itself), so features of another describer are never taken as this one's; the describer of a work
    dir's text is recorded and another one refused."""
    nwucla = _nwucla_module()
    runs = tmp_path / "work" / "nwucla" / "xview"
    for name in ("linear", "semi_10", "linear_random"):
        (runs / name).mkdir(parents=True)
        (runs / name / "latest.pt").write_bytes(b"")
    text = tmp_path / "data" / "xview" / "text"
    text.mkdir(parents=True)
    for split in ("train", "val"):
        for ext in ("npy", "json"):
            (text / f"{split}_minilm.{ext}").write_text("")
    assert _dry_run(nwucla, tmp_path) == 0
    out = capsys.readouterr().out
    for name in ("linear", "semi_10", "linear_random"):
        assert next(line for line in out.splitlines() if line.startswith(f"[run ] {name}:")).endswith("--resume")
    assert "[run ] encode:" in out
    assert not (runs / "text_settings.json").exists()               # a dry run records nothing
    (runs / "text_settings.json").write_text('{"describer": "kinematic", "text_encoder": "minilm"}')
    assert _dry_run(nwucla, tmp_path, "--vlm", str(tmp_path / "vlm")) == 0   # no pretraining read that text yet
    (runs / "pretrain").mkdir()
    (runs / "pretrain" / "config.yaml").write_text("seed: 1\n")             # one has (killed in its 1st epoch)
    with pytest.raises(SystemExit, match="describer='kinematic' there, 'vlm' asked"):
        _dry_run(nwucla, tmp_path, "--vlm", str(tmp_path / "vlm"))


def test_missing_source_warns_on_a_dry_run_and_stops_a_real_run(tmp_path, capsys):
    nwucla = _nwucla_module()
    assert _dry_run(nwucla, tmp_path) == 0                      # tmp_path / "src" does not exist
    captured = capsys.readouterr()
    assert f"warning: NW-UCLA source: {tmp_path / 'src'} does not exist" in captured.err
    assert "A real run would stop here" in captured.err and "[run ] gendata" in captured.out
    assert not (tmp_path / "work").exists()                    # a dry run writes nothing
    (tmp_path / "src").mkdir()
    code = nwucla.main(["--source", str(tmp_path / "src"), "--data", str(tmp_path / "data"),
                        "--work-dir", str(tmp_path / "work")])
    captured = capsys.readouterr()
    assert code == 2 and "error: NW-UCLA source:" in captured.err and "neither an all_sqe/" in captured.err
    assert "[run ]" not in captured.out and not (tmp_path / "work").exists()   # stopped before any step


def test_a_usable_or_unneeded_source_gives_no_warning(tmp_path, capsys):
    nwucla = _nwucla_module()
    (tmp_path / "src" / "all_sqe").mkdir(parents=True)
    assert _dry_run(nwucla, tmp_path) == 0
    assert "NW-UCLA source" not in capsys.readouterr().err
    (tmp_path / "src" / "all_sqe").rmdir()
    bench = tmp_path / "data" / "xview"                          # data already prepared: the source is not read
    bench.mkdir(parents=True)
    for split in ("train", "val"):
        for kind in ("data_joint.npy", "num_frame.npy", "label.pkl"):
            (bench / f"{split}_{kind}").write_bytes(b"")
    assert _dry_run(nwucla, tmp_path) == 0
    assert "NW-UCLA source" not in capsys.readouterr().err
