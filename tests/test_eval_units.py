"""Unit tests of the evaluation machinery: subsets, kNN, fusion arithmetic, frozen guard, plateau rule."""
import numpy as np
import pytest
import torch

from processor.evaluation.frozen import FrozenGuard, FrozenWeightsChanged
from processor.evaluation.knn import knn_classify, vote
from processor.evaluation.scores import softmax, topk_accuracy, confusion_matrix, per_class_accuracy
from processor.evaluation.subsets import class_balanced_subset, holdout_split, per_class_counts
from processor.fusion import ScoreMismatch, align_scores, fuse
from processor.schedule import PlateauRule


def _labels():
    # class sizes 100, 50, 7, 1, 25 (shuffled)
    labels = np.repeat(np.arange(5), [100, 50, 7, 1, 25])
    return np.random.default_rng(3).permutation(labels)


def test_subset_counts_are_exact_and_class_balanced():
    labels = _labels()
    for fraction, expected in [(0.01, [1, 1, 1, 1, 1]), (0.1, [10, 5, 1, 1, 2]), (0.05, [5, 2, 1, 1, 1])]:
        idx = class_balanced_subset(labels, fraction, seed=7)
        counts = np.bincount(labels[idx], minlength=5).tolist()
        assert counts == expected, (fraction, counts)
        assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
    assert per_class_counts(labels, 0.1) == {0: 10, 1: 5, 2: 1, 3: 1, 4: 2}
    # the sizes above give the same counts truncated or rounded; 1.6 and 2.5 do not (Python rounds half to even)
    assert per_class_counts(np.repeat([0, 1], [16, 25]), 0.1) == {0: 2, 1: 2}


def test_subset_is_reproducible_and_seed_dependent():
    labels = _labels()
    a = class_balanced_subset(labels, 0.1, seed=1)
    b = class_balanced_subset(labels, 0.1, seed=1)
    c = class_balanced_subset(labels, 0.1, seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match=r"fraction must lie in \(0, 1\], got 0\.0"):
        class_balanced_subset(labels, 0.0, seed=1)


def test_holdout_split_is_disjoint_balanced_and_keeps_every_class():
    labels = _labels()
    train, held = holdout_split(labels, 0.1, seed=4)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == len(labels)
    assert np.bincount(labels[held], minlength=5).tolist() == [10, 5, 1, 0, 2]  # the 1-sample class stays in train
    assert set(labels[train]) == set(range(5))


def _brute_knn(train, train_y, test, k, num_classes):
    tr = train / np.linalg.norm(train, axis=1, keepdims=True)
    te = test / np.linalg.norm(test, axis=1, keepdims=True)
    sim = te @ tr.T
    preds = []
    for row in sim:
        order = np.argsort(-row, kind="stable")[:k]
        labs = train_y[order]
        counts = np.bincount(labs, minlength=num_classes)
        top = np.flatnonzero(counts == counts.max())
        preds.append(next(l for l in labs if l in top))  # tie -> nearest tied class
    return np.array(preds)


@pytest.mark.parametrize("k", [1, 3, 4])
def test_knn_matches_brute_force_with_chunks(k):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(53, 7)).astype(np.float32)
    train_y = rng.integers(0, 4, size=53)
    test = rng.normal(size=(17, 7)).astype(np.float32)
    ref = _brute_knn(train, train_y, test, k, 4)
    res = knn_classify(torch.from_numpy(train), torch.from_numpy(train_y), torch.from_numpy(test), k=k,
                       num_classes=4, test_chunk=5, train_chunk=8)
    assert np.array_equal(res.pred, ref)
    assert res.neighbours.shape == (17, k)
    # neighbours = brute-force top-k, nearest first
    tr = train / np.linalg.norm(train, axis=1, keepdims=True)
    te = test / np.linalg.norm(test, axis=1, keepdims=True)
    assert np.array_equal(res.neighbours, np.argsort(-(te @ tr.T), axis=1, kind="stable")[:, :k])


def test_knn_ties_go_to_the_earlier_train_sample_whatever_the_chunks():
    base = torch.eye(3, 8) * 2.0      # similarities exactly 1 or 0, whatever the GEMM's blocking
    train, labels = base[torch.arange(60) % 3], torch.arange(60) % 4   # exact duplicates, different labels
    runs = [knn_classify(train, labels, base, k=5, num_classes=4, train_chunk=c, test_chunk=2) for c in (60, 7, 1)]
    expected = [[i + 3 * j for j in range(5)] for i in range(3)]       # each test's duplicates, in train order
    for r in runs:
        assert r.neighbours.tolist() == expected and r.pred.tolist() == runs[0].pred.tolist()


def test_vote_tie_goes_to_nearest():
    labels = torch.tensor([[2, 1, 1, 2], [0, 3, 3, 0], [1, 1, 2, 0]])
    assert vote(labels, 4).tolist() == [2, 0, 1]


def test_fusion_matches_hand_computation():
    names = ["a", "b", "c"]
    joint = {"names": names, "labels": np.array([0, 1, 1]),
             "logits": np.log(np.array([[0.6, 0.4], [0.7, 0.3], [0.2, 0.8]]))}
    # same samples in another order
    bone = {"names": ["c", "a", "b"], "labels": np.array([1, 0, 1]),
            "logits": np.log(np.array([[0.5, 0.5], [0.1, 0.9], [0.2, 0.8]]))}
    got_names, labels, logits = align_scores({"joint": joint, "bone": bone})
    assert got_names == names and labels.tolist() == [0, 1, 1]
    fused = fuse(logits, {"joint": 0.5, "bone": 0.5}, ["joint", "bone"])
    hand = 0.5 * np.array([[0.6, 0.4], [0.7, 0.3], [0.2, 0.8]]) + 0.5 * np.array([[0.1, 0.9], [0.2, 0.8], [0.5, 0.5]])
    assert np.allclose(fused, hand)
    # joint alone: a right, b wrong, c right; fused: a wrong (0.35 vs 0.65), b right (0.45/0.55), c right
    assert topk_accuracy(logits["joint"], labels, (1,))[1] == pytest.approx(200 / 3)
    assert topk_accuracy(fused, labels, (1,))[1] == pytest.approx(200 / 3)
    assert fused.argmax(1).tolist() == [1, 1, 1]


def test_fusion_mismatch_lists_samples():
    a = {"names": ["x", "y", "z"], "labels": np.zeros(3), "logits": np.zeros((3, 2))}
    b = {"names": ["x", "y", "w"], "labels": np.zeros(3), "logits": np.zeros((3, 2))}
    with pytest.raises(ScoreMismatch, match=r"1 missing \['z'\].*1 extra \['w'\]"):
        align_scores({"joint": a, "bone": b})
    c = {"names": ["x", "y", "z"], "labels": np.array([0, 1, 0]), "logits": np.zeros((3, 2))}
    with pytest.raises(ScoreMismatch, match="different labels"):
        align_scores({"joint": a, "bone": c})


def test_metrics_helpers():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    labels = np.array([1, 2, 2])
    acc = topk_accuracy(logits, labels, (1, 2))
    assert acc[1] == pytest.approx(200 / 3) and acc[2] == pytest.approx(200 / 3)
    cm = confusion_matrix(logits.argmax(1), labels, 3)
    assert cm.tolist() == [[0, 0, 0], [0, 1, 0], [1, 0, 1]]
    pc = per_class_accuracy(logits.argmax(1), labels, 3)
    assert np.isnan(pc[0]) and pc[1] == 100 and pc[2] == 50
    assert np.allclose(softmax(np.array([[0.0, np.log(3.0)]])), [[0.25, 0.75]])


def test_frozen_guard_fires_on_weights_and_bn_statistics():
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    guard = FrozenGuard(net)
    assert guard.check() == len(net.state_dict())
    net.train()
    net(torch.randn(4, 3))  # BN running statistics move
    with pytest.raises(FrozenWeightsChanged, match="running_mean"):
        guard.check()
    guard = FrozenGuard(net)
    with torch.no_grad():
        net[0].weight[0, 0] += 1e-6
    with pytest.raises(FrozenWeightsChanged, match=r"0\.weight"):
        guard.check()


def test_plateau_rule_on_scripted_accuracies():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    rule = PlateauRule(opt, patience=3, stop_patience=5, factor=0.1)
    script = [10, 20, 20, 15, 19, 30, 29, 28, 27, 26, 25]
    stops, lrs = [], []
    for value in script:
        stops.append(rule.step(value))
        lrs.append(opt.param_groups[0]["lr"])
    # 3 bad epochs after 20 (epoch 2) -> x0.1 at the 3rd (index 4); 30 improves; 5 bad after it -> stop at index 10
    assert lrs[:4] == [1.0] * 4 and lrs[4] == pytest.approx(0.1)
    assert lrs[8] == pytest.approx(0.01) and lrs[10] == pytest.approx(0.01)
    assert stops == [False] * 10 + [True]
    assert rule.best == 30 and rule.best_epoch == 5


def test_plateau_rule_reduces_every_patience_bad_epochs_within_one_plateau():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    rule = PlateauRule(opt, patience=2, stop_patience=10, factor=0.1)
    lrs, stops = [], []
    for value in [10, 9, 9, 9, 9, 9, 9]:
        stops.append(rule.step(value))
        lrs.append(opt.param_groups[0]["lr"])
    # bad epochs 1..6 after the first: x0.1 at the 2nd, 4th and 6th
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01, 0.001])
    assert not any(stops) and rule.bad_epochs == 6 and rule.best == 10 and rule.best_epoch == 0


def test_plateau_rule_state_round_trip():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    rule = PlateauRule(opt, patience=3, stop_patience=5, factor=0.1)
    for value in [10, 20, 20, 15]:
        rule.step(value)
    state = rule.state_dict()
    assert "optimizer" not in state
    fresh = PlateauRule(opt, patience=3, stop_patience=5, factor=0.1)
    fresh.load_state_dict(state)
    assert (fresh.best, fresh.best_epoch, fresh.bad_epochs, fresh.epoch) == (20, 1, 2, 3)
    assert fresh.optimizer is opt
    assert not fresh.step(19) and opt.param_groups[0]["lr"] == pytest.approx(0.1)  # 3rd bad epoch: reduce
    assert not fresh.step(18) and fresh.step(17)  # 5th bad epoch: stop


def test_load_scores_errors_name_the_file(tmp_path):
    import pickle

    from processor.evaluation.scores import load_scores

    missing = tmp_path / "nowhere" / "scores.pkl"
    with pytest.raises(FileNotFoundError, match=r"score file not found: .*nowhere.*scores\.pkl"):
        load_scores(missing)
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"names": ["a"], "logits": np.zeros((1, 2))}))
    with pytest.raises(ValueError, match=r"bad\.pkl: expected a dict with names, logits and labels"):
        load_scores(bad)
    bad.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match=r"bad\.pkl: expected a dict"):
        load_scores(bad)
    uneven = tmp_path / "uneven.pkl"
    uneven.write_bytes(pickle.dumps({"names": ["a", "b"], "logits": np.zeros((2, 2)), "labels": np.zeros(1)}))
    with pytest.raises(ValueError, match=r"uneven\.pkl: names, logits and labels have different lengths"):
        load_scores(uneven)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(pickle.dumps({"names": ["a"], "logits": np.ones((1, 2)), "labels": np.zeros(1)})[:-9])
    with pytest.raises(ValueError, match=r"truncated\.pkl: not a readable score file"):
        load_scores(truncated)
    flat = tmp_path / "flat.pkl"
    flat.write_bytes(pickle.dumps({"names": ["a", "b"], "logits": np.ones(2), "labels": np.zeros(2)}))
    with pytest.raises(ValueError, match=r"flat\.pkl: logits must be a numeric array \(N, classes\)"):
        load_scores(flat)
    fractional = tmp_path / "fractional.pkl"
    fractional.write_bytes(pickle.dumps({"names": ["a"], "logits": np.ones((1, 2)), "labels": np.full(1, 0.5)}))
    with pytest.raises(ValueError, match=r"fractional\.pkl: labels must be whole class numbers"):
        load_scores(fractional)
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"names": ["a"], "logits": np.ones((1, 2)), "labels": np.zeros(1)}))
    assert load_scores(good)["names"] == ["a"]


def test_encoder_reader_rejects_unknown_formats_and_missing_files(tmp_path):
    from processor.evaluation.encoder_loading import FORMATS, _read

    assert set(FORMATS) >= {"auto", "acsar", "scdnet"}
    with pytest.raises(ValueError, match=r"pretrained_format must be one of .*got 'moco'"):
        _read(tmp_path / "x.pt", "moco")
    with pytest.raises(FileNotFoundError, match=r"pretrained checkpoint not found: .*absent\.pt"):
        _read(tmp_path / "absent.pt", "auto")
    run = tmp_path / "run"                        # a pretraining run folder given instead of its checkpoint
    run.mkdir()
    with pytest.raises(FileNotFoundError, match=r"pretrained=.*run is a folder; expected a checkpoint file "
                                                r"\(it holds no \.pt file\)"):
        _read(run, "auto")
    for name in ("epoch_10.pt", "latest.pt"):
        (run / name).write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"is a folder; expected a checkpoint file, e\.g\. .*run/latest\.pt$"):
        _read(run, "auto")
    junk = tmp_path / "junk.pt"
    torch.save([1, 2, 3], junk)
    with pytest.raises(ValueError, match=r"junk\.pt: neither an AC-SAR checkpoint nor an SCD-Net state dict"):
        _read(junk, "auto")


def test_knn_input_checks():
    train, labels, test = torch.randn(6, 4), torch.arange(6) % 2, torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"expected \(N_train, D\) and \(N_test, D\) features, got \(6, 4\) and \(3, 5\)"):
        knn_classify(train, labels, torch.randn(3, 5), k=1)
    with pytest.raises(ValueError, match=r"expected \(N_train, D\)"):
        knn_classify(torch.randn(6, 4, 1), labels, test, k=1)
    with pytest.raises(ValueError, match=r"5 train labels for 6 train features"):
        knn_classify(train, labels[:5], test, k=1)
    for k in (0, 7):
        with pytest.raises(ValueError, match=rf"k must lie in \[1, 6\], got {k}"):
            knn_classify(train, labels, test, k=k)
    assert knn_classify(train, labels, test, k=6).neighbours.shape == (3, 6)


@pytest.mark.parametrize("kwargs, match", [
    ({"patience": 0, "stop_patience": 5, "factor": 0.1}, r"patience .* must be at least 1, got 0 and 5"),
    ({"patience": 3, "stop_patience": 0, "factor": 0.1}, r"must be at least 1, got 3 and 0"),
    ({"patience": 3, "stop_patience": 5, "factor": 10}, r"scheduler.gamma .* must lie in \(0, 1\], got 10"),
])
def test_plateau_rule_refuses_values_it_cannot_apply(kwargs, match):
    from processor.schedule import PlateauRule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=match):
        PlateauRule(opt, **kwargs)


def test_load_scores_refuses_non_finite_logits(tmp_path):
    """A NaN (or inf) logit makes the sample's softmax NaN; arg-max and top-k then counted it as class 0, so a stream
    with NaN scores got a plausible fused accuracy. The score file is refused, naming it and the samples."""
    import pickle

    from processor.evaluation.scores import load_scores

    for bad_value in (np.nan, np.inf):
        logits = np.zeros((4, 3), dtype=np.float32)
        logits[2, 1] = bad_value
        path = tmp_path / "stream" / "scores.pkl"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(pickle.dumps({"names": ["a", "b", "c", "d"], "logits": logits, "labels": np.zeros(4)}))
        with pytest.raises(ValueError, match=r"stream.scores\.pkl: 1 of 4 samples have non-finite logits .*'c'"):
            load_scores(path)


def test_load_scores_refuses_labels_and_class_names_that_do_not_fit_the_classes(tmp_path):
    """A label outside [0, classes) ended in a bare IndexError in fusion's per-class figure (label >= classes) or
    was counted silently as the last class (label -1); class names of another count ended in a matplotlib tick
    error. Both are refused on reading, naming the file."""
    import pickle

    from processor.evaluation.scores import load_scores

    def write(labels, class_names=None):
        path = tmp_path / "run" / "scores.pkl"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(pickle.dumps({"names": ["a", "b", "c"], "logits": np.zeros((3, 3)),
                                       "labels": np.array(labels), "class_names": class_names}))
        return path

    for labels in ([0, 3, 1], [0, -1, 2]):
        with pytest.raises(ValueError, match=r"run.scores\.pkl: labels must be class numbers 0\.\.2 .*'b'"):
            load_scores(write(labels))
    with pytest.raises(ValueError, match=r"run.scores\.pkl: 2 class names for 3 classes"):
        load_scores(write([0, 1, 2], ["x", "y"]))
    assert load_scores(write([0, 1, 2], ["x", "y", "z"]))["class_names"] == ["x", "y", "z"]
    assert load_scores(write([0, 1, 2]))["class_names"] is None


def _drawn_figure(monkeypatch, plot, *args, **kwargs):
    """Run a figures.plot_* function; return its matplotlib figure and the renderer that drew it (the PNG is
    written as usual)."""
    from processor.evaluation import figures

    kept = {}
    save = figures._save

    def keep(fig, path, dpi):
        fig.canvas.draw()
        kept["fig"], kept["renderer"] = fig, fig.canvas.get_renderer()
        return save(fig, path, dpi)

    monkeypatch.setattr(figures, "_save", keep)
    plot(*args, **kwargs)
    return kept["fig"], kept["renderer"]


@pytest.mark.parametrize("num_classes", [1, 60, 120])
def test_class_name_figures_keep_60_and_120_ntu_names_legible(tmp_path, monkeypatch, num_classes):
    """The tick-label font shrank as 400 / classes (confusion) and 500 / classes (per-class bars): 3 pt and 4 pt for
    NTU-120, 5-6 px glyphs, though each class has about 14 pt of axis. The font now follows the space per class:
    never below figures.LABEL_PT_MIN, and neighbouring names never overlap."""
    from pathlib import Path

    from processor.evaluation import figures

    names = [n for n in Path("data_gen/resources/classes_ntu120.txt").read_text(encoding="utf-8").splitlines()
             if n.strip()][:num_classes]
    labels = np.repeat(np.arange(num_classes), 2)
    pred = np.roll(labels, 1)
    cm = confusion_matrix(pred, labels, num_classes)
    fig, fig_renderer = _drawn_figure(monkeypatch, figures.plot_confusion, cm, tmp_path / "cm.png", names, title="cm")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted class", "true class", "cm")
    assert np.allclose(np.asarray(ax.images[0].get_array()).sum(axis=1), 1.0)      # rows = true class, normalised
    acc = per_class_accuracy(pred, labels, num_classes)
    bars, bars_renderer = _drawn_figure(monkeypatch, figures.plot_per_class_comparison, acc, acc, "JB", "JM",
                                        tmp_path / "pc.png", names)
    for renderer, ticks, vertical in ((fig_renderer, ax.get_yticklabels(), True),
                                      (fig_renderer, ax.get_xticklabels(), False),
                                      (bars_renderer, bars.axes[0].get_xticklabels(), False)):
        assert [t.get_text() for t in ticks] == names
        assert min(t.get_fontsize() for t in ticks) >= figures.LABEL_PT_MIN
        boxes = [t.get_window_extent(renderer) for t in ticks]
        spans = sorted((b.y0, b.y1) if vertical else (b.x0, b.x1) for b in boxes)
        assert all(a[1] <= b[0] + 0.5 for a, b in zip(spans, spans[1:])), "neighbouring class names overlap"


@pytest.mark.parametrize("num_classes", [4, 60])
def test_per_class_figure_keeps_its_bar_panel_under_long_names(tmp_path, monkeypatch, num_classes):
    """The per-class figure was 5 inches high whatever the names: NTU's rotated names took most of it, the bars
    were left under two inches, and the legend (meant to sit in the headroom above 100 %) hid the bars
    near 100 %. The figure now grows by the names' height: the bar panel keeps its height, the legend stays
    above 100 %."""
    from pathlib import Path

    from processor.evaluation import figures

    names = [n for n in Path("data_gen/resources/classes_ntu120.txt").read_text(encoding="utf-8").splitlines()
             if n.strip()][:num_classes]
    acc = np.full(num_classes, 100.0)
    fig, renderer = _drawn_figure(monkeypatch, figures.plot_per_class_comparison, acc, acc, "JB", "JM",
                                  tmp_path / "pc.png", names, title="per class")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "per-class top-1 accuracy (%)" and ax.get_title() == "per class"
    panel_in = ax.get_window_extent(renderer).height / fig.dpi
    assert panel_in >= 0.95 * figures.BAR_PANEL_IN, f"the bars have {panel_in:.2f} in"
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.y0 >= ax.transData.transform((0, 100.0))[1], "the legend covers bars at 100 %"


def test_training_curves_label_every_axis(tmp_path, monkeypatch):
    """Loss, accuracy (%) and learning-rate panels over whole epochs; the learning-rate panel had a title but no
    y-axis label."""
    from processor.evaluation import figures

    rows = [{"epoch": e, "lr": 0.1 / e, "train/loss": 1.0 / e, "train/acc": 50.0 + e, "eval/holdout_top1": 40.0 + e}
            for e in (1, 2, 3)]
    fig, _ = _drawn_figure(monkeypatch, figures.plot_training_curves, rows, tmp_path / "curves.png", title="t")
    loss, acc, lr = fig.axes
    assert [line.get_label() for line in loss.get_lines()] == ["train/loss"]
    assert [line.get_label() for line in acc.get_lines()] == ["eval/holdout_top1", "train/acc"]
    assert np.allclose(lr.get_lines()[0].get_ydata(), [0.1, 0.05, 0.1 / 3]) and lr.get_yscale() == "log"
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes] == [
        ("epoch", "loss"), ("epoch", "accuracy (%)"), ("epoch", "learning rate")]


def test_an_official_checkpoint_of_another_shape_is_a_mismatch_naming_the_file(tmp_path):
    """An SCD-Net checkpoint (no config to compare) whose tensors do not fit the configured encoder (here: an
    NTU-25 one evaluated with the 20-joint NW-UCLA layout) ends in one error line naming the file and the keys."""
    from net.acsar import ACSAR
    from net.classifier import SkeletonClassifier
    from net.scdnet_checkpoint import to_scdnet
    from processor.evaluation.encoder_loading import PretrainedMismatch, load_pretrained

    encoder = dict(layout="ntu25", in_channels=3, num_person=1, num_frame=8, stem_channels=[4, 4], hidden_dim=8,
                   num_heads=2, num_layers=1, ff_dim=8, dropout=0.0)
    pretrained = ACSAR(**encoder, proj_hidden=4, proj_dim=4, queue_size=4, momentum=0.999, tau_domain=0.2)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 1, "state_dict": to_scdnet(pretrained.state_dict())}, path)
    ucla = SkeletonClassifier(num_classes=3, freeze_encoder=True, **dict(encoder, layout="kinect_v1"))
    with pytest.raises(PretrainedMismatch, match=r"checkpoint\.pth\.tar \(scdnet format\): .*shape mismatch "
                                                 r"\[.*stem_s\.data_bn\.bias: checkpoint \(75,\) vs model \(60,\)"):
        load_pretrained(ucla, path, "scdnet", {})
    with pytest.raises(PretrainedMismatch, match=r"checkpoint\.pth\.tar \(scdnet format\)"):
        load_pretrained(ucla, path, "auto", {})
    assert isinstance(PretrainedMismatch(""), ValueError)       # main.py: one `error:` line, exit 1
