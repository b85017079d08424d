"""data_gen/gen_bone_data.py and gen_motion_data.py: chunked memmap conversion of joint arrays."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_gen import gen_bone_data
from feeder.skeleton_ops import to_bone, to_motion
from net.graph import get_layout

ROOT = Path(__file__).resolve().parents[1]


def _joint_folder(tmp_path, n=7, v=25, t=12):
    folder = tmp_path / "xsub"
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", n), ("val", 3)):
        x = rng.normal(size=(count, 3, t, v, 2)).astype(np.float32)
        np.save(folder / f"{split}_data_joint.npy", x)
        arrays[split] = x
    return folder, arrays


def test_bone_and_motion_match_skeleton_ops_across_chunks(tmp_path):
    folder, arrays = _joint_folder(tmp_path)
    assert gen_bone_data.stream_main("bone", ["--folder", str(folder), "--chunk", "3", "--no-progress"]) == 0
    assert gen_bone_data.stream_main("motion", ["--folder", str(folder), "--chunk", "2", "--no-progress"]) == 0
    layout = get_layout("ntu25")
    for split, x in arrays.items():
        bone = np.load(folder / f"{split}_data_bone.npy")
        motion = np.load(folder / f"{split}_data_motion.npy")
        assert bone.shape == motion.shape == x.shape and bone.dtype == np.float32
        np.testing.assert_allclose(bone, to_bone(x, layout), atol=1e-6)
        np.testing.assert_allclose(motion, to_motion(x), atol=1e-6)
        assert (motion[:, :, -1] == 0).all()
        # centre joint's bone is zero, child bone = child - parent
        assert (bone[..., layout.center, :] == 0).all()
        np.testing.assert_allclose(bone[..., 0, :], x[..., 0, :] - x[..., 1, :], atol=1e-6)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_layout_inferred_from_joint_count(tmp_path):
    folder, arrays = _joint_folder(tmp_path, n=2, v=20)
    gen_bone_data.convert_split(folder, "train", "bone",
                                lambda x: to_bone(x, gen_bone_data.layout_for_joints(20)), progress=False)
    np.testing.assert_allclose(np.load(folder / "train_data_bone.npy"),
                               to_bone(arrays["train"], get_layout("kinect_v1")), atol=1e-6)
    with pytest.raises(ValueError, match="cannot infer"):
        gen_bone_data.layout_for_joints(21)


def test_missing_joint_file_fails_cleanly(tmp_path):
    assert gen_bone_data.stream_main("bone", ["--folder", str(tmp_path), "--no-progress"]) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stream", ["bone", "motion"])
@pytest.mark.parametrize("damage", ["truncated", "not-5d"])
def test_a_malformed_joint_file_is_one_error_naming_it(tmp_path, caplog, stream, damage):
    """A joint array cut short (a copy that stopped) or of the wrong rank: exit code 1 and one ERROR line that
    names the file; the bone script read the joint count itself and ended with the bare numpy message
    ("mmap length is greater than file size") or an IndexError traceback."""
    folder, _ = _joint_folder(tmp_path, n=4)
    path = folder / "train_data_joint.npy"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    else:
        np.save(path, np.zeros((4, 3, 12), np.float32))
    with caplog.at_level("ERROR"):
        code = gen_bone_data.stream_main(stream, ["--folder", str(folder), "--splits", "train", "--no-progress"])
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert code == 1 and len(errors) == 1 and str(path) in errors[0], errors
    assert not (folder / f"train_data_{stream}.npy").exists()


@pytest.mark.parametrize("script", ["gen_bone_data.py", "gen_motion_data.py"])
def test_help(script):
    out = subprocess.run([sys.executable, str(ROOT / "data_gen" / script), "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "--folder" in out.stdout and "--chunk" in out.stdout


@pytest.mark.parametrize("stream", ["bone", "motion"])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_chunk_below_one_is_refused_before_anything_is_written(tmp_path, capsys, stream, value):
    """``--chunk -5`` wrote all-zero bone / motion arrays (range() with a negative step copies no chunk) and
    exited 0; ``--chunk 0`` failed in range() naming no option."""
    folder, _ = _joint_folder(tmp_path, n=4)
    with pytest.raises(SystemExit) as exit_info:
        gen_bone_data.stream_main(stream, ["--folder", str(folder), "--chunk", value, "--no-progress"])
    assert exit_info.value.code == 2
    assert "argument --chunk: expected an integer >= 1, got" in capsys.readouterr().err
    assert not list(folder.glob(f"*_data_{stream}.npy"))



@pytest.mark.parametrize("stream", ["bone", "motion"])
def test_an_output_that_cannot_be_written_is_one_error_naming_it(tmp_path, caplog, stream):
    """The target is a folder (any OSError beyond a missing file: no permission, a full disk): exit code 1 and one
    ERROR line naming it; before, only FileNotFoundError was caught and this ended in a traceback."""
    folder, _ = _joint_folder(tmp_path, n=4)
    target = folder / f"train_data_{stream}.npy"
    target.mkdir()
    with caplog.at_level("ERROR"):
        code = gen_bone_data.stream_main(stream, ["--folder", str(folder), "--splits", "train", "--no-progress"])
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert code == 1 and len(errors) == 1 and f"train_data_{stream}.npy" in errors[0], errors
    assert target.is_dir() and not list(target.iterdir())
