"""DDP: two gloo processes on CPU give the same step-1 loss as one process with the same total batch."""
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from tests.helpers import TINY_MODEL, make_split


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun not installed beside this python")
def test_two_process_gloo_matches_single_process(tmp_path, repo_root):
    make_split(tmp_path / "data", "train", n=8, text="tiny", text_shape=(77, 12))
    common = [f"work_dir={tmp_path / 'runs'}", f"data.root={tmp_path / 'data'}", "data.window=16",
              "data.text=tiny", "text.feature_dim=12", "moco.queue_size=16", "epochs=1", "num_workers=0",
              "tensorboard=false", "progress_bar=false", "device=cpu", *TINY_MODEL]
    main = str(repo_root / "main.py")
    run([sys.executable, main, "pretrain_acsar", "name=single", "batch_size=8", *common], tmp_path)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    run([torchrun, "--nproc_per_node=2", f"--master_port={free_port()}", "--master_addr=127.0.0.1",
         main, "pretrain_acsar", "name=ddp", "batch_size=4", *common], tmp_path)

    def first(name):
        return json.loads((tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines()[0])

    single, ddp = first("single"), first("ddp")
    for key in ("train/loss", "train/loss_domain", "train/loss_cross"):
        assert ddp[key] == pytest.approx(single[key], rel=1e-4, abs=1e-5), key
    assert single["train/loss_cross"] > 0
