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


TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))
needs_torchrun = pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, repo_root):
    """One pretraining step on 8 clips: one process at batch 8, and two gloo processes at batch 4 each."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    make_split(tmp_path / "data", "train", n=8, text="tiny", text_shape=(77, 12))
    common = [f"work_dir={tmp_path / 'runs'}", f"data.root={tmp_path / 'data'}", "data.window=16",
              "data.text=tiny", "text.feature_dim=12", "moco.queue_size=16", "epochs=1", "num_workers=0",
              "tensorboard=false", "progress_bar=false", "device=cpu", *TINY_MODEL]
    main = str(repo_root / "main.py")
    run([sys.executable, main, "pretrain_acsar", "name=single", "batch_size=8", *common], tmp_path)
    run([TORCHRUN, "--nproc_per_node=2", f"--master_port={free_port()}", "--master_addr=127.0.0.1",
         main, "pretrain_acsar", "name=ddp", "batch_size=4", *common], tmp_path)
    return tmp_path / "runs"


@needs_torchrun
def test_two_process_gloo_matches_single_process(runs):
    def first(name):
        return json.loads((runs / name / "metrics.jsonl").read_text().splitlines()[0])

    single, ddp = first("single"), first("ddp")
    for key in ("train/loss", "train/loss_domain", "train/loss_cross"):
        assert ddp[key] == pytest.approx(single[key], rel=1e-4, abs=1e-5), key
    assert single["train/loss_cross"] > 0


@needs_torchrun
@pytest.mark.xfail(strict=True, reason="open finding (2026-12-02): the step-1 losses agree, but the query "
                   "encoder's weights after the step differ from the one-process run (e.g. conv biases ahead of "
                   "a BatchNorm, whose gradient is zero in one process, move by ~0.02 under DDP); strict, so the "
                   "fix turns this red until the marker is removed")
def test_two_process_gloo_weights_after_the_step_match_single_process(runs):
    import torch

    def weights(name):
        state = torch.load(runs / name / "latest.pt", map_location="cpu", weights_only=True)
        return {k: v for k, v in state["model"].items() if k.startswith("encoder_q.") and v.is_floating_point()}

    w_single, w_ddp = weights("single"), weights("ddp")
    assert w_single and set(w_single) == set(w_ddp)
    differ = {k: float((w_ddp[k] - v).abs().max()) for k, v in w_single.items()
              if not torch.allclose(w_ddp[k], v, rtol=1e-4, atol=1e-5)}
    assert not differ, f"{len(differ)}/{len(w_single)} tensors differ, worst {max(differ, key=differ.get)}"
