"""NTU .skeleton reading, body selection, pre-normalisation and the gendata CLI.

Fixtures are written in code (``make_skeleton_text``); ``synthetic_sequence`` /
``write_synthetic_folder`` also serve the throughput measurement (issue 8).
"""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_gen import ntu_gendata
from data_gen.ntu_reader import (SkeletonFormatError, body_energy, read_skeleton,
                                 select_bodies, validate_skeleton_text)
from data_gen.prenormalise import pre_normalise, rotation_aligning
from net.graph import get_layout

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = get_layout("ntu25")

# A standing body (metres, y up): shoulder line perpendicular to the hip->spine bone.
TEMPLATE = np.array([
    [0.0, 0.0, 0.0], [0.0, 0.3, 0.0], [0.0, 0.55, 0.0], [0.0, 0.7, 0.0],
    [-0.18, 0.5, 0.0], [-0.2, 0.25, 0.0], [-0.22, 0.02, 0.0], [-0.22, -0.05, 0.0],
    [0.18, 0.5, 0.0], [0.2, 0.25, 0.0], [0.22, 0.02, 0.0], [0.22, -0.05, 0.0],
    [-0.1, -0.02, 0.0], [-0.1, -0.45, 0.0], [-0.1, -0.85, 0.0], [-0.1, -0.9, 0.1],
    [0.1, -0.02, 0.0], [0.1, -0.45, 0.0], [0.1, -0.85, 0.0], [0.1, -0.9, 0.1],
    [0.0, 0.5, 0.0], [-0.22, -0.12, 0.0], [-0.19, -0.06, 0.03], [0.22, -0.12, 0.0], [0.19, -0.06, 0.03],
])
ARMS = [5, 6, 7, 9, 10, 11, 21, 22, 23, 24]


def random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def synthetic_body(rng, num_frames: int, motion: float = 0.05, offset=(0.0, 0.0, 3.0)) -> np.ndarray:
    """(T, 25, 3): the template rigidly placed, arms swinging by ``motion``, slow drift."""
    rot = random_rotation(rng) if rng is not None else np.eye(3)
    base = TEMPLATE @ rot.T + np.asarray(offset)
    t = np.arange(num_frames)[:, None, None]
    seq = np.repeat(base[None], num_frames, axis=0)
    seq[:, ARMS] += motion * np.sin(0.2 * t + np.arange(len(ARMS))[None, :, None]) * np.array([1.0, 0.5, 0.3])
    seq += 0.002 * t * np.array([1.0, 0.0, 0.5])
    return seq


def make_skeleton_text(frames, newline: str = "\n", body_ids=None) -> str:
    """``frames``: list over frames of lists of (25, 3) arrays (one per body) -> .skeleton text."""
    out = [str(len(frames))]
    for bodies in frames:
        out.append(str(len(bodies)))
        for m, joints in enumerate(bodies):
            body_id = body_ids[m] if body_ids else 72057594037931100 + m
            out.append(f"{body_id} 0 1 1 1 1 0 -0.08920905 -0.4797752 2")
            out.append(str(len(joints)))
            for x, y, z in joints:
                out.append(f"{x:.7g} {y:.7g} {z:.7g} 163.9239 187.6978 710.6672 506.5853 "
                           f"0.6249489 -0.1014573 0.7727244 -0.04519191 2")
    return newline.join(out) + newline


def synthetic_sequence(rng, num_frames: int = 85, num_bodies: int = 1, empty_lead: int = 0,
                       empty_tail: int = 0) -> list:
    bodies = [synthetic_body(rng, num_frames, motion=0.05 * (m + 1), offset=(0.8 * m, 0.0, 3.0))
              for m in range(num_bodies)]
    frames = [[] for _ in range(empty_lead)]
    frames += [[b[t] for b in bodies] for t in range(num_frames)]
    frames += [[] for _ in range(empty_tail)]
    return frames


def write_synthetic_folder(folder: Path, num_files: int, seed: int = 0, frames: int = 85) -> list:
    """``num_files`` realistic files (~``frames`` frames, 1-2 bodies, mixed line endings), NTU-60 names."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(num_files):
        action = 1 + k % 60
        name = f"S{1 + k % 17:03d}C{1 + k % 3:03d}P{1 + k % 40:03d}R{1 + (k // 40) % 2:03d}A{action:03d}"
        if name in names:
            name = name[:-4] + f"A{1 + (k * 7) % 60:03d}"
        if name in names:
            continue
        t = int(rng.integers(frames - 25, frames + 25))
        bodies = 2 if action >= 50 or rng.random() < 0.2 else 1
        text = make_skeleton_text(synthetic_sequence(rng, t, bodies), "\r\n" if k % 2 else "\n")
        (folder / f"{name}.skeleton").write_text(text, newline="")
        names.append(name)
    return names


def write(path: Path, frames, newline="\n", **kw) -> Path:
    path.write_text(make_skeleton_text(frames, newline, **kw), newline="")
    return path


def to_mtvc(sample_ctvm: np.ndarray) -> np.ndarray:
    return sample_ctvm.transpose(3, 1, 2, 0)


# ------------------------------------------------------------------ reader
def test_lf_and_crlf_parse_identically(tmp_path):
    rng = np.random.default_rng(1)
    frames = synthetic_sequence(rng, 20, 2)
    lf = read_skeleton(write(tmp_path / "lf.skeleton", frames, "\n"))
    crlf = read_skeleton(write(tmp_path / "crlf.skeleton", frames, "\r\n"))
    assert lf.joints.shape == (2, 20, 25, 3)
    np.testing.assert_array_equal(lf.joints, crlf.joints)
    np.testing.assert_allclose(lf.joints[1, 3], frames[3][1], atol=1e-5)
    assert lf.num_frames == 20 and lf.present.all()
    assert (lf.body_ids[1] == 72057594037931101).all()
    validate_skeleton_text(make_skeleton_text(frames, "\r\n"), "x")      # the strict checker agrees


def test_more_than_two_bodies_keeps_the_two_most_energetic(tmp_path):
    # energy = spatial spread + motion: same pose, increasing motion (a still body is the noise case)
    still = np.repeat((TEMPLATE + [2.0, 0.0, 4.0])[None], 30, axis=0)
    a = synthetic_body(None, 30, motion=0.10)
    b = synthetic_body(None, 30, motion=0.30, offset=(0.7, 0.0, 3.0))
    frames = [[still[t], a[t], b[t]] for t in range(30)]
    seq = read_skeleton(write(tmp_path / "three.skeleton", frames))
    assert seq.joints.shape[0] == 3 and seq.max_bodies == 3
    energy = body_energy(seq.joints)
    assert energy[2] > energy[1] > energy[0] > 0
    kept = select_bodies(seq.joints, 2)
    np.testing.assert_array_equal(kept[0], seq.joints[2])
    np.testing.assert_array_equal(kept[1], seq.joints[1])


def test_energy_ignores_empty_frames_and_orders_ties_by_slot():
    x = np.zeros((3, 10, 25, 3))
    x[0, :5] = 1.0 + np.arange(5)[:, None, None]          # moves, then absent
    x[1] = 7.0                                             # constant: std 0
    e = body_energy(x)
    assert e[0] == pytest.approx(3 * np.std(np.arange(5.0)))
    assert e[1] == e[2] == 0
    np.testing.assert_array_equal(select_bodies(x, 2)[1], x[1])


def test_by_body_id_regroups_slots(tmp_path):
    rng = np.random.default_rng(3)
    a, b = synthetic_body(rng, 6), synthetic_body(rng, 6, offset=(1, 0, 3))
    frames = [[a[t], b[t]] if t < 3 else [b[t], a[t]] for t in range(6)]
    text = make_skeleton_text(frames[:3], body_ids=[11, 22]).splitlines()
    text2 = make_skeleton_text(frames[3:], body_ids=[22, 11]).splitlines()
    merged = ["6"] + text[1:] + text2[1:]
    path = tmp_path / "swap.skeleton"
    path.write_text("\n".join(merged) + "\n")
    groups = read_skeleton(path).by_body_id()
    assert set(groups) == {11, 22}
    np.testing.assert_allclose(groups[11], a, atol=1e-5)
    np.testing.assert_allclose(groups[22], b, atol=1e-5)


# ------------------------------------------------------------ normalisation
def test_rotation_aligning_maps_onto_target():
    rng = np.random.default_rng(4)
    for _ in range(20):
        v, t = rng.normal(size=3), rng.normal(size=3)
        r = rotation_aligning(v, t)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        np.testing.assert_allclose(r @ v / np.linalg.norm(v), t / np.linalg.norm(t), atol=1e-9)
    np.testing.assert_array_equal(rotation_aligning([0, 0, 0], [0, 0, 1]), np.eye(3))


def _assert_invariants(sample_mtvc: np.ndarray, num_valid: int):
    s = sample_mtvc
    person0 = s[0, :num_valid]
    nonempty = person0.reshape(num_valid, -1).any(axis=1)
    np.testing.assert_allclose(person0[nonempty, LAYOUT.spine], 0.0, atol=1e-6)
    bone = s[0, 0, LAYOUT.spine] - s[0, 0, LAYOUT.hip]
    shoulders = s[0, 0, LAYOUT.right_shoulder] - s[0, 0, LAYOUT.left_shoulder]
    np.testing.assert_allclose(bone / np.linalg.norm(bone), [0, 0, 1], atol=1e-5)
    np.testing.assert_allclose(shoulders / np.linalg.norm(shoulders), [1, 0, 0], atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prenormalise_invariants(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = write(tmp_path / "S001C001P001R001A050.skeleton", synthetic_sequence(rng, 40, 2))
    data, num_frame = ntu_gendata.process_file(path, max_frames=64)
    assert data.shape == (3, 64, 25, 2) and data.dtype == np.float32 and num_frame == 40
    s = to_mtvc(data)
    _assert_invariants(s, 40)
    # body shape preserved: a rigid transform keeps bone lengths
    raw = read_skeleton(path).joints
    kept = select_bodies(raw, 2)
    for p in range(2):
        np.testing.assert_allclose(np.linalg.norm(s[p, :40, 8] - s[p, :40, 4], axis=-1),
                                   np.linalg.norm(kept[p, :, 8] - kept[p, :, 4], axis=-1), atol=1e-5)
    # person 1 shares person 0's frame: its spine is not at the origin
    assert np.abs(s[1, :40, LAYOUT.spine]).max() > 0.5


def test_prenormalise_z_only_on_tilted_shoulders():
    rng = np.random.default_rng(5)
    body = synthetic_body(rng, 10)
    body[:, LAYOUT.right_shoulder] += [0.0, 0.2, 0.1]       # not perpendicular to the spine any more
    s = np.zeros((2, 10, 25, 3), np.float32)
    s[0] = body
    z_only = pre_normalise(s, LAYOUT, axes="MTVC", rotate_x=False)
    bone = z_only[0, 0, LAYOUT.spine] - z_only[0, 0, LAYOUT.hip]
    np.testing.assert_allclose(bone / np.linalg.norm(bone), [0, 0, 1], atol=1e-5)
    both = pre_normalise(s, LAYOUT, axes="MTVC")
    sh = both[0, 0, LAYOUT.right_shoulder] - both[0, 0, LAYOUT.left_shoulder]
    np.testing.assert_allclose(sh / np.linalg.norm(sh), [1, 0, 0], atol=1e-5)
    # (C,T,V,M) input gives the same result in its own layout
    np.testing.assert_allclose(pre_normalise(s.transpose(3, 1, 2, 0), LAYOUT).transpose(3, 1, 2, 0), both, atol=1e-6)


def test_empty_frames_leading_removed_trailing_padded(tmp_path):
    rng = np.random.default_rng(6)
    frames = synthetic_sequence(rng, 12, 1, empty_lead=3, empty_tail=2)
    frames[8] = []                                            # a gap inside the sequence
    path = write(tmp_path / "S001C001P001R001A001.skeleton", frames)
    data, num_frame = ntu_gendata.process_file(path, max_frames=40)
    assert num_frame == 17                                    # the header's frame count
    s = to_mtvc(data)
    # first frame empty: all 11 body frames move to the front (the reference's compaction) ...
    present = s[0].reshape(40, -1).any(axis=1)
    assert present.all()
    raw = read_skeleton(path).joints[0]
    body_frames = raw[raw.reshape(17, -1).any(axis=1)]
    np.testing.assert_allclose(np.linalg.norm(s[0, :11, 3] - s[0, :11, 0], axis=-1),
                               np.linalg.norm(body_frames[:, 3] - body_frames[:, 0], axis=-1), atol=1e-5)
    # ... and the tail repeats the sequence from its start
    np.testing.assert_array_equal(s[0, 11:22], s[0, 0:11])
    np.testing.assert_array_equal(s[0, 33:40], s[0, 0:7])
    assert (s[1] == 0).all()                                  # one body: second person all zero
    _assert_invariants(s, 11)


def test_gap_without_leading_empty_frame_stays_zero(tmp_path):
    rng = np.random.default_rng(9)
    frames = synthetic_sequence(rng, 12, 1, empty_tail=2)
    frames[5] = []
    data, num_frame = ntu_gendata.process_file(write(tmp_path / "S001C001P001R001A001.skeleton", frames),
                                               max_frames=30)
    s = to_mtvc(data)
    assert num_frame == 14
    present = s[0].reshape(30, -1).any(axis=1)
    assert present[:5].all() and not present[5] and present[6:12].all()
    np.testing.assert_array_equal(s[0, 12:24], s[0, 0:12])   # padding starts after the last body frame
    _assert_invariants(s, 12)


# ------------------------------------------------------------------ bad input
def _good_lines():
    rng = np.random.default_rng(7)
    return make_skeleton_text(synthetic_sequence(rng, 3, 1)).splitlines()


def _mutate(kind: str):
    lines = _good_lines()          # line 1 header, 2 body count, 3 info, 4 joint count, 5..29 joints, 30 next frame
    expected_line = None
    if kind == "truncated":
        lines = lines[:40]
        expected_line = 41
    elif kind == "non_numeric_count":
        lines[1] = "one"
        expected_line = 2
    elif kind == "non_numeric_xyz":
        f = lines[9].split()
        f[1] = "abc"
        lines[9] = " ".join(f)
        expected_line = 10
    elif kind == "nan":
        f = lines[35].split()
        f[2] = "nan"
        lines[35] = " ".join(f)
        expected_line = 36
    elif kind == "inf":
        f = lines[6].split()
        f[0] = "inf"
        lines[6] = " ".join(f)
        expected_line = 7
    elif kind == "zero_frames":
        lines = ["0"]
        expected_line = 1
    elif kind == "wrong_joint_count":
        lines[3] = "24"
        expected_line = 4
    elif kind == "short_joint_line":
        lines[12] = " ".join(lines[12].split()[:11])
        expected_line = 13
    elif kind == "wrong_info_fields":
        lines[2] = lines[2] + " 7"
        expected_line = 3
    elif kind == "trailing_data":
        lines.append("5")
        expected_line = len(lines)
    elif kind == "empty":
        lines = []
        expected_line = 1
    return "\n".join(lines) + "\n", expected_line


BAD_KINDS = ["truncated", "non_numeric_count", "non_numeric_xyz", "nan", "inf", "zero_frames",
             "wrong_joint_count", "short_joint_line", "wrong_info_fields", "trailing_data", "empty"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_names_file_and_line(tmp_path, kind):
    text, line = _mutate(kind)
    path = tmp_path / f"bad_{kind}.skeleton"
    path.write_text(text)
    with pytest.raises(SkeletonFormatError) as info:
        read_skeleton(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert str(path) in str(err) and err.line == line, str(err)
    assert f":{line}:" in str(err)
    with pytest.raises(SkeletonFormatError):
        read_skeleton(path, strict=True)


def test_no_body_at_all_is_an_error(tmp_path):
    path = write(tmp_path / "S001C001P001R001A001.skeleton", [[], [], []])
    assert read_skeleton(path).joints.shape == (1, 3, 25, 3)
    with pytest.raises(SkeletonFormatError, match="no body"):
        ntu_gendata.process_file(path)


# ------------------------------------------------------------------ gendata
def _dataset_folder(tmp_path: Path) -> Path:
    """Files chosen to exercise splits and filters (names: S, C, P, R, A)."""
    rng = np.random.default_rng(8)
    folder = tmp_path / "raw"
    folder.mkdir()
    specs = {
        "S001C001P001R001A001": 1, "S001C002P003R001A002": 1, "S002C003P002R002A050": 2,
        "S001C002P007R001A010": 1, "S003C001P008R001A058": 3, "S002C002P045R001A003": 1,
        "S018C001P045R001A061": 1,               # NTU-120 only (setup 18, action 61)
        "S001C002P005R002A008": 1,               # on the official missing list
    }
    for k, (name, bodies) in enumerate(specs.items()):
        frames = synthetic_sequence(rng, 20 + k, bodies, empty_lead=k % 2)
        write(folder / f"{name}.skeleton", frames, "\r\n" if k % 2 else "\n")
    (folder / "README.txt").write_text("not a skeleton")
    return folder


def _load(folder: Path, split: str):
    data = np.load(folder / f"{split}_data_joint.npy", mmap_mode="r")
    frames = np.load(folder / f"{split}_num_frame.npy")
    with open(folder / f"{split}_label.pkl", "rb") as handle:
        names, labels = pickle.load(handle)
    return data, frames, names, labels


def test_gendata_ntu60_splits_labels_and_shapes(tmp_path):
    raw = _dataset_folder(tmp_path)
    out = tmp_path / "out"
    summary = ntu_gendata.gendata(raw, out, "ntu60", max_frames=32, workers=1, progress=False)
    # A061 (NTU-120 only) and the missing-list sample are ignored
    assert summary == {"xsub": {"train": 3, "val": 3}, "xview": {"train": 4, "val": 2}}
    data, frames, names, labels = _load(out / "xsub", "train")
    assert data.shape == (3, 3, 32, 25, 2) and data.dtype == np.float32
    assert names == ["S001C001P001R001A001", "S002C003P002R002A050", "S003C001P008R001A058"]
    assert labels == [0, 49, 57]
    assert frames.tolist() == [20, 22, 24]
    _, _, val_names, _ = _load(out / "xsub", "val")
    assert val_names == ["S001C002P003R001A002", "S001C002P007R001A010", "S002C002P045R001A003"]  # P3, P7, P45
    _, _, xv_train, _ = _load(out / "xview", "train")
    assert xv_train == ["S001C002P003R001A002", "S001C002P007R001A010", "S002C002P045R001A003",
                        "S002C003P002R002A050"]
    # single-body samples have an all-zero second person, 2+ bodies keep two
    full, _, names, _ = _load(out / "xsub", "train")
    assert (full[0, :, :, :, 1] == 0).all() and (full[1, :, :, :, 1] != 0).any()
    assert (full[2, :, :, :, 1] != 0).any()
    for k in range(len(names)):
        _assert_invariants(to_mtvc(np.asarray(full[k])), 16)
    assert not [p for p in out.rglob(".*")], "temporary files left behind"


def test_gendata_ntu120_xset_and_missing_list_options(tmp_path):
    raw = _dataset_folder(tmp_path)
    out = tmp_path / "out"
    summary = ntu_gendata.gendata(raw, out, "ntu120", benchmarks=["xset"], max_frames=32, progress=False,
                                  use_missing_list=False)
    assert summary == {"xset": {"train": 3, "val": 5}}                      # even setups train
    _, _, names, labels = _load(out / "xset", "train")
    assert names == ["S002C002P045R001A003", "S002C003P002R002A050", "S018C001P045R001A061"]
    assert labels == [2, 49, 60]
    _, _, val_names, _ = _load(out / "xset", "val")
    assert "S001C002P005R002A008" in val_names                             # missing list ignored
    assert not (out / "xsub").exists()
    custom = tmp_path / "missing.txt"
    custom.write_text("S018C001P045R001A061\n")
    summary = ntu_gendata.gendata(raw, tmp_path / "out2", "ntu120", benchmarks=["xsub"], max_frames=32,
                                  progress=False, missing_list=custom, limit=5)
    assert sum(summary["xsub"].values()) == 5


def test_workers_give_identical_output(tmp_path):
    raw = tmp_path / "raw"
    write_synthetic_folder(raw, 24, seed=3, frames=40)
    ntu_gendata.gendata(raw, tmp_path / "one", "ntu60", benchmarks=["xsub"], max_frames=64, workers=1,
                        progress=False)
    ntu_gendata.gendata(raw, tmp_path / "two", "ntu60", benchmarks=["xsub"], max_frames=64, workers=2,
                        chunksize=3, flush_every=5, progress=False)
    for split in ("train", "val"):
        a, b = _load(tmp_path / "one" / "xsub", split), _load(tmp_path / "two" / "xsub", split)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1].tolist() == b[1].tolist() and a[2] == b[2] and a[3] == b[3]


def test_rows_written_by_the_workers_are_process_file_outputs(tmp_path):
    """The workers write their rows themselves (no array through the pipe): each row is its file's sample."""
    raw = tmp_path / "raw"
    write_synthetic_folder(raw, 12, seed=5, frames=30)
    ntu_gendata.gendata(raw, tmp_path / "out", "ntu60", benchmarks=["xsub", "xview"], max_frames=48,
                        workers=2, chunksize=2, progress=False)
    for bench in ("xsub", "xview"):
        for split in ("train", "val"):
            data, frames, names, _ = _load(tmp_path / "out" / bench, split)
            for row, name in enumerate(names):
                expected, num_frame = ntu_gendata.process_file(raw / f"{name}.skeleton", max_frames=48)
                np.testing.assert_array_equal(data[row], expected)
                assert frames[row] == num_frame


def test_on_error_skip_records_and_continues(tmp_path):
    raw = _dataset_folder(tmp_path)
    bad = raw / "S001C001P002R001A005.skeleton"                   # performer 2: xsub train
    bad.write_text(_mutate("nan")[0])
    out = tmp_path / "out"
    summary = ntu_gendata.gendata(raw, out, "ntu60", max_frames=32, workers=2, on_error="skip", progress=False)
    assert summary["xsub"] == {"train": 3, "val": 3}
    skipped = (out / "skipped.txt").read_text()
    assert "S001C001P002R001A005.skeleton" in skipped and ":36:" in skipped
    data, frames, names, _ = _load(out / "xsub", "train")
    assert "S001C001P002R001A005" not in names and len(data) == len(frames) == 3
    reference = tmp_path / "ref"
    bad.unlink()
    ntu_gendata.gendata(raw, reference, "ntu60", max_frames=32, progress=False)
    np.testing.assert_array_equal(data, _load(reference / "xsub", "train")[0])


def test_strict_checks_the_fields_the_arrays_do_not_use(tmp_path):
    """A joint's 4th field (depth x) is not converted: accepted by default, named with --strict."""
    raw = _dataset_folder(tmp_path)
    bad = raw / "S001C001P001R001A001.skeleton"
    lines = bad.read_text().split("\n")
    fields = lines[4].split(" ")                                          # frame 1, body 1, joint 1
    assert len(fields) == 12
    lines[4] = " ".join(fields[:3] + ["abc"] + fields[4:])
    bad.write_text("\n".join(lines))
    summary = ntu_gendata.gendata(raw, tmp_path / "lenient", "ntu60", max_frames=32, progress=False)
    assert summary["xsub"]["train"] == 3
    with pytest.raises(SkeletonFormatError) as info:
        ntu_gendata.gendata(raw, tmp_path / "strict", "ntu60", max_frames=32, workers=2, progress=False,
                            strict=True)
    assert info.value.line == 5 and "S001C001P001R001A001" in str(info.value)
    assert ntu_gendata.main(["--data-path", str(raw), "--out-folder", str(tmp_path / "cli"), "--no-progress",
                             "--strict", "--on-error", "skip"]) == 0
    assert "S001C001P001R001A001.skeleton" in (tmp_path / "cli" / "skipped.txt").read_text()


def test_failure_leaves_no_output(tmp_path):
    raw = _dataset_folder(tmp_path)
    (raw / "S003C001P009R001A007.skeleton").write_text(_mutate("truncated")[0])
    out = tmp_path / "out"
    with pytest.raises(SkeletonFormatError, match="S003C001P009R001A007"):
        ntu_gendata.gendata(raw, out, "ntu60", max_frames=32, workers=2, progress=False)
    leftovers = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert leftovers == []
    assert ntu_gendata.main(["--data-path", str(raw), "--out-folder", str(out), "--no-progress",
                             "--workers", "1"]) == 1


def test_help_documents_every_option():
    result = subprocess.run([sys.executable, str(ROOT / "data_gen" / "ntu_gendata.py"), "--help"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for option in ("--data-path", "--out-folder", "--dataset", "--benchmark", "--max-frames", "--workers",
                   "--missing-list", "--ignore-missing-list", "--on-error", "--limit", "--chunksize",
                   "--flush-every", "--no-progress", "--log-level", "--strict"):
        assert option in result.stdout
    parser = ntu_gendata.build_parser()
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help text"


def test_missing_lists_and_split_tables():
    ntu60 = ntu_gendata.load_missing_list(ntu_gendata.DATASETS["ntu60"]["missing_list"])
    ntu120 = ntu_gendata.load_missing_list(ntu_gendata.DATASETS["ntu120"]["missing_list"])
    assert len(ntu60) == 302 and len(ntu120) == 535 and ntu60 <= ntu120
    assert "S001C002P005R002A008" in ntu60 and "S032C003P067R002A077" in ntu120
    xsub60 = ntu_gendata.DATASETS["ntu60"]["benchmarks"]["xsub"][1]
    xsub120 = ntu_gendata.DATASETS["ntu120"]["benchmarks"]["xsub"][1]
    assert len(xsub60) == 20 and len(xsub120) == 53 and xsub60 <= xsub120
    assert ntu_gendata.DATASETS["ntu120"]["benchmarks"]["xset"][1] == frozenset(range(2, 33, 2))


# ------------------------------------------------------------------ real files
def test_real_ntu_samples(ntu_samples_dir):
    files = sorted(ntu_samples_dir.glob("*.skeleton"))
    assert len(files) == 8
    two_body = {"S001C001P001R001A050", "S001C003P008R002A058", "S017C003P020R002A054"}
    for path in files:
        header = int(path.read_text().split()[0])
        seq = read_skeleton(path, strict=True)
        assert seq.num_frames == header and seq.joints.shape[1:] == (header, 25, 3)
        data, num_frame = ntu_gendata.process_file(path)
        assert num_frame == header and data.shape == (3, 300, 25, 2)
        s = to_mtvc(data)
        if path.stem in two_body:
            assert seq.max_bodies >= 2 and (s[1] != 0).any()
        else:
            assert seq.max_bodies == 1 and (s[1] == 0).all()
        assert np.isfinite(s).all()
        np.testing.assert_allclose(s[0, :header, LAYOUT.spine], 0.0, atol=1e-6)
        bone = s[0, 0, LAYOUT.spine] - s[0, 0, LAYOUT.hip]
        assert bone[2] / np.linalg.norm(bone) > 0.99                       # ~ +z (see module docstring)
        shoulders = s[0, 0, LAYOUT.right_shoulder] - s[0, 0, LAYOUT.left_shoulder]
        np.testing.assert_allclose(shoulders / np.linalg.norm(shoulders), [1, 0, 0], atol=1e-5)


def test_real_samples_through_the_cli(ntu_samples_dir, tmp_path):
    out = tmp_path / "out"
    code = ntu_gendata.main(["--data-path", str(ntu_samples_dir), "--out-folder", str(out), "--workers", "1",
                             "--no-progress", "--benchmark", "xview"])
    assert code == 0
    data, frames, names, labels = _load(out / "xview", "val")                  # camera 1
    assert len(names) == 6 and all("C001" in n for n in names)
    assert labels == [int(n[-3:]) - 1 for n in names]
    assert frames.tolist() == [int((ntu_samples_dir / f"{n}.skeleton").read_text().split()[0]) for n in names]


@pytest.mark.parametrize("bad", ["S001C001P001R001A01", "raw/S001C001P001R001A002.skeleton",
                                 "s001c001p001r001a011", "S001C001P001R001A001 S001C001P001R001A002"])
def test_missing_list_bad_line_names_file_and_line(tmp_path, bad):
    path = tmp_path / "missing.txt"
    path.write_text(f"# samples to leave out\n\nS001C002P005R002A008\nS001C002P006R001A008.skeleton  # why\n{bad}\n")
    with pytest.raises(SkeletonFormatError) as info:
        ntu_gendata.load_missing_list(path)
    assert info.value.line == 5 and f"{path}:5:" in str(info.value) and repr(bad) in str(info.value)
    path.write_text("# samples to leave out\n\nS001C002P005R002A008\nS001C002P006R001A008.skeleton  # why\n")
    assert ntu_gendata.load_missing_list(path) == {"S001C002P005R002A008", "S001C002P006R001A008"}
    path.write_text(f"{bad}\n")
    assert ntu_gendata.main(["--data-path", str(tmp_path), "--out-folder", str(tmp_path / "out"),
                             "--missing-list", str(path), "--no-progress", "--workers", "1"]) == 1


def test_a_missing_list_that_does_not_exist_is_named_as_such(tmp_path, caplog):
    """--missing-list with a wrong path said only Python's "[Errno 2] No such file or directory"."""
    absent = tmp_path / "no_such_list.txt"
    with pytest.raises(FileNotFoundError, match="no such missing-skeleton list"):
        ntu_gendata.load_missing_list(absent)
    with caplog.at_level("ERROR"):
        assert ntu_gendata.main(["--data-path", str(tmp_path), "--out-folder", str(tmp_path / "out"),
                                 "--missing-list", str(absent), "--no-progress", "--workers", "1"]) == 1
    assert any(str(absent) in r.getMessage() and "--missing-list" in r.getMessage() for r in caplog.records)


def test_clean_rerun_removes_the_stale_skipped_report(tmp_path, capsys, caplog):
    raw = _dataset_folder(tmp_path)
    bad = raw / "S001C001P002R001A005.skeleton"
    bad.write_text(_mutate("nan")[0])
    out = tmp_path / "out"
    ntu_gendata.gendata(raw, out, "ntu60", benchmarks=["xsub"], max_frames=32, on_error="skip", progress=False)
    assert "S001C001P002R001A005.skeleton" in (out / "skipped.txt").read_text()
    write(bad, synthetic_sequence(np.random.default_rng(1), 20, 1))                 # the file is fixed
    caplog.set_level("INFO")
    assert ntu_gendata.main(["--data-path", str(raw), "--out-folder", str(out), "--benchmark", "xsub",
                             "--max-frames", "32", "--on-error", "skip", "--no-progress", "--workers", "1"]) == 0
    assert not (out / "skipped.txt").exists()
    assert "S001C001P002R001A005" in _load(out / "xsub", "train")[2]
    assert capsys.readouterr().out == ""                                            # the summary is logged
    assert "ntu60/xsub: train 4  val 3" in [r.getMessage() for r in caplog.records]


def test_files_not_named_like_ntu_samples_are_named_in_a_warning(tmp_path, caplog):
    """A .skeleton file whose name is not SsssCcccPpppRrrrAaaa (renamed, lower-case, an upper-case suffix) is
    not converted: the run says which ones, not only how many (an upper-case suffix was not even counted)."""
    raw = _dataset_folder(tmp_path)
    source = (raw / "S001C001P001R001A001.skeleton").read_text()
    odd = ["s001c001p001r001a004.skeleton", "S001C001P001R001A004.SKELETON", "take2.skeleton"]
    for name in odd:
        (raw / name).write_text(source)
    caplog.set_level("INFO")
    summary = ntu_gendata.gendata(raw, tmp_path / "out", "ntu60", benchmarks=["xsub"], max_frames=32,
                                  progress=False)
    assert summary == {"xsub": {"train": 3, "val": 3}}                     # as without the odd files
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "3 .skeleton file(s) ignored" in warnings[0], warnings
    assert all(name in warnings[0] for name in odd)
    assert "3 not named" in " ".join(r.getMessage() for r in caplog.records)


def test_a_rerun_removes_the_bone_and_motion_arrays_of_the_joints_it_replaces(tmp_path, caplog):
    """gen_bone_data / gen_motion_data arrays are made from the joint array beside them: a conversion that
    replaces the joints removes them (they were left with N=3 beside a new N=1 joint array, looking valid); a failed
    conversion leaves everything, and a benchmark the rerun does not write keeps its arrays."""
    from data_gen import gen_bone_data

    raw = _dataset_folder(tmp_path)
    out = tmp_path / "out"
    ntu_gendata.gendata(raw, out, "ntu60", max_frames=32, progress=False)
    folders = [str(out / "xsub"), str(out / "xview")]
    for stream in ("bone", "motion"):
        assert gen_bone_data.stream_main(stream, ["--folder", *folders, "--no-progress"]) == 0
    derived = {f"{split}_data_{stream}.npy" for split in ("train", "val") for stream in ("bone", "motion")}

    def stream_files(folder):
        return {p.name for p in folder.glob("*_data_*.npy")} - {"train_data_joint.npy", "val_data_joint.npy"}

    bad = raw / "S001C001P002R001A005.skeleton"                  # a failed rerun changes nothing
    bad.write_text(_mutate("nan")[0])
    with pytest.raises(SkeletonFormatError):
        ntu_gendata.gendata(raw, out, "ntu60", benchmarks=["xsub"], max_frames=32, progress=False)
    assert stream_files(out / "xsub") == derived
    bad.unlink()

    caplog.set_level("INFO")
    ntu_gendata.gendata(raw, out, "ntu60", benchmarks=["xsub"], max_frames=32, progress=False, limit=3)
    assert np.load(out / "xsub" / "train_data_joint.npy").shape[0] == 1         # 3 before
    assert stream_files(out / "xsub") == set()
    assert stream_files(out / "xview") == derived                   # not rewritten: its arrays still match
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("train_data_bone.npy, train_data_motion.npy" in w and "gen_bone_data" in w for w in warnings)


@pytest.mark.parametrize("option", ["--chunksize", "--flush-every"])
def test_counts_below_one_are_refused_naming_the_option(tmp_path, capsys, option):
    """--chunksize 0 ended in multiprocessing's 'Chunksize must be 1+, not 0' (no option named) after the
    output folders were made; --flush-every 0 was silently read as 1."""
    with pytest.raises(SystemExit) as info:
        ntu_gendata.main(["--data-path", str(tmp_path), "--out-folder", str(tmp_path / "out"), "--workers", "2",
                          option, "0"])
    assert info.value.code == 2
    assert f"argument {option}: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_data_path_above_the_unpacked_archive_is_an_error_naming_the_folder_below(tmp_path, caplog):
    """The NTU archives unpack into nturgb+d_skeletons/: pointing --data-path at the folder above said only
    'no usable ntu60 .skeleton files in RAW'."""
    raw = tmp_path / "RAW"
    write_synthetic_folder(raw / "nturgb+d_skeletons", 2, frames=30)
    assert ntu_gendata.main(["--data-path", str(raw), "--out-folder", str(tmp_path / "out"), "--no-progress",
                             "--workers", "1"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and f"no usable ntu60 .skeleton files in {raw};" in errors[0]
    assert f"(e.g. {raw / 'nturgb+d_skeletons'})" in errors[0]
    (raw / "nturgb+d_skeletons").rename(tmp_path / "elsewhere")                    # an empty folder: no hint
    caplog.clear()
    assert ntu_gendata.main(["--data-path", str(raw), "--out-folder", str(tmp_path / "out"), "--no-progress",
                             "--workers", "1"]) == 1
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"no usable ntu60 .skeleton files in {raw}"]
