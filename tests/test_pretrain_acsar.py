"""pretrain_acsar end to end on tiny data: runs, logs, resumes exactly; CLI behaviour."""
import json
import subprocess
import sys

import pytest
import torch

from processor.checkpoint import LATEST, load_checkpoint
from processor.pretrain_acsar import PretrainACSAR
from tests.helpers import TINY_MODEL, make_split


@pytest.fixture
def data_root(tmp_path):
    make_split(tmp_path / "data", "train", n=24, text="tiny", text_shape=(77, 12))
    return tmp_path / "data"


def tiny(tmp_path, data_root, *extra):
    overrides = [f"work_dir={tmp_path / 'runs'}", f"data.root={data_root}", "data.window=16",
                 "data.text=tiny", "text.feature_dim=12", "batch_size=8", "moco.queue_size=20", "epochs=3",
                 "num_workers=0", "tensorboard=false", "progress_bar=false", "save_every_steps=1",
                 *TINY_MODEL, *extra]
    return PretrainACSAR.from_config(None, overrides)


class Killed(Exception):
    pass


def test_pretrain_runs_and_logs(tmp_path, data_root, monkeypatch):
    initial, build = {}, PretrainACSAR.build_model

    def recording_build(self):
        model = build(self)
        initial.update({k: v.clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(PretrainACSAR, "build_model", recording_build)
    results = tiny(tmp_path, data_root, "name=run").run()
    run_dir = tmp_path / "runs/run"
    records = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert len({r["train/loss"] for r in records}) == 3
    for key in ("train/loss", "train/loss_domain", "train/loss_cross", "train/acc_domain", "train/acc_cross",
                "train/acc_cross_rolled"):
        assert all(torch.isfinite(torch.tensor(r[key])) for r in records), key
    assert records[0]["train/loss_cross"] > 0
    assert results["kind"] == "pretrain"
    # accuracies in %, as the evaluations log them: with batch 8 each is a multiple of 100/8 / 4 terms
    accs = [r[f"train/{k}"] for r in records for k in ("acc_domain", "acc_cross", "acc_cross_rolled")]
    assert all(0.0 <= a <= 100.0 for a in accs) and max(accs) > 1.0
    epoch_lines = [l for l in (run_dir / "log.txt").read_text().splitlines() if " epoch 3/3 " in l]
    assert len(epoch_lines) == 1
    assert f"train/acc_cross {records[-1]['train/acc_cross']:.2f} %" in epoch_lines[0]
    assert f"train/loss {records[-1]['train/loss']:.4g} " in epoch_lines[0]
    state = load_checkpoint(run_dir / LATEST)
    assert state["epoch"] == 3 and state["global_step"] == 9
    assert {"model", "optimizer", "scheduler", "rng", "config"} <= set(state)
    # it trained: the query encoder moved, the key encoder followed it by momentum, the queues filled
    q_key, k_key = "encoder_q.encoder.embed_t.0.weight", "encoder_k.encoder.embed_t.0.weight"
    assert not torch.equal(state["model"][q_key], initial[q_key])
    assert not torch.equal(state["model"][k_key], initial[k_key]) and not torch.equal(state["model"][k_key],
                                                                                     state["model"][q_key])
    assert state["model"]["queue_g.ptr"].item() == 9 * 8 % 20


def test_text_off_has_no_cross_loss(tmp_path, data_root):
    tiny(tmp_path, data_root, "name=notext", "text.mode=none", "data.text=null", "epochs=1").run()
    record = json.loads((tmp_path / "runs/notext/metrics.jsonl").read_text().splitlines()[0])
    assert record["train/loss"] == pytest.approx(record["train/loss_domain"])
    assert "train/acc_domain" in record                    # the text branch's figures are not logged as zeros
    assert not {"train/loss_cross", "train/acc_cross", "train/acc_cross_rolled"} & set(record)
    log = (tmp_path / "runs/notext/log.txt").read_text()
    assert "train/acc_domain" in log and "acc_cross" not in log and "loss_cross" not in log


def test_text_mode_without_text_data_is_an_error(tmp_path, data_root):
    with pytest.raises(ValueError, match="data.text"):
        tiny(tmp_path, data_root, "name=bad", "data.text=null").run()


@pytest.mark.parametrize("extra, match", [
    (("text.mode=film",), r"text\.mode=film .*batch_size=1 on 1 process\(es\) gives 1 sample per batch"),
    (("text.mode=none", "data.text=null", "model.proj_norm=true"),
     r"model\.proj_norm .*batch_size=1 on 1 process\(es\) gives 1 sample per batch"),
])
def test_a_batch_of_one_is_refused_where_the_loss_needs_two(tmp_path, data_root, extra, match):
    """L_cross contrasts each sample with the others of its batch: alone, it was 0 with 100 % accuracy (the text
    branch never trained, the log looked perfect); the projectors' BatchNorm1d raised torch's own error."""
    from processor.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        tiny(tmp_path, data_root, "name=b1", "batch_size=1", *extra).run()


@pytest.mark.parametrize("key, value", [("mode", "flim"), ("level", "word")])
def test_an_unknown_text_mode_or_level_is_a_config_error(tmp_path, data_root, key, value):
    from processor.config import ConfigError

    with pytest.raises(ConfigError, match=rf"text\.{key}='{value}': expected one of "):
        tiny(tmp_path, data_root, "name=bad_text", f"text.{key}={value}").run()


@pytest.mark.parametrize("extra, match", [
    (("amp=fp16",), r"amp='fp16': expected one of none, bf16"),
    (("text.pairwise=true", "text.mode=plain"), r"text\.pairwise=true .*needs text\.mode=film, got text\.mode=plain"),
    (("moco.momentum=1.5",), r"'moco\.momentum' \(set in command line\) must be a number in \[0, 1\] .*got 1\.5"),
    (("augment.temporal_crop.ratio=[1.0, 0.5]",), r"augment\.temporal_crop\.ratio"),
    (("augment.spatial_mask.k=30",), r"augment\.spatial_mask\.k"),
])
def test_model_switch_mistakes_are_config_errors_before_the_data_is_read(tmp_path, extra, match):
    """amp, text.pairwise without FiLM and moco.momentum outside [0, 1] were found by the model only after the
    training split was read (here: a missing data folder was reported instead), and as a plain ValueError; so
    were augmentation values checked against each other or the layout (a reversed crop range, 30 masked joints
    of 25), found by the dataset."""
    from processor.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        tiny(tmp_path, tmp_path / "no_data", "name=bad_switch", *extra).run()


@pytest.mark.parametrize("on_device", [False, True])
def test_killed_and_resumed_pretraining_is_identical(tmp_path, data_root, monkeypatch, on_device):
    extra = [f"augment_on_device={str(on_device).lower()}"]
    tiny(tmp_path, data_root, "name=straight", *extra).run()
    reference = load_checkpoint(tmp_path / "runs/straight" / LATEST)["model"]

    original = PretrainACSAR.train_step

    def dying_step(self, batch):
        if self.global_step == 4:
            raise Killed
        return original(self, batch)

    monkeypatch.setattr(PretrainACSAR, "train_step", dying_step)
    with pytest.raises(Killed):
        tiny(tmp_path, data_root, "name=killed", *extra).run()
    monkeypatch.setattr(PretrainACSAR, "train_step", original)
    tiny(tmp_path, data_root, "name=killed", "resume=true", *extra).run()
    resumed = load_checkpoint(tmp_path / "runs/killed" / LATEST)["model"]
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), key


def device_step(tmp_path, data_root, device, *extra):
    """One augment_on_device train_step on ``device`` with the model replaced by a stub: the views it gets."""
    from processor.pretrain_acsar import DOMAIN_KEYS, TEXT_KEYS

    proc = tiny(tmp_path, data_root, "name=device_step", "augment_on_device=true", *extra)
    proc.device = torch.device(device)
    proc.build_data()
    seen = {}

    def model(x1, x2, text):
        seen.update(x1=x1, x2=x2, text=text)
        return {k: torch.zeros((), device=proc.device) for k in DOMAIN_KEYS + TEXT_KEYS}

    proc.model = model
    batch = next(iter(proc.make_loader(proc.train_set, 8, 0, shuffle=True, drop_last=True)))
    return proc, batch, seen


def test_augment_on_device_reads_nothing_back_from_the_device(tmp_path, data_root, monkeypatch):
    """On a GPU the device path must not copy device tensors back to the host each step: such a copy waits for
    all the GPU work queued before it (the previous step's backward and update), and the parameter sampling that
    followed it then ran while the GPU idled.  The meta device has no data to copy back, so any such read fails
    here (num_frame and the indices went to the device and BatchAugmenter.sample_params read them back)."""
    import contextlib

    proc, batch, seen = device_step(tmp_path, data_root, "meta")
    monkeypatch.setattr(torch, "autocast", lambda **kw: contextlib.nullcontext())   # no autocast for meta
    proc.train_step(proc.to_device(batch))
    for key in ("x1", "x2"):
        assert seen[key].device.type == "meta" and seen[key].shape == (8, 3, 16, 25, 2), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_augment_on_device_has_no_host_sync_on_a_gpu(tmp_path, data_root):
    """The same on a GPU with torch's sync debug mode: the transfer and the augmentation synchronise nothing.
    (flip is left out: flip_batch builds its joint permutation on the device from a Python list, one
    blocking host-to-device copy.)"""
    proc, batch, seen = device_step(tmp_path, data_root, "cuda", "augment.order=[rotate,shear,spatial_mask,"
                                                                 "temporal_mask]")
    torch.cuda.set_sync_debug_mode("error")
    try:
        proc.train_step(proc.to_device(batch))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert seen["x1"].device.type == "cuda" and seen["x1"].shape == (8, 3, 16, 25, 2)


def test_cli_typo_key_fails_fast_without_work_dir(tmp_path, repo_root):
    config = tmp_path / "typo.yaml"
    config.write_text(f"_base_: {repo_root}/config/ntu60/xsub/pretrain.yaml\nwork_dir: {tmp_path}/runs\n"
                      "optim:\n  learning_rate: 0.1\n")
    proc = subprocess.run([sys.executable, str(repo_root / "main.py"), "pretrain_acsar", "--config", str(config)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "'optim.learning_rate'" in proc.stderr and "typo.yaml" in proc.stderr and "'optim.lr'" in proc.stderr
    # fails at the config check: no traceback, nothing built or written (how fast is measured in the README)
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_cli_help_lists_processors_and_summary_counts(repo_root):
    out = subprocess.run([sys.executable, str(repo_root / "main.py"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "pretrain_acsar" in out.stdout
    out = subprocess.run([sys.executable, str(repo_root / "main.py"), "pretrain_acsar", "--config",
                          str(repo_root / "config/ntu60/xsub/pretrain.yaml"), "--summary", "text.mode=none"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "92,017,840" in out.stdout


def test_bf16_autocast_is_close_to_float32(tmp_path, data_root):
    tiny(tmp_path, data_root, "name=fp32", "epochs=1").run()
    tiny(tmp_path, data_root, "name=bf16", "epochs=1", "amp=bf16").run()
    fp32 = json.loads((tmp_path / "runs/fp32/metrics.jsonl").read_text().splitlines()[0])
    bf16 = json.loads((tmp_path / "runs/bf16/metrics.jsonl").read_text().splitlines()[0])
    for key in ("train/loss_domain", "train/loss_cross"):
        assert bf16[key] == pytest.approx(fp32[key], rel=0.05), key
        assert abs(bf16[key] - fp32[key]) > 1e-5 * fp32[key], key   # autocast really ran (2.6e-4 and 1.4e-3 apart)
    with pytest.raises(ValueError, match="amp"):
        tiny(tmp_path, data_root, "name=bad_amp", "amp=fp8").run()


def test_augment_on_device_gives_two_views_and_the_cpu_path_losses(tmp_path, data_root, monkeypatch):
    """feeder.batch_augment: for the same (seed, epoch, index, view) the device path makes the same views as
    the data-loader path (up to float rounding), so the step losses agree; its two views differ."""
    from feeder.batch_augment import BatchAugmenter

    original_step, original_aug = PretrainACSAR.train_step, BatchAugmenter.__call__
    losses, views = {}, []

    def recording_aug(self, *args, **kwargs):
        out = original_aug(self, *args, **kwargs)
        views.append((len(views), out.detach().clone()))
        return out

    def recording_step(self, batch):
        out = original_step(self, batch)
        losses[bool(self.cfg.augment_on_device)] = {k: out[k].item() for k in ("loss", "loss_domain", "loss_cross")}
        raise Killed                                   # step 1 is enough

    monkeypatch.setattr(PretrainACSAR, "train_step", recording_step)
    monkeypatch.setattr(BatchAugmenter, "__call__", recording_aug)
    for on_device in (False, True):
        with pytest.raises(Killed):
            tiny(tmp_path, data_root, f"name=dev_{on_device}", "epochs=1",
                 f"augment_on_device={str(on_device).lower()}").run()
    assert [v for v, _ in views] == [0, 1]
    assert views[0][1].shape == views[1][1].shape == (8, 3, 16, 25, 2)
    assert not torch.allclose(views[0][1], views[1][1])
    assert losses[False]["loss_cross"] > 0
    for key, value in losses[False].items():
        assert losses[True][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
