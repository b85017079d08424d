"""data_gen/json_gendata.py (generic JSON importer), ucla_gendata.py and the class-name lists."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from data_gen import json_gendata, ucla_gendata
from data_gen.class_names import load_class_names
from data_gen.ntu_reader import SkeletonFormatError
from feeder.splits import load_split
from net.graph import get_layout

KV1 = get_layout("kinect_v1")


def _body(frames, rng):
    body = np.zeros((frames, 20, 3))
    body[:] = rng.normal(scale=0.2, size=(20, 3)) + [0, 0, 3]
    body[:, 0] = [0, 0, 3]
    body[:, 1] = [0, 0.3, 3]
    body[:, 4] = [-0.18, 0.5, 3]
    body[:, 8] = [0.18, 0.5, 3]
    body[:, 10:12] += 0.05 * np.sin(np.arange(frames))[:, None, None]
    return body


def make_json_folder(root: Path, n_per_view=3):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for view in (1, 2, 3):
        for k in range(n_per_view):
            name = f"a{k + 1:02d}_s01_e00_v{view:02d}"
            frames = 5 + 3 * k + view
            obj = {"file_name": name, "skeletons": _body(frames, rng).tolist(), "label": k + 1}
            (root / f"{name}.json").write_text(json.dumps(obj))
    return root


def _load(folder, split):
    return load_split(folder, split, mmap=False)


def test_regex_split_shapes_labels_and_normalisation(tmp_path):
    src = make_json_folder(tmp_path / "all_sqe")
    out = tmp_path / "out"
    counts = json_gendata.gendata(src, out, "kinect_v1", "xview", test_regex=r"_v03$", max_frames=32,
                                  progress=False)
    assert counts == {"train": 6, "val": 3}
    data, frames, names, labels = _load(out / "xview", "train")
    assert data.shape == (6, 3, 32, 20, 2) and data.dtype == np.float32
    assert names == sorted(names) and all("_v03" not in n for n in names)
    assert labels == [0, 0, 1, 1, 2, 2]
    assert frames.tolist() == [6, 7, 9, 10, 12, 13]
    assert (data[..., 1] == 0).all()                                    # second person all zero
    s = data[..., 0]                                                    # N, C, T, V
    np.testing.assert_allclose(s[:, :, :, KV1.spine], 0.0, atol=1e-6)
    bone = s[:, :, 0, KV1.spine] - s[:, :, 0, KV1.hip]
    np.testing.assert_allclose(bone / np.linalg.norm(bone, axis=1, keepdims=True), [[0, 0, 1]] * 6, atol=1e-5)
    sh = s[:, :, 0, KV1.right_shoulder] - s[:, :, 0, KV1.left_shoulder]
    np.testing.assert_allclose(sh / np.linalg.norm(sh, axis=1, keepdims=True), [[1, 0, 0]] * 6, atol=1e-5)


def test_test_list_of_dicts_and_json_list(tmp_path):
    src = make_json_folder(tmp_path / "all_sqe")
    pkl = tmp_path / "val_label.pkl"
    with open(pkl, "wb") as handle:
        pickle.dump([{"file_name": "a01_s01_e00_v01", "length": 6, "label": 1}], handle)
    counts = json_gendata.gendata(src, tmp_path / "o1", "kinect_v1", "b", test_list=pkl, progress=False)
    assert counts == {"train": 8, "val": 1}
    lst = tmp_path / "test.json"
    lst.write_text(json.dumps(["a02_s01_e00_v02.json", "a03_s01_e00_v03"]))
    counts = json_gendata.gendata(src, tmp_path / "o2", "kinect_v1", "b", test_list=lst, progress=False)
    assert counts == {"train": 7, "val": 2}
    assert _load(tmp_path / "o2" / "b", "val")[2] == ["a02_s01_e00_v02", "a03_s01_e00_v03"]


@pytest.mark.parametrize("content,match", [
    ("{not json", "invalid JSON"),
    (json.dumps({"file_name": "zz_bad_v01", "skeletons": [[[0, 0, 0]] * 19], "label": 1}), "expected"),
    (json.dumps({"file_name": "zz_bad_v01", "skeletons": [[[float("nan"), 0, 0]] * 20], "label": 1}), "NaN"),
    (json.dumps({"file_name": "zz_bad_v01", "skeletons": [[[0, 0, 0]] * 20], "label": 0}), "1-based"),
])
def test_bad_json_is_reported_and_skippable(tmp_path, content, match):
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=1)
    (src / "zz_bad_v01.json").write_text(content)
    with pytest.raises(SkeletonFormatError, match=match) as info:
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v03$", progress=False)
    assert "zz_bad_v01.json" in str(info.value)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()] if (tmp_path / "out").exists() else True
    counts = json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v03$", on_error="skip",
                                  progress=False)
    assert counts == {"train": 2, "val": 1}
    assert "zz_bad_v01.json" in (tmp_path / "out" / "skipped.txt").read_text()


def test_a_bad_val_file_leaves_the_old_train_split_too(tmp_path):
    """Both splits are committed together: no new train beside the old val after a failed run."""
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=2)
    out = tmp_path / "out"
    json_gendata.gendata(src, out, "kinect_v1", "b", test_regex="_v03$", progress=False)
    before = {p.name: p.read_bytes() for p in (out / "b").iterdir()}
    obj = json.loads((src / "a01_s01_e00_v01.json").read_text())
    obj["skeletons"] = (np.asarray(obj["skeletons"]) + 1.0).tolist()        # train changes ...
    (src / "a01_s01_e00_v01.json").write_text(json.dumps(obj))
    (src / "a02_s01_e00_v03.json").write_text("{not json")                 # ... and a val file is bad
    with pytest.raises(SkeletonFormatError, match="a02_s01_e00_v03.json"):
        json_gendata.gendata(src, out, "kinect_v1", "b", test_regex="_v03$", progress=False)
    assert {p.name: p.read_bytes() for p in (out / "b").iterdir()} == before


def test_labels_come_from_the_files_with_skipped_rows_dropped(tmp_path):
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=3)
    (src / "a02_s01_e00_v01.json").write_text("{not json")
    counts = json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v03$", on_error="skip",
                                  progress=False)
    assert counts == {"train": 5, "val": 3}
    data, frames, names, labels = _load(tmp_path / "out" / "b", "train")
    assert names == ["a01_s01_e00_v01", "a01_s01_e00_v02", "a02_s01_e00_v02", "a03_s01_e00_v01", "a03_s01_e00_v02"]
    assert labels == [0, 0, 1, 2, 2] and frames.tolist() == [6, 7, 10, 12, 13]
    (src / "a02_s01_e00_v01.json").unlink()                               # the same set without the bad file
    json_gendata.gendata(src, tmp_path / "clean", "kinect_v1", "b", test_regex="_v03$", progress=False)
    np.testing.assert_array_equal(data, _load(tmp_path / "clean" / "b", "train")[0])


def test_ucla_wrapper_defaults(tmp_path):
    root = tmp_path / "nw_ucla"
    make_json_folder(root / "all_sqe")
    assert ucla_gendata.main(["--data-path", str(root), "--out-folder", str(tmp_path / "out"), "--no-progress"]) == 0
    data, _, names, _ = _load(tmp_path / "out" / "xview", "val")                # no val_label.pkl: view 3
    assert data.shape == (3, 3, 300, 20, 2) and all(n.endswith("_v03") for n in names)
    help_text = ucla_gendata.build_parser().format_help()
    for option in ("--data-path", "--out-folder", "--test-list", "--test-regex", "--max-frames", "--layout"):
        assert option in help_text


def test_a_missing_data_folder_is_named_as_missing(tmp_path, caplog):
    assert ucla_gendata.main(["--data-path", str(tmp_path / "NW-UCLA"), "--out-folder", str(tmp_path / "out"),
                              "--no-progress"]) == 1
    assert f"data folder not found: {tmp_path / 'NW-UCLA'}" in caplog.text
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.json files in .*empty"):
        json_gendata.gendata(tmp_path / "empty", tmp_path / "out", "kinect_v1", "xview", test_regex="_v03$")


def test_real_nwucla(nwucla_dir, tmp_path):
    out = tmp_path / "ucla"
    assert ucla_gendata.main(["--data-path", str(nwucla_dir), "--out-folder", str(out), "--no-progress"]) == 0
    train, train_frames, train_names, train_labels = _load(out / "xview", "train")
    val, val_frames, val_names, val_labels = _load(out / "xview", "val")
    assert len(train_names) == 1020 and len(val_names) == 464
    assert train.shape[1:] == val.shape[1:] == (3, 300, 20, 2)
    assert set(train_labels) == set(val_labels) == set(range(10))
    assert all(n.endswith("_v03") for n in val_names) and not any(n.endswith("_v03") for n in train_names)
    with open(nwucla_dir / "val_label.pkl", "rb") as handle:
        reference = {d["file_name"]: d for d in pickle.load(handle)}
    for name, label, frames in zip(val_names, val_labels, val_frames):
        assert reference[name]["label"] - 1 == label and reference[name]["length"] == frames
    assert 1 <= train_frames.min() and max(train_frames.max(), val_frames.max()) <= 201
    assert (val[..., 1] == 0).all() and np.isfinite(val).all()


def test_class_name_counts():
    assert [len(load_class_names(d)) for d in ("ntu60", "ntu120", "nwucla", "pku1")] == [60, 120, 10, 51]
    assert load_class_names("ntu120")[:60] == load_class_names("ntu60")
    assert load_class_names("ucla")[0] == "pick up with one hand"
    with pytest.raises(KeyError, match="unknown dataset 'kinetics'; known: .*'ntu60'"):
        load_class_names("kinetics")


# ------------------------------------------------------------------ split and encoding checks
def test_test_list_matching_no_file_is_an_error(tmp_path):
    src = make_json_folder(tmp_path / "all_sqe")
    lst = tmp_path / "tl.json"
    lst.write_text(json.dumps(["A01_S01_E00_V03", "a01_s02_e00_v03"]))     # wrong case; no such file
    with pytest.raises(ValueError) as info:
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_list=lst, progress=False)
    message = str(info.value)
    assert str(lst) in message and "val split would be empty" in message
    assert "'A01_S01_E00_V03'" in message and "'a01_s01_e00_v01'" in message      # expected and found names
    assert "letter case" in message
    assert not (tmp_path / "out").exists()
    code = json_gendata.main(["--data-path", str(src), "--out-folder", str(tmp_path / "out"), "--layout",
                              "kinect_v1", "--test-list", str(lst), "--no-progress"])
    assert code == 1


def test_test_list_name_without_a_file_is_an_error_or_listed(tmp_path, caplog):
    src = make_json_folder(tmp_path / "all_sqe")
    lst = tmp_path / "tl.json"
    lst.write_text(json.dumps(["a01_s01_e00_v03", "a09_s01_e00_v03"]))     # the second has no file
    with pytest.raises(ValueError, match=r"1 of its 2 names have no \.json file.*'a09_s01_e00_v03'") as info:
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_list=lst, progress=False)
    assert str(lst) in str(info.value)
    counts = json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_list=lst, on_error="skip",
                                  progress=False)
    assert counts == {"train": 8, "val": 1}
    report = (tmp_path / "out" / "skipped.txt").read_text()
    assert report.startswith("a09_s01_e00_v03\tnot found") and str(lst) in report
    caplog.set_level("WARNING")
    counts = json_gendata.gendata(src, tmp_path / "o2", "kinect_v1", "b", test_list=lst, limit=9, progress=False)
    assert counts == {"train": 8, "val": 1}
    assert any("a09_s01_e00_v03" in r.getMessage() and "--limit" in r.getMessage() for r in caplog.records)


def test_test_regex_matching_nothing_is_an_error(tmp_path):
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=1)
    with pytest.raises(ValueError, match=r"'_v04\$' matches none of the 3 \.json files"):
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex=r"_v04$", progress=False)


def test_non_utf8_json_is_reported_and_skippable(tmp_path):
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=1)
    (src / "zz_bad_v01.json").write_bytes(b'{"file_name": "zz_bad_v01",\n "note": "caf\xe9", "label": 1}')
    with pytest.raises(SkeletonFormatError, match=r"zz_bad_v01\.json:2: byte 0xe9 .* not UTF-8"):
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v03$", progress=False)
    counts = json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v03$", on_error="skip",
                                  progress=False)
    assert counts == {"train": 2, "val": 1}
    assert "zz_bad_v01.json:2: byte 0xe9" in (tmp_path / "out" / "skipped.txt").read_text()


def test_non_utf8_or_broken_test_list_names_the_file(tmp_path):
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=1)
    lst = tmp_path / "tl.json"
    lst.write_bytes(b'["a01_s01_e00_v03",\n "\xff"]')
    with pytest.raises(SkeletonFormatError, match=r"tl\.json:2: .*not UTF-8"):
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_list=lst, progress=False)
    pkl = tmp_path / "tl.pkl"
    pkl.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"tl\.pkl: cannot read as a pickle"):
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_list=pkl, progress=False)


def test_summary_is_logged_not_printed(tmp_path, capsys, caplog):
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=1)
    caplog.set_level("INFO")
    code = json_gendata.main(["--data-path", str(src), "--out-folder", str(tmp_path / "out"), "--layout",
                              "kinect_v1", "--test-regex", "_v03$", "--no-progress"])
    assert code == 0
    assert capsys.readouterr().out == ""
    assert "default: train 2  val 1" in [r.getMessage() for r in caplog.records]


def test_an_invalid_test_regex_is_one_error_line(tmp_path, caplog):
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=1)
    with pytest.raises(ValueError, match=r"--test-regex '\(' is not a regular expression: missing \)"):
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="(", progress=False)
    code = json_gendata.main(["--data-path", str(src), "--out-folder", str(tmp_path / "out"), "--layout",
                              "kinect_v1", "--test-regex", "(", "--no-progress"])
    assert code == 1 and "is not a regular expression" in caplog.text
    assert not (tmp_path / "out").exists()


def test_a_label_outside_the_class_list_is_bad_input(tmp_path, caplog):
    """NW-UCLA has 10 classes: a file labelled 11 would have become label 10, outside every head."""
    root = tmp_path / "nw_ucla"
    src = make_json_folder(root / "all_sqe", n_per_view=1)
    obj = json.loads((src / "a01_s01_e00_v02.json").read_text())
    (src / "a01_s01_e00_v02.json").write_text(json.dumps({**obj, "label": 11}))
    args = ["--data-path", str(root), "--out-folder", str(tmp_path / "out"), "--no-progress"]
    assert ucla_gendata.main(args) == 1
    assert 'a01_s01_e00_v02.json: "label" is 11, expected 1..10' in caplog.text
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert ucla_gendata.main(args + ["--on-error", "skip"]) == 0
    assert _load(tmp_path / "out" / "xview", "train")[2] == ["a01_s01_e00_v01"]
    assert "a01_s01_e00_v02.json" in (tmp_path / "out" / "skipped.txt").read_text()
    with pytest.raises(SkeletonFormatError, match=r'"label" is 11, expected 1\.\.3 \(--num-classes\)'):
        json_gendata.gendata(src, tmp_path / "o2", "kinect_v1", "b", test_regex="_v03$", num_classes=3,
                             progress=False)
    assert json_gendata.gendata(src, tmp_path / "o3", "kinect_v1", "b", test_regex="_v03$",
                                progress=False) == {"train": 2, "val": 1}      # unbounded without a class count


def test_a_file_name_that_is_not_its_file_is_bad_input(tmp_path):
    """A copy of a test clip under another file name (a duplicate "file_name") would have been a training sample."""
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=1)
    copy = src / "a01_s01_e00_v03 (copy).json"
    copy.write_bytes((src / "a01_s01_e00_v03.json").read_bytes())
    with pytest.raises(SkeletonFormatError, match=r"\(copy\)\.json: \"file_name\" is 'a01_s01_e00_v03', expected "
                                                  r"the name of its file, 'a01_s01_e00_v03 \(copy\)'"):
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v03$", progress=False)
    counts = json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v03$", on_error="skip",
                                  progress=False)
    assert counts == {"train": 2, "val": 1}
    assert "a01_s01_e00_v03 (copy).json" in (tmp_path / "out" / "skipped.txt").read_text()
    copy.unlink()
    obj = json.loads((src / "a01_s01_e00_v01.json").read_text())
    (src / "a01_s01_e00_v01.json").write_text(json.dumps({k: v for k, v in obj.items() if k != "file_name"}))
    (src / "a01_s01_e00_v02.json").write_text(json.dumps({**obj, "file_name": "a01_s01_e00_v02.json"}))
    counts = json_gendata.gendata(src, tmp_path / "o2", "kinect_v1", "b", test_regex="_v03$", progress=False)
    assert counts == {"train": 2, "val": 1}                # no "file_name", or the name with .json: fine


def test_a_split_that_selects_every_file_is_an_error(tmp_path, caplog):
    """A regex or test list that takes every file left an empty train split behind a warning only."""
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=1)
    with pytest.raises(ValueError, match=r"--test-regex '_v0' matches every one of the 3 \.json files in .*all_sqe, "
                                         r"so the train split would be empty"):
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v0", progress=False)
    lst = tmp_path / "tl.json"
    lst.write_text(json.dumps(sorted(p.stem for p in src.glob("*.json"))))
    with pytest.raises(ValueError, match=r"tl\.json names every one of the 3 \.json files"):
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_list=lst, progress=False)
    assert not (tmp_path / "out").exists()
    caplog.set_level("WARNING")                                  # --limit: a subset on purpose, a warning
    counts = json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v0", limit=2, progress=False)
    assert counts == {"train": 0, "val": 2} and "--limit 2" in caplog.text


@pytest.mark.parametrize("value", ["1.5", None])
def test_a_coordinate_that_is_not_a_number_is_bad_input(tmp_path, value):
    """A string coordinate was parsed as a number, null became NaN (reported as 'NaN or Inf')."""
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=1)
    frame = [[0.5, 0.25, 3.0]] * 19 + [[value, value, value]]
    (src / "zz_bad_v01.json").write_text(json.dumps({"file_name": "zz_bad_v01", "skeletons": [frame], "label": 1}))
    with pytest.raises(SkeletonFormatError, match=r'zz_bad_v01\.json: "skeletons" holds a value that is not a number'):
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v03$", progress=False)


def test_a_coordinate_beyond_float32_is_one_error(tmp_path, recwarn):
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=1)
    frame = [[0.5, 0.25, 3.0]] * 19 + [[1e39, 0.0, 3.0]]
    (src / "zz_bad_v01.json").write_text(json.dumps({"file_name": "zz_bad_v01", "skeletons": [frame], "label": 1}))
    with pytest.raises(SkeletonFormatError, match=r'zz_bad_v01\.json: "skeletons" holds NaN, Inf or a value beyond'):
        json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v03$", progress=False)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_joint_count_of_another_layout_names_the_layout_option(tmp_path):
    """20-joint files read with the default layout said only 'expected (T>0, 25, 3)', not that --layout sets it."""
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=1)                  # 20 joints: kinect_v1
    with pytest.raises(SkeletonFormatError, match=r"expected \(T>0, 25, 3\) \(the layout's joint count; 20 joints "
                                                  r"is --layout kinect_v1\)"):
        json_gendata.gendata(src, tmp_path / "out", "ntu25", "b", test_regex="_v03$", progress=False)
    with pytest.raises(SkeletonFormatError, match=r"expected \(T>0, 17, 3\) \(the layout's joint count; 20 joints"):
        json_gendata.gendata(src, tmp_path / "out", "coco17", "b", test_regex="_v03$", progress=False)
    path = src / "a01_s01_e00_v01.json"
    obj = json.loads(path.read_text())
    path.write_text(json.dumps({**obj, "skeletons": [[[0.0, 0.0, 0.0]] * 21]}))
    with pytest.raises(SkeletonFormatError, match=r"no layout has 21 joints"):
        json_gendata.read_json_sequence(path, 20)


def test_files_with_an_upper_case_suffix_are_named_in_a_warning(tmp_path, caplog):
    """*.JSON files were left out of the splits without a word (the folder is read as *.json)."""
    src = make_json_folder(tmp_path / "all_sqe", n_per_view=2)
    (src / "a02_s01_e00_v01.json").rename(src / "a02_s01_e00_v01.JSON")
    with caplog.at_level("WARNING"):
        counts = json_gendata.gendata(src, tmp_path / "out", "kinect_v1", "b", test_regex="_v03$", progress=False)
    assert counts == {"train": 3, "val": 2}
    assert any("a02_s01_e00_v01.JSON" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)
