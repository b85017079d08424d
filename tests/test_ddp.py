"""DDP: two gloo processes on CPU train like one process with the same total batch (losses and weights after
two steps), and the CPU synchronised batch norm keeps the model's frozen parameters frozen. The evaluations
(linear, semi-supervised, fine-tuning, kNN) under torchrun give one process's results, only rank 0 writes
files, and a two-process evaluation killed mid-epoch resumes exactly."""
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
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


# ----------------------------------------------------------------------------- evaluations under torchrun
EVAL_DRIVER = '''"""Runs the [processor, overrides, kill_at] entries of a JSON file in turn in this process, in
one process group (torchrun's rendezvous cannot be joined twice by one launch): a run whose kill_at is set
raises at the start of that global step on every process, as a kill of the launch between two steps; every
process records the files it renamed into place (feeder.io.atomic_path) in renamed_<rank>.txt."""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import torch.distributed as dist
from processor.evaluation.classification import ClassificationEvaluation
from processor.registry import get_processor

renamed = open(os.path.join(sys.argv[3], "renamed_%s.txt" % os.environ.get("RANK", "0")), "a")
replace = os.replace
def recording_replace(src, dst, *args, **kwargs):
    renamed.write("%s\\n" % dst)
    return replace(src, dst, *args, **kwargs)
os.replace = recording_replace
step = ClassificationEvaluation.train_step
kill = {"at": None}
def train_step(self, batch):
    if self.global_step == kill["at"]:
        kill["at"] = None
        raise RuntimeError("simulated kill")
    return step(self, batch)
ClassificationEvaluation.train_step = train_step
destroy = dist.destroy_process_group
dist.destroy_process_group = lambda *args, **kwargs: None
for processor, overrides, kill_at in json.loads(open(sys.argv[2]).read()):
    kill["at"] = kill_at
    try:
        get_processor(processor).from_config(None, overrides).run()
    except RuntimeError as err:
        if "simulated kill" not in str(err):
            raise
renamed.close()
if dist.is_initialized():
    destroy()
'''
EVAL_KILL_AT = 7   # the second step of epoch 2 (36 training clips at a global batch of 8: 5 steps an epoch)


@pytest.fixture(scope="module")
def eval_runs(tmp_path_factory, repo_root):
    """The evaluations at a global batch of 8: one process (in this one) and two gloo processes at batch 4 (one
    torchrun launch for all): linear (frozen encoder, features not cached: cache_features refuses torchrun),
    semi-supervised (a labelled half), fine-tuning, kNN; and two-process fine-tuning with a checkpoint every step,
    straight and killed before global step 7 then resumed. The second person of every clip moves (the shared
    test data leave it at zero: that puts the trained encoder's first ReLUs exactly at their kink, where the
    two runs' rounding sends gradients either way)."""
    from processor.registry import get_processor
    from test_eval_common import common_overrides, make_checkpoint, make_dataset

    tmp = tmp_path_factory.mktemp("ddp_eval")
    root = make_dataset(tmp / "data")
    rng = np.random.default_rng(3)
    for split in ("train", "val"):
        path = root / f"{split}_data_joint.npy"
        x = np.load(path)
        x[..., 1] = rng.normal(0, 0.5, size=x[..., 1].shape)
        np.save(path, x)
    ckpt = make_checkpoint(tmp / "runs" / "pre", root)
    common = common_overrides(tmp, root) + [f"pretrained={ckpt}"]

    def train(name, batch, *extra):
        return common + [f"name={name}", f"batch_size={batch}", "epochs=2", "optim.lr=0.05", "cache_features=false",
                         "tensorboard=false", *extra]

    finetune = ("optim.lr=0.01", "model.dropout=0.0", "check_pretrained_config=false")
    plan = lambda tag, batch: [   # noqa: E731
        ["linear_evaluation", train(f"linear_{tag}", batch), None],
        ["semi_supervised", train(f"semi_{tag}", batch, "label_fraction=0.5"), None],
        ["finetune", train(f"finetune_{tag}", batch, *finetune, "save_every_steps=1"), None],
        ["knn_evaluation", common + [f"name=knn_{tag}", "k=[1, 3]"], None]]
    for processor, overrides, _ in plan("one", 8):
        get_processor(processor).from_config(None, overrides).run()
    killed = train("finetune_killed", 4, *finetune, "save_every_steps=1")
    ddp = plan("ddp", 4) + [["finetune", killed, EVAL_KILL_AT], ["finetune", killed + ["resume=true"], None]]
    (tmp / "plan.json").write_text(json.dumps(ddp))
    (tmp / "driver.py").write_text(EVAL_DRIVER)
    run([TORCHRUN, "--nproc_per_node=2", "--standalone", str(tmp / "driver.py"), str(repo_root),
         str(tmp / "plan.json"), str(tmp)], tmp)
    return tmp


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _scores(run_dir, name="scores.pkl"):
    return pickle.loads((run_dir / name).read_bytes())


@needs_torchrun
@pytest.mark.parametrize("name", ["linear", "semi"])
def test_two_process_frozen_evaluations_match_one_process(eval_runs, name):
    """Frozen encoder, the head trained by DDP: results, every metrics row, best.pt and the test scores (rows and
    order) of two processes at batch 4 are those of one at batch 8 (float32 summation order apart), the frozen
    check passes on every process, and the semi-supervised subset is the same."""
    one, ddp = eval_runs / "runs" / f"{name}_one", eval_runs / "runs" / f"{name}_ddp"
    r1, r2 = (json.loads((d / "results.json").read_text()) for d in (one, ddp))
    for key in ("top1", "top5", "best_epoch", "test_last_epoch", "test_best_monitored_epoch", "split_sizes"):
        assert r2[key] == r1[key], key
    assert r2["frozen_check"].startswith("passed") and not r2["cache_features"]
    rows1, rows2 = _rows(one), _rows(ddp)
    assert [r["epoch"] for r in rows2] == [r["epoch"] for r in rows1] == [1, 2]
    for a, b in zip(rows1, rows2):
        assert set(a) == set(b)
        for key, value in a.items():
            assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (a["epoch"], key)
    for scores in ("scores.pkl", "scores_last.pkl"):
        s1, s2 = _scores(one, scores), _scores(ddp, scores)
        assert s2["names"] == s1["names"] and np.array_equal(s2["labels"], s1["labels"])
        assert np.allclose(s2["logits"], s1["logits"], rtol=1e-4, atol=1e-4), scores
    b1, b2 = (torch.load(d / "best.pt", weights_only=True) for d in (one, ddp))
    assert b2["epoch"] == b1["epoch"]
    assert all(torch.allclose(b2["model"][k], v, rtol=1e-4, atol=1e-5) for k, v in b1["model"].items())
    if name == "semi":
        assert (ddp / "subset_indices.json").read_text() == (one / "subset_indices.json").read_text()


@needs_torchrun
def test_two_process_finetuning_and_knn_match_one_process(eval_runs):
    """Fine-tuning: the first epoch's losses agree, and the test scores have the same rows in the same order.
    Only the first epoch: training the whole encoder amplifies rounding (in one process, weights perturbed by
    1e-7 differ by ~7e-3 after 15 steps), so later epochs of the two runs drift apart by more than the float32
    summation order. kNN (every process embeds both whole splits): identical scores and accuracies."""
    runs = eval_runs / "runs"
    first1, first2 = _rows(runs / "finetune_one")[0], _rows(runs / "finetune_ddp")[0]
    for key in ("train/loss", "train/acc"):
        assert first2[key] == pytest.approx(first1[key], rel=1e-4), key
    assert _scores(runs / "finetune_ddp")["names"] == _scores(runs / "finetune_one")["names"]
    k1, k2 = (json.loads((runs / name / "results.json").read_text()) for name in ("knn_one", "knn_ddp"))
    assert k2["top1_by_k"] == k1["top1_by_k"] and k2["split_sizes"] == k1["split_sizes"] == {"train": 40, "test": 20}
    s1, s2 = _scores(runs / "knn_one"), _scores(runs / "knn_ddp")
    assert s2["names"] == s1["names"] and np.array_equal(s2["logits"], s1["logits"])


@needs_torchrun
def test_only_rank_zero_writes_the_evaluation_files(eval_runs):
    """Rank 1 renames no file into place (results, scores, checkpoints, best.pt, subset_indices.json, figures,
    report.md all come from rank 0), and the two-process run dirs hold the files of the one-process ones."""
    assert (eval_runs / "renamed_1.txt").read_text() == ""
    written = (eval_runs / "renamed_0.txt").read_text().splitlines()
    assert any(p.endswith("semi_ddp/subset_indices.json") for p in written)
    for name in ("linear", "semi", "finetune", "knn"):
        one, ddp = eval_runs / "runs" / f"{name}_one", eval_runs / "runs" / f"{name}_ddp"
        assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in one.iterdir()), name
        assert sum(p.endswith(f"{name}_ddp/results.json") for p in written) == 1


@needs_torchrun
def test_two_process_evaluation_killed_mid_epoch_resumes_exactly(eval_runs):
    """Fine-tuning on two processes killed in the middle of epoch 2 and resumed (samples digest, plateau state,
    per-process generator states from the checkpoint): metrics, results, best.pt, latest.pt and both score files
    equal the straight two-process run's."""
    straight, killed = eval_runs / "runs" / "finetune_ddp", eval_runs / "runs" / "finetune_killed"
    info = json.loads((killed / "run_info.json").read_text())
    assert len(info["resumes"]) == 1
    assert (killed / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()
    r1, r2 = (json.loads((d / "results.json").read_text()) for d in (straight, killed))
    assert {k: v for k, v in r2.items() if k != "wall_time_s"} == {k: v for k, v in r1.items() if k != "wall_time_s"}
    for name in ("latest.pt", "best.pt"):
        w1, w2 = (torch.load(d / name, weights_only=True)["model"] for d in (straight, killed))
        assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1), name
    for name in ("scores.pkl", "scores_last.pkl"):
        assert np.array_equal(_scores(killed, name)["logits"], _scores(straight, name)["logits"]), name
