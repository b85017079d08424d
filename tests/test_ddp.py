"""DDP: two gloo processes on CPU train like one process with the same total batch (losses and weights after
two steps), and the CPU synchronised batch norm keeps the model's frozen parameters frozen."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from tests.helpers import TINY_MODEL, make_split


def child_env(tmp_path):
    """One thread per process, and torchrun's own temporary folders (``torchelastic_*``) inside the test's
    tmp_path instead of the user's /tmp, where every run would leave one behind."""
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path))


def run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=child_env(cwd), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))
needs_torchrun = pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, repo_root):
    """Two pretraining steps on 16 clips: one process at batch 8, and two gloo processes at batch 4 each.

    Two steps, not one: DDP that never finishes a gradient reduction (a parameter that requires grad but gets
    none) only raises at the start of the second step, and the second step's loss depends on the first update.
    ``--standalone``: torchrun's rendezvous binds a free port itself (no port picked here and released before
    torchrun binds it, which another process could take in between)."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    make_split(tmp_path / "data", "train", n=16, text="tiny", text_shape=(77, 12))
    common = [f"work_dir={tmp_path / 'runs'}", f"data.root={tmp_path / 'data'}", "data.window=16",
              "data.text=tiny", "text.feature_dim=12", "moco.queue_size=16", "epochs=1", "num_workers=0",
              "tensorboard=false", "progress_bar=false", "device=cpu", *TINY_MODEL]
    main = str(repo_root / "main.py")
    run([sys.executable, main, "pretrain_acsar", "name=single", "batch_size=8", *common], tmp_path)
    run([TORCHRUN, "--nproc_per_node=2", "--standalone",
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
    for name in ("single", "ddp"):
        assert torch.load(runs / name / "latest.pt", map_location="cpu", weights_only=True)["global_step"] == 2


@needs_torchrun
def test_two_process_gloo_weights_after_the_steps_match_single_process(runs):
    """Every parameter and batch-norm statistic of the query and key encoders and the text branch after two
    steps. Per-process (unaveraged) gradients move most weights by 3e-3 to 1e-2 after one step; the two runs
    here differ by < 1e-4 (float32 summation order)."""
    def state(name):
        model = torch.load(runs / name / "latest.pt", map_location="cpu", weights_only=True)["model"]
        return {k: v for k, v in model.items() if k.startswith(("encoder_q.", "encoder_k.", "text."))
                and v.is_floating_point()}

    w_single, w_ddp = state("single"), state("ddp")
    assert len(w_single) > 100 and set(w_single) == set(w_ddp)
    differ = {k: float((w_ddp[k] - v).abs().max()) for k, v in w_single.items()
              if not torch.allclose(w_ddp[k], v, rtol=1e-3, atol=1e-3)}
    assert not differ, f"{len(differ)}/{len(w_single)} tensors differ, worst {max(differ, key=differ.get)}"
    # not vacuous: the steps moved the query encoder well beyond the tolerance (the key encoder, a momentum
    # average that starts as a copy of it, has barely moved)
    moved = max(float((w_single[k] - w_single["encoder_k." + k[len("encoder_q."):]]).abs().max())
                for k in w_single if k.startswith("encoder_q.") and "running_" not in k
                and "encoder_k." + k[len("encoder_q."):] in w_single)
    assert moved > 1e-2


def test_cpu_sync_batchnorm_keeps_the_parameters_and_their_requires_grad():
    """The gloo path swaps every BatchNorm for AllReduceBatchNorm; frozen BN parameters (the momentum encoder's,
    a frozen encoder's) must stay frozen, else DDP waits for gradients that never come."""
    from net.sync_bn import AllReduceBatchNorm, convert_sync_batchnorm

    torch.manual_seed(0)
    net = torch.nn.ModuleDict({"live": torch.nn.Sequential(torch.nn.Conv1d(2, 3, 1), torch.nn.BatchNorm1d(3)),
                               "frozen": torch.nn.Sequential(torch.nn.Conv1d(2, 3, 1), torch.nn.BatchNorm1d(3))})
    for p in net["frozen"].parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        net["live"][1].weight.uniform_()
    net["live"][1].running_mean.fill_(0.5)
    params = {n: p for n, p in net.named_parameters()}
    trainable = sorted(n for n, p in net.named_parameters() if p.requires_grad)
    out = convert_sync_batchnorm(net, torch.device("cpu"))
    assert isinstance(out["live"][1], AllReduceBatchNorm) and isinstance(out["frozen"][1], AllReduceBatchNorm)
    assert sorted(n for n, p in out.named_parameters() if p.requires_grad) == trainable
    assert all(p is params[n] for n, p in out.named_parameters())     # the same Parameters, values included
    assert torch.equal(out["live"][1].running_mean, torch.full((3,), 0.5))


KILL_AT_STEP = 3   # the second step of epoch 2 (2 steps per epoch): a checkpoint in the middle of an epoch


@pytest.fixture(scope="module")
def resumed_runs(tmp_path_factory, repo_root):
    """Two gloo processes with dropout on, 2 epochs of 2 steps, a checkpoint after every step: one run straight
    through, one killed (both processes) before global step 4 and resumed from its step-3 checkpoint."""
    tmp_path = tmp_path_factory.mktemp("ddp_resume")
    make_split(tmp_path / "data", "train", n=16, text="tiny", text_shape=(77, 12))
    common = [f"work_dir={tmp_path / 'runs'}", f"data.root={tmp_path / 'data'}", "data.window=16",
              "data.text=tiny", "text.feature_dim=12", "moco.queue_size=16", "epochs=2", "num_workers=0",
              "tensorboard=false", "progress_bar=false", "device=cpu", "batch_size=4", "save_every_steps=1",
              *TINY_MODEL, "model.dropout=0.3"]
    main = str(repo_root / "main.py")
    run([TORCHRUN, "--nproc_per_node=2", "--standalone", main, "pretrain_acsar", "name=straight", *common], tmp_path)
    killer = tmp_path / "killed_main.py"
    killer.write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(repo_root)!r})\n"
        "from processor.pretrain_acsar import PretrainACSAR\n"
        "step = PretrainACSAR.train_step\n"
        "def train_step(self, batch):\n"
        f"    if self.global_step == {KILL_AT_STEP}:\n"
        "        raise RuntimeError('simulated kill')\n"
        "    return step(self, batch)\n"
        "PretrainACSAR.train_step = train_step\n"
        f"sys.argv[0] = {main!r}\n"
        f"runpy.run_path({main!r}, run_name='__main__')\n")
    killed = subprocess.run([TORCHRUN, "--nproc_per_node=2", "--standalone", str(killer), "pretrain_acsar",
                             "name=killed", *common], cwd=tmp_path, capture_output=True, text=True,
                            env=child_env(tmp_path),
                            timeout=300)
    assert killed.returncode != 0 and "simulated kill" in killed.stdout + killed.stderr, killed.stderr[-3000:]
    partial = torch.load(tmp_path / "runs/killed/latest.pt", map_location="cpu", weights_only=True)
    assert (partial["global_step"], partial["epoch"], partial["step_in_epoch"]) == (KILL_AT_STEP, 1, 1)
    run([TORCHRUN, "--nproc_per_node=2", "--standalone", main, "pretrain_acsar", "name=killed", "resume=true",
         *common], tmp_path)
    return tmp_path / "runs"


@needs_torchrun
def test_two_process_run_killed_mid_epoch_resumes_exactly(resumed_runs):
    """Each process resumes with its own generator states and running means: the epoch the kill cut logs what
    the uninterrupted run logged, and the weights end equal (with one saved state for all processes, the
    resumed processes would draw rank 0's dropout masks and log rank 0's means twice)."""
    rows = {name: [json.loads(line) for line in (resumed_runs / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("straight", "killed")}
    assert [r["epoch"] for r in rows["killed"]] == [r["epoch"] for r in rows["straight"]] == [1, 2]
    for straight, killed in zip(rows["straight"], rows["killed"]):
        assert set(killed) == set(straight)
        for key, value in straight.items():
            assert killed[key] == pytest.approx(value, rel=1e-6, abs=1e-7), (straight["epoch"], key)
    weights = {name: torch.load(resumed_runs / name / "latest.pt", map_location="cpu", weights_only=True)["model"]
               for name in ("straight", "killed")}
    differ = [k for k, v in weights["straight"].items() if v.is_floating_point()
              and not torch.allclose(weights["killed"][k], v, rtol=0, atol=1e-6)]
    assert not differ, differ[:5]


@needs_torchrun
def test_each_process_draws_its_own_random_numbers(resumed_runs):
    """Dropout masks differ between processes (seeded by rank once the model is built), and the checkpoint holds
    each process's generator state."""
    state = torch.load(resumed_runs / "straight" / "latest.pt", map_location="cpu", weights_only=True)
    per_process = state["per_process"]
    assert len(per_process) == 2
    assert torch.equal(per_process[0]["rng"]["torch"], state["rng"]["torch"])
    assert not torch.equal(per_process[0]["rng"]["torch"], per_process[1]["rng"]["torch"])
