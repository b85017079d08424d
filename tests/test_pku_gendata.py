"""data_gen/pku_gendata.py on a PKU-MMD II style fixture built in code (no real PKU files here)."""
import json
from pathlib import Path

import numpy as np
import pytest

from data_gen import pku_gendata
from data_gen.class_names import load_class_names
from data_gen.ntu_reader import SkeletonFormatError
from feeder.splits import load_split
from net.graph import get_layout

LAYOUT = get_layout("ntu25")
# A standing body: shoulders perpendicular to the hip->spine bone.
BODY = np.zeros((25, 3))
BODY[:, 1] = np.linspace(-0.9, 0.7, 25)
BODY[0] = [0.0, 0.0, 0.0]
BODY[1] = [0.0, 0.3, 0.0]
BODY[4] = [-0.18, 0.5, 0.0]
BODY[8] = [0.18, 0.5, 0.0]


def _sequence(rng, frames, two_bodies):
    t = np.arange(frames)[:, None, None]
    moving = np.ones((25, 1))
    moving[[0, 1, 4, 8]] = 0                 # torso rigid: the shoulder line stays perpendicular to the spine
    a = BODY[None] + [0.0, 0.0, 3.0] + 0.01 * np.sin(0.3 * t + np.arange(25)[None, :, None]) * moving
    b = BODY[None] + [0.9, 0.0, 3.2] + 0.02 * np.cos(0.2 * t) if two_bodies else np.zeros((frames, 25, 3))
    return np.stack([a, b], axis=1)          # (T, 2, 25, 3)


def make_pku_fixture(root: Path, spelling: str = "Validataion"):
    """4 sequences, 2 train / 2 val; 5 classes (ids 3, 7, 12, 20, 41); one all-zero clip."""
    rng = np.random.default_rng(0)
    skel, labels = root / "skeleton", root / "label"
    skel.mkdir(parents=True)
    labels.mkdir()
    specs = {
        "0291-L": [(3, 0, 40), (7, 40, 90)],
        "0291-M": [(12, 5, 30), (20, 30, 60), (41, 60, 70)],
        "0300-R": [(7, 10, 50), (3, 50, 100)],                 # ends with the sequence (end > 100 is an error)
        "0301-L": [(20, 0, 25), (12, 80, 95)],                 # 80..95 is all zero: dropped
    }
    for k, (seq, rows) in enumerate(specs.items()):
        frames = _sequence(rng, 100, two_bodies=k % 2 == 0)
        if seq == "0301-L":
            frames[80:95] = 0
        (skel / f"{seq}.txt").write_text("\n".join(" ".join(f"{v:.6f}" for v in f.ravel()) for f in frames) + "\n")
        (labels / f"{seq}.txt").write_text("".join(f"{c},{s},{e},1\n" for c, s, e in rows))
    split = root / "cross-subject_v2.txt"
    split.write_text(f"Training videos: \n0291-L, 0291-M\n{spelling} videos: \n0300-R, 0301-L\n")
    return skel, labels, split


def _load(folder, split):
    return load_split(folder, split, mmap=False)


@pytest.mark.parametrize("spelling", ["Validataion", "Validation"])
def test_split_file_both_spellings(tmp_path, spelling):
    _, _, split = make_pku_fixture(tmp_path, spelling)
    assert pku_gendata.read_split_file(split) == {"train": ["0291-L", "0291-M"], "val": ["0300-R", "0301-L"]}


def test_clips_labels_and_normalisation(tmp_path):
    skel, labels, split = make_pku_fixture(tmp_path)
    out = tmp_path / "out"
    counts = pku_gendata.gendata(skel, labels, split, out, max_frames=64, progress=False)
    assert counts == {"train": 5, "val": 3}
    data, frames, names, labs = _load(out / "xsub", "train")
    assert data.shape == (5, 3, 64, 25, 2) and data.dtype == np.float32
    assert names == ["0291-L_0", "0291-L_1", "0291-M_0", "0291-M_1", "0291-M_2"]
    assert labs == [0, 1, 2, 3, 4]                      # ids 3, 7, 12, 20, 41 -> 0..4
    assert frames.tolist() == [40, 50, 25, 30, 10]
    s = data.transpose(0, 4, 2, 3, 1)                   # N, M, T, V, C
    assert (s[2, 1] == 0).all() and (s[0, 1] != 0).any()   # 0291-M has one body, 0291-L two
    np.testing.assert_allclose(s[:, 0, :, LAYOUT.spine], 0.0, atol=1e-6)
    bone = s[:, 0, 0, LAYOUT.spine] - s[:, 0, 0, LAYOUT.hip]
    np.testing.assert_allclose(bone / np.linalg.norm(bone, axis=-1, keepdims=True), [[0, 0, 1]] * 5, atol=1e-4)
    vdata, vframes, vnames, vlabs = _load(out / "xsub", "val")
    assert vnames == ["0300-R_0", "0300-R_1", "0301-L_0"] and vlabs == [1, 0, 3]
    assert vframes.tolist() == [40, 50, 25]             # clip 50..100 of a 100-frame sequence has 50 frames
    label_map = json.loads((out / "xsub" / "label_map.json").read_text())
    assert label_map["class_ids"] == [3, 7, 12, 20, 41]
    names = load_class_names("pku2", out / "xsub" / "label_map.json")
    assert names[0] == load_class_names("pku1")[2] and len(names) == 5


def test_raw_label_map_keeps_pku_ids(tmp_path):
    skel, labels, split = make_pku_fixture(tmp_path)
    pku_gendata.gendata(skel, labels, split, tmp_path / "out", label_map="raw", progress=False)
    assert _load(tmp_path / "out" / "xsub", "train")[3] == [2, 6, 11, 19, 40]


def test_pku2_class_names_from_a_41_class_label_map(tmp_path):
    ids = [i for i in range(1, 52) if i not in (5, 9, 14, 18, 23, 27, 31, 36, 44, 50)]
    path = tmp_path / "label_map.json"
    path.write_text(json.dumps({"label_map": "compact", "class_ids": ids}))
    names = load_class_names("pku2", path)
    assert len(names) == 41 and len(set(names)) == 41
    assert len(load_class_names("pku1")) == 51
    with pytest.raises(ValueError, match="label_map"):
        load_class_names("pku2")


def test_bad_sequence_line_is_reported_and_skippable(tmp_path):
    skel, labels, split = make_pku_fixture(tmp_path)
    lines = (skel / "0291-M.txt").read_text().splitlines()
    lines[6] = " ".join(lines[6].split()[:149])
    (skel / "0291-M.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(SkeletonFormatError) as info:
        pku_gendata.read_pku_sequence(skel / "0291-M.txt")
    assert info.value.line == 7 and "0291-M.txt:7" in str(info.value)
    out = tmp_path / "out"
    with pytest.raises(SkeletonFormatError):
        pku_gendata.gendata(skel, labels, split, out, progress=False)
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]
    counts = pku_gendata.gendata(skel, labels, split, out, on_error="skip", progress=False)
    assert counts == {"train": 2, "val": 3}
    assert "0291-M" in (out / "skipped.txt").read_text()


def test_numbers_moved_to_the_next_line_name_the_line(tmp_path):
    """The same total with 149 numbers on one line and 151 on the next must not shift the frames."""
    skel, _, _ = make_pku_fixture(tmp_path)
    lines = (skel / "0291-L.txt").read_text().splitlines()
    first, second = lines[0].split(), lines[1].split()
    lines[0], lines[1] = " ".join(first[:-1]), " ".join([first[-1]] + second)
    (skel / "0291-L.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(SkeletonFormatError) as info:
        pku_gendata.read_pku_sequence(skel / "0291-L.txt")
    assert info.value.line == 1 and "expected 150 numbers, got 149" in str(info.value)


def test_bad_label_line(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("3,0,40,1\n7,abc,90,1\n")
    with pytest.raises(SkeletonFormatError, match=r"x.txt:2"):
        pku_gendata.read_pku_labels(path)


def test_help_lists_options():
    help_text = pku_gendata.build_parser().format_help()
    for option in ("--skeleton-dir", "--label-dir", "--split-file", "--out-folder", "--benchmark",
                   "--max-frames", "--label-map", "--on-error", "--limit"):
        assert option in help_text


@pytest.mark.parametrize("bad", ["5.9,0.7,20.2,1,extra,fields", "5.9,0,20,1", "3,1.5,20,1", "3,10,20",
                                 "3,10,20,1,9", "3,10,20,high"])
def test_label_lines_must_be_four_integers(tmp_path, bad):
    path = tmp_path / "x.txt"
    path.write_text(f"3,0,40,1\n{bad}\n")
    with pytest.raises(SkeletonFormatError, match=r"x\.txt:2: .*(4 comma-separated integers|expected an integer)"):
        pku_gendata.read_pku_labels(path)
    path.write_text("3,0,40,1\r\n\r\n 7 , 40 , 90 , 2 \r\n")           # CRLF, blank line, spaces: fine
    assert pku_gendata.read_pku_labels(path) == [(3, 0, 40), (7, 40, 90)]


def test_clip_past_the_sequence_end_keeps_its_frames_and_is_named(tmp_path, caplog):
    skel, labels, split = make_pku_fixture(tmp_path)
    (labels / "0300-R.txt").write_text("7,10,50,1\n3,50,120,1\n")            # 0300-R (val) has 100 frames
    out = tmp_path / "out"
    caplog.set_level("WARNING")
    counts = pku_gendata.gendata(skel, labels, split, out, progress=False)
    assert counts == {"train": 5, "val": 3}
    data, num_frame, names = _load(out / "xsub", "val")[:3]
    assert names[1] == "0300-R_1" and num_frame[1] == 50                      # frames 50..99, the ones there are
    assert any("0300-R.txt:2: 0300-R_1 50..120 of a 100-frame sequence" in r.getMessage() for r in caplog.records)


def test_all_zero_clips_are_named_in_the_log_and_report(tmp_path, caplog):
    skel, labels, split = make_pku_fixture(tmp_path)
    caplog.set_level("WARNING")
    pku_gendata.gendata(skel, labels, split, tmp_path / "out", progress=False)
    report = (tmp_path / "out" / "skipped.txt").read_text().splitlines()
    assert report == [f"0301-L_1\tempty or all-zero clip: {labels / '0301-L.txt'}:2: frames 80..95 are all zero"]
    assert any("0301-L_1" in r.getMessage() and "0301-L.txt:2" in r.getMessage() for r in caplog.records)


def test_summary_is_logged_not_printed(tmp_path, capsys, caplog):
    skel, labels, split = make_pku_fixture(tmp_path)
    caplog.set_level("INFO")
    code = pku_gendata.main(["--skeleton-dir", str(skel), "--label-dir", str(labels), "--split-file", str(split),
                             "--out-folder", str(tmp_path / "out"), "--no-progress"])
    assert code == 0 and capsys.readouterr().out == ""
    assert "pku/xsub: train 5  val 3" in [r.getMessage() for r in caplog.records]


def test_clip_with_only_the_second_body_is_normalised_as_person_0(tmp_path):
    """Body 0 of the file absent for a whole clip (the performer in the second slot): the clip's body becomes
    person 0 and is centred and rotated like every other clip, not written in raw camera coordinates."""
    skel, labels, split = make_pku_fixture(tmp_path)
    frames = pku_gendata.read_pku_sequence(skel / "0291-M.txt")             # one body, in slot 0
    swapped = frames[:, ::-1]                                               # the same body in slot 1
    (skel / "0291-M.txt").write_text("\n".join(" ".join(f"{v:.6f}" for v in f.ravel()) for f in swapped) + "\n")
    out = tmp_path / "out"
    pku_gendata.gendata(skel, labels, split, out, max_frames=64, progress=False)
    data, _, names, _ = _load(out / "xsub", "train")
    s = data.transpose(0, 4, 2, 3, 1)                                       # N, M, T, V, C
    assert names[2:5] == ["0291-M_0", "0291-M_1", "0291-M_2"]
    assert (s[2:5, 1] == 0).all() and s[2:5, 0].any()
    np.testing.assert_allclose(s[2:5, 0, :, LAYOUT.spine], 0.0, atol=1e-6)
    reference = tmp_path / "ref"
    make_pku_fixture(reference)
    pku_gendata.gendata(reference / "skeleton", reference / "label", reference / "cross-subject_v2.txt",
                        reference / "out", max_frames=64, progress=False)
    np.testing.assert_allclose(data[2:5], _load(reference / "out" / "xsub", "train")[0][2:5], atol=1e-5)


def test_clips_longer_than_max_frames_are_named_in_a_warning(tmp_path, caplog):
    """Truncation to --max-frames drops frames: each truncated clip is named (label file and line), as
    json_gendata names each truncated sequence, not cut silently."""
    skel, labels, split = make_pku_fixture(tmp_path)
    caplog.set_level("WARNING")
    pku_gendata.gendata(skel, labels, split, tmp_path / "out", max_frames=45, progress=False)
    frames = _load(tmp_path / "out" / "xsub", "train")[1]
    assert frames.tolist() == [40, 45, 25, 30, 10]                          # 0291-L_1 (40..90) has 50 frames
    messages = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert len(messages) == 1 and "2 clip(s)" in messages[0]
    assert "0291-L.txt:2: 0291-L_1: 50 frames" in messages[0] and "0300-R.txt:2: 0300-R_1: 50 frames" in messages[0]


def test_a_sequence_listed_twice_in_one_split_is_an_error_naming_the_split_file(tmp_path):
    """Listed twice, a sequence's clips were written twice under the same names: gendata succeeded and the
    split it wrote could not be loaded (duplicate sample names). The split file is the error, with its lines."""
    skel, labels, split = make_pku_fixture(tmp_path)
    split.write_text("Training videos: \n0291-L, 0291-M,\n0291-L, \nValidataion videos: \n0300-R, 0301-L, \n")
    with pytest.raises(ValueError, match=r"cross-subject_v2\.txt: '0291-L' is listed twice in the training "
                                         r"videos \(lines 2 and 3\)"):
        pku_gendata.read_split_file(split)
    with pytest.raises(ValueError, match="listed twice"):
        pku_gendata.gendata(skel, labels, split, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
