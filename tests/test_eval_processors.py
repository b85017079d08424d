"""End-to-end runs of the evaluation processors on tiny data (CPU): linear, semi-supervised, fine-tuning,
kNN, fusion, report, t-SNE; the frozen-weights assertion; the checkpoint-config check; the plateau rule."""
import json
import logging
import pickle
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import main as main_module
from processor.config import ConfigError
from processor.evaluation.encoder_loading import PretrainedMismatch
from processor.evaluation.frozen import FrozenWeightsChanged
from processor.linear_evaluation import LinearEvaluation
from processor.registry import get_processor
from processor.runtime import FINISHED_MARKER
from test_eval_common import NUM_CLASSES, common_overrides, make_checkpoint, make_dataset


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    root = make_dataset(tmp / "data")
    ckpt = make_checkpoint(tmp / "runs" / "pre", root)
    return tmp, root, ckpt


def run(name, env, *overrides, processor="linear_evaluation", cls=None):
    tmp, root, ckpt = env
    cls = cls or get_processor(processor)
    figures = [] if name in ("linear", "knn") else ["figures=false"]
    over = common_overrides(tmp, root) + [f"name={name}", f"pretrained={ckpt}", *figures, *overrides]
    return cls.from_config(None, over).run()


def open_png(path):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


@pytest.fixture(scope="module")
def linear_run(env):
    results = run("linear", env, "epochs=6", "batch_size=16", "optim.lr=0.5")
    return env[0] / "runs" / "linear", results


def test_linear_evaluation_end_to_end(linear_run, env):
    run_dir, r = linear_run
    assert (run_dir / FINISHED_MARKER).exists()
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["kind"] == "linear" and saved["monitor"] == "holdout" and saved["freeze_encoder"]
    assert saved["cache_features"] and saved["frozen_check"].startswith("passed")
    assert saved["split_sizes"] == {"train": 36, "monitor": 4, "test": 20}
    for key in ("test_last_epoch", "test_best_monitored_epoch"):
        assert 0 <= saved[key]["top1"] <= 100 and saved[key]["top5"] >= saved[key]["top1"]
    # the probe learns: chance is 25 % on 4 balanced classes (a probe trained on wrong labels reads ~0)
    assert saved["top1"] >= 40 and saved["test_last_epoch"]["top1"] >= 40
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train/acc"] > 50
    assert saved["pretrained"]["format"] == "acsar"
    scores = pickle.loads((run_dir / "scores.pkl").read_bytes())
    assert scores["names"] == [f"val_s{i:03d}" for i in range(20)]
    assert scores["logits"].shape == (20, NUM_CLASSES) and scores["class_names"][0] == "action 0"
    top1 = 100 * np.mean(scores["logits"].argmax(1) == scores["labels"])
    assert top1 == pytest.approx(saved["top1"])
    assert "monitor split: holdout" in (run_dir / "log.txt").read_text()
    for png in ("confusion_matrix.png", "training_curves.png"):
        w, h = open_png(run_dir / png)
        assert w > 200 and h > 200
    report = (run_dir / "report.md").read_text()
    assert "confusion_matrix.png" in report and "best holdout epoch (reported)" in report
    assert saved["report_epoch"] == "best" and saved["top1"] == saved["test_best_monitored_epoch"]["top1"]


def test_report_epoch_last_reports_the_last_epoch(env):
    """report_epoch: last makes the last epoch's test result the run's top-1 (scores_last.pkl), and
    keeps the best monitored epoch's result beside it; an unknown value fails before any training."""
    r = run("lin_last", env, "epochs=4", "batch_size=16", "optim.lr=0.5", "scheduler.name=none",
            "report_epoch=last")
    run_dir = env[0] / "runs" / "lin_last"
    assert r["report_epoch"] == "last" and r["test_last_epoch"]["epoch"] == 4
    assert r["top1"] == r["test_last_epoch"]["top1"] and r["top5"] == r["test_last_epoch"]["top5"]
    assert r["test_best_monitored_epoch"]["top1"] == pytest.approx(
        100 * np.mean(_correct(run_dir / "scores.pkl")))
    assert r["top1"] == pytest.approx(100 * np.mean(_correct(run_dir / "scores_last.pkl")))
    with pytest.raises(ValueError, match="report_epoch must be one of"):
        run("lin_bad", env, "epochs=1", "batch_size=16", "report_epoch=final")
    assert not (env[0] / "runs" / "lin_bad" / "results.json").exists()


def test_report_names_the_reported_epoch_and_both_results(env, tmp_path, caplog, capsys):
    """report: every evaluation row shows which epoch its top-1 is from and the test top-1 at the best
    monitored and the last epoch with their epochs; unknown kinds are refused; an intermediate pretraining
    checkpoint is named as such in results.json and in the report."""
    tmp, root, _ = env
    partial = make_checkpoint(tmp_path / "pre_partial", root)
    state = torch.load(partial, weights_only=False)
    state.update(epoch=0, step_in_epoch=2)                          # saved 2 steps into its only epoch
    torch.save(state, partial)
    r = run("lin_partial", env, "epochs=3", "batch_size=16", "optim.lr=0.5", "scheduler.name=none",
            "report_epoch=last", f"pretrained={partial}", f"work_dir={tmp_path / 'runs'}")
    assert r["pretrained"]["pretrain_complete"] is False
    assert (r["pretrained"]["pretrain_epoch_reached"], r["pretrained"]["pretrain_step_in_epoch"]) == (0, 2)
    assert "intermediate encoder" in (tmp_path / "runs/lin_partial/log.txt").read_text()
    demo_summary = tmp_path / "runs/demo/results.json"                # bench/demo.py's summary: not a run
    demo_summary.parent.mkdir(parents=True)
    demo_summary.write_text(json.dumps({"describer": "kinematic", "linear_top1": {"J": 50.0}}))
    interrupted = tmp_path / "runs/lin_cut/results.json"              # an evaluation without its FINISHED marker
    interrupted.parent.mkdir(parents=True)
    interrupted.write_text(json.dumps({"kind": "linear"}))
    with caplog.at_level(logging.WARNING, logger="processor.report"):
        assert main_module.main(["report", f"work_dir={tmp_path / 'runs'}"]) == 0
    assert "1 run(s) without a FINISHED marker (crashed, interrupted or running) left out: lin_cut" in caplog.text
    lines = (tmp_path / "runs/report/report.md").read_text().splitlines()
    assert not any(l.startswith(("| demo", "| lin_cut")) for l in lines)
    header = [c.strip() for c in next(l for l in lines if l.startswith("| run")).strip("|").split("|")]
    row = [c.strip() for c in next(l for l in lines if l.startswith("| lin_partial")).strip("|").split("|")]
    cell = dict(zip(header, row))
    best, last = r["test_best_monitored_epoch"], r["test_last_epoch"]
    assert cell["reported epoch"] == "last" and cell["last epoch"] == "3" and cell["best epoch"] == str(best["epoch"])
    assert float(cell["top-1 (%)"]) == pytest.approx(last["top1"], abs=0.01)
    assert float(cell["top-1 best epoch (%)"]) == pytest.approx(best["top1"], abs=0.01)
    assert float(cell["top-1 last epoch (%)"]) == pytest.approx(last["top1"], abs=0.01)
    assert cell["pretrained"].endswith("(epoch 0 of 1)")
    capsys.readouterr()
    assert main_module.main(["report", f"work_dir={tmp_path / 'runs'}", "kinds=[liner]", "name=report_bad"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and [line for line in err.splitlines() if line.startswith("error:")] == [
        next(line for line in err.splitlines() if "kinds names ['liner']" in line)]


def test_report_names_a_crashed_evaluation(env, tmp_path, caplog):
    """A run that crashed (or was stopped) leaves its run record and log but no results.json: the report passed
    over it without a word, so a missing row looked like a run never started. It is named in the log and under
    the table now; a finished run beside it is reported as before."""
    runs = tmp_path / "runs"
    run("done", env, "epochs=1", "batch_size=16", f"work_dir={runs}")
    with pytest.raises(FileNotFoundError):
        run("lin/crashed", env, "epochs=1", f"pretrained={tmp_path / 'missing.pt'}", f"work_dir={runs}")
    assert (runs / "lin/crashed/run_info.json").is_file() and not (runs / "lin/crashed/results.json").exists()
    with caplog.at_level(logging.WARNING, logger="processor.report"):
        r = get_processor("report").from_config(None, [f"work_dir={runs}"]).run()
    assert r["runs"] == ["done"] and r["unfinished"] == ["lin/crashed"]
    assert "1 run(s) without a FINISHED marker (crashed, interrupted or running) left out: lin/crashed" in caplog.text
    report = (runs / "report/report.md").read_text()
    assert "| done | linear |" in report and "left out: `lin/crashed`" in report


def test_report_writes_label_fractions_as_given(tmp_path):
    """The report wrote the label fraction with the accuracies' two decimals: a semi-supervised run on 0.5 % of
    the labels read 0.01 (1 %) and one on 0.1 % read 0.00. Finished runs faked by their results.json: no training."""
    for name, fraction in (("semi_half", 0.005), ("semi_tenth", 0.001), ("semi_1", 0.01), ("linear", 1.0)):
        run_dir = tmp_path / "runs" / name
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(json.dumps({"kind": "semi", "stream": "joint", "top1": 12.5,
                                                          "label_fraction": fraction}))
        (run_dir / FINISHED_MARKER).write_text("done\n")
    get_processor("report").from_config(None, [f"work_dir={tmp_path / 'runs'}"]).run()
    for table, sep in (("report.md", "|"), ("report.csv", ",")):
        lines = [line for line in (tmp_path / "runs" / "report" / table).read_text().splitlines()
                 if table == "report.csv" or line.startswith("| ")]
        header = [c.strip() for c in lines[0].strip("|").split(sep)]
        cells = {row[0]: dict(zip(header, row)) for row in
                 ([c.strip() for c in line.strip("|").split(sep)] for line in lines[1:]) if row[0] in
                 ("semi_half", "semi_tenth", "semi_1", "linear")}
        assert {run: cell["label fraction"] for run, cell in cells.items()} == {
            "linear": "1", "semi_1": "0.01", "semi_half": "0.005", "semi_tenth": "0.001"}, table
        assert cells["semi_half"]["top-1 (%)"] == ("12.50" if table == "report.md" else "12.5000")


def test_report_says_which_runs_trained_their_encoder(tmp_path):
    """A frozen and a fine-tuned semi-supervised run were both listed as kind 'semi' (freeze_encoder is a
    config value of each evaluation processor); the kind now says when it differs from the processor's own."""
    runs = {"semi_frozen": ("semi", True), "semi_tuned": ("semi", False), "ft": ("finetune", False),
            "ft_frozen": ("finetune", True), "old": ("linear", None)}
    for name, (kind, frozen) in runs.items():
        run_dir = tmp_path / "runs" / name
        run_dir.mkdir(parents=True)
        results = {"kind": kind, "stream": "joint", "top1": 50.0, "label_fraction": 0.1}
        if frozen is not None:
            results["freeze_encoder"] = frozen
        (run_dir / "results.json").write_text(json.dumps(results))
        (run_dir / FINISHED_MARKER).write_text("done\n")
    get_processor("report").from_config(None, [f"work_dir={tmp_path / 'runs'}"]).run()
    lines = (tmp_path / "runs" / "report" / "report.csv").read_text().splitlines()
    kinds = {row[0]: row[1] for row in (line.split(",") for line in lines[1:])}
    assert kinds == {"semi_frozen": "semi", "semi_tuned": "semi (encoder trained)", "ft": "finetune",
                     "ft_frozen": "finetune (encoder frozen)", "old": "linear"}


def _correct(path):
    """Per-sample correctness of a saved score file."""
    scores = pickle.loads(path.read_bytes())
    return scores["logits"].argmax(1) == scores["labels"]


def test_cached_features_equal_running_the_frozen_encoder(env):
    a = run("lin_cache", env, "epochs=2", "batch_size=16", "scheduler.name=none", "monitor=test")
    b = run("lin_nocache", env, "epochs=2", "batch_size=16", "scheduler.name=none", "monitor=test",
            "cache_features=false")
    tmp = env[0]
    sa = pickle.loads((tmp / "runs/lin_cache/scores_last.pkl").read_bytes())["logits"]
    sb = pickle.loads((tmp / "runs/lin_nocache/scores_last.pkl").read_bytes())["logits"]
    assert np.allclose(sa, sb, atol=1e-4)
    assert a["monitor"] == "test" and a["split_sizes"]["monitor"] == 20
    assert a["test_last_epoch"]["top1"] == pytest.approx(b["test_last_epoch"]["top1"])


class TamperingLinear(LinearEvaluation):
    """Moves one encoder weight during training: the frozen check must fire."""

    def train_step(self, batch):
        with torch.no_grad():
            next(self.net.encoder.parameters()).add_(1e-3)
        return super().train_step(batch)


def test_frozen_assertion_fires_when_weights_change(env):
    with pytest.raises(FrozenWeightsChanged, match="frozen encoder changed"):
        run("tamper", env, "epochs=1", "batch_size=16", cls=TamperingLinear)


class ScriptedLinear(LinearEvaluation):
    script = [10.0, 20.0, 20.0, 15.0, 19.0, 12.0, 11.0, 30.0]

    def evaluate(self, epoch):
        out = super().evaluate(epoch)
        value = self.script[epoch]
        self.best_value = max(self.script[:epoch + 1])
        out["holdout_top1"] = value
        return out


def test_plateau_reduction_and_early_stop_in_the_loop(env):
    r = run("scripted", env, "epochs=20", "batch_size=16", "optim.lr=1.0", cls=ScriptedLinear)
    rows = [json.loads(l) for l in (env[0] / "runs/scripted/metrics.jsonl").read_text().splitlines()]
    # best 20 at epoch 2; 3 bad epochs -> lr x0.1 after epoch 5; 5 bad -> stop after epoch 7 (logged: each
    # epoch's own rate)
    assert [row["lr"] for row in rows] == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1])
    assert r["epochs_run"] == 7


class CrashingFinalize(ScriptedLinear):
    crash = True

    def finalize(self):
        if CrashingFinalize.crash:
            CrashingFinalize.crash = False
            raise KeyboardInterrupt  # killed after the early stop, before FINISHED
        return super().finalize()


def test_resume_after_an_early_stop_does_not_train_on(env):
    with pytest.raises(KeyboardInterrupt):
        run("stopped", env, "epochs=20", "batch_size=16", "optim.lr=1.0", cls=CrashingFinalize)
    r = run("stopped", env, "epochs=20", "batch_size=16", "optim.lr=1.0", "resume=true", cls=CrashingFinalize)
    rows = [json.loads(l) for l in (env[0] / "runs/stopped/metrics.jsonl").read_text().splitlines()]
    assert r["epochs_run"] == 7 and [row["epoch"] for row in rows] == list(range(1, 8))


class CrashingMidPlateau(ScriptedLinear):
    """Killed at the start of epoch 5 (after epoch 4 was saved): two bad epochs into the plateau."""
    crash = True

    def train_epoch(self, epoch, start_batch=0):
        if epoch == 4 and CrashingMidPlateau.crash:
            CrashingMidPlateau.crash = False
            raise KeyboardInterrupt
        return super().train_epoch(epoch, start_batch)


def test_resume_mid_plateau_restores_the_plateau_rule(env):
    """The plateau rule's best value and bad-epoch count travel in the checkpoint: the resumed run reduces the
    lr and stops exactly where the uninterrupted one does (test_plateau_reduction_and_early_stop_in_the_loop)."""
    with pytest.raises(KeyboardInterrupt):
        run("mid_plateau", env, "epochs=20", "batch_size=16", "optim.lr=1.0", cls=CrashingMidPlateau)
    rows = [json.loads(l) for l in (env[0] / "runs/mid_plateau/metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    r = run("mid_plateau", env, "epochs=20", "batch_size=16", "optim.lr=1.0", "resume=true", cls=CrashingMidPlateau)
    rows = [json.loads(l) for l in (env[0] / "runs/mid_plateau/metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == list(range(1, 8))
    assert [row["lr"] for row in rows] == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1])
    assert r["epochs_run"] == 7


def test_pretrained_config_mismatch_is_a_clear_error(env):
    with pytest.raises(PretrainedMismatch, match=r"hidden_dim: config 16 vs checkpoint 32"):
        run("mismatch", env, "epochs=1", "model.hidden_dim=16", "model.ff_dim=16")


def test_semi_supervised_default_freezes_the_encoder_as_the_paper(env):
    """Paper §1 / Table 1: the downstream stage trains only the classifier on the frozen encoder."""
    r = run("semi_frozen", env, "label_fraction=0.5", "epochs=2", "batch_size=4", processor="semi_supervised")
    assert r["kind"] == "semi" and r["freeze_encoder"] and r["frozen_check"].startswith("passed")
    best = torch.load(env[0] / "runs/semi_frozen/best.pt", weights_only=True)
    assert best["head_only"] and not any(k.startswith("encoder.") for k in best["model"])


def test_semi_supervised_subset_and_fine_tuned_encoder(env):
    tmp = env[0]
    r = run("semi", env, "label_fraction=0.3", "epochs=2", "batch_size=4", "optim.lr=0.01",
            "freeze_encoder=false", "cache_features=false", processor="semi_supervised")
    sub = json.loads((tmp / "runs/semi/subset_indices.json").read_text())
    labels = np.arange(40) % NUM_CLASSES
    assert sub["num_samples"] == 12 and np.bincount(labels[sub["indices"]]).tolist() == [3, 3, 3, 3]
    assert r["kind"] == "semi" and not r["freeze_encoder"] and r["frozen_check"].startswith("not frozen")
    assert r["split_sizes"]["train"] + r["split_sizes"]["monitor"] == 12
    best = torch.load(tmp / "runs/semi/best.pt", weights_only=True)
    assert not best["head_only"] and any(k.startswith("encoder.") for k in best["model"])


@pytest.mark.parametrize("extra, match", [
    (["label_fraction=10"], r"'label_fraction' .* must be a number in \(0, 1\] .* got 10$"),
    (["label_fraction=0.1"], r"monitor: holdout leaves nothing to monitor: .* \(4 in all at label_fraction=0.1\); "
                             r"use monitor=test"),
    (["holdout_fraction=0"], r"'holdout_fraction' .* must be a number in \(0, 1\) .* got 0$"),
])
def test_semi_supervised_fraction_errors_before_training(env, extra, match):
    from processor.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        run("semi_bad", env, "epochs=1", "batch_size=4", *extra, "overwrite=true", processor="semi_supervised")
    assert not (env[0] / "runs/semi_bad/metrics.jsonl").exists()


def test_fine_tuning_with_cached_features_is_a_config_error(env):
    """semi_supervised freeze_encoder=false without cache_features=false (the semi default caches): a plain
    ValueError (exit status 1, as for bad data) instead of the ConfigError of a config mistake (status 2)."""
    with pytest.raises(ConfigError, match=r"cache_features: true needs freeze_encoder: true .* cache_features=false"):
        run("semi_ft_cached", env, "label_fraction=0.5", "epochs=1", "freeze_encoder=false",
            processor="semi_supervised")
    assert not (env[0] / "runs/semi_ft_cached/metrics.jsonl").exists()


def test_finetune_and_random_init_baseline(env):
    r = run("finetune", env, "epochs=1", "batch_size=8", "pretrained=null", processor="finetune")
    assert r["kind"] == "finetune" and r["pretrained"]["format"] == "random init"
    assert not r["freeze_encoder"] and r["frozen_check"].startswith("not frozen")


def test_finetune_trains_the_pretrained_encoder(env):
    tmp, _, ckpt = env
    r = run("finetune_pre", env, "epochs=1", "batch_size=8", processor="finetune")
    assert r["kind"] == "finetune" and r["pretrained"]["format"] == "acsar"
    assert not r["freeze_encoder"] and r["frozen_check"].startswith("not frozen")
    pre = torch.load(ckpt, weights_only=False)["model"]
    best = torch.load(tmp / "runs/finetune_pre/best.pt", weights_only=True)
    assert not best["head_only"]
    enc = {k[len("encoder."):]: v for k, v in best["model"].items() if k.startswith("encoder.")}
    weights = [k for k, v in enc.items() if v.is_floating_point() and "running_" not in k]
    assert weights and all(f"encoder_q.encoder.{k}" in pre for k in weights)
    changed = [k for k in weights if not torch.equal(enc[k], pre[f"encoder_q.encoder.{k}"])]
    assert len(changed) > len(weights) // 2, changed
    # ... starting from the pretrained weights: 5 steps at lr 0.01 move none by more than ~0.02 (a random
    # initialisation lies up to ~5 away, in a third of the tensors by more than 0.1)
    far = [k for k in weights if not torch.allclose(enc[k], pre[f"encoder_q.encoder.{k}"], rtol=0, atol=0.1)]
    assert not far, far


def test_knn_evaluation_matches_brute_force(env):
    tmp, root, ckpt = env
    r = run("knn", env, "k=[1,3]", "test_chunk=7", "train_chunk=9", processor="knn_evaluation")
    assert r["kind"] == "knn" and r["k"] == 1 and r["feature_dim"] == 64
    # reference: features from the classifier directly, brute-force cosine 1-NN
    from processor.knn_evaluation import KnnEvaluation
    p = KnnEvaluation.from_config(None, common_overrides(tmp, root) + ["name=knn_ref", f"pretrained={ckpt}"])
    model = p.build_model()
    model.load_encoder_state(torch.load(ckpt, weights_only=False)["model"])
    model.eval()
    tr, te = p._dataset("train"), p._dataset("val")
    with torch.no_grad():
        ftr = model.features(torch.from_numpy(np.stack([tr[i][0] for i in range(len(tr))]))).numpy()
        fte = model.features(torch.from_numpy(np.stack([te[i][0] for i in range(len(te))]))).numpy()
    ntr = ftr / np.linalg.norm(ftr, axis=1, keepdims=True)
    nte = fte / np.linalg.norm(fte, axis=1, keepdims=True)
    ref = tr.labels[np.argmax(nte @ ntr.T, axis=1)]
    assert r["top1"] == pytest.approx(100 * np.mean(ref == te.labels), abs=1e-6)
    assert open_png(tmp / "runs/knn/confusion_matrix.png")[0] > 200


@pytest.mark.parametrize("extra, match", [
    (["k=[]"], r"k must be a non-empty list of positive integers"),
    (["k=[0]"], r"'k' .* must be a list of positive integer items \(item 0 is 0"),
    (["test_chunk=0"], r"'test_chunk' .* must be a positive integer like the default 1024, got 0"),
])
def test_knn_config_errors_before_any_work(env, extra, match):
    from processor.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        run("knn_bad", env, *extra, "overwrite=true", processor="knn_evaluation")
    assert not (env[0] / "runs/knn_bad/results.json").exists()


def test_knn_with_k_above_the_training_split_is_a_config_error_before_the_features(env, monkeypatch):
    """k larger than the training split: every feature was extracted (on NTU-120 the long part) and the smaller k
    computed before a ValueError that named neither the key nor the file; now a ConfigError comes first."""
    import processor.knn_evaluation as knn_module

    def no_features(*args, **kwargs):
        raise AssertionError("features extracted before k was checked")

    monkeypatch.setattr(knn_module, "extract_features", no_features)
    with pytest.raises(ConfigError, match=r"k=\[1, 41\]: 41 neighbours .*train_data_joint.npy holds 40 samples"):
        run("knn_big_k", env, "k=[1,41]", "overwrite=true", processor="knn_evaluation")
    assert not (env[0] / "runs/knn_big_k/results.json").exists()
    monkeypatch.undo()
    r = run("knn_all", env, "k=[40]", "figures=false", processor="knn_evaluation")   # k = the whole split is fine
    assert r["k"] == 40 and 0 <= r["top1"] <= 100


@pytest.mark.parametrize("processor", ["linear_evaluation", "knn_evaluation"])
def test_a_class_name_file_of_another_count_fails_before_any_work(env, monkeypatch, processor):
    """data.class_names with fewer names than data.num_classes: the probe trained every epoch (kNN extracted every
    feature) and only then failed on the file, leaving no result; it is read before the work now."""
    tmp = env[0]
    names = tmp / "three_classes.txt"
    names.write_text("a\nb\nc\n")

    def no_features(*args, **kwargs):
        raise AssertionError("features extracted before the class names were read")

    monkeypatch.setattr("processor.knn_evaluation.extract_features", no_features)
    name = f"classes_{processor}"
    with pytest.raises(ValueError, match=rf"{names}: 3 class names but num_classes={NUM_CLASSES}"):
        extra = ["epochs=2", "batch_size=16"] if processor == "linear_evaluation" else []
        run(name, env, *extra, f"data.class_names={names}", processor=processor)
    assert not (tmp / "runs" / name / "metrics.jsonl").exists() and not (tmp / "runs" / name / "latest.pt").exists()


def _fake_scores(path, seed, names, labels):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(names), NUM_CLASSES)).astype(np.float32)
    logits[np.arange(len(names)), labels] += 1.0
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "scores.pkl", "wb") as h:
        pickle.dump({"names": names, "logits": logits, "labels": labels, "class_names": None}, h)
    (path / FINISHED_MARKER).write_text("done\n")
    return logits


def test_fusion_end_to_end_and_report(env, linear_run, capsys):
    tmp, root, _ = env
    real = pickle.loads((linear_run[0] / "scores.pkl").read_bytes())
    names, labels = real["names"], real["labels"]
    bone = _fake_scores(tmp / "runs/fake_bone", 1, names[::-1], labels[::-1])[::-1]
    motion = _fake_scores(tmp / "runs/fake_motion", 2, names, labels)
    over = [f"work_dir={tmp / 'runs'}", "name=fusion",
            "streams={joint: '{work_dir}/linear', bone: '{work_dir}/fake_bone', motion: '{work_dir}/fake_motion'}",
            "compare=[J, JBM]"]
    r = get_processor("fusion").from_config(None, over).run()
    printed = capsys.readouterr().out
    assert [k for k in r["combinations"]] == ["J", "B", "M", "JB", "JM", "BM", "JBM"]
    probs = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
    fused = 0.5 * probs(real["logits"].astype(np.float64)) + 0.5 * probs(bone) + 0.5 * probs(motion)
    assert r["combinations"]["JBM"]["top1"] == pytest.approx(100 * np.mean(fused.argmax(1) == labels))
    run_dir = tmp / "runs/fusion"
    md = (run_dir / "fusion.md").read_text()
    assert "| JBM |" in md and "| JBM |" in printed
    assert (run_dir / "fusion.csv").read_text().splitlines()[0].startswith("streams,")
    assert open_png(run_dir / "per_class_J_vs_JBM.png")[0] > 200
    # report: no config, only work_dir=; an earlier run kept by overwrite=true is not listed
    kept = tmp / "runs/linear/overwritten/20261202T000000"
    kept.mkdir(parents=True)
    for name in ("results.json", FINISHED_MARKER):
        (kept / name).write_bytes((linear_run[0] / name).read_bytes())
    assert main_module.main(["report", f"work_dir={tmp / 'runs'}"]) == 0
    report = (tmp / "runs/report/report.md").read_text()
    assert "| linear | linear | joint |" in report and "fusion [JBM]" in report and "overwritten" not in report


@pytest.mark.parametrize("extra, match", [
    (["weights={jiont: 0.9}"], r"weights names \['jiont'\], which are not streams"),
    (["streams={joint: '{work_dir}/linear', jmotion: '{work_dir}/fake_motion'}"], r"share an abbreviation.*'J'"),
    (["streams={joint: '{work_dir}/linear', bone: '{work_dir}/unfinished'}"], r"'bone'.*unfinished holds no finished"),
    (["streams={joint: '{work_dir}/linear', bone: '{work_dir}/votes'}"], r"'bone'.*votes is a kNN evaluation"),
    (["streams={joint: '{work_dir}/linear', bone: null}"], r"stream 'bone' must name a run dir or a score file"),
])
def test_fusion_refuses_ambiguous_or_unfinished_streams(env, linear_run, extra, match, request):
    tmp = env[0]
    name = f"fusion_bad_{request.node.callspec.id.split('-')[0]}"     # the env's runs folder is shared
    (tmp / "runs/unfinished").mkdir(parents=True, exist_ok=True)
    votes = tmp / "runs/votes"                                   # a finished kNN run: one-hot votes as scores
    votes.mkdir(parents=True, exist_ok=True)
    (votes / "results.json").write_text(json.dumps({"kind": "knn"}))
    (votes / FINISHED_MARKER).write_text("")
    (votes / "scores.pkl").write_bytes((linear_run[0] / "scores.pkl").read_bytes())
    over = [f"work_dir={tmp / 'runs'}", f"name={name}", "compare=[]",
            "streams={joint: '{work_dir}/linear', bone: '{work_dir}/linear'}", *extra]
    with pytest.raises(ValueError, match=match):
        get_processor("fusion").from_config(None, over).run()
    assert not (tmp / "runs" / name / "results.json").exists()
    config_mistake = "unfinished" not in extra[0] and "votes" not in extra[0]
    assert not config_mistake or not (tmp / "runs" / name).exists()      # found before the run folder is made


def test_fusion_of_an_unfinished_stream_ends_with_one_error_line(env, linear_run, capsys):
    """A stream whose evaluation failed (its folder there, no FINISHED marker): main.py prints one error line
    naming it, not a traceback."""
    tmp = env[0]
    (tmp / "runs/failed_probe").mkdir(parents=True, exist_ok=True)
    code = main_module.main(["fusion", f"work_dir={tmp / 'runs'}", "name=fusion_failed", "compare=[]",
                             "streams={joint: '{work_dir}/linear', bone: '{work_dir}/failed_probe'}"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "failed_probe holds no finished evaluation" in errors[0]


def test_tsne_figure(env):
    tmp, root, ckpt = env
    r = get_processor("tsne").from_config(None, [f"work_dir={tmp / 'runs'}", "name=tsne", f"checkpoint={ckpt}",
                                                 "clusters=4", "device=cpu", f"data.root={root}"]).run()
    assert r["num_samples"] == 20
    w, h = open_png(tmp / "runs/tsne/tsne.png")
    assert w > 3 * h / 2
    saved = np.load(tmp / "runs/tsne/tsne_features.npz")
    assert saved["modulated_tsne"].shape == (20, 2) and saved["skeleton_colour"].max() == 3
    # more clusters asked than samples: the figure's title says the k that coloured it (20), not the one asked
    get_processor("tsne").from_config(None, [f"work_dir={tmp / 'runs'}", "name=tsne_k", f"checkpoint={ckpt}",
                                             "clusters=60", "device=cpu", f"data.root={root}"]).run()
    assert "k-means pseudo-labels (k=20)" in (tmp / "runs/tsne_k/report.md").read_text()


def test_head_norm_with_batches_of_one_sample_is_a_config_error(env):
    """The head's batch standardisation cannot train on one sample: refused before any feature is computed."""
    with pytest.raises(ConfigError, match=r"head_norm .* at least 2 samples per batch; batch_size=1 .* gives 1"):
        run("head_norm_b1", env, "epochs=1", "batch_size=1", "head_norm=true")


def test_tsne_of_fewer_than_four_samples_is_one_error_line(env, capsys):
    tmp, root, ckpt = env
    code = main_module.main(["tsne", f"work_dir={tmp / 'runs'}", "name=tsne_tiny", f"checkpoint={ckpt}",
                             "device=cpu", f"data.root={root}", "max_samples=3"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "error: tsne: 3 sample(s) of the val split" in err and "max_samples=3" in err and "at least 4" in err


def test_tsne_refuses_text_features_of_another_split(env, tmp_path):
    """A data.root whose text file has another row count than the split: refused, naming the file."""
    tmp, root, ckpt = env
    other = tmp_path / "data"
    shutil.copytree(root, other)
    text = next((other / "text").glob("val_*.npy"))
    feats = np.load(text)
    np.save(text, np.concatenate([feats[::-1], feats[:7]]))
    with pytest.raises(ValueError, match=rf"{text.name} have N={len(feats) + 7} samples"):
        get_processor("tsne").from_config(None, [f"work_dir={tmp / 'runs'}", "name=tsne_other_text",
                                                 f"checkpoint={ckpt}", "device=cpu", f"data.root={other}"]).run()
    assert not (tmp / "runs/tsne_other_text/tsne.png").exists()


@pytest.mark.parametrize("change, match", [
    ({"moco": {"momentum": 1.5}}, r"moco\.momentum=1\.5: the key encoder's EMA coefficient alpha must lie in \[0, 1\]"),
    ({"text": {"mode": "plain", "pairwise": True}}, r"text\.pairwise=true .* needs text\.mode=film, got text\.mode=plain"),
    ({"text": {"level": "word"}}, r"text\.level='word': expected one of token, sentence"),
])
def test_tsne_checks_the_checkpoint_config_as_pretraining_does(env, tmp_path, capsys, change, match):
    """tsne rebuilds the model from a checkpoint's config: a config mistake there was a plain ValueError from the
    model (exit 1) that named neither the checkpoint nor, for the momentum, the key; now pretraining's own check."""
    tmp, root, ckpt = env
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    for section, values in change.items():
        state["config"][section] = {**state["config"][section], **values}
    bad = tmp_path / "bad_latest.pt"
    torch.save(state, bad)
    code = main_module.main(["tsne", f"work_dir={tmp_path / 'runs'}", "name=tsne_bad_ckpt", f"checkpoint={bad}",
                             "device=cpu", f"data.root={tmp_path / 'no_data_here'}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert re.search(rf"^error: {re.escape(str(bad))}: the checkpoint's config: {match}", err, re.M), err


@pytest.mark.parametrize("extra, match", [
    (["color_by=labels"], r"color_by must be one of kmeans, label, got 'labels'"),
    (["skeleton_feature=encdoer"], r"skeleton_feature must be one of"),
    (["data.rooot=x"], r"unknown config key 'data\.rooot' \(set in command line\).*'data\.root'"),
    (["data.center_crop_ratio=0.5"], r"unknown config key 'data\.center_crop_ratio' \(set in command line\).*"
                                     r"'center_crop_ratio'"),
    (["model.hidden_dim=16"], r"unknown config key 'model' \(set in command line\)"),
])
def test_tsne_refuses_values_it_would_ignore(env, extra, match):
    tmp, root, ckpt = env
    name = "tsne_config_bad"
    with pytest.raises(ConfigError, match=match):              # every one refused before anything is created
        get_processor("tsne").from_config(None, [f"work_dir={tmp / 'runs'}", f"name={name}", f"checkpoint={ckpt}",
                                                 "overwrite=true", *extra]).run()
    assert not (tmp / "runs" / name).exists()


def test_official_scdnet_checkpoint_loads_through_the_mapping(env, tmp_path):
    from net.classifier import SkeletonClassifier
    from net.scdnet_checkpoint import to_scdnet
    from processor.config import resolve_config
    from processor.evaluation.encoder_loading import encoder_config, load_pretrained

    tmp, root, ckpt = env
    ours = torch.load(ckpt, weights_only=False)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in to_scdnet(ours["model"]).items()}}, path)
    cfg = resolve_config(LinearEvaluation.defaults_path(), None, common_overrides(tmp, root))
    for fmt, source in (("auto", path), ("scdnet", path), ("auto", ckpt), ("acsar", ckpt)):
        model = SkeletonClassifier.from_config(encoder_config(cfg), num_classes=NUM_CLASSES, freeze_encoder=True)
        info = load_pretrained(model, source, fmt, cfg)
        assert info["format"] == ("scdnet" if source == path else "acsar")
        for key, value in model.encoder.state_dict().items():
            assert torch.equal(value, ours["model"][f"encoder_q.encoder.{key}"]), key
    with pytest.raises(ValueError, match="AC-SAR checkpoint"):
        load_pretrained(model, path, "acsar", cfg)


def test_cli_takes_overrides_before_and_after_the_options(capsys):
    code = main_module.main(["linear_evaluation", "model.hidden_dim=16", "--config",
                             str(main_module.ROOT / "config/demo/linear.yaml"),
                             "model.ff_dim=16", "--summary"])
    out = capsys.readouterr().out
    assert code == 0 and "SkeletonClassifier" in out
    code = main_module.main(["linear_evaluation", "--config", str(main_module.ROOT / "config/demo/linear.yaml"),
                             "--summary"])
    plain = capsys.readouterr().out
    count = lambda text: int(next(l for l in text.splitlines() if l.split()[:1] == ["total"]).split()[1].replace(",", ""))
    # hidden_dim / ff_dim 16 (one before --config, one after --summary) shrink the model
    assert code == 0 and count(out) < count(plain)
    code = main_module.main(["linear_evaluation", "--config", str(main_module.ROOT / "config/demo/linear.yaml"),
                             "model.hidden_dim=16", "--summary"])
    half = capsys.readouterr().out
    assert code == 0 and count(out) < count(half) < count(plain)


def test_fusion_weights_combinations_and_abbreviations(tmp_path):
    """weights scale each stream's probabilities; combinations picks (by label or by stream list) and orders the
    table; abbreviations relabel the streams. Fake score files only: no training."""
    names = [f"s{i:02d}" for i in range(24)]
    labels = np.arange(24) % NUM_CLASSES
    joint = _fake_scores(tmp_path / "j", 11, names, labels)
    bone = _fake_scores(tmp_path / "b", 12, names, labels)
    bone[:, 0] += 3.0  # a strongly biased bone stream: weight 1 vs 0.2 matters
    with open(tmp_path / "b" / "scores.pkl", "wb") as h:
        pickle.dump({"names": names, "logits": bone, "labels": labels, "class_names": None}, h)
    probs = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
    acc = lambda p: 100 * np.mean(p.argmax(1) == labels)
    weighted = 1.0 * probs(joint.astype(np.float64)) + 0.2 * probs(bone.astype(np.float64))
    even = 0.5 * probs(joint.astype(np.float64)) + 0.5 * probs(bone.astype(np.float64))
    assert acc(weighted) != acc(even)  # the data tell the two weightings apart
    base = [f"work_dir={tmp_path / 'runs'}", f"streams={{joint: '{tmp_path / 'j'}', bone: '{tmp_path / 'b'}'}}"]
    r = get_processor("fusion").from_config(None, base + ["name=fw", "compare=[]",
                                                          "weights={joint: 1.0, bone: 0.2}"]).run()
    assert list(r["combinations"]) == ["J", "B", "JB"]
    assert r["combinations"]["JB"]["top1"] == pytest.approx(acc(weighted))
    assert r["headline"] == "JB" and r["top1"] == r["combinations"]["JB"]["top1"]
    assert r["combinations"]["J"]["top1"] == pytest.approx(acc(joint))
    assert r["combinations"]["B"]["top1"] == pytest.approx(acc(bone))
    r = get_processor("fusion").from_config(None, base + [
        "name=fc", "compare=[]", "abbreviations={bone: X}", "combinations=[JX, [bone]]"]).run()
    assert list(r["combinations"]) == ["JX", "X"]
    assert r["combinations"]["JX"]["streams"] == ["joint", "bone"] and r["combinations"]["X"]["streams"] == ["bone"]
    assert r["combinations"]["JX"]["top1"] == pytest.approx(acc(even))
    assert r["headline"] == "JX" and r["top1"] == r["combinations"]["JX"]["top1"] != r["combinations"]["X"]["top1"]
    r = get_processor("fusion").from_config(None, base + ["name=fsub", "compare=[]", "combinations=[B, J]"]).run()
    assert r["headline"] == "J" and r["top1"] == r["combinations"]["J"]["top1"]   # no all-stream row: the last
    with pytest.raises(ValueError, match=r"unknown combination 'JB'; known: J, X, JX"):
        get_processor("fusion").from_config(None, base + [
            "name=fc_bad", "compare=[]", "abbreviations={bone: X}", "combinations=[JB]"]).run()
    with pytest.raises(ValueError, match=r"names unknown streams \['motion'\]"):
        get_processor("fusion").from_config(None, base + ["name=fc_bad2", "compare=[]",
                                                          "combinations=[[joint, motion]]"]).run()


@pytest.mark.parametrize("extra, match", [
    ("weights={joint: abc}", r"fusion: weights\.joint must be a number > 0, got 'abc'"),
    ("weights={bone: -1}", r"fusion: weights\.bone must be a number > 0, got -1"),
    ("weights={joint: 0}", r"fusion: weights\.joint must be a number > 0, got 0"),
    ("weights={joint: .nan}", r"fusion: weights\.joint must be a number > 0, got nan"),
    ("weights={bone: .inf}", r"fusion: weights\.bone must be a number > 0, got inf"),
    ("default_weight=-0.5", r"default_weight.*positive number"),
])
def test_fusion_weights_must_be_positive_numbers(tmp_path, extra, match):
    """A weight of 'abc' ended in float()'s 'could not convert string to float' naming no key; 0, negative or NaN
    weights were used: a zero-weight stream's own row reported the share of class 0 (all-zero scores, arg-max 0), a
    negative one ranked its least likely class first. Fake score files: no training."""
    names = [f"s{i:02d}" for i in range(8)]
    labels = np.arange(8) % NUM_CLASSES
    _fake_scores(tmp_path / "j", 1, names, labels)
    _fake_scores(tmp_path / "b", 2, names, labels)
    over = [f"work_dir={tmp_path / 'runs'}", f"streams={{joint: '{tmp_path / 'j'}', bone: '{tmp_path / 'b'}'}}",
            "name=fw", "compare=[]", extra]
    with pytest.raises(ConfigError, match=match):
        get_processor("fusion").from_config(None, over).run()
    assert not (tmp_path / "runs" / "fw").exists()                   # refused before the run folder is made


class KilledAfterEpoch1:
    """Mixin: killed at the start of epoch 2 (after epoch 1 was saved), once per ``kill = True``."""
    kill = True

    def train_epoch(self, epoch, start_batch=0):
        if epoch == 1 and type(self).kill:
            type(self).kill = False
            raise KeyboardInterrupt
        return super().train_epoch(epoch, start_batch)


class KilledLinear(KilledAfterEpoch1, LinearEvaluation):
    pass


class KilledSemi(KilledAfterEpoch1, get_processor("semi_supervised")):
    pass


def test_resume_refuses_a_replaced_pretrained_checkpoint(env, tmp_path, caplog):
    """The interrupted run's checkpoint records a digest of its pretrained encoder: a resume whose pretrained
    file now holds other weights stops before any work, naming the file and the checkpoint; an older
    checkpoint without the digest resumes with a warning."""
    import shutil

    tmp, root, ckpt = env
    pretrained = tmp_path / "pre.pt"
    shutil.copyfile(ckpt, pretrained)
    args = ("epochs=3", "batch_size=16", "scheduler.name=none", f"pretrained={pretrained}",
            f"work_dir={tmp_path / 'runs'}")
    KilledLinear.kill = True
    with pytest.raises(KeyboardInterrupt):
        run("swap", env, *args, cls=KilledLinear)
    run_dir = tmp_path / "runs/swap"
    shutil.copyfile(make_checkpoint(tmp_path / "other", root, seed=1), pretrained)   # the pretraining went on
    with pytest.raises(PretrainedMismatch, match=rf"{pretrained}: its encoder differs from the one the interrupted "
                                                 rf"run in {run_dir / 'latest.pt'} started from"):
        run("swap", env, *args, "resume=true", cls=KilledLinear)
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1          # nothing trained on
    shutil.copyfile(ckpt, pretrained)
    state = torch.load(run_dir / "latest.pt", weights_only=True)
    assert state["extra"].pop("pretrained_digest")
    torch.save(state, run_dir / "latest.pt")                                       # as an older version wrote it
    with caplog.at_level("WARNING"):
        r = run("swap", env, *args, "resume=true", cls=KilledLinear)
    assert r["epochs_run"] == 3 and r["frozen_check"].startswith("passed")
    assert any("holds no digest of its pretrained encoder" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("change", ["subset_seed=2", "label_fraction=0.6", "holdout_fraction=0.3", "seed=5",
                                    "monitor=test"])
def test_resume_refuses_a_change_of_the_training_subset(env, tmp_path, change):
    """label_fraction, subset_seed and the holdout draw select the training samples: changing one on resume is an
    error before any work (subset_indices.json, metrics.jsonl and the run record, config.yaml and run_info.json,
    stay as the interrupted run left them: config.yaml is what ran)."""
    KilledSemi.kill = True
    args = ("label_fraction=0.5", "epochs=2", "batch_size=4", f"work_dir={tmp_path / 'runs'}")
    with pytest.raises(KeyboardInterrupt):
        run("semi_resume", env, *args, processor="semi_supervised", cls=KilledSemi)
    run_dir = tmp_path / "runs/semi_resume"
    kept = {name: (run_dir / name).read_text() for name in ("subset_indices.json", "config.yaml", "run_info.json")}
    key, value = change.split("=")
    with pytest.raises(ConfigError, match=rf"resuming .*latest\.pt with {key}: .* -> {value}: these keys select the "
                                          rf"training samples"):
        run("semi_resume", env, *args, change, "resume=true", processor="semi_supervised", cls=KilledSemi)
    assert {name: (run_dir / name).read_text() for name in kept} == kept
    assert not list(run_dir.glob("config.before_resume_*.yaml"))
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    run("semi_resume", env, *args, "resume=true", processor="semi_supervised", cls=KilledSemi)   # the saved values
    assert len(json.loads((run_dir / "run_info.json").read_text())["resumes"]) == 1
    assert (run_dir / "config.before_resume_1.yaml").read_text() == kept["config.yaml"]   # not the refused one


def test_resume_refuses_training_data_that_changed(env, tmp_path):
    """The resumed epochs must train on the interrupted run's samples: a resume whose data (data.root) now gives
    another labelled subset (here: the same clips in another order, so the seeded draw picks others) stops before
    any work, naming the label file, and subset_indices.json stays the saved one; the same data moved to
    another folder resumes."""
    root = env[1]
    KilledSemi.kill = True
    args = ("label_fraction=0.5", "epochs=2", "batch_size=4", f"work_dir={tmp_path / 'runs'}")
    with pytest.raises(KeyboardInterrupt):
        run("semi_data", env, *args, processor="semi_supervised", cls=KilledSemi)
    run_dir = tmp_path / "runs/semi_data"
    subset = (run_dir / "subset_indices.json").read_text()
    moved, reordered = tmp_path / "moved", tmp_path / "reordered"
    shutil.copytree(root, moved)
    shutil.copytree(root, reordered)
    names, labels = pickle.loads((root / "train_label.pkl").read_bytes())
    order = np.arange(len(names))[::-1]
    with open(reordered / "train_label.pkl", "wb") as handle:
        pickle.dump(([names[i] for i in order], [labels[i] for i in order]), handle)
    for name in ("train_data_joint.npy", "train_num_frame.npy"):
        np.save(reordered / name, np.load(root / name)[order])
    with pytest.raises(ConfigError, match=rf"{reordered / 'train_label.pkl'}: the training samples .* differ from "
                                          rf"those the interrupted run in {run_dir / 'latest.pt'} trained on"):
        run("semi_data", env, *args, f"data.root={reordered}", "resume=true", processor="semi_supervised",
            cls=KilledSemi)
    assert (run_dir / "subset_indices.json").read_text() == subset
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1
    r = run("semi_data", env, *args, f"data.root={moved}", "resume=true", processor="semi_supervised",
            cls=KilledSemi)
    assert r["epochs_run"] == 2 and (run_dir / "subset_indices.json").read_text() == subset


class RescoredLinear(LinearEvaluation):
    """Its monitored top-1 of epoch e is ``script[e]`` (the held-out predictions are rewritten to score it): a
    resumed run given another script retrains an epoch that scores differently, as a GPU's may."""
    script = []

    def scores(self, dataset, desc):
        logits, labels, index = super().scores(dataset, desc)
        if dataset is self.monitor_set:
            right = round(self.script[self.epoch] / 100 * len(labels))
            pred = np.where(np.arange(len(labels)) < right, labels, (labels + 1) % NUM_CLASSES)
            logits = np.eye(NUM_CLASSES, dtype=np.float32)[pred]
        return logits, labels, index


@pytest.mark.parametrize("killed_in, best_epoch", [("latest.pt", 1), ("best.pt", 2)])
def test_best_weights_match_the_best_epoch_after_a_kill_between_the_saves(env, tmp_path, monkeypatch, killed_in,
                                                                          best_epoch):
    """Killed while saving epoch 2, which improved on epoch 1 (75 % vs 25 %), then resumed with epochs 2 and 3
    scoring 0 %: killed in the save of latest.pt, epoch 2 is trained again and scores 0 this time (as a GPU's
    may), so the best epoch is 1; killed in the save of best.pt, latest.pt holds the finished epoch 2, which
    stays the best. best.pt and scores.pkl must hold that epoch's weights, as in a run that scored so from the
    start (not the killed attempt's epoch 2, nor epoch 1 when 2 is the best)."""
    import processor.base as base

    args = ("epochs=3", "batch_size=16", "optim.lr=0.5", "scheduler.name=none", f"work_dir={tmp_path / 'runs'}")
    RescoredLinear.script = [25.0, 0.0, 0.0] if best_epoch == 1 else [25.0, 75.0, 0.0]
    reference = run("rescored_straight", env, *args, cls=RescoredLinear)
    real_checkpoint, real_best = base.save_checkpoint, RescoredLinear._save_best

    def save_checkpoint(state, *args, **kwargs):
        if killed_in == "latest.pt" and state["epoch"] == 2:
            raise KeyboardInterrupt
        return real_checkpoint(state, *args, **kwargs)

    def save_best(self):
        if killed_in == "best.pt" and self.best_epoch == 2:
            raise KeyboardInterrupt
        return real_best(self)

    with monkeypatch.context() as patch:
        patch.setattr(base, "save_checkpoint", save_checkpoint)
        patch.setattr(RescoredLinear, "_save_best", save_best)
        RescoredLinear.script = [25.0, 75.0, 0.0]
        with pytest.raises(KeyboardInterrupt):
            run("rescored", env, *args, cls=RescoredLinear)
    RescoredLinear.script = [25.0, 0.0, 0.0]
    resumed = run("rescored", env, *args, "resume=true", cls=RescoredLinear)
    assert resumed["best_epoch"] == reference["best_epoch"] == best_epoch
    assert resumed["test_best_monitored_epoch"] == reference["test_best_monitored_epoch"]
    runs = tmp_path / "runs"
    assert torch.load(runs / "rescored/best.pt", weights_only=True)["epoch"] == best_epoch
    kept, straight = (pickle.loads((runs / name / "scores.pkl").read_bytes()) for name in ("rescored",
                                                                                            "rescored_straight"))
    assert np.array_equal(kept["logits"], straight["logits"])


class KilledFinetune(get_processor("finetune")):
    """Killed at the start of global step ``kill_at`` (latest.pt saved every step), once."""
    kill_at = None

    def train_step(self, batch):
        if self.global_step == type(self).kill_at:
            type(self).kill_at = None
            raise KeyboardInterrupt
        return super().train_step(batch)


def test_finetune_killed_mid_epoch_resumes_exactly_with_or_without_workers(env, tmp_path):
    """README: a run killed in the middle of an epoch continues exactly with --resume, and results do not depend
    on the number of workers. Fine-tuning (dropout on, encoder trained, frozen features not cached) killed 1
    step into epoch 2 and resumed with num_workers=2 ends with the weights, metrics.jsonl, best.pt and test
    scores of a straight num_workers=0 run."""
    args = ("epochs=2", "batch_size=12", "optim.lr=0.01", "save_every_steps=1", f"work_dir={tmp_path / 'runs'}")
    straight = run("ft_straight", env, *args, cls=KilledFinetune)
    KilledFinetune.kill_at = 4                      # 36 training clips, batches of 12: 3 steps per epoch
    with pytest.raises(KeyboardInterrupt):
        run("ft_killed", env, *args, cls=KilledFinetune)
    runs = tmp_path / "runs"
    partial = torch.load(runs / "ft_killed/latest.pt", weights_only=True)
    assert (partial["epoch"], partial["step_in_epoch"]) == (1, 1)
    resumed = run("ft_killed", env, *args, "resume=true", "num_workers=2", cls=KilledFinetune)
    assert {k: v for k, v in resumed.items() if k != "wall_time_s"} == \
        {k: v for k, v in straight.items() if k != "wall_time_s"}
    a, b = (runs / name for name in ("ft_straight", "ft_killed"))
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    for name in ("latest.pt", "best.pt"):
        wa, wb = (torch.load(d / name, weights_only=True)["model"] for d in (a, b))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
    for name in ("scores.pkl", "scores_last.pkl"):
        sa, sb = (pickle.loads((d / name).read_bytes()) for d in (a, b))
        assert np.array_equal(sa["logits"], sb["logits"]), name


@pytest.mark.parametrize("batch, warmup, epochs, expected", [
    (8, 1, 2, [0.1, 0.2, 0.3, 0.4, 0.5] + [0.5] * 5),  # 36 clips, drop_last false: 5 steps an epoch (the last padded)
    (64, 2, 3, [0.25, 0.5, 0.5]),                      # a batch above the 36 clips is one of 36: 1 step an epoch
], ids=["partial_last_batch", "batch_above_the_data"])
def test_warmup_spans_the_epochs_the_evaluation_actually_steps(env, tmp_path, batch, warmup, epochs, expected):
    """scheduler.warmup_epochs counts the optimiser steps of an epoch as the evaluation's loader makes them
    (drop_last: false keeps the last partial batch; a batch_size above the data is lowered to it)."""
    seen = []

    class Recording(LinearEvaluation):
        def build_optimizer(self):
            optimizer = super().build_optimizer()
            optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
            return optimizer

    run("warm", env, f"epochs={epochs}", f"batch_size={batch}", "optim.lr=0.5", "scheduler.name=none",
        f"scheduler.warmup_epochs={warmup}", f"work_dir={tmp_path / 'runs'}", cls=Recording)
    assert seen == pytest.approx(expected)


@pytest.mark.parametrize("processor", ["linear_evaluation", "knn_evaluation"])
def test_non_finite_test_outputs_are_an_error_naming_the_data_file(env, tmp_path, processor):
    """A NaN in one test clip gave that clip NaN logits (kNN: NaN features), which top-k and arg-max counted as
    class 0: the evaluation reported a plausible accuracy. Now it names the split's data file and the sample."""
    import shutil

    from feeder.io import load_label_pkl

    root = tmp_path / "data"
    shutil.copytree(env[1], root)
    data = np.load(root / "val_data_joint.npy")
    data[3, :, 0] = np.nan
    np.save(root / "val_data_joint.npy", data)
    name = load_label_pkl(root / "val_label.pkl")[0][3]
    with pytest.raises(ValueError, match=rf"val_data_joint\.npy.*: 1 of 20 samples have non-finite "
                                         rf"(logits|features) \(NaN or inf\), e\.g\. \['{name}'\]"):
        training = ["epochs=1", "batch_size=16"] if processor == "linear_evaluation" else []
        run("nan_test", (tmp_path, root, env[2]), *training, processor=processor)
