"""Tests for data_gen/synth_gendata.py: NTU text format, determinism, content, separability."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_gen.synth_gendata import SynthOptions, generate_dataset, render_sample
from data_gen.synth_motions import LAYOUT, MOTIONS

ROOT = Path(__file__).resolve().parents[1]
TWO_PERSON = {i + 1 for i, m in enumerate(MOTIONS) if m.persons == 2}


def check_ntu_text(raw: bytes, where: str) -> dict:
    """Strict, independent check of the NTU .skeleton layout; returns a summary."""
    crlf = b"\r\n" in raw
    if crlf:
        assert raw.count(b"\r\n") == raw.count(b"\n"), f"{where}: mixed line endings"
    assert raw.endswith(b"\n"), f"{where}: no final newline"
    lines = raw.decode("ascii").splitlines()
    num_frames = int(lines[0])
    i, bodies_per_frame = 1, []
    for f in range(num_frames):
        nb = int(lines[i])
        assert 0 <= nb <= 4, f"{where}:{i + 1}: body count {nb}"
        bodies_per_frame.append(nb)
        i += 1
        for _ in range(nb):
            info = lines[i].split()
            assert len(info) == 10, f"{where}:{i + 1}: body info has {len(info)} fields"
            assert info[0].isdigit() and len(info[0]) == 17, f"{where}:{i + 1}: body id {info[0]}"
            [float(v) for v in info[1:]]
            assert lines[i + 1].strip() == "25", f"{where}:{i + 2}: joint count {lines[i + 1]!r}"
            for k in range(25):
                fields = lines[i + 2 + k].split()
                assert len(fields) == 12, f"{where}:{i + 3 + k}: {len(fields)} fields"
                values = [float(v) for v in fields]
                assert values[11] in (0.0, 1.0, 2.0)
            i += 27
    assert i == len(lines), f"{where}: {len(lines) - i} trailing lines"
    return {"frames": num_frames, "bodies": bodies_per_frame, "crlf": crlf}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    opts = dict(num_classes=10, performers=[1, 3], cameras=[1, 2], replications=[1], seed=3,
                crlf_fraction=0.5, empty_lead_fraction=0.2)
    paths = generate_dataset(out, progress=False, **opts)
    return out, paths, opts


def test_files_are_valid_ntu_text(small_set):
    out, paths, opts = small_set
    assert len(paths) == 10 * 2 * 2
    assert [p.name for p in paths] == sorted(p.name for p in out.glob("*.skeleton"))
    summaries = {p.name: check_ntu_text(p.read_bytes(), p.name) for p in paths}
    assert {s["crlf"] for s in summaries.values()} == {True, False}
    for name, s in summaries.items():
        action = int(name[17:20])
        nonempty = [b for b in s["bodies"] if b]
        expected = 2 if action in TWO_PERSON else 1
        assert set(nonempty) == {expected}, name
        assert 40 <= len(nonempty) <= 300, name
    assert any(0 in s["bodies"] for s in summaries.values())  # some leading zero-body frames
    names = (out / "class_names.txt").read_text().splitlines()
    assert names == [m.name for m in MOTIONS[:10]]
    assert len(TWO_PERSON & set(range(1, 11))) >= 2


def test_checker_accepts_real_ntu_files(ntu_samples_dir):
    paths = sorted(ntu_samples_dir.glob("*.skeleton"))
    assert len(paths) == 8                                  # an empty folder must not pass silently
    for path in paths:
        summary = check_ntu_text(path.read_bytes(), path.name)
        assert summary["frames"] == len(summary["bodies"]) > 0, path.name
        expected = 2 if int(path.stem[17:20]) >= 50 else 1  # A050-A060: two-person actions
        assert max(summary["bodies"]) == expected, path.name


def test_deterministic_for_seed(tmp_path, small_set):
    _, paths, opts = small_set
    again = generate_dataset(tmp_path / "a", progress=False, **opts)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]
    other = generate_dataset(tmp_path / "b", progress=False, **{**opts, "seed": 4})
    assert other[0].read_bytes() != paths[0].read_bytes()


def test_lengths_respect_bounds(tmp_path):
    paths = generate_dataset(tmp_path, progress=False, num_classes=4, performers=[1, 2], cameras=[1],
                             replications=[1, 2], min_frames=50, max_frames=60, empty_lead_fraction=0.0)
    frames = [int(p.read_text().split("\n", 1)[0]) for p in paths]
    assert min(frames) >= 50 and max(frames) <= 60


def test_body_is_physically_consistent():
    """Noise-free: bone lengths fixed over time and across classes; feet on a floor; depth ~2.5-4 m."""
    opts = SynthOptions(noise=0.0)
    bones = []
    for action in (1, 6, 8):
        _, cam = render_sample(opts, 1, 2, 5, 1, action, crlf=False)
        child, parent = np.array(LAYOUT.inward).T
        length = np.linalg.norm(cam[:, 0, child] - cam[:, 0, parent], axis=-1)  # (T, 24)
        assert length.std(0).max() < 1e-6
        bones.append(length[0])
        assert 2.0 < cam[..., 2].mean() < 4.5
        head = LAYOUT.joint_names.index("head")
        feet = [LAYOUT.joint_names.index(n) for n in ("foot_left", "foot_right")]
        assert (cam[:, 0, head, 1] > cam[:, 0, feet, 1].max(-1)).all()  # upright (y up)
    assert np.allclose(bones[0], bones[1]) and np.allclose(bones[0], bones[2])


def test_first_frame_is_neutral_but_sequences_differ():
    """Same take, two classes: first frames nearly equal, later frames clearly not."""
    opts = SynthOptions(noise=0.0, time_warp=0.0)
    _, a = render_sample(opts, 1, 2, 4, 1, 2, crlf=False)   # raise right hand
    _, b = render_sample(opts, 1, 2, 4, 1, 6, crlf=False)   # sit down
    centre = lambda x: x - x[:, :, LAYOUT.spine:LAYOUT.spine + 1]  # noqa: E731
    a, b = centre(a), centre(b)
    assert np.abs(a[0] - b[0]).max() < 0.15
    assert np.abs(a[len(a) // 2] - b[len(b) // 2]).max() > 0.3


def test_bad_options_raise(tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        generate_dataset(tmp_path, progress=False, num_classes=len(MOTIONS) + 1)
    with pytest.raises(TypeError, match="unknown"):
        generate_dataset(tmp_path, progress=False, colour="red")


def test_cli_help():
    result = subprocess.run([sys.executable, str(ROOT / "data_gen" / "synth_gendata.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for flag in ("--out", "--num-classes", "--performers", "--cameras", "--replications", "--seed",
                 "--min-frames", "--max-frames", "--noise", "--crlf-fraction"):
        assert flag in result.stdout


def _bench():
    spec = importlib.util.spec_from_file_location("synth_separability", ROOT / "bench" / "synth_separability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def xsub_set(tmp_path_factory):
    """10 classes x performers 1-8 x camera 2 x 2 replications (x-sub: 100 train, 60 test)."""
    raw = tmp_path_factory.mktemp("synth_xsub") / "raw"
    generate_dataset(raw, progress=False, num_classes=10, performers=range(1, 9), cameras=[2],
                     replications=[1, 2], seed=1, crlf_fraction=0.5)
    return raw


def test_static_pose_is_not_enough_but_motion_is(xsub_set):
    """1-NN x-sub: first frame near chance, whole sequence far better (own reader, small set)."""
    result = _bench().evaluate(xsub_set, reader="own")
    assert result["first_frame_1nn"] < result["person_count_floor"] + 0.1
    assert result["sequence_1nn"] > 0.75
    assert result["sequence_1nn"] - result["first_frame_1nn"] > 0.5


def test_project_gendata_reads_the_demo_set(xsub_set, tmp_path):
    """The same data_gen/ntu_gendata.py path runs on the synthetic files (x-sub arrays, separability)."""
    import data_gen.ntu_gendata  # noqa: F401  (a plain import: a broken module fails here, it is not skipped)
    result = _bench().evaluate(xsub_set, tmp_path / "work", reader="gendata")
    assert result["reader"] == "gendata"
    assert (result["train"], result["test"]) == (10 * 5 * 2, 10 * 3 * 2)
    assert result["sequence_1nn"] - result["first_frame_1nn"] > 0.5


def test_a_folder_with_other_skeleton_files_is_refused(tmp_path):
    """Rerun with fewer classes into the same folder: the old A003 files stayed beside a 2-class
    class_names.txt, and ntu_gendata read them as a third class."""
    small = dict(performers=[1], cameras=[1], replications=[1], progress=False)
    first = generate_dataset(tmp_path, num_classes=3, **small)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match=r"holds 1 \.skeleton file\(s\) that these options do not write "
                                         r"\(e\.g\. S001C001P001R001A003\.skeleton\)"):
        generate_dataset(tmp_path, num_classes=2, **small)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before       # nothing written
    assert generate_dataset(tmp_path, num_classes=3, seed=5, **small) == first   # same ids: rewritten
    assert first[0].read_bytes() != before[first[0].name]


def test_cli_option_errors_are_one_line_and_exit_1(tmp_path):
    """--num-classes 0 ended in a ValueError traceback."""
    result = subprocess.run([sys.executable, str(ROOT / "data_gen" / "synth_gendata.py"), "--out", str(tmp_path / "o"),
                             "--num-classes", "0", "--no-progress"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "ERROR data_gen: num_classes must be in 1..17" in result.stderr


@pytest.mark.parametrize("options, match", [
    ({"style_jitter": 1.5}, r"style_jitter must be below 1"),
    ({"noise": float("nan")}, r"noise must be a finite number >= 0, got nan"),
    ({"time_warp": float("inf")}, r"time_warp must be a finite number >= 0, got inf"),
])
def test_option_values_that_would_generate_nonsense_are_refused(options, match):
    """--style-jitter above 1 scaled motion curves by negative factors (mirrored motions) and --noise nan wrote NaN
    coordinates; both passed the checks."""
    with pytest.raises(ValueError, match=match):
        SynthOptions(**options).validate()
