"""Describers: the VLM path on tiny random Ovis2 / Ovis2.5 models (built, saved and reloaded offline),
the kinematic describer on synthetic and real skeletons, resume after an interruption,
and the end-to-end chain video -> crops -> strip -> VLM text -> text features."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from data_gen import describe as ds
from data_gen.kinematic_describer import KinematicDescriber, count_cycles, count_word
from net.graph import get_layout

SPECIAL_TOKENS = ["<|endoftext|>", "<image>", "<IMG_ATOM>", "<IMG_START>", "<IMG_GRID>", "<IMG_COL>",
                  "<IMG_ROW>", "<IMG_END>", "<|im_start|>", "<|im_end|>"]
#: Ovis2.5's processor reads these six tokens off the tokenizer (image_token, video_token, ...)
OVIS25_TOKENS = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                 "image_start_token": "<ovis_image_start>", "image_end_token": "<ovis_image_end>",
                 "video_start_token": "<ovis_video_start>", "video_end_token": "<ovis_video_end>"}


def chat_template(image_token: str) -> str:
    """A Qwen-style chat template that puts ``image_token`` where the image goes."""
    return ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
            "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}" + image_token + "\n{% else %}"
            "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_tokenizer(special_tokens, **kwargs):
    """A ByteLevel BPE of ~300 tokens trained in-process, as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=list(special_tokens), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["a person raises the right hand", "two people shake hands",
                             "someone walks forward slowly and sits down"] * 10, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   **kwargs)


def save_quiet(model, processor, tok, special_ids, out_dir: Path) -> Path:
    """Damp whitespace / special-token embeddings (random weights would emit them), then save both."""
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        quiet = [i for i in range(len(tok)) if i in special_ids or not tok.decode([i]).strip()]
        emb[quiet] *= 0.01
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def build_tiny_ovis2(out_dir: Path) -> Path:
    """A ~145k-parameter random Ovis2 + processor with an in-process ByteLevel BPE, saved to ``out_dir``."""
    from transformers import Ovis2Config, Ovis2ForConditionalGeneration, Ovis2ImageProcessor, Ovis2Processor

    tok = tiny_tokenizer(SPECIAL_TOKENS)
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIAL_TOKENS}
    proc = Ovis2Processor(image_processor=Ovis2ImageProcessor(size={"height": 32, "width": 32}),
                          tokenizer=tok, chat_template=chat_template("<image>"), image_seq_length=4)
    config = Ovis2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=16, vocab_size=64, num_visual_indicator_tokens=5),
        text_config=dict(model_type="qwen2", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=256, tie_word_embeddings=True),
        image_token_id=ids["<IMG_ATOM>"], vocab_size=len(tok), hidden_size=64,
        visual_indicator_token_ids=[ids[s] for s in ("<IMG_START>", "<IMG_GRID>", "<IMG_COL>", "<IMG_ROW>",
                                                     "<IMG_END>")])
    torch.manual_seed(0)
    return save_quiet(Ovis2ForConditionalGeneration(config), proc, tok, set(ids.values()), out_dir)


def build_tiny_ovis25(out_dir: Path) -> Path:
    """A ~170k-parameter random Ovis2.5 in transformers format (2-layer NaViT vision tower, 2-layer Qwen3),
    its processor (images resized to 32² - 128² pixels) and an in-process BPE, saved to ``out_dir``.
    Skips where the installed transformers has no built-in Ovis2.5."""
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "Ovis2_5ForConditionalGeneration"):
        pytest.skip(f"transformers {transformers.__version__} has no built-in Ovis2.5")
    from transformers import (Ovis2_5Config, Ovis2_5ForConditionalGeneration, Ovis2_5ImageProcessor,
                              Ovis2_5Processor, Ovis2_5VideoProcessor)

    special = ["<|endoftext|>", *OVIS25_TOKENS.values(), "<|im_start|>", "<|im_end|>"]
    tok = tiny_tokenizer(special, extra_special_tokens=OVIS25_TOKENS)
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in OVIS25_TOKENS.items()}
    pixels = {"shortest_edge": 32 * 32, "longest_edge": 128 * 128}          # the area budget per image
    proc = Ovis2_5Processor(image_processor=Ovis2_5ImageProcessor(size=pixels), tokenizer=tok,
                            video_processor=Ovis2_5VideoProcessor(),
                            chat_template=chat_template(OVIS25_TOKENS["image_token"]))
    config = Ovis2_5Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=64, patch_size=16, vocab_size=64, window_size=32, max_position_embeddings=64),
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=512,
                         tie_word_embeddings=True),
        **{f"{name}_id": value for name, value in ids.items()})
    torch.manual_seed(0)
    return save_quiet(Ovis2_5ForConditionalGeneration(config), proc, tok, set(ids.values()), out_dir)


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory):
    return build_tiny_ovis2(tmp_path_factory.mktemp("tiny_ovis2"))


@pytest.fixture(scope="module")
def vlm(tiny_vlm_dir):
    return ds.VLMDescriber(tiny_vlm_dir, max_new_tokens=40, max_chars=30)


def test_clean_description():
    assert ds.clean_description('  "A man\n raises  his hand."  ') == "A man raises his hand."
    text = ds.clean_description("word " * 40, max_chars=75)
    assert len(text) <= 75 and text.endswith("word") and "\n" not in text
    assert ds.clean_description("x" * 100, max_chars=10) == "x" * 10


def test_default_prompt_is_the_papers_figure_3_prompt():
    """The paper's prompt, verbatim from its Fig. 3 (English; §5.2 gives a Chinese rendering and says the
    generated text is limited to 75 characters: the limit is stated in the prompt itself)."""
    assert ds.DEFAULT_PROMPT == ("This is an image of action behavior spliced along a temporal structure. "
                                 "Please briefly describe the action changes, no more than 75 characters.")
    assert f"no more than {ds.PAPER_MAX_CHARS} characters" in ds.DEFAULT_PROMPT


def test_vlm_describer_loads_and_generates(vlm):
    from data_gen.action_images import concat_strip

    rng = np.random.default_rng(0)
    strips = [concat_strip([rng.integers(0, 255, (40, 30, 3), dtype=np.uint8) for _ in range(5)])
              for _ in range(3)]
    texts = vlm(strips)
    assert len(texts) == 3
    assert all(isinstance(t, str) and 0 < len(t) <= 30 and "\n" not in t for t in texts)
    assert vlm(strips[:1]) == texts[:1]  # greedy: deterministic, batch-independent (left padding)


def test_describe_samples_resume_after_interruption(tmp_path):
    names = [f"s{i}" for i in range(10)]
    calls = []
    crash = {"at_call": 3}

    def flaky(batch):
        calls.append(list(batch))
        if len(calls) == crash["at_call"]:
            raise RuntimeError("simulated crash")
        return [f"text of {n}" for n in batch]

    with pytest.raises(RuntimeError, match="simulated crash"):
        ds.describe_samples(names, flaky, tmp_path, batch_size=2)
    done = sorted(p.name for p in tmp_path.iterdir())
    assert done == [f"s{i}.txt" for i in range(4)]  # two finished batches, nothing half-written
    calls.clear()
    crash["at_call"] = None
    assert ds.describe_samples(names, flaky, tmp_path, batch_size=2) == 6  # only the rest is redone
    assert sum(len(b) for b in calls) == 6 and "s0" not in sum(calls, [])
    assert (tmp_path / "s9.txt").read_text() == "text of s9\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.txt" for n in names)
    assert ds.describe_samples(names, flaky, tmp_path, limit=3) == 0


def test_count_cycles():
    t = np.linspace(0, 4 * np.pi, 200)
    assert count_cycles(-np.cos(t), 0.1) == 2.0  # low-high-low-high-low: two round trips
    assert count_cycles(0.01 * np.sin(t), 0.1) == 0.0


def _synthetic_gendata(tmp_path):
    from data_gen.ntu_gendata import process_file
    from data_gen.synth_gendata import generate_dataset

    raw = tmp_path / "raw"
    paths = generate_dataset(raw, progress=False, num_classes=17, performers=(1, 2), cameras=(2,),
                             replications=(1,), max_frames=120)
    samples = [process_file(p) for p in paths]
    labels = [int(p.stem.split("A")[-1]) - 1 for p in paths]
    return samples, labels


def test_kinematic_descriptions_cluster_by_class(tmp_path):
    """MiniLM features of the sentences: mean cosine within a class > across classes."""
    from data_gen.encode_text import MiniLMEncoder

    samples, labels = _synthetic_gendata(tmp_path)
    describer = KinematicDescriber(get_layout("ntu25"))
    texts = [describer.describe(x, n) for x, n in samples]
    assert all(0 < len(t) <= 75 and "\n" not in t for t in texts)
    emb = MiniLMEncoder().encode_sentence(texts)[:, 0]
    sim = emb @ emb.T
    lab = np.array(labels)
    same = lab[:, None] == lab[None]
    off = ~np.eye(len(lab), dtype=bool)
    within, across = sim[same & off].mean(), sim[~same].mean()
    assert within > across + 0.1, (within, across)
    # specific per sample, not per class: 34 performances (17 classes x 2 performers, one camera)
    assert len(set(texts)) >= 25, sorted(set(texts))


def test_kinematic_on_real_ntu_samples(ntu_samples_dir):
    from data_gen.ntu_gendata import process_file

    describer = KinematicDescriber(get_layout("ntu25"))
    texts = {p.stem: describer.describe(*process_file(p)) for p in sorted(ntu_samples_dir.glob("*.skeleton"))}
    assert all(0 < len(t) <= 75 for t in texts.values())
    assert "mouth" in texts["S001C001P001R001A001"]                 # drink water
    assert "hands together" in texts["S003C001P015R001A034"]        # rub two hands
    for two in ("S001C001P001R001A050", "S001C003P008R002A058", "S017C003P020R002A054"):
        assert texts[two].startswith("two people")
    assert "touch" in texts["S001C003P008R002A058"] or "join" in texts["S001C003P008R002A058"]  # handshake


def test_count_word():
    assert [count_word(n) for n in (1, 2, 3, 5, 9)] == ["once", "twice", "three times", "five times", "many times"]


def _standing_person(layout, frames: int) -> np.ndarray:
    """A still, upright person (3, T, V, 1) in metres from the layout's joint names (hip at the origin)."""
    pos = {"hip_center": (0, 0, 0), "spine": (0, 0, 0.2), "shoulder_center": (0, 0, 0.5), "head": (0, 0, 0.7),
           "shoulder_left": (-0.2, 0, 0.45), "elbow_left": (-0.25, 0, 0.2), "wrist_left": (-0.25, 0, 0.0),
           "hand_left": (-0.25, 0, -0.08), "shoulder_right": (0.2, 0, 0.45), "elbow_right": (0.25, 0, 0.2),
           "wrist_right": (0.25, 0, 0.0), "hand_right": (0.25, 0, -0.08), "hip_left": (-0.1, 0, -0.05),
           "knee_left": (-0.1, 0, -0.45), "ankle_left": (-0.1, 0, -0.85), "foot_left": (-0.1, 0.05, -0.9),
           "hip_right": (0.1, 0, -0.05), "knee_right": (0.1, 0, -0.45), "ankle_right": (0.1, 0, -0.85),
           "foot_right": (0.1, 0.05, -0.9)}
    joints = np.array([pos[n] for n in layout.joint_names], np.float32)  # (V, 3)
    return np.repeat(joints.T[:, None, :, None], frames, axis=1).copy()


def test_kinematic_says_side_height_count_and_body_per_sample():
    """Constructed motions: which hand, how high, how many times, sitting down and the clip duration."""
    layout = get_layout("kinect_v1")
    describer = KinematicDescriber(layout, fps=30)
    hand = layout.joint_names.index("hand_left")
    t = np.linspace(0, 1, 90)

    def raise_left(times: int) -> str:
        x = _standing_person(layout, 90)
        x[2, :, hand, 0] += 0.95 * (1 - np.cos(2 * np.pi * times * t)) / 2   # up above the head and back
        return describer.describe(x, 90)

    once, three = raise_left(1), raise_left(3)
    assert "left" in once and "above the head" in once and "then lowers it" in once, once
    assert "left" in three and "three times" in three, three
    assert once != three and all(len(s) <= 75 for s in (once, three))
    sit = _standing_person(layout, 60)
    upper = [layout.joint_names.index(n) for n in layout.joint_names if "knee" not in n and "ankle" not in n
             and "foot" not in n]
    sit[2, :, upper, 0] -= np.clip(np.linspace(-0.2, 1.2, 60), 0, 1)[None, :] * 0.4   # the body lowers and stays
    text = describer.describe(sit, 60)
    assert text.startswith("a person sits down") and text.endswith("for about 2 seconds"), text
    assert describer.describe(sit[:, :20], 20).endswith("briefly")


def test_kinematic_uses_layout_names_and_limit():
    layout = get_layout("kinect_v1")
    describer = KinematicDescriber(layout, max_chars=20)
    sample = np.zeros((3, 30, layout.num_joints, 2), np.float32)
    sample[:, :, :, 0] = np.random.default_rng(0).normal(0, 0.3, (3, 1, layout.num_joints))
    hand = layout.joint_names.index("hand_right")
    sample[2, :, hand, 0] += np.linspace(0, 1.0, 30)
    text = describer.describe(sample, 30)
    assert 0 < len(text) <= 20
    full = KinematicDescriber(layout).describe(sample, 30)            # the paper's 75 characters
    assert "right hand" in full and len(full) > 20, full                # the moving joint, by the layout's name
    # the limit cuts the same sentence on a word boundary: no half word, no trailing space or comma
    assert full.startswith(text) and text == text.strip(" ,") and full[len(text)] in " ,", (text, full)
    with pytest.raises(ValueError, match="no joint named"):
        KinematicDescriber(get_layout("coco17"))  # no spine / hip-centre joint names


def test_kinematic_cli(tmp_path):
    from feeder.io import save_pickle_atomic

    data = np.zeros((2, 3, 300, 25, 2), np.float32)
    rng = np.random.default_rng(2)
    data[:, :, :, :, 0] = rng.normal(0, 0.3, (2, 3, 1, 25)) + np.linspace(0, 0.5, 300)[None, None, :, None]
    np.save(tmp_path / "val_data_joint.npy", data)
    np.save(tmp_path / "val_num_frame.npy", np.array([60, 300]))
    save_pickle_atomic(tmp_path / "val_label.pkl", (["a", "b"], [0, 1]))
    out = tmp_path / "desc"
    assert ds.main(["kinematic", "--data", str(tmp_path), "--split", "val", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt", ds.SETTINGS_FILE]
    assert len((out / "a.txt").read_text().strip()) <= 75


def _kinematic_split(tmp_path):
    """A tiny gendata split ``val`` of three moving samples a, b, c in ``tmp_path``."""
    from feeder.io import save_pickle_atomic

    data = np.zeros((3, 3, 300, 25, 2), np.float32)
    rng = np.random.default_rng(3)
    data[:, :, :, :, 0] = rng.normal(0, 0.3, (3, 3, 1, 25)) + np.linspace(0, 0.8, 300)[None, None, :, None]
    np.save(tmp_path / "val_data_joint.npy", data)
    np.save(tmp_path / "val_num_frame.npy", np.array([60, 300, 120]))
    save_pickle_atomic(tmp_path / "val_label.pkl", (["a", "b", "c"], [0, 1, 2]))
    return ["kinematic", "--data", str(tmp_path), "--split", "val", "--out", str(tmp_path / "desc")]


def test_rerun_with_other_settings_is_refused_then_overwritten(tmp_path):
    """--max-chars changed, or the VLM after the kinematic describer (bench/demo.py --vlm-model after
    make demo): a clear error instead of "0 of N samples to describe" keeping the old texts."""
    import json

    from data_gen.output_settings import SettingsMismatch

    args, out = _kinematic_split(tmp_path), tmp_path / "desc"
    assert ds.main(args) == 0
    before = {p.name: p.read_text() for p in out.glob("*.txt")}
    assert len(before) == 3 and max(len(t.strip()) for t in before.values()) > 20
    with pytest.raises(SettingsMismatch, match=r"(?s)desc.*max_chars: 75 there, 20 asked.*--overwrite"):
        ds.main(args + ["--max-chars", "20"])
    assert {p.name: p.read_text() for p in out.glob("*.txt")} == before        # nothing touched
    with pytest.raises(SettingsMismatch, match="describer: 'kinematic' there, 'vlm' asked"):
        ds.main(["vlm", "--images", str(tmp_path / "images"), "--model", str(tmp_path / "vlm"), "--out", str(out)])

    assert ds.main(args + ["--max-chars", "20", "--overwrite", "--limit", "1"]) == 0   # a redo, interrupted
    assert len(list(out.glob("*.txt"))) == 1                                   # old texts moved aside
    (kept,) = (out / "overwritten").iterdir()
    assert {p.name: p.read_text() for p in kept.glob("*.txt")} == before       # ... and kept, not deleted
    assert json.loads((kept / ds.SETTINGS_FILE).read_text())["max_chars"] == 75
    assert json.loads((out / ds.SETTINGS_FILE).read_text())["max_chars"] == 20
    assert ds.main(args + ["--max-chars", "20"]) == 0                          # same settings: resumes
    texts = [p.read_text().strip() for p in sorted(out.glob("*.txt"))]
    assert len(texts) == 3 and all(0 < len(t) <= 20 for t in texts)
    mtime = (out / "a.txt").stat().st_mtime_ns
    assert ds.main(args + ["--max-chars", "20"]) == 0
    assert (out / "a.txt").stat().st_mtime_ns == mtime                         # finished samples skipped


def test_folder_without_settings_resumes_with_warning(tmp_path, caplog):
    args, out = _kinematic_split(tmp_path), tmp_path / "desc"
    out.mkdir()
    (out / "a.txt").write_text("made by an older version\n")
    with caplog.at_level("WARNING"):
        assert ds.main(args) == 0
    assert "no describe_settings.json" in caplog.text and "older version" in caplog.text
    assert (out / "a.txt").read_text() == "made by an older version\n"         # resumed, not redone
    assert sorted(p.name for p in out.glob("*.txt")) == ["a.txt", "b.txt", "c.txt"]
    assert (out / ds.SETTINGS_FILE).is_file()                                  # later runs are checked


def test_corrupt_settings_file_names_file_and_line(tmp_path):
    args, out = _kinematic_split(tmp_path), tmp_path / "desc"
    out.mkdir()
    (out / "a.txt").write_text("old\n")
    (out / ds.SETTINGS_FILE).write_text('{\n  "describer": kinematic\n}\n')
    with pytest.raises(ValueError, match=r"describe_settings.json:2: not valid JSON"):
        ds.main(args)
    assert ds.main(args + ["--overwrite"]) == 0
    assert (out / "a.txt").read_text() != "old\n"


def test_end_to_end_video_to_features(tmp_path, tiny_vlm_dir):
    """video file -> YOLO crops -> strip .jpg -> tiny Ovis2 text -> MiniLM token features in label order."""
    from feeder.io import save_pickle_atomic
    from data_gen import action_images as ai
    from data_gen import encode_text as et
    from tests.test_action_images import write_video

    names = ["S001C001P001R001A002", "S001C001P001R001A001"]  # deliberately not sorted
    videos = tmp_path / "videos"
    videos.mkdir()
    for n in names:
        write_video(videos / f"{n}_rgb.avi", num_frames=8)
    bench = tmp_path / "bench"
    save_pickle_atomic(bench / "val_label.pkl", (names, [1, 0]))
    images, desc = tmp_path / "images", tmp_path / "descriptions"
    assert ai.main(["video", "--videos", str(videos), "--label-pkl", str(bench / "val_label.pkl"),
                    "--weights", "yolov8n.yaml", "--out", str(images), "--height", "48"]) == 0
    assert ds.main(["vlm", "--images", str(images), "--model", str(tiny_vlm_dir), "--out", str(desc),
                    "--max-new-tokens", "12", "--batch-size", "2"]) == 0
    texts = et.load_descriptions(names, desc)
    assert len(texts) == 2 and all(0 < len(t) <= 75 for t in texts)
    # the random tiny VLM may say the same of both clips: give the first another sentence, so that the
    # features' row order (the label pickle's, not sorted) shows
    (desc / f"{names[0]}.txt").write_text("a person waves the right hand\n")
    texts = et.load_descriptions(names, desc)
    assert texts[0] != texts[1]
    assert et.main(["--bench", str(bench), "--split", "val", "--descriptions", str(desc),
                    "--encoder", "minilm", "--pad-mode", "truncate"]) == 0
    feats = np.load(bench / "text" / "val_minilm.npy")
    assert feats.shape == (2, 77, 384) and feats.dtype == np.float16
    expected = et.MiniLMEncoder(pad_mode="truncate").encode_tokens(texts)
    np.testing.assert_allclose(feats, expected, atol=2e-3)     # row i = label pickle row i
    assert not np.allclose(feats[0], feats[1], atol=1e-2)


def test_remote_code_causal_lm_folder_is_refused_clearly(tmp_path):
    """The original Ovis 1.x / 2 / 2.5 config layout (auto_map: AutoConfig + AutoModelForCausalLM only): refused
    before loading, naming the file and what is supported, with or without trust_remote_code, and whether or
    not the installed transformers builds its model_type (transformers 5.25 builds Ovis2.5: the
    remote code's config keys would be ignored there and another model built)."""
    import json

    for model_type, name in (("ovis2_5", "Ovis2.5-9B"), ("ovis", "Ovis1.6-Gemma2-9B")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({
            "architectures": ["Ovis"], "model_type": model_type, "llm_config": {"model_type": "qwen3"},
            "auto_map": {"AutoConfig": "configuration_ovis.OvisConfig", "AutoModelForCausalLM": "modeling_ovis.Ovis"}}))
        for trust in (False, True):
            with pytest.raises(ValueError, match=rf"(?s){re.escape(name)}.config\.json.*maps only \['AutoConfig', "
                                                 r"'AutoModelForCausalLM'\].*original Ovis 1\.x / 2 / 2\.5.*"
                                                 r"transformers-format conversion.*Ovis model types: \[.*'ovis2'"):
                ds.VLMDescriber(folder, trust_remote_code=trust)
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match=r"model_type 'bert' is not an image-text-to-text model"):
        ds.VLMDescriber(bert)
    (bert / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bert.config\.json: not a readable JSON"):
        ds.VLMDescriber(bert)


def test_transformers_format_ovis25_follows_the_installed_transformers(tmp_path):
    """A transformers-format Ovis2.5 config (no auto_map) passes the check exactly where the installed
    transformers builds model_type 'ovis2_5' as image-text-to-text, and is refused by name elsewhere."""
    import json

    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    folder = tmp_path / "Ovis2.5-2B"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "ovis2_5", "architectures":
                                                    ["Ovis2_5ForConditionalGeneration"]}))
    if "ovis2_5" in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        assert ds.check_image_text_to_text_folder(folder) is None
    else:
        with pytest.raises(ValueError, match=r"model_type 'ovis2_5' is not an image-text-to-text model"):
            ds.check_image_text_to_text_folder(folder)


def test_vlm_describer_on_a_tiny_ovis25(tmp_path):
    """The describer end to end on a random transformers-format Ovis2.5 (its NaViT processor: native
    resolution, image start / end tokens): loads offline, batched greedy generation equals one by one."""
    from data_gen.action_images import concat_strip

    folder = build_tiny_ovis25(tmp_path / "tiny_ovis25")
    assert ds.check_image_text_to_text_folder(folder) is None
    vlm = ds.VLMDescriber(folder, max_new_tokens=24, max_chars=30)
    assert type(vlm.model).__name__ == "Ovis2_5ForConditionalGeneration"
    rng = np.random.default_rng(0)
    strips = [concat_strip([rng.integers(0, 255, (40, 30 + 4 * i, 3), dtype=np.uint8) for _ in range(5)])
              for i in range(3)]                                        # three widths: three token counts
    texts = vlm(strips)
    assert len(texts) == 3 and all(isinstance(t, str) and len(t) <= 30 and "\n" not in t for t in texts)
    assert [vlm([strip])[0] for strip in strips] == texts            # left padding: batch-independent


def test_check_accepts_builtin_ovis2(tiny_vlm_dir, tmp_path):
    import json

    cfg = json.loads((tiny_vlm_dir / "config.json").read_text())
    assert cfg["model_type"] == "ovis2"
    assert ds.check_image_text_to_text_folder(tiny_vlm_dir) is None   # model_type ovis2: no error
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "custom_vlm",
                                                    "auto_map": {"AutoModelForImageTextToText": "m.M"}}))
    assert ds.check_image_text_to_text_folder(remote) is None         # remote code for the right auto class
    with pytest.raises(FileNotFoundError, match=r"no_config/config\.json not found"):
        ds.check_image_text_to_text_folder(tmp_path / "no_config")
    # the same config under a model_type transformers does not build as image-text-to-text: refused
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({**cfg, "model_type": "ovis2_unknown"}))
    with pytest.raises(ValueError, match=r"model_type 'ovis2_unknown' is not an image-text-to-text model"):
        ds.check_image_text_to_text_folder(other)


def test_a_folder_without_config_json_is_refused_naming_it_and_the_model_folders_inside(tiny_vlm_dir, tmp_path):
    """--model given the folder above the model's (or an empty one) used to end in transformers' "Unrecognized
    processing class in ...", which names neither config.json nor where the model is."""
    import shutil

    weights = tmp_path / "weights"
    shutil.copytree(tiny_vlm_dir, weights / "Ovis2-tiny-hf")
    with pytest.raises(FileNotFoundError) as err:
        ds.VLMDescriber(weights)
    message = str(err.value)
    assert f"{weights / 'config.json'} not found" in message and "['Ovis2-tiny-hf']" in message
    assert ds.VLMDescriber(weights / "Ovis2-tiny-hf", max_new_tokens=2).model is not None


def test_a_folder_without_a_processor_chat_template_is_named_in_a_warning(tiny_vlm_dir, tmp_path, caplog):
    """Without chat_template.jinja (e.g. a template kept only in tokenizer_config.json, where the processor does
    not look) the model silently got the bare '<image>\\n<prompt>' instead of its chat format."""
    import shutil

    folder = tmp_path / "no_template"
    shutil.copytree(tiny_vlm_dir, folder)
    (folder / "chat_template.jinja").unlink()
    with caplog.at_level("WARNING", logger="data_gen.describe"):
        bare = ds.VLMDescriber(folder, max_new_tokens=2)
    assert bare._text == f"<image>\n{ds.DEFAULT_PROMPT}"                 # what the model gets: unchanged
    warned = [r.getMessage() for r in caplog.records if "no chat template" in r.getMessage()]
    assert len(warned) == 1 and str(folder) in warned[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="data_gen.describe"):
        chat = ds.VLMDescriber(tiny_vlm_dir, max_new_tokens=2)
    assert chat._text.startswith("<|im_start|>user") and "no chat template" not in caplog.text


def test_kinematic_single_frame_is_static_and_zero_frames_an_error():
    """num_frames 1 used to be read as 2 frames (the second one padding): motion described from noise."""
    layout = get_layout("kinect_v1")
    describer = KinematicDescriber(layout)
    x = np.concatenate([_standing_person(layout, 1),
                        np.random.default_rng(0).normal(0, 1.0, (3, 299, layout.num_joints, 1))], axis=1)
    x = x.astype(np.float32)
    assert describer.features(x, 1)["frames"] == 1
    assert describer.describe(x, 1) == "a person is shown in a single frame, no motion"
    assert describer.describe(x[:, :1]) == "a person is shown in a single frame, no motion"
    pair = np.concatenate([x, x + np.array([1.5, 0, 0], np.float32)[:, None, None, None]], axis=3)
    assert describer.describe(pair, 1) == "two people are shown in a single frame, no motion"
    assert describer.describe(np.zeros_like(x), 1) == "no person is visible"
    assert "single frame" not in describer.describe(x, 2)   # two real frames: the normal path
    for bad in (0, -1):
        with pytest.raises(ValueError, match=rf"without valid frames: num_frames={bad}, 300 stored frames"):
            describer.describe(x, bad)


def test_kinematic_cli_names_a_sample_without_frames(tmp_path):
    from feeder.io import save_pickle_atomic

    data = np.zeros((2, 3, 50, 25, 1), np.float32)
    data[:, :, :, :, 0] = np.random.default_rng(5).normal(0, 0.3, (2, 3, 1, 25))
    np.save(tmp_path / "val_data_joint.npy", data)
    np.save(tmp_path / "val_num_frame.npy", np.array([50, 0]))
    save_pickle_atomic(tmp_path / "val_label.pkl", (["ok", "empty"], [0, 1]))
    with pytest.raises(ValueError, match=r"split 'val', sample 'empty' \(row 1\).*num_frames=0"):
        ds.main(["kinematic", "--data", str(tmp_path), "--split", "val", "--out", str(tmp_path / "desc")])


def test_ntu_class_names_are_the_official_readme_names():
    """A25 / A119 as in the shahroudy/NTURGB-D README (not the longer variants of other lists)."""
    from data_gen.class_names import load_class_names

    ntu60, ntu120 = load_class_names("ntu60"), load_class_names("ntu120")
    assert len(ntu60) == 60 and len(ntu120) == 120 and ntu120[:60] == ntu60
    assert ntu60[24] == "reach into pocket"
    assert ntu120[118] == "support somebody with hand"
    assert (ntu60[0], ntu60[17], ntu60[48], ntu60[59]) == (
        "drink water", "wear on glasses", "use a fan (with hand or paper)/feeling warm",
        "walking apart from each other")
    assert (ntu120[66], ntu120[111], ntu120[119]) == (
        "hush (quite)", "high-five", "finger-guessing game (playing rock-paper-scissors)")


# ------------------------------------------------------------ images settings, batch size, image errors, temp files
def _skeleton_images(tmp_path, num_frames: int, overwrite: bool = False) -> Path:
    """Action images of the tiny kinematic split (stick figures: no detector needed) in ``tmp_path/images``."""
    from data_gen import action_images as ai

    _kinematic_split(tmp_path)
    images = tmp_path / "images"
    args = ["skeleton", "--data", str(tmp_path), "--split", "val", "--out", str(images), "--height", "32",
            "--num-frames", str(num_frames)]
    assert ai.main(args + (["--overwrite"] if overwrite else [])) == 0
    return images


def test_vlm_settings_record_the_images_settings_and_batch_size(tmp_path, tiny_vlm_dir):
    """Images remade with 3 frames (or another VLM batch size) used to keep the old descriptions silently."""
    import json

    from data_gen.output_settings import SettingsMismatch

    images = _skeleton_images(tmp_path, 5)
    out = tmp_path / "desc"
    args = ["vlm", "--images", str(images), "--model", str(tiny_vlm_dir), "--out", str(out),
            "--max-new-tokens", "4", "--batch-size", "2"]
    assert ds.main(args) == 0
    before = {p.name: p.read_text() for p in out.glob("*.txt")}
    assert len(before) == 3
    with pytest.raises(SettingsMismatch, match=r"batch_size: 2 there, 3 asked"):
        ds.main(args[:-1] + ["3"])
    _skeleton_images(tmp_path, 3, overwrite=True)                      # the images remade with 3 frames
    with pytest.raises(SettingsMismatch, match=r"(?s)images_settings: \{.*'num_frames': 5.*there, "
                                               r"\{.*'num_frames': 3.*asked"):
        ds.main(args)
    assert {p.name: p.read_text() for p in out.glob("*.txt")} == before  # nothing touched
    recorded = json.loads((out / ds.SETTINGS_FILE).read_text())
    assert recorded["images_settings"]["num_frames"] == 5 and recorded["batch_size"] == 2
    assert json.loads((images / "images_settings.json").read_text()) == {**recorded["images_settings"],
                                                                          "num_frames": 3}


def test_older_settings_without_the_new_keys_resume_with_a_warning(tmp_path, caplog):
    """A describe_settings.json written before images_settings / batch_size were recorded: resumed (warned),
    then the full settings are recorded; a key it does record that differs is still refused."""
    import json

    from data_gen.output_settings import SettingsMismatch, check_output_settings, start_output_dir

    out = tmp_path / "desc"
    out.mkdir()
    (out / "a.txt").write_text("old\n")
    old = {"describer": "vlm", "model": "/m", "max_chars": 75}
    (out / ds.SETTINGS_FILE).write_text(json.dumps(old))
    new = {**old, "batch_size": 8, "images_settings": {"num_frames": 5}}
    with caplog.at_level("WARNING", logger="data_gen.output_settings"):
        check_output_settings(out, new, ds.SETTINGS_FILE, ".txt", what="descriptions")
    assert "did not record batch_size, images_settings" in caplog.text
    start_output_dir(out, new, ds.SETTINGS_FILE, ".txt", what="descriptions")
    assert json.loads((out / ds.SETTINGS_FILE).read_text()) == new
    (out / ds.SETTINGS_FILE).write_text(json.dumps(old))
    with pytest.raises(SettingsMismatch, match="max_chars: 75 there, 20 asked"):
        check_output_settings(out, {**new, "max_chars": 20}, ds.SETTINGS_FILE, ".txt", what="descriptions")


def test_unreadable_action_image_names_the_file(tmp_path):
    """A truncated JPEG raised 'OSError: image file is truncated' without the path."""
    import cv2

    img = (np.random.default_rng(0).random((64, 320, 3)) * 255).astype(np.uint8)
    good = tmp_path / "S001.jpg"
    cv2.imwrite(str(good), img)
    data = good.read_bytes()
    (tmp_path / "S002.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "S003.jpg").write_bytes(b"hello")
    assert ds.load_image(good).size == (320, 64)
    for name in ("S002.jpg", "S003.jpg"):
        with pytest.raises(OSError, match=rf"{name}: cannot read the action image .*action_images\.py"):
            ds.load_image(tmp_path / name)


def test_vlm_cli_truncated_image_names_the_file(tmp_path, tiny_vlm_dir):
    images = _skeleton_images(tmp_path, 3)
    data = (images / "b.jpg").read_bytes()
    (images / "b.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match=r"images.b\.jpg: cannot read the action image"):
        ds.main(["vlm", "--images", str(images), "--model", str(tiny_vlm_dir), "--out", str(tmp_path / "d"),
                 "--max-new-tokens", "2", "--batch-size", "1"])


def test_hidden_temp_files_are_not_samples(tmp_path, tiny_vlm_dir):
    """``glob('*.jpg')`` took ``.c.tmp-123.jpg`` (left by a killed action_images.py) as a sample, and a
    hidden temporary ``.txt`` as a finished description (so a settings change was refused)."""
    import json
    import shutil

    from data_gen.output_settings import check_output_settings, output_files

    images = _skeleton_images(tmp_path, 3)
    shutil.copy(images / "c.jpg", images / ".c.tmp-123.jpg")
    out = tmp_path / "desc"
    assert ds.main(["vlm", "--images", str(images), "--model", str(tiny_vlm_dir), "--out", str(out),
                    "--max-new-tokens", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt", "c.txt", ds.SETTINGS_FILE]
    only_temp = tmp_path / "only_temp"
    only_temp.mkdir()
    (only_temp / ".a.tmp-123.txt").write_text("half written")
    (only_temp / ds.SETTINGS_FILE).write_text(json.dumps({"describer": "kinematic", "max_chars": 75}))
    check_output_settings(only_temp, {"describer": "kinematic", "max_chars": 20}, ds.SETTINGS_FILE, ".txt")
    assert [p.stem for p in output_files(images, ".jpg")] == ["a", "b", "c"]


def test_stale_temp_files_are_removed_and_not_outputs(tmp_path, caplog):
    import json
    import os
    import time

    from data_gen.output_settings import check_output_settings, remove_stale_temp_files, start_output_dir

    out = tmp_path / "desc"
    out.mkdir()
    dead = 999_999_999                                   # above any pid_max: no such process
    stale, young = out / f".a.tmp-{dead}.txt", out / f".b.tmp-{dead}.txt"
    mine, other = out / f".c.tmp-{os.getpid()}.txt", out / f".d.tmp-{dead}.jpg"
    for p in (stale, young, mine, other):
        p.write_text("half written")
    old = time.time() - 3600
    for p in (stale, mine, other):
        os.utime(p, (old, old))
    (out / ds.SETTINGS_FILE).write_text(json.dumps({"describer": "kinematic", "max_chars": 75}))
    check_output_settings(out, {"describer": "kinematic", "max_chars": 20}, ds.SETTINGS_FILE, ".txt")
    with caplog.at_level("WARNING", logger="data_gen.output_settings"):
        start_output_dir(out, {"describer": "kinematic", "max_chars": 20}, ds.SETTINGS_FILE, ".txt")
    assert not stale.exists() and young.exists() and mine.exists() and other.exists()
    assert f"removed 1 temporary file(s) left by an interrupted run (e.g. .a.tmp-{dead}.txt)" in caplog.text
    assert remove_stale_temp_files(out, (".txt",), min_age_s=0) == 1 and not young.exists()


@pytest.mark.parametrize("describer, option, value", [
    ("kinematic", "--max-chars", "0"), ("kinematic", "--max-chars", "-5"), ("kinematic", "--batch-size", "0"),
    ("vlm", "--max-chars", "0"), ("vlm", "--batch-size", "-1"), ("vlm", "--max-new-tokens", "0"),
    ("kinematic", "--limit", "-1")])
def test_counts_below_one_are_refused_before_anything_is_written(tmp_path, capsys, describer, option, value):
    """``--max-chars 0`` wrote the text ``a`` for every sample (``-5``: a cut sentence), exit 0; the VLM's
    ``clean_description(t, 0)`` is empty; ``--batch-size 0`` failed in ``range()`` after loading the model."""
    args = _kinematic_split(tmp_path) if describer == "kinematic" else [
        "vlm", "--images", str(tmp_path / "images"), "--model", str(tmp_path / "vlm"), "--out", str(tmp_path / "desc")]
    with pytest.raises(SystemExit) as exit_info:
        ds.main(args + [option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: expected an integer >= 1, got {value}" in capsys.readouterr().err
    assert not (tmp_path / "desc").exists()


def test_another_vlm_in_the_same_model_folder_is_refused(tmp_path, tiny_vlm_dir):
    """Only the --model path was recorded: a folder whose model was replaced (Ovis2 -> Ovis2.5 here; 2B -> 8B
    in use) resumed silently, mixing the two models' descriptions in one folder."""
    import json
    import shutil

    from data_gen.output_settings import SettingsMismatch

    images = _skeleton_images(tmp_path, 5)
    model, out = tmp_path / "weights" / "ovis", tmp_path / "desc"
    shutil.copytree(tiny_vlm_dir, model)
    args = ["vlm", "--images", str(images), "--model", str(model), "--out", str(out), "--max-new-tokens", "4",
            "--batch-size", "1"]
    assert ds.main(args + ["--limit", "1"]) == 0                       # an interrupted run
    recorded = json.loads((out / ds.SETTINGS_FILE).read_text())["model_files"]
    assert recorded["config.json"]["size"] == (model / "config.json").stat().st_size
    assert "sha256" in recorded["config.json"] and "model.safetensors" in recorded
    shutil.copytree(model, tmp_path / "copy")
    assert ds.main(["vlm", *args[1:3], "--model", str(tmp_path / "copy"), *args[5:], "--out",
                    str(tmp_path / "desc_copy")]) == 0
    copy = json.loads((tmp_path / "desc_copy" / ds.SETTINGS_FILE).read_text())["model_files"]
    assert copy == recorded                                             # a copy (new mtimes) is the same model
    shutil.rmtree(model)
    build_tiny_ovis25(model)                                            # another model at the same path
    with pytest.raises(SettingsMismatch, match=r"model_files: "):
        ds.main(args)
    assert len(list(out.glob("*.txt"))) == 1                            # nothing added to the mixed folder
