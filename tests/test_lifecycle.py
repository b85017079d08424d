"""Processor lifecycle: work dirs, exact resume, crash-safe checkpoints, run records."""
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from processor import checkpoint as ckpt_module
from processor.base import Processor, TrainProcessor
from processor.checkpoint import LATEST, load_checkpoint
from processor.config import ConfigError
from processor.runtime import FINISHED_MARKER, OVERWRITTEN_DIR, RunDirError

DEFAULTS = """
_base_: {train}
model_width: 8
"""


class RandomSet(Dataset):
    def __init__(self, n=40, dim=6):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, dim, generator=g)
        self.y = (self.x.sum(1) > 0).long()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class Interrupt(Exception):
    pass


class ToyProcessor(TrainProcessor):
    name = "toy"
    description = "a tiny classifier for lifecycle tests"
    defaults_file: Path = None
    interrupt_at = None  # global step at which train_step raises (simulated kill)

    @classmethod
    def defaults_path(cls):
        return cls.defaults_file

    def build_data(self):
        self.train_set = RandomSet()

    def build_model(self):
        w = self.cfg.model_width
        return nn.Sequential(nn.Linear(6, w), nn.ReLU(), nn.Dropout(0.3), nn.Linear(w, 2))

    def train_step(self, batch):
        if self.interrupt_at is not None and self.global_step == self.interrupt_at:
            raise Interrupt
        x, y = batch
        loss = nn.functional.cross_entropy(self.model(x), y)
        return {"loss": loss}


@pytest.fixture
def toy(tmp_path, repo_root):
    defaults = tmp_path / "toy_defaults.yaml"
    defaults.write_text(DEFAULTS.format(train=repo_root / "config/defaults/train.yaml"))
    ToyProcessor.defaults_file = defaults
    ToyProcessor.interrupt_at = None
    return tmp_path


def make(tmp_path, *overrides):
    base = [f"work_dir={tmp_path / 'runs'}", "name=toy", "epochs=4", "batch_size=8", "tensorboard=false",
            "progress_bar=false", "scheduler.name=multistep", "scheduler.milestones=[2]",
            "save_every_steps=1"]
    return ToyProcessor.from_config(None, base + list(overrides))


def final_weights(tmp_path, name):
    return load_checkpoint(tmp_path / "runs" / name / LATEST)["model"]


@pytest.mark.parametrize("warmup", [[], ["scheduler.warmup_epochs=1.6"]], ids=["plain", "warmup"])
def test_killed_and_resumed_run_matches_uninterrupted(toy, warmup):
    make(toy, "name=straight", *warmup).run()
    reference = final_weights(toy, "straight")

    ToyProcessor.interrupt_at = 7  # in the middle of the second epoch (5 steps per epoch; inside the warm-up)
    with pytest.raises(Interrupt):
        make(toy, "name=killed", *warmup).run()
    partial = load_checkpoint(toy / "runs/killed" / LATEST)
    assert (partial["epoch"], partial["step_in_epoch"]) == (1, 2)
    assert not (toy / "runs/killed" / FINISHED_MARKER).exists()

    ToyProcessor.interrupt_at = None
    with pytest.raises(RunDirError, match="unfinished run"):
        make(toy, "name=killed").run()
    make(toy, "name=killed", "resume=true", *warmup).run()
    resumed = final_weights(toy, "killed")
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), key
    # the logged epoch means too: the resumed epoch 2 averages all its 5 steps, not the 3 after the resume
    logged = [(toy / "runs" / name / "metrics.jsonl").read_text().splitlines() for name in ("straight", "killed")]
    straight, killed = ([json.loads(line) for line in rows] for rows in logged)
    assert [r["epoch"] for r in killed] == [r["epoch"] for r in straight]
    for a, b in zip(straight, killed):
        assert {k: v for k, v in a.items() if k.startswith("train/")} == \
            {k: v for k, v in b.items() if k.startswith("train/")}, a["epoch"]


def test_mid_epoch_checkpoint_refuses_another_world_size(toy):
    ToyProcessor.interrupt_at = 7
    with pytest.raises(Interrupt):
        make(toy, "name=world").run()
    ToyProcessor.interrupt_at = None
    path = toy / "runs/world" / LATEST
    state = load_checkpoint(path)
    assert state["world_size"] == 1
    state["world_size"] = 2  # as if two DDP processes had written it
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"middle of an epoch by 2 process\(es\) at batch_size 8; resume it "
                                           r"with 2 process\(es\) and batch_size 8, not 1 and 8"):
        make(toy, "name=world", "resume=true").run()
    state["world_size"] = 1
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"batch_size 8, not 1 and 2"):
        make(toy, "name=world", "resume=true", "batch_size=2").run()


def test_resume_drops_metrics_rows_the_checkpoint_does_not_hold(toy):
    ToyProcessor.interrupt_at = 7  # latest.pt: epoch 1 done, 2 steps into epoch 2
    with pytest.raises(Interrupt):
        make(toy, "name=trim").run()
    ToyProcessor.interrupt_at = None
    metrics = toy / "runs/trim/metrics.jsonl"
    with open(metrics, "a") as handle:  # an epoch logged before a kill that came ahead of its save, a cut line
        handle.write('{"epoch": 2, "train/loss": 9.0}\n{"epoch": 3, "tr')
    make(toy, "name=trim", "resume=true", "log_interval=3").run()
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and rows[1]["train/loss"] != 9.0
    info = json.loads((toy / "runs/trim/run_info.json").read_text())
    assert len(info["resumes"]) == 1 and info["resumes"][0]["started"] >= info["started"]  # the first kept
    assert "versions" in info
    before = (toy / "runs/trim/config.before_resume_1.yaml").read_text()
    assert "log_interval: 3" not in before and "log_interval: 3" in (toy / "runs/trim/config.yaml").read_text()


def test_new_run_after_a_kill_before_the_first_checkpoint_logs_each_epoch_once(toy, monkeypatch):
    """Killed while saving its first checkpoint (after epoch 1's row was logged): no latest.pt, so the run is
    started again, not resumed; its metrics.jsonl must not keep the killed attempt's row of epoch 1."""
    def killed(self, epoch, step_in_epoch, periodic=False):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(TrainProcessor, "save", killed)
        with pytest.raises(KeyboardInterrupt):
            make(toy, "name=again", "save_every_steps=0").run()
    run_dir = toy / "runs/again"
    assert not (run_dir / LATEST).exists() and (run_dir / "metrics.jsonl").read_text().count("\n") == 1
    make(toy, "name=again", "save_every_steps=0").run()
    make(toy, "name=straight", "save_every_steps=0").run()
    assert (run_dir / "metrics.jsonl").read_text() == (toy / "runs/straight/metrics.jsonl").read_text()


def test_resume_without_a_checkpoint_is_an_error(toy):
    with pytest.raises(RunDirError, match=r"--resume: .*runs/nothing holds no latest\.pt"):
        make(toy, "name=nothing", "resume=true").run()


class NaNAfter(ToyProcessor):
    def train_step(self, batch):
        out = super().train_step(batch)
        return {"loss": out["loss"] * float("nan")} if self.global_step >= 6 else out


def test_non_finite_loss_stops_before_a_checkpoint_keeps_it(toy):
    NaNAfter.defaults_file = ToyProcessor.defaults_file
    run = NaNAfter.from_config(None, [f"work_dir={toy / 'runs'}", "name=nan", "epochs=4", "batch_size=8",
                                      "progress_bar=false", "save_every_steps=0"])
    with pytest.raises(FloatingPointError, match=r"non-finite training metrics \{'loss': nan\} in epoch 2"):
        run.run()
    state = load_checkpoint(toy / "runs/nan" / LATEST)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (toy / "runs/nan" / FINISHED_MARKER).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_fails_before_the_work_dir(toy):
    from processor.config import ConfigError

    with pytest.raises(ConfigError, match="device=cuda was requested but torch sees no CUDA device"):
        make(toy, "name=gpu", "device=cuda").run()
    assert not (toy / "runs/gpu").exists()


def _lr_per_step(toy, name, *overrides):
    """The learning rate each optimiser step used, and the rates logged per epoch."""
    seen = []

    class Recording(ToyProcessor):
        def build_optimizer(self):
            optimizer = super().build_optimizer()
            optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
            return optimizer

    Recording.from_config(None, [
        f"work_dir={toy / 'runs'}", f"name={name}", "epochs=4", "batch_size=8", "tensorboard=false",
        "progress_bar=false", "optim.lr=0.5", "scheduler.name=multistep", "scheduler.milestones=[2]",
        *overrides]).run()
    logged = [json.loads(line)["lr"] for line in (toy / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    return seen, logged


def test_resume_names_the_settings_that_changed(toy, caplog):
    ToyProcessor.interrupt_at = 7
    with pytest.raises(Interrupt):
        make(toy, "name=changed").run()
    ToyProcessor.interrupt_at = None
    with caplog.at_level("WARNING", logger="processor.base"):
        make(toy, "name=changed", "resume=true", "num_workers=1", "log_interval=3").run()
    assert not [r for r in caplog.records if "differ from its checkpoint" in r.getMessage()]
    make(toy, "name=changed2", "epochs=2").run()
    (toy / "runs/changed2" / FINISHED_MARKER).unlink()               # pretend it stopped before its end
    with caplog.at_level("WARNING", logger="processor.base"):
        make(toy, "name=changed2", "resume=true", "epochs=3", "optim.lr=0.02").run()
    warned = [r.getMessage() for r in caplog.records if "differ from its checkpoint" in r.getMessage()]
    assert len(warned) == 1
    assert "epochs: 2 -> 3; optim.lr: 0.01 -> 0.02 (" in warned[0]    # run-control keys (resume) not listed
    assert "learning rate, momentum, weight decay and milestones stay as saved" in warned[0]
    lrs = [json.loads(line)["lr"] for line in (toy / "runs/changed2/metrics.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([0.01, 0.01, 0.001])                 # the saved lr (0.02 would log 0.002 last)


def test_warmup_ramps_then_hands_over_to_the_epoch_schedule(toy):
    seen, logged = _lr_per_step(toy, "warm", "scheduler.warmup_epochs=0.8")
    # 5 steps per epoch, 4 warm-up steps: 0.5 * (1, 2, 3, 4) / 4, then 0.5; x0.1 from epoch 3 (milestone 2)
    expected = [0.125, 0.25, 0.375, 0.5, 0.5] + [0.5] * 5 + [0.05] * 10
    assert seen == pytest.approx(expected)
    assert logged == pytest.approx([0.5, 0.5, 0.05, 0.05])      # the rate of each epoch's last step


def test_warmup_composes_with_a_milestone_inside_it(toy):
    seen, logged = _lr_per_step(toy, "warm_long", "scheduler.warmup_epochs=3")
    # 15 warm-up steps; the milestone after epoch 2 scales the rate being ramped
    expected = [0.5 * (s + 1) / 15 for s in range(10)] + [0.05 * (s + 1) / 15 for s in range(10, 15)] + [0.05] * 5
    assert seen == pytest.approx(expected)
    assert logged == pytest.approx([0.5 * 5 / 15, 0.5 * 10 / 15, 0.05, 0.05])     # each epoch's last step


def test_finished_run_is_not_overwritten(toy):
    make(toy, "name=done", "epochs=1").run()
    run_dir = toy / "runs/done"
    assert (run_dir / FINISHED_MARKER).exists()
    with pytest.raises(RunDirError, match="finished run"):
        make(toy, "name=done", "epochs=1").run()
    make(toy, "name=done", "epochs=1", "overwrite=true").run()
    assert (run_dir / FINISHED_MARKER).exists()


def test_overwrite_starts_clean_and_keeps_the_earlier_run(toy):
    make(toy, "name=again", "epochs=3").run()
    run_dir = toy / "runs/again"
    first = (run_dir / "metrics.jsonl").read_text()
    make(toy, "name=again", "epochs=2", "overwrite=true").run()
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]  # not the earlier run's 1, 2, 3 followed by 1, 2
    (kept,) = (run_dir / OVERWRITTEN_DIR).iterdir()
    assert (kept / "metrics.jsonl").read_text() == first and (kept / FINISHED_MARKER).exists()
    assert "epochs: 3" in (kept / "config.yaml").read_text() and "epochs: 2" in (run_dir / "config.yaml").read_text()
    with pytest.raises(RunDirError, match="exclude each other"):
        make(toy, "name=again", "epochs=2", "overwrite=true", "resume=true").run()


class _Payload:
    """An object whose unpickling runs code (writes a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path(self.marker).write_text, ("ran",))


def test_untrusted_checkpoint_with_pickled_objects_is_refused_unrun(toy, tmp_path):
    make(toy, "name=plain", "epochs=1").run()
    ours = load_checkpoint(toy / "runs/plain" / LATEST, trusted=False)  # tensors and plain containers only
    assert ours["epoch"] == 1 and "numpy" in ours["rng"]
    marker, bad = tmp_path / "marker.txt", tmp_path / "bad.pt"
    torch.save({"model": {}, "config": {}, "x": _Payload(marker)}, bad)
    with pytest.raises(ValueError, match=r"bad\.pt: holds pickled objects .* set pretrained_format=acsar"):
        load_checkpoint(bad, trusted=False)
    assert not marker.exists()


def test_unreadable_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "latest.pt"
    bad.write_bytes(b"PK\x03\x04 interrupted copy")
    with pytest.raises(ValueError, match=r"latest\.pt: cannot read as a torch checkpoint"):
        load_checkpoint(bad)


def test_run_record_is_written(toy):
    make(toy, "name=record", "epochs=2").run()
    run_dir = toy / "runs/record"
    info = json.loads((run_dir / "run_info.json").read_text())
    assert {"command", "git_commit", "versions", "host"} <= set(info)
    import importlib.metadata
    import platform

    assert info["versions"]["torch"] == importlib.metadata.version("torch")
    assert info["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert info["versions"]["python"] == platform.python_version()
    assert "epochs: 2" in (run_dir / "config.yaml").read_text()
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2]
    assert (run_dir / "log.txt").read_text().count("epoch") >= 2
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs_run"] == 2


def test_a_failed_run_records_its_traceback_in_its_log_once(toy, capsys):
    class Failing(ToyProcessor):
        def train_step(self, batch):
            if self.global_step == 7:            # 5 steps per epoch: in the second epoch
                raise Interrupt("disk full")
            return super().train_step(batch)

    with pytest.raises(Interrupt, match="disk full"):
        Failing.from_config(None, [f"work_dir={toy / 'runs'}", "name=failed", "epochs=2", "batch_size=8",
                                   "tensorboard=false", "progress_bar=false"]).run()
    log = (toy / "runs/failed/log.txt").read_text()
    assert "ERROR" in log and "toy stopped by Interrupt: disk full" in log
    assert "Traceback (most recent call last)" in log and "in train_step" in log
    assert log.index("epoch 1/2") < log.index("stopped by")          # after the first epoch's line
    assert "stopped by" not in capsys.readouterr().err               # the console gets Python's own traceback only
    assert not (toy / "runs/failed" / FINISHED_MARKER).exists()


def test_sigterm_ends_a_run_like_ctrl_c_with_its_log_saying_so(toy):
    """A scheduler's SIGTERM raises in the main thread: the log records it, the run is left unfinished (and
    resumable), and the process's own SIGTERM handler is back afterwards."""
    import os
    import signal

    from processor.runtime import Terminated

    class Killed(ToyProcessor):
        def train_step(self, batch):
            if self.global_step == 7:
                os.kill(os.getpid(), signal.SIGTERM)
            return super().train_step(batch)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as info:
        Killed.from_config(None, [f"work_dir={toy / 'runs'}", "name=sigterm", "epochs=2", "batch_size=8",
                                  "tensorboard=false", "progress_bar=false"]).run()
    assert info.value.code == 143 and signal.getsignal(signal.SIGTERM) is before
    log = (toy / "runs/sigterm/log.txt").read_text()
    assert "toy stopped by Terminated: signal SIGTERM" in log and "in train_step" in log
    assert (toy / "runs/sigterm/latest.pt").is_file() and not (toy / "runs/sigterm" / FINISHED_MARKER).exists()


def test_crash_while_saving_keeps_previous_checkpoint(toy, monkeypatch):
    make(toy, "name=crash", "epochs=1").run()
    run_dir = toy / "runs/crash"
    before = load_checkpoint(run_dir / LATEST)

    def broken_save(obj, path, *args, **kwargs):
        handle = open(path, "wb") if isinstance(path, (str, Path)) else path     # a path or a file object
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt_module.save_checkpoint({"model": {}}, run_dir)
    after = load_checkpoint(run_dir / LATEST)
    assert after["global_step"] == before["global_step"]
    assert not [p for p in run_dir.iterdir() if ".tmp-" in p.name]


def test_periodic_copies(toy):
    make(toy, "name=periodic", "epochs=4", "save_interval=2").run()
    names = sorted(p.name for p in (toy / "runs/periodic").glob("epoch_*.pt"))
    assert names == ["epoch_0002.pt", "epoch_0004.pt"]


def test_num_threads_is_applied_by_every_processor(toy):
    """Also by processors without an epoch loop (kNN, fusion, t-SNE, report)."""
    seen = []

    class NoLoop(Processor):
        name = "noloop"
        description = "a processor without a training loop"

        @classmethod
        def defaults_path(cls):
            return ToyProcessor.defaults_file

        def execute(self):
            seen.append(torch.get_num_threads())
            return {}

    before = torch.get_num_threads()
    try:
        NoLoop.from_config(None, [f"work_dir={toy / 'runs'}", "name=noloop", "num_threads=3"]).run()
    finally:
        torch.set_num_threads(before)
    assert seen == [3]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_rng_state_survives_a_checkpoint_loaded_onto_the_device(tmp_path, device):
    """Resuming loads the checkpoint with map_location=<training device>; on a GPU that moves the saved
    CPU generator state onto the GPU, and torch.set_rng_state only takes CPU byte tensors."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    from processor import runtime
    from processor.checkpoint import save_checkpoint

    torch.manual_seed(5)
    save_checkpoint({"rng": runtime.rng_state()}, tmp_path)
    expected = torch.rand(4), (torch.rand(4, device=device) if device == "cuda" else None)
    torch.manual_seed(99)
    state = load_checkpoint(tmp_path / LATEST, map_location=device)
    assert state["rng"]["torch"].device.type == device
    runtime.set_rng_state(state["rng"])
    assert torch.equal(torch.rand(4), expected[0])
    if device == "cuda":
        assert torch.equal(torch.rand(4, device=device), expected[1])


def test_rng_state_of_more_gpus_than_visible_restores_the_visible_ones(monkeypatch, caplog):
    """A checkpoint holds the generator state of every GPU its process saw (torch.cuda.get_rng_state_all); a
    resume that sees fewer (another node, CUDA_VISIBLE_DEVICES) failed in torch.cuda.set_rng_state_all, whose
    set_rng_state(state, i) indexes torch.cuda.default_generators[i] (IndexError) once CUDA is initialised, as
    it is at a resume (the model is on the GPU).  Emulated here: one visible GPU, a checkpoint of two."""
    import torch.cuda.random as cuda_random
    from processor import runtime

    restored = []

    def set_rng_state(state, device="cuda"):
        index = device if isinstance(device, int) else torch.device(device).index or 0
        if index >= 1:
            raise IndexError("tuple index out of range")     # torch.cuda.default_generators[index]
        restored.append((index, state))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_rng_state)
    monkeypatch.setattr(cuda_random, "set_rng_state", set_rng_state)
    state = {"python": __import__("random").getstate(), "numpy": __import__("numpy").random.get_state(),
             "torch": torch.get_rng_state(), "cuda": [torch.tensor([1], dtype=torch.uint8),
                                                      torch.tensor([2], dtype=torch.uint8)]}
    with caplog.at_level("WARNING"):
        runtime.set_rng_state(state)
    assert [(i, s.tolist()) for i, s in restored] == [(0, [1])]
    assert "2 GPU(s)" in caplog.text and "1 visible" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_rng_state_of_more_gpus_than_visible_on_a_gpu():
    from processor import runtime

    torch.manual_seed(5)
    state = runtime.rng_state()
    state["cuda"] = [*state["cuda"], state["cuda"][0].clone()]       # saved where one more GPU was visible
    expected = torch.rand(4, device="cuda")
    torch.manual_seed(99)
    runtime.set_rng_state(state)
    assert torch.equal(torch.rand(4, device="cuda"), expected)


def test_a_resume_whose_model_no_longer_fits_names_the_changed_setting(toy):
    """model_width changed between the kill and the resume: torch's raw size-mismatch error became a config
    error naming the changed key."""
    ToyProcessor.interrupt_at = 7
    with pytest.raises(Interrupt):
        make(toy, "name=killed").run()
    ToyProcessor.interrupt_at = None
    with pytest.raises(ConfigError, match=r"latest\.pt: its model or optimiser does not fit this run's "
                                          r"\(model_width: 8 -> 16\): resume with the settings it was saved with"):
        make(toy, "name=killed", "resume=true", "model_width=16").run()
    make(toy, "name=killed", "resume=true").run()                 # the saved settings still resume
    assert (toy / "runs/killed" / FINISHED_MARKER).exists()


def test_every_process_follows_rank_zeros_evaluation(toy, monkeypatch):
    """Under torchrun each process evaluates on its own; the plateau rule must act on one evaluation (rank 0's),
    or a process whose accuracy differs by one flipped sample cuts its lr alone or stops while the others wait.
    Emulated: this process's accuracy improves every epoch, rank 0's never does."""
    from processor import runtime

    class Watching(ToyProcessor):
        def evaluate(self, epoch):
            return {"acc": 50.0 + epoch}

        def monitored_value(self, metrics):
            return metrics["acc"]

    monkeypatch.setattr(runtime, "gather_objects", lambda obj: [{"acc": 10.0}, obj])
    base = [f"work_dir={toy / 'runs'}", "name=ranks", "epochs=10", "batch_size=8", "tensorboard=false",
            "progress_bar=false", "scheduler.name=plateau", "scheduler.patience=1", "scheduler.stop_patience=2"]
    results = Watching.from_config(None, base).run()
    assert results["epochs_run"] == 3                   # rank 0's best at epoch 1, then two epochs without gain
    rows = [json.loads(line) for line in (toy / "runs/ranks/metrics.jsonl").read_text().splitlines()]
    assert [r["eval/acc"] for r in rows] == [10.0, 10.0, 10.0]


def test_a_cuda_index_becomes_the_current_device_and_must_exist(monkeypatch):
    """device=cuda:1 in one process: GPU 1 becomes the current device (else the DataLoader's pin-memory thread
    opens a context on GPU 0); cuda:3 on a machine of 2 GPUs is a config error naming the count.  Emulated."""
    from processor import runtime

    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    assert runtime.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert current == [torch.device("cuda", 1)]
    assert runtime.resolve_device("cuda") == torch.device("cuda") and len(current) == 1   # the current one
    with pytest.raises(ConfigError, match=r"device=cuda:3 but torch sees 2 CUDA device\(s\)"):
        runtime.resolve_device("cuda:3")
    assert runtime.resolve_device("cpu") == torch.device("cpu") and len(current) == 1


@pytest.mark.parametrize("name", ["", " ", ".", "..", "../elsewhere", "a/../b", "a//b", "a/", "/tmp/abs", "a\\b"])
def test_a_run_name_must_name_a_folder_of_its_own_below_work_dir(toy, name):
    make(toy, "name=done", "epochs=1").run()
    with pytest.raises(ConfigError, match=rf"name={re.escape(repr(name))} is not a run folder below work_dir"):
        make(toy, f"name='{name}'", "epochs=1", "overwrite=true").run()
    assert (toy / "runs/done" / FINISHED_MARKER).exists() and not (toy / "runs" / OVERWRITTEN_DIR).exists()


def test_report_named_dot_leaves_the_other_runs_in_place(toy):
    """The reviewer's case: report (overwrite: true) with name=. would have moved every run under work_dir."""
    import main as main_module

    make(toy, "name=done", "epochs=1").run()
    assert main_module.main(["report", f"work_dir={toy / 'runs'}", "name=."]) == 2
    assert (toy / "runs/done" / FINISHED_MARKER).exists() and not (toy / "runs" / OVERWRITTEN_DIR).exists()


def test_a_name_read_as_a_bool_or_number_is_an_error_not_the_default_folder(toy):
    for value, shown in (("off", "False"), ("2024", "2024"), ("1e-3", "0.001")):
        with pytest.raises(ConfigError, match=rf"'name' \(set in command line\) must be a string .*got {shown}"):
            make(toy, f"name={value}")
    make(toy, "name='2024'", "epochs=1").run()                      # quoted, it is text
    assert (toy / "runs/2024" / FINISHED_MARKER).exists()


def test_overwrite_refuses_a_folder_that_holds_other_runs(toy):
    make(toy, "name=outer/inner", "epochs=1").run()                 # nested names stay allowed
    (toy / "runs/outer/notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match=r"runs/outer holds other runs \(inner\): overwrite would move them"):
        make(toy, "name=outer", "epochs=1", "overwrite=true").run()
    assert (toy / "runs/outer/inner" / FINISHED_MARKER).exists() and (toy / "runs/outer/notes.txt").exists()


def test_a_fractional_epoch_count_is_an_error(toy):
    with pytest.raises(ConfigError, match=r"'epochs' \(set in command line\) must be a positive integer like the default 1, "
                                          r"got 1.9"):
        make(toy, "name=frac", "epochs=1.9")


@pytest.mark.parametrize("bad", [["epochs=0"], ["epochs=-3"], ["batch_size=0"], ["batch_size=-1"],
                                 ["batch_size=0", "scheduler.warmup_epochs=1"]],
                         ids=["epochs0", "epochs-3", "batch0", "batch-1", "batch0-warmup"])
def test_a_run_of_no_epochs_or_empty_batches_is_a_config_error(toy, bad):
    """epochs < 1 marked a run that trained nothing FINISHED (no latest.pt); batch_size < 1 ended in torch's
    sampler or a ZeroDivisionError of the warm-up: both are config errors naming the key (declared positive
    integers in config/defaults/train.yaml)."""
    key = bad[0].split("=")[0]
    with pytest.raises(ConfigError, match=rf"^config key '{key}' \(set in command line\) must be a positive integer "
                                          rf"like the default \d+, got -?\d"):
        make(toy, "name=none", *bad).run()
    assert not (toy / "runs/none" / FINISHED_MARKER).exists()


def test_epoch_log_line_says_the_unit_of_every_accuracy():
    from processor.base import format_epoch_record, is_accuracy_key

    record = {"epoch": 3, "lr": 0.01, "train/loss": 1.23456, "train/acc": 87.5, "train/acc_domain": 3.90625,
              "train/acc_cross_rolled": 100.0, "eval/holdout_top1": 75.0, "eval/holdout_top5": 100.0,
              "eval/holdout_loss": 0.5697}
    assert format_epoch_record(record) == (
        "lr 0.01  train/loss 1.235  train/acc 87.50 %  train/acc_domain 3.91 %  train/acc_cross_rolled 100.00 %  "
        "eval/holdout_top1 75.00 %  eval/holdout_top5 100.00 %  eval/holdout_loss 0.5697")
    assert not is_accuracy_key("train/loss_cross") and not is_accuracy_key("lr")


def test_main_reports_missing_data_in_one_line_and_keeps_the_traceback_in_the_log(tmp_path, repo_root, capsys):
    import main as main_module

    code = main_module.main(["pretrain_acsar", "--config", str(repo_root / "config/demo/pretrain.yaml"),
                             f"work_dir={tmp_path / 'runs'}", f"data.root={tmp_path / 'absent'}", "name=nodata",
                             "progress_bar=false", "tensorboard=false"])
    err = capsys.readouterr().err                    # the console log goes to stderr too
    log = tmp_path / "runs/nodata/log.txt"
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error: split 'train' of ")
    assert "prepare the data with the data_gen/ scripts" in err
    assert f"(traceback in {log})" in err and "Traceback (most recent call last)" not in err
    assert "Traceback (most recent call last)" in log.read_text() and "FileNotFoundError" in log.read_text()
    assert not (tmp_path / "runs/nodata" / FINISHED_MARKER).exists()


def _one_error_line(err: str) -> str:
    assert "Traceback (most recent call last)" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize("damage", ["labels", "truncated"])
def test_main_reports_a_malformed_data_file_in_one_line(tmp_path, repo_root, capsys, damage):
    """A prepared split whose files disagree (a label pickle one sample short) or a truncated data array:
    one error line naming the file, the traceback in log.txt, as for a missing file."""
    import pickle

    from tests.helpers import make_split

    root = tmp_path / "data"
    make_split(root, "train", n=8)
    if damage == "labels":
        names, labels = pickle.loads((root / "train_label.pkl").read_bytes())
        (root / "train_label.pkl").write_bytes(pickle.dumps((names[:-1], labels[:-1])))
    else:
        data = root / "train_data_joint.npy"
        data.write_bytes(data.read_bytes()[:1000])
    code = main_module_main(["pretrain_acsar", "--config", str(repo_root / "config/demo/pretrain.yaml"),
                             f"work_dir={tmp_path / 'runs'}", f"data.root={root}", "name=bad", "text.mode=none",
                             "progress_bar=false", "tensorboard=false"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 1
    named = root / ("train_label.pkl" if damage == "labels" else "train_data_joint.npy")
    assert str(named) in line and f"(traceback in {tmp_path / 'runs/bad/log.txt'})" in line
    assert "Traceback (most recent call last)" in (tmp_path / "runs/bad/log.txt").read_text()


def test_main_reports_an_unreadable_checkpoint_to_resume_in_one_line(tmp_path, repo_root, capsys):
    """resume=true on a latest.pt cut short (a copy that stopped half way): one error line naming it."""
    run_dir = tmp_path / "runs/cut"
    run_dir.mkdir(parents=True)
    (run_dir / LATEST).write_bytes(b"PK\x03\x04 half a checkpoint")
    code = main_module_main(["pretrain_acsar", "--config", str(repo_root / "config/demo/pretrain.yaml"),
                             f"work_dir={tmp_path / 'runs'}", f"data.root={tmp_path / 'absent'}", "name=cut",
                             "--resume", "progress_bar=false", "tensorboard=false"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 1 and f"{run_dir / LATEST}: cannot read as a torch checkpoint" in line


@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_main_reports_an_unusable_work_dir_in_one_line(tmp_path, repo_root, capsys, monkeypatch, kind):
    """work_dir= a file, or a folder this user cannot write: one error line naming it, nothing else."""
    import os
    from pathlib import Path

    work = tmp_path / "work"
    if kind == "file":
        work.write_text("not a folder")
    else:
        work.mkdir()
        work.chmod(0o555)
        if os.access(work, os.W_OK):                # root writes anywhere: the OS's refusal, emulated
            real_mkdir = Path.mkdir

            def refuse(self, *args, **kwargs):
                if self != work and work in self.parents:
                    raise PermissionError(13, "Permission denied", str(self))
                return real_mkdir(self, *args, **kwargs)

            monkeypatch.setattr(Path, "mkdir", refuse)
    try:
        code = main_module_main(["pretrain_acsar", "--config", str(repo_root / "config/demo/pretrain.yaml"),
                                 f"work_dir={work}", "name=run", "progress_bar=false", "tensorboard=false"])
    finally:
        if kind != "file":
            work.chmod(0o755)
    line = _one_error_line(capsys.readouterr().err)
    assert code != 0 and str(work) in line


def main_module_main(argv):
    import main as main_module

    return main_module.main(argv)


def test_main_reports_an_unknown_augmentation_op_in_one_line(tmp_path, repo_root, capsys):
    """augment.order naming an op that does not exist: one error line naming the key and the known ops (the
    README's promise for a config value that cannot work), not a KeyError traceback on the console."""
    from tests.helpers import make_split

    root = tmp_path / "data"
    make_split(root, "train", n=8)
    code = main_module_main(["pretrain_acsar", "--config", str(repo_root / "config/demo/pretrain.yaml"),
                             f"work_dir={tmp_path / 'runs'}", f"data.root={root}", "name=ops", "text.mode=none",
                             "augment.order=[rotate, jitter]", "progress_bar=false", "tensorboard=false"])
    line = _one_error_line(capsys.readouterr().err)
    assert code != 0
    assert "augment.order: unknown ops ['jitter']" in line and "temporal_mask" in line


_HOLD_LOCK = """
import fcntl, sys
handle = open(sys.argv[1], "a+")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
handle.seek(0)
handle.truncate()
handle.write("pid 4242 on elsewhere since 2026-01-01T00:00:00")
handle.flush()
print("locked", flush=True)
sys.stdin.read()                  # holds the lock until the test closes stdin
"""

_TRY_LOCK = """
import fcntl, os, sys
if not os.path.exists(sys.argv[1]):
    print("absent")
    sys.exit()
handle = open(sys.argv[1])
try:
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("held")
else:
    print("free")
"""


def test_a_second_process_on_a_running_runs_folder_is_refused(toy):
    """Two processes in one run folder (a command started twice, a --resume or --overwrite of a run still going)
    wrote one latest.pt, log.txt and metrics.jsonl together (12 rows for a 6-epoch run): a run now holds a lock
    on its folder, and a second process is refused with the holder named, moving and writing nothing."""
    import subprocess
    import sys

    seen = []
    LOCK_FILE = ".run.lock"                          # the README's name of the lock

    class Probing(ToyProcessor):
        def train_step(self, batch):
            if self.global_step == 2:                # while the run is going: another process cannot lock it
                seen.append(subprocess.run([sys.executable, "-c", _TRY_LOCK, str(self.work_dir / LOCK_FILE)],
                                           capture_output=True, text=True, check=True).stdout.strip())
            return super().train_step(batch)

    Probing.from_config(None, [f"work_dir={toy / 'runs'}", "name=busy", "epochs=2", "batch_size=8",
                               "tensorboard=false", "progress_bar=false"]).run()
    assert seen == ["held"]
    run_dir = toy / "runs/busy"
    assert subprocess.run([sys.executable, "-c", _TRY_LOCK, str(run_dir / LOCK_FILE)], capture_output=True,
                          text=True, check=True).stdout.strip() == "free"          # released at the end

    (run_dir / FINISHED_MARKER).unlink()             # as if that run were still going, in another process
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run_dir / LOCK_FILE)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = sorted(p.name for p in run_dir.iterdir())
        for extra in ([], ["resume=true"], ["overwrite=true"]):
            with pytest.raises(RunDirError, match=r"busy is in use by a run that is still going \(pid 4242 on "
                                                  r"elsewhere since 2026-01-01T00:00:00\)"):
                make(toy, "name=busy", *extra).run()
            assert sorted(p.name for p in run_dir.iterdir()) == before, extra        # nothing moved or written
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    make(toy, "name=busy", "epochs=2", "resume=true").run()            # free again: the resume goes ahead
    assert (run_dir / FINISHED_MARKER).exists()


def test_run_record_says_the_device_and_threads_that_ran_it(toy):
    """device: auto and num_threads: 0 (the defaults) leave the device and the CPU thread count to the machine,
    and a tiny CPU pretraining with 2 threads ends 0.034 away from the 1-thread run's weights: run_info.json and
    log.txt say what ran it, for the first run and for each resume."""
    ToyProcessor.interrupt_at = 7
    with pytest.raises(Interrupt):
        make(toy, "name=where", "num_threads=2", "device=auto").run()
    ToyProcessor.interrupt_at = None
    make(toy, "name=where", "resume=true", "num_threads=1", "device=cpu").run()
    info = json.loads((toy / "runs/where/run_info.json").read_text())
    assert info["execution"] == {"device": "cuda" if torch.cuda.is_available() else "cpu", "torch_threads": 2,
                                 "processes": 1} | ({"gpu": torch.cuda.get_device_name()}
                                                    if torch.cuda.is_available() else {})
    assert info["resumes"][0]["execution"] == {"device": "cpu", "torch_threads": 1, "processes": 1}
    log = (toy / "runs/where/log.txt").read_text()
    assert "runs on device" in log and "resumed on device cpu, torch_threads 1, processes 1" in log


def test_a_full_disk_while_saving_is_one_line_naming_the_checkpoint(toy, monkeypatch, capsys):
    """A full disk made torch.save raise its zip writer's RuntimeError ("[enforce fail at inline_container.cc:672]
    . unexpected pos 64 vs 0", after "basic_ios::clear: iostream error"): a traceback of torch internals naming
    neither the file nor the cause.  The checkpoint is now written through a file object (so the OSError behind
    it surfaces), fsync'd before it replaces latest.pt, and the error names the file, the cause and what is left."""
    import errno
    import os

    from feeder import io as feeder_io

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(feeder_io.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    make(toy, "name=full", "epochs=1").run()
    assert synced                                    # on disk before the rename (as every other output)
    run_dir = toy / "runs/full"
    before = load_checkpoint(run_dir / LATEST)

    def torch_save_on_a_full_disk(obj, f, *args, **kwargs):     # what torch.save does when a write fails
        try:
            handle = open(f, "wb") if isinstance(f, (str, Path)) else f
            handle.write(b"PK\x03\x04")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(ckpt_module.torch, "save", torch_save_on_a_full_disk)
    with pytest.raises(OSError) as info:
        ckpt_module.save_checkpoint({"model": {}}, run_dir)
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == (f"[Errno {errno.ENOSPC}] cannot write the checkpoint {run_dir / LATEST}: No space left "
                               f"on device; {run_dir / LATEST} still holds the last checkpoint written")
    assert load_checkpoint(run_dir / LATEST)["global_step"] == before["global_step"]
    assert not [p for p in run_dir.iterdir() if ".tmp-" in p.name]
    monkeypatch.setattr(ckpt_module.torch, "save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):            # torch's other errors are left as they are
        ckpt_module.save_checkpoint({"model": {}}, run_dir)


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_main_reports_an_interrupted_run_in_one_line_with_how_to_resume(tmp_path, repo_root, capsys, monkeypatch,
                                                                      stop):
    """Ctrl-C printed a full traceback on the console (and the log said 'stopped by KeyboardInterrupt: ' with
    nothing after the colon); now one error line says what stopped the run and how to continue it."""
    from processor.pretrain_acsar import PretrainACSAR
    from processor.runtime import Terminated
    from tests.helpers import make_split

    root = tmp_path / "data"
    make_split(root, "train", n=8)
    calls = []
    original = PretrainACSAR.train_step

    def interrupted(self, batch):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt if stop == "ctrl-c" else Terminated()
        return original(self, batch)

    monkeypatch.setattr(PretrainACSAR, "train_step", interrupted)
    code = main_module_main(["pretrain_acsar", "--config", str(repo_root / "config/demo/pretrain.yaml"),
                             f"work_dir={tmp_path / 'runs'}", f"data.root={root}", "name=stop", "text.mode=none",
                             "batch_size=4", "save_every_steps=1", "progress_bar=false", "tensorboard=false"])
    line = _one_error_line(capsys.readouterr().err)
    run_dir = tmp_path / "runs" / "stop"
    what = "Ctrl-C" if stop == "ctrl-c" else "signal SIGTERM"
    assert code == (130 if stop == "ctrl-c" else 143)
    assert f"interrupted by {what}; {run_dir / LATEST} holds the last checkpoint" in line and "--resume" in line
    log = (run_dir / "log.txt").read_text()
    assert ("stopped by KeyboardInterrupt\n" in log) if stop == "ctrl-c" else ("stopped by Terminated: signal SIGTERM" in log)


@pytest.mark.parametrize("processor, extra, match", [
    ("pretrain_acsar", ["data.root=null"], r"data\.root is not set"),
    ("pretrain_acsar", ["optim.name=adamw"], r"optim\.name='adamw': expected one of sgd, adam"),
    ("pretrain_acsar", ["scheduler.name=cosine"], r"scheduler\.name='cosine': expected one of multistep"),
    ("pretrain_acsar", ["data.text=null"], r"text branch is on .* data\.text names no text features"),
    ("pretrain_acsar", ["text.mode=films"], r"text\.mode='films': expected one of"),
    ("pretrain_acsar", ["augment.temporal_crop.ratio=[1.0, 0.5]"], r"augment\.temporal_crop\.ratio"),
    ("linear_evaluation", ["monitor=holdouts"], r"monitor must be one of holdout, test, got 'holdouts'"),
    ("linear_evaluation", ["data.root=null"], r"data\.root is not set"),
    ("semi_supervised", ["freeze_encoder=false"], r"cache_features: true needs freeze_encoder: true"),
    ("knn_evaluation", ["data.root=null"], r"data\.root is not set"),
])
def test_config_mistakes_the_processors_find_create_nothing(tmp_path, repo_root, capsys, processor, extra, match):
    """These were found once the run folder existed (log.txt made, an --overwrite had already moved the earlier
    run aside) and some exited 1 as bad data; now one error line, exit 2, and no run folder."""
    config = {"pretrain_acsar": "pretrain", "linear_evaluation": "linear", "semi_supervised": "linear",
              "knn_evaluation": "knn"}[processor]
    root = tmp_path / "data"                             # never read: the mistakes are found first
    code = main_module_main([processor, "--config", str(repo_root / f"config/demo/{config}.yaml"),
                             f"work_dir={tmp_path / 'runs'}", f"data.root={root}", "name=bad", *extra])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and re.search(match, line), line
    assert not (tmp_path / "runs").exists()


def test_a_file_system_without_locks_runs_unguarded_with_a_warning(toy, monkeypatch, caplog):
    """flock fails with ENOLCK / ENOSYS on some NFS and Lustre mounts: the run-folder lock must not stop the run
    there (it ended in 'error: [Errno 37] No locks available'); it runs, and a warning says it is unguarded."""
    import errno

    from processor import runtime

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runtime.fcntl, "flock", no_locks)
    with caplog.at_level("WARNING"):
        make(toy, "name=nfs", "epochs=1").run()
    assert (toy / "runs/nfs" / FINISHED_MARKER).exists()
    assert any("cannot lock .run.lock on this file system" in r.getMessage() for r in caplog.records)
    make(toy, "name=nfs", "epochs=1", "overwrite=true").run()          # the lock file left behind is no obstacle
