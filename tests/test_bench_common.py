"""bench/common.py: what every benchmark JSON records about the run (machine, code, command)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402


def _head():
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def test_conditions_name_the_commit_the_command_and_the_cpu(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench/fast_paths.py", "--threads", "1", "--repeats", "3"])
    cond = common.conditions(threads=1)
    assert cond["git_commit"] == _head()
    assert cond["git_dirty"] in ((True, False) if cond["git_commit"] else (None,))
    assert cond["argv"] == ["bench/fast_paths.py", "--threads", "1", "--repeats", "3"]
    assert "cpu_model" in cond and cond["host"] and cond["cpu_count"] >= 1 and cond["threads"] == 1
    json.dumps(cond)                                              # as written to the results file


def test_data_pipeline_json_records_the_same_conditions(tmp_path, monkeypatch):
    """data_pipeline.py wrote its own conditions (no host, commit or command line)."""
    import data_pipeline

    argv = ["--num-items", "4", "--batch-size", "4", "--workers", "0", "--window", "16", "--frames", "32",
            "--repeats", "1", "--device", "cpu", "--json", str(tmp_path / "dp.json")]
    monkeypatch.setattr(sys, "argv", ["bench/data_pipeline.py", *argv])
    assert data_pipeline.main(argv) == 0
    cond = json.loads((tmp_path / "dp.json").read_text())["conditions"]
    assert cond["git_commit"] == _head() and cond["argv"] == ["bench/data_pipeline.py", *argv]
    assert cond["host"] and cond["torch"] and cond["torch_threads"] == 1 and cond["num_items"] == 4


def test_text_encoders_report_each_encoders_own_peak_memory(tmp_path):
    """Both encoders ran in one process, so the one peak RSS written covered CLIP and MiniLM together (and
    run_all.py showed it beside each); each now runs in its own process and its row holds its own peak
    (MiniLM alone here, the faster one: ``--encoders``)."""
    out = tmp_path / "text.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "text_encoders.py"), "speed", "--num", "2",
                           "--batch-size", "2", "--threads", "1", "--encoders", "minilm", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    [row] = result["rows"]
    assert row["encoder"] == "minilm" and row["sentences"] == 2
    assert row["peak_rss_mb"] > row["rss_before_model_mb"] > 0
    import run_all

    summary, _ = run_all.summarise({"text_encoders": result})
    assert [(r["benchmark"], r["peak_rss_mb"]) for r in summary] == [("text minilm full", row["peak_rss_mb"]),
                                                                     ("text minilm truncate", row["peak_rss_mb"])]
