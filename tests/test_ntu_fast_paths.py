"""The fast paths of the NTU conversion equal straightforward references (issue 8, acceptance 3).

* :func:`data_gen.ntu_reader.parse_skeleton_text` (vectorised whole-file parse, then the
  token path, then the validator) against a line-by-line reference reader written here;
* the bulk decimal conversion against Python's ``float`` / ``int``, bit for bit;
* :func:`data_gen.prenormalise.pre_normalise_inplace` (centring on the first period of
  frames, then filling the tail) against the step-by-step reference procedure;
* :func:`data_gen.prenormalise.mtvc_to_ctvm` and :class:`data_gen.split_writer.SplitWriter`.

Fixtures are built in code: LF / CRLF, 1, 2 and more than ``max_bodies`` bodies, empty
frames (leading, inside, trailing, all), missing final newline, and the odd layouts that
must leave the vectorised path (tabs, double spaces, blank lines, exponents, signs).
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from data_gen import ntu_reader
from data_gen.ntu_reader import SkeletonFormatError, parse_skeleton_text
from data_gen.prenormalise import mtvc_to_ctvm, pre_normalise, pre_normalise_inplace, rotation_aligning
from data_gen.split_writer import SplitGroup, SplitWriter, pwrite_all
from net.graph import get_layout

LAYOUT = get_layout("ntu25")
V = 25
MAX_BODIES = 4


# ------------------------------------------------------------------ fixtures
def _fmt(value: float, style: str) -> str:
    if style == "g7":
        return "%.7g" % value
    if style == "exp":
        return "%.6e" % value
    if style == "repr":
        return repr(float(value))
    if style == "plus":
        return "+%.5f" % value if value >= 0 else "%.5f" % value
    raise ValueError(style)


def skeleton_text(rng, body_counts, newline="\n", style="g7", final_newline=True, zero_joints=0.0) -> str:
    """A ``.skeleton`` text: frame t holds ``body_counts[t]`` bodies with random joints (metres)."""
    out = [str(len(body_counts))]
    for count in body_counts:
        out.append(str(count))
        for m in range(count):
            out.append(f"{72057594037927936 + 1000 * m + int(rng.integers(0, 999))} 0 1 1 1 1 0 "
                       f"{_fmt(rng.normal(), 'g7')} {_fmt(rng.normal(), 'g7')} 2")
            out.append(str(V))
            xyz = rng.normal(0, 0.4, size=(V, 3)) + [0.8 * m, 0.0, 3.0]
            xyz[rng.random(V) < zero_joints] = 0.0
            for x, y, z in xyz:
                coords = " ".join("0" if c == 0 else _fmt(c, style) for c in (x, y, z))
                out.append(f"{coords} 250.1 190.2 960.3 500.4 0.9 0.1 -0.2 0.3 2")
    text = newline.join(out)
    return text + newline if final_newline else text


def reference_read(text: str, max_bodies: int = MAX_BODIES):
    """Straightforward reader: split lines, walk the records, ``float()`` every coordinate.

    Blank lines are skipped (the tolerant token path ignores them too).
    """
    lines = [line for line in text.splitlines() if line.strip()]
    num_frames = int(lines[0])
    i = 1
    records = []                                   # (frame, slot, body_id, (V, 3) joints)
    counts = []
    for t in range(num_frames):
        count = int(lines[i])
        counts.append(count)
        i += 1
        for m in range(count):
            body_id = int(lines[i].split()[0])
            assert int(lines[i + 1]) == V
            joints = [[float(x) for x in lines[i + 2 + j].split()[:3]] for j in range(V)]
            records.append((t, m, body_id, joints))
            i += 2 + V
    slots = max(1, min(max_bodies, max(counts)))
    joints = np.zeros((slots, num_frames, V, 3), np.float32)
    present = np.zeros((slots, num_frames), bool)
    ids = np.full((slots, num_frames), -1, np.int64)
    for t, m, body_id, xyz in records:
        if m < max_bodies:
            joints[m, t] = np.array(xyz, dtype=np.float64)
            present[m, t] = True
            ids[m, t] = body_id
    return num_frames, joints, present, ids, np.array(counts, np.int64)


def assert_same_sequence(seq, text: str):
    num_frames, joints, present, ids, counts = reference_read(text)
    assert seq.num_frames == num_frames
    assert seq.joints.dtype == np.float32 and seq.joints.tobytes() == joints.tobytes()   # bit for bit
    np.testing.assert_array_equal(seq.present, present)
    np.testing.assert_array_equal(seq.body_ids, ids)
    np.testing.assert_array_equal(seq.bodies_per_frame, counts)


CASES = {
    "one_body": [1] * 12,
    "two_bodies": [2] * 10,
    "more_than_max_bodies": [6, 5, 3, 1, 0, 2],
    "empty_lead_inside_tail": [0, 0, 1, 1, 0, 2, 2, 0, 0],
    "all_empty": [0, 0, 0],
    "single_frame": [1],
}


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_vectorised_parse_equals_reference(case, newline):
    rng = np.random.default_rng(len(case))
    text = skeleton_text(rng, CASES[case], newline, zero_joints=0.1)
    raw = text.encode()
    fast = ntu_reader._parse_vectorised(raw, "x.skeleton", MAX_BODIES, V)
    assert fast is not None, "a plain file must take the vectorised path"
    assert_same_sequence(fast, text)
    assert_same_sequence(parse_skeleton_text(raw, "x.skeleton"), text)
    tokens = ntu_reader._parse_tokens(raw, "x.skeleton", MAX_BODIES, V)
    for field in ("joints", "present", "body_ids", "bodies_per_frame"):
        assert getattr(fast, field).tobytes() == getattr(tokens, field).tobytes(), field


@pytest.mark.parametrize("variant", ["no_final_newline", "exponents", "long_mantissa", "plus_signs",
                                     "trailing_blank_lines", "double_space", "tab", "blank_line_inside",
                                     "padded_count"])
def test_other_layouts_parse_like_the_reference(variant):
    """Layouts outside the plain one still give the reference's arrays (through the token path)."""
    rng = np.random.default_rng(11)
    style = {"exponents": "exp", "long_mantissa": "repr", "plus_signs": "plus"}.get(variant, "g7")
    text = skeleton_text(rng, [2, 1, 2, 3], style=style, final_newline=variant != "no_final_newline")
    lines = text.split("\n")
    if variant == "trailing_blank_lines":
        text += "\n\n"
    elif variant == "double_space":
        lines[10] = lines[10].replace(" ", "  ", 1)
        text = "\n".join(lines)
    elif variant == "tab":
        lines[12] = lines[12].replace(" ", "\t", 2)
        text = "\n".join(lines)
    elif variant == "blank_line_inside":
        lines.insert(30, "")
        text = "\n".join(lines)
    elif variant == "padded_count":
        lines[3] = "025"                           # the joint count with a leading zero
        text = "\n".join(lines)
    assert_same_sequence(parse_skeleton_text(text.encode(), "x.skeleton"), text)
    if variant in ("no_final_newline", "exponents", "long_mantissa", "plus_signs"):
        assert ntu_reader._parse_vectorised(text.encode(), "x.skeleton", MAX_BODIES, V) is not None


@pytest.mark.parametrize("mutation, line", [("extra_field", 12), ("missing_field", 40), ("nan", 8),
                                             ("letters", 20), ("short_file", 60), ("trailing_token", None)])
def test_malformed_files_still_name_the_line(mutation, line):
    rng = np.random.default_rng(5)
    lines = skeleton_text(rng, [1, 1, 1]).rstrip("\n").split("\n")
    if mutation == "extra_field":
        lines[line - 1] += " 7"
    elif mutation == "missing_field":
        lines[line - 1] = lines[line - 1].rsplit(" ", 1)[0]
    elif mutation == "nan":
        lines[line - 1] = "nan " + lines[line - 1].split(" ", 1)[1]
    elif mutation == "letters":
        lines[line - 1] = lines[line - 1].replace(".", "x", 1)
    elif mutation == "short_file":
        lines = lines[: line - 1]
    elif mutation == "trailing_token":
        lines.append("5")
        line = len(lines)
    with pytest.raises(SkeletonFormatError) as info:
        parse_skeleton_text(("\n".join(lines) + "\n").encode(), "bad.skeleton")
    assert info.value.line == line and f"bad.skeleton:{line}:" in str(info.value)


def test_bulk_decimal_conversion_is_bit_exact():
    rng = np.random.default_rng(0)
    tokens = []
    for value in rng.normal(size=4000) * 10.0 ** rng.integers(-9, 9, size=4000):
        value = float(value)
        tokens += ["%.7g" % value, "%.15g" % value, repr(value), "%.*f" % (int(rng.integers(0, 12)), value)]
    tokens += ["0", "-0", "+0", "0.", ".5", "-.5", "+1.25", "5.", "-0.000", "00012.500", "1e5", "-1.5E-3",
               "123456789012345", "1234567890123456", "0.123456789012345", "9999999999.99999",
               "99999999999999.9", ".999999999999999", "0.000000000000001", "12345678.1234567"]
    raw = (" " * 24 + " ".join(tokens) + " ").encode()
    blanks = np.flatnonzero(np.frombuffer(raw, np.uint8) == ord(" "))
    starts, ends = blanks[23:-1] + 1, blanks[24:]
    got = ntu_reader._parse_floats(raw, np.frombuffer(raw, np.uint8), starts, ends)
    want = np.array([float(t) for t in tokens])
    assert got.tobytes() == want.tobytes()                                  # signs of zero included

    ints = ["7", "0", "-12", "72057594037927936", "999999999999999999", "-999999999999999999"]
    raw = (" ".join(ints) + " ").encode()
    blanks = np.flatnonzero(np.frombuffer(raw, np.uint8) == ord(" "))
    starts, ends = np.concatenate(([0], blanks[:-1] + 1)), blanks
    got = ntu_reader._parse_ints(raw, np.frombuffer(raw, np.uint8), starts, ends, signed=True)
    assert got.tolist() == [int(t) for t in ints]
    for bad in ("1.5", "+3", "--3", "1x", "1234567890123456789"):
        raw = f"12 {bad} ".encode()
        assert ntu_reader._parse_ints(raw, np.frombuffer(raw, np.uint8), np.array([0, 3]),
                                      np.array([2, 3 + len(bad)]), signed=True) is None, bad


# ------------------------------------------------------------ pre-normalisation
def reference_pre_normalise(sample: np.ndarray) -> np.ndarray:
    """The step-by-step procedure (pad all T frames, centre all frames, rotate), ``(M, T, V, C)``."""
    s = np.array(sample, dtype=np.float32, copy=True)
    present = [p for p in range(s.shape[0]) if s[p].sum() != 0]
    if not present:
        return s
    frame_sum = s.sum(axis=(2, 3))
    for p in range(s.shape[0]):
        nonzero = frame_sum[p] != 0
        if not nonzero.any():
            continue
        if not nonzero[0]:
            kept = s[p][nonzero].copy()
            s[p] = 0
            s[p, : len(kept)] = kept
            nonzero = np.zeros(s.shape[1], dtype=bool)
            nonzero[: len(kept)] = True
        valid = int(np.flatnonzero(nonzero)[-1]) + 1
        if valid < s.shape[1]:
            reps = -(-(s.shape[1] - valid) // valid)
            s[p, valid:] = np.concatenate([s[p, :valid]] * reps, axis=0)[: s.shape[1] - valid]
    centre = s[0, :, LAYOUT.spine, :].copy()
    for p in present:
        mask = s[p].sum(axis=-1) != 0
        s[p] -= centre[:, None, :] * mask[..., None]
    bone = s[0, 0, LAYOUT.spine].astype(np.float64) - s[0, 0, LAYOUT.hip]
    rotation = rotation_aligning(bone, np.array([0.0, 0.0, 1.0]))
    shoulders = s[0, 0, LAYOUT.right_shoulder].astype(np.float64) - s[0, 0, LAYOUT.left_shoulder]
    rotation = rotation_aligning(rotation @ shoulders, np.array([1.0, 0.0, 0.0])) @ rotation
    if not np.array_equal(rotation, np.eye(3)):
        rt = rotation.T.astype(np.float32)
        for p in present:
            s[p] = s[p] @ rt
    return s


def _person(rng, frames: int, offset) -> np.ndarray:
    return (rng.normal(0, 0.3, size=(frames, V, 3)) + np.asarray(offset)).astype(np.float32)


def _samples():
    """(name, (M, T, V, 3) float32) cases: equal / different periods, gaps, absent persons, -0.0."""
    rng = np.random.default_rng(3)
    t = 64
    out = []
    s = np.zeros((2, t, V, 3), np.float32)
    s[0, :20] = _person(rng, 20, (0, 0, 3))
    s[1, :20] = _person(rng, 20, (1, 0, 3))
    out.append(("same_period", s))
    s = np.zeros((2, t, V, 3), np.float32)
    s[0, :25] = _person(rng, 25, (0, 0, 3))
    s[1, 3:14] = _person(rng, 11, (1, 0, 3))                   # leading empty frames, shorter period
    out.append(("different_periods", s))
    s = np.zeros((2, t, V, 3), np.float32)
    s[0, 4:30] = _person(rng, 26, (0, 0, 3))
    s[0, 10] = 0.0                                            # a gap (compacted away: first frame empty)
    s[0, 12, 5] = -0.0
    out.append(("leading_empty_and_gap", s))
    s = np.zeros((2, t, V, 3), np.float32)
    s[0, :30] = _person(rng, 30, (0, 0, 3))
    s[0, 7] = 0.0                                             # a gap kept (first frame present)
    s[0, :, 3] = -0.0                                         # an absent joint written as -0
    s[1, :18] = _person(rng, 18, (1, 0, 3))
    out.append(("kept_gap_negative_zero", s))
    s = np.zeros((2, t, V, 3), np.float32)
    s[1, :15] = _person(rng, 15, (1, 0, 3))                   # person 0 absent
    out.append(("person0_absent", s))
    s = np.zeros((2, t, V, 3), np.float32)
    s[0, :t] = _person(rng, t, (0, 0, 3))                     # no padding needed
    out.append(("full_length", s))
    return out


@pytest.mark.parametrize("name, sample", _samples(), ids=[name for name, _ in _samples()])
def test_pre_normalise_inplace_equals_reference(name, sample):
    want = reference_pre_normalise(sample)
    got = pre_normalise_inplace(sample.copy(), LAYOUT)
    assert got.tobytes() == want.tobytes()                                  # bit for bit
    public = pre_normalise(sample, LAYOUT, axes="MTVC")
    assert public.tobytes() == want.tobytes()
    np.testing.assert_array_equal(pre_normalise(mtvc_to_ctvm(sample), LAYOUT), mtvc_to_ctvm(want))


def test_pre_normalise_inplace_rejects_other_arrays():
    with pytest.raises(ValueError, match="float32"):
        pre_normalise_inplace(np.zeros((2, 4, V, 3)), LAYOUT)
    with pytest.raises(ValueError, match="C-contiguous"):
        pre_normalise_inplace(np.zeros((3, 4, V, 2), np.float32).transpose(3, 1, 2, 0), LAYOUT)


def test_mtvc_to_ctvm_is_the_transpose():
    x = np.random.default_rng(1).normal(size=(2, 7, V, 3)).astype(np.float32)
    y = mtvc_to_ctvm(x)
    assert y.flags.c_contiguous and y.shape == (3, 7, V, 2)
    np.testing.assert_array_equal(y, x.transpose(3, 1, 2, 0))


# ------------------------------------------------------------------ writer
def test_split_writer_rows_skips_and_shape_check(tmp_path):
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(5, 3, 4, V, 2)).astype(np.float32)
    names, labels = [f"s{k}" for k in range(5)], [0, 1, 2, 3, 4]
    with SplitWriter(tmp_path, "train", names, labels, rows.shape[1:], flush_every=2) as writer:
        for k in (4, 0, 2, 3):                                             # any order
            writer.write(k, rows[k] if k != 2 else rows[k].astype(np.float64), num_frame=k + 1)
        writer.skip(1)
        with pytest.raises(ValueError, match="sample shape"):
            writer.write(1, rows[1][:, :2], 1)
    data = np.load(tmp_path / "train_data_joint.npy")
    np.testing.assert_array_equal(data, rows[[0, 2, 3, 4]])
    assert np.load(tmp_path / "train_num_frame.npy").tolist() == [1, 3, 4, 5]
    with open(tmp_path / "train_label.pkl", "rb") as handle:
        assert pickle.load(handle) == (["s0", "s2", "s3", "s4"], [0, 2, 3, 4])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_empty_split_is_written_with_a_warning(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        with SplitWriter(tmp_path, "train", ["a"], [0], (3, 4, V, 2)) as writer:
            writer.skip(0)
    assert np.load(tmp_path / "train_data_joint.npy").shape == (0, 3, 4, V, 2)
    assert any("the train split is empty" in r.getMessage() for r in caplog.records)


def test_split_writer_rows_written_through_slots_by_a_forked_process(tmp_path):
    import multiprocessing

    rows = np.random.default_rng(4).normal(size=(4, 3, 5, V, 2)).astype(np.float32)
    with SplitWriter(tmp_path, "val", list("abcd"), [0, 1, 2, 3], rows.shape[1:]) as writer:
        slots = {k: writer.row_slot(k) for k in (3, 1)}
        assert all(nbytes == rows[0].nbytes for _, _, nbytes in slots.values())
        child = multiprocessing.get_context("fork").Process(
            target=lambda: [pwrite_all(fd, rows[k], offset) for k, (fd, offset, _) in slots.items()])
        child.start()
        child.join()
        assert child.exitcode == 0
        for k in (3, 1):
            writer.mark_written(k, num_frame=k)
        writer.write(0, rows[0], 7)
        writer.skip(2)
        with pytest.raises(IndexError, match="outside"):
            writer.row_slot(4)
    np.testing.assert_array_equal(np.load(tmp_path / "val_data_joint.npy"), rows[[0, 1, 3]])
    assert np.load(tmp_path / "val_num_frame.npy").tolist() == [7, 1, 3]
    with pytest.raises(RuntimeError, match="outside the writer"):
        writer.row_slot(0)


def test_split_writer_commit_never_leaves_new_arrays_beside_old_labels(tmp_path, monkeypatch):
    """The old label file goes before the renames and the new one comes last (the completion marker)."""
    import os

    from data_gen import split_writer

    rows = np.random.default_rng(6).normal(size=(3, 3, 4, V, 2)).astype(np.float32)

    def write_split(values, skip=None):
        with SplitWriter(tmp_path, "train", list("abc"), [0, 1, 2], rows.shape[1:]) as writer:
            for k in range(3):
                writer.skip(k) if k == skip else writer.write(k, values[k], num_frame=k + 1)

    write_split(rows)                                                       # the old split
    renamed = []
    real_replace = os.replace

    def interrupted_replace(src, dst):
        if str(dst) == str(tmp_path / "train_num_frame.npy"):
            raise KeyboardInterrupt                                         # between the array and the rest
        renamed.append(os.path.basename(dst))
        real_replace(src, dst)

    for skip in (None, 1):                                                  # plain rename and compaction
        monkeypatch.setattr(split_writer.os, "replace", interrupted_replace)
        with pytest.raises(KeyboardInterrupt):
            write_split(rows + 1, skip=skip)
        monkeypatch.setattr(split_writer.os, "replace", real_replace)
        assert (tmp_path / "train_data_joint.npy").is_file()                # the new array is in place ...
        assert not (tmp_path / "train_label.pkl").exists()                  # ... and no label claims a split
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
        write_split(rows)
    renamed.clear()
    monkeypatch.setattr(split_writer.os, "replace", lambda s, d: (renamed.append(os.path.basename(d)),
                                                                  real_replace(s, d))[1])
    write_split(rows + 2, skip=0)
    finals = [n for n in renamed if not n.startswith(".")]
    assert finals == ["train_data_joint.npy", "train_num_frame.npy", "train_label.pkl"]
    with open(tmp_path / "train_label.pkl", "rb") as handle:
        assert pickle.load(handle) == (["b", "c"], [1, 2])
    np.testing.assert_array_equal(np.load(tmp_path / "train_data_joint.npy"), rows[1:] + 2)


def test_split_writer_failure_before_the_commit_keeps_the_old_split(tmp_path):
    rows = np.random.default_rng(7).normal(size=(2, 3, 4, V, 2)).astype(np.float32)
    with SplitWriter(tmp_path, "val", ["a", "b"], [0, 1], rows.shape[1:]) as writer:
        writer.write(0, rows[0], 1)
        writer.write(1, rows[1], 2)
    with pytest.raises(RuntimeError, match="neither written nor skipped"):
        with SplitWriter(tmp_path, "val", ["x", "y", "z"], [0, 1, 2], rows.shape[1:]) as writer:
            writer.write(0, rows[0], 1)
    with open(tmp_path / "val_label.pkl", "rb") as handle:
        assert pickle.load(handle) == (["a", "b"], [0, 1])
    np.testing.assert_array_equal(np.load(tmp_path / "val_data_joint.npy"), rows)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _write_group(folder, values, shape, fail_on=None):
    """Train and val of one run through a SplitGroup; ``fail_on`` names a split whose finishing fails."""
    with SplitGroup() as group:
        for k, split in enumerate(("train", "val")):
            writer = group.open(folder, split, ["a", "b"], [0, 1], shape, flush_every=1)
            writer.write(0, values[k], 1)
            writer.skip(1) if split == fail_on else writer.write(1, values[k] + 1, 2)


def test_split_group_failure_while_finishing_keeps_every_old_split(tmp_path, monkeypatch):
    """A full disk while train is compacted (val already finished) leaves both old splits, not a mix."""
    from data_gen import split_writer

    shape = (3, 4, V, 2)
    old = np.random.default_rng(11).normal(size=(2,) + shape).astype(np.float32)
    _write_group(tmp_path, old, shape)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["train_data_joint.npy", "train_label.pkl", "train_num_frame.npy",
                              "val_data_joint.npy", "val_label.pkl", "val_num_frame.npy"]
    real_open = split_writer.open_memmap_atomic

    def full_disk(path, *args, **kwargs):                    # only the compaction of a skipped row opens one here
        if path.name.startswith(".train"):
            raise OSError(28, "No space left on device", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(split_writer, "open_memmap_atomic", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _write_group(tmp_path, old + 10, shape, fail_on="train")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_split_group_removes_every_old_label_before_moving_any_array(tmp_path, monkeypatch):
    import os

    from data_gen import split_writer

    shape = (3, 4, V, 2)
    values = np.random.default_rng(12).normal(size=(2,) + shape).astype(np.float32)
    _write_group(tmp_path, values, shape)
    events = []
    real_replace, real_unlink = os.replace, split_writer.Path.unlink
    monkeypatch.setattr(split_writer.os, "replace",
                        lambda s, d: (events.append(("put", os.path.basename(d))), real_replace(s, d))[1])
    monkeypatch.setattr(split_writer.Path, "unlink",
                        lambda self, missing_ok=False: (events.append(("drop", self.name)),
                                                        real_unlink(self, missing_ok))[1])
    new = values + 3
    _write_group(tmp_path, new, shape)
    final = [e for e in events if not e[1].startswith(".")]
    assert final[:2] == [("drop", "train_label.pkl"), ("drop", "val_label.pkl")]
    assert {e[1] for e in final[2:6]} == {"train_data_joint.npy", "train_num_frame.npy", "val_data_joint.npy",
                                          "val_num_frame.npy"}
    assert final[6:] == [("put", "train_label.pkl"), ("put", "val_label.pkl")]
    np.testing.assert_array_equal(np.load(tmp_path / "val_data_joint.npy"), [new[1], new[1] + 1])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_absurd_header_frame_count_is_refused_before_allocating():
    raw = b"100000000\n1\n"                               # 10^8 frames announced, one value follows
    with pytest.raises(SkeletonFormatError) as info:
        ntu_reader._parse_tokens(raw, "bad.skeleton", MAX_BODIES, V)
    assert info.value.line == 1 and "the header says 100000000 frames" in str(info.value)
    with pytest.raises(SkeletonFormatError) as info:
        parse_skeleton_text(raw, "bad.skeleton")
    assert info.value.line == 1


# ------------------------------------------------------------------ token path: line structure
@pytest.mark.parametrize("tab", [False, True])
@pytest.mark.parametrize("first, second", [(11, 13), (13, 11)])
def test_fields_moved_between_lines_name_the_line(first, second, tab):
    """The token path ignores line breaks; a field moved to the next line must not shift the coordinates."""
    rng = np.random.default_rng(8)
    lines = skeleton_text(rng, [1, 2]).rstrip("\n").split("\n")
    a, b = lines[5].split(" "), lines[6].split(" ")                       # joint lines 2 and 3 of body 1
    moved = a + b
    lines[5], lines[6] = " ".join(moved[:first]), " ".join(moved[first:])
    if tab:
        lines[20] = lines[20].replace(" ", "\t")                         # off the vectorised path anyway
    raw = ("\n".join(lines) + "\n").encode()
    assert ntu_reader._parse_vectorised(raw, "bad.skeleton", MAX_BODIES, V) is None
    with pytest.raises(SkeletonFormatError) as info:
        parse_skeleton_text(raw, "bad.skeleton")
    assert info.value.line == 6 and f"joint line: expected 12 fields, got {first}" in str(info.value)


def test_blank_lines_do_not_shift_the_line_numbers_of_the_token_path():
    rng = np.random.default_rng(9)
    lines = skeleton_text(rng, [1, 1]).rstrip("\n").split("\n")
    lines.insert(2, "")                                                    # a blank line: the token path
    lines[9] = lines[9] + " 7"                                             # now line 10: 13 fields ...
    lines[10] = lines[10].rsplit(" ", 1)[0]                                # ... and 11 on the next
    with pytest.raises(SkeletonFormatError) as info:
        ntu_reader._parse_tokens(("\n".join(lines) + "\n").encode(), "bad.skeleton", MAX_BODIES, V)
    assert info.value.line == 10 and "expected 12 fields, got 13" in str(info.value)


@pytest.mark.parametrize("body_id, ok", [("99999999999999999999999", False), ("9223372036854775808", False),
                                         ("9223372036854775807", True), ("-9223372036854775808", True)])
def test_long_body_ids_fit_int64_or_name_their_line(body_id, ok):
    rng = np.random.default_rng(10)
    lines = skeleton_text(rng, [1, 1]).rstrip("\n").split("\n")
    lines[30] = body_id + " " + lines[30].split(" ", 1)[1]                 # frame 2's body info line (31)
    text = "\n".join(lines) + "\n"
    if ok:
        assert parse_skeleton_text(text.encode(), "x.skeleton").body_ids[0, 1] == int(body_id)
        ntu_reader.validate_skeleton_text(text, "x.skeleton")
        return
    for call in (lambda: parse_skeleton_text(text.encode(), "bad.skeleton"),
                 lambda: ntu_reader.validate_skeleton_text(text, "bad.skeleton")):
        with pytest.raises(SkeletonFormatError) as info:
            call()
        assert info.value.line == 31 and "does not fit a signed 64-bit integer" in str(info.value)
