"""The README's main job, in its --quick form, end to end (synthetic data -> descriptions -> text ->
pretraining of three streams with and without text -> linear probes -> fusion -> report)."""
import json
import os
import subprocess
import sys


def test_quick_demo_end_to_end(tmp_path, repo_root):
    work, data = tmp_path / "work", tmp_path / "data"
    cmd = [sys.executable, str(repo_root / "bench" / "demo.py"), "--quick", "--work-dir", str(work),
           "--data-dir", str(data)]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "JBM (3s-AC-SAR)" in proc.stdout and "report:" in proc.stdout

    results = json.loads((work / "demo" / "results.json").read_text())
    assert set(results["top1_with_text"]) == {"J", "B", "M", "JB", "JM", "BM", "JBM"}
    for value in [*results["top1_with_text"].values(), results["top1_joint_without_text"],
                  results["top1_joint_random_encoder"]]:
        assert 0.0 <= value <= 100.0
    assert results["chance_top1"] == 25.0
    names = [s["name"] for s in results["steps"]]
    assert names[:5] == ["synthetic skeletons", "ntu_gendata", "action images", "descriptions", "text features"]
    assert all(s["wall_s"] >= 0 for s in results["steps"])

    # every intermediate artefact is where the README says
    assert len(list((data / "raw").glob("*.skeleton"))) == 4 * 6 * 2
    assert (data / "xsub" / "text" / "train_minilm.npy").is_file()
    assert len(list((data / "descriptions").glob("*.txt"))) == 4 * 6 * 2
    assert len(list((data / "action_images").glob("*.jpg"))) == 4 * 6 * 2
    for run in ("pretrain", "pretrain_bone", "pretrain_motion", "pretrain_notext", "linear", "linear_bone",
                "linear_motion", "linear_notext", "linear_random", "fusion"):
        assert (work / "demo" / run / "FINISHED").is_file(), run
    report = (work / "demo" / "report.md").read_text()
    assert "| JBM (3s-AC-SAR) |" in report and ".png" in report

    # a second run finds everything done and only re-collects
    again = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    steps = json.loads((work / "demo" / "results.json").read_text())["steps"]
    assert all(s["skipped"] for s in steps if s["name"].startswith(("pretrain", "linear", "fusion")))
