"""NTU data preparation against an independent restatement of SCD-Net's ``data_gen/``.

SCD-Net's ``data_gen/ntu_gendata.py`` (``read_skeleton_filter``, ``get_nonzero_std``, ``read_xyz``,
``gendata``) imports ``pre_normalization`` from ``data_gen/preprocess.py``, which is not in its
repository; it is 2s-AGCN's (``lshiwjx/2s-AGCN`` ``data_gen/preprocess.py`` and ``rotation.py``).
The functions below restate what that code computes, in its order and at its precision:

* read: every body of a frame in slot m (its rank in the frame, at most 4 slots), x y z as float64,
  frames without a body zero, ``T`` = the header's frame count;
* energy per slot: over the frames whose coordinates do not sum to 0, the std (ddof 0) of all the
  x values (frames x joints) plus that of the y values plus that of the z values; the 2 largest
  kept, largest first;
* the (3, 300, 25, 2) float32 row, ``num_frame`` = the header's count, then, in float32:
  per person, a first empty frame moves all non-empty frames to the front, then the trailing empty
  frames repeat the sequence; subtract person 0's joint 1 per frame from the joints whose x+y+z is
  not 0; rotate (float64 Euler-Rodrigues matrix, result stored as float32) every non-empty frame
  so that person 0's first-frame joint 0 -> joint 1 is along +z, then, from the stored values,
  joint 4 -> joint 8 along +x.

Ours (:func:`data_gen.ntu_gendata.process_file`) composes the two rotations into one matrix and
applies it in float32, so it differs from the restatement by float32 rounding only: at most
2.4e-7 on the genuine samples, hence ``ATOL``.  Absent joints must be zero in both.
Where the reference's result depends on numpy's unstable ``argsort`` (exactly tied energies) no
case is built here: for duplicate bodies the kept data are the same whichever slot wins.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from data_gen.ntu_gendata import process_file
from tests.test_ntu_gendata import synthetic_sequence, write

MAX_FRAME = 300            # SCD-Net ntu_gendata.py max_frame
KINECT_SLOTS = 4           # ntu_gendata.py max_body_kinect
KEPT_BODIES = 2            # ntu_gendata.py max_body_true
NUM_JOINTS = 25
Z_BONE = (0, 1)            # preprocess.py zaxis: (tail, head) = hip (joint_bottom) -> spine (joint_top)
X_BONE = (4, 8)            # preprocess.py xaxis [8, 4]: (tail, head) = left shoulder -> right shoulder
CENTRE_JOINT = 1           # preprocess.py: person 0's joint 1
EPS = 1e-6                 # rotation.py: below it an axis / angle counts as zero
ATOL = 1e-6                # float32 rounding of the composed vs sequential rotations (see docstring)


def restated_read(path: Path):
    """``(2, T, 25, 3)`` float64 kept bodies, largest energy first, and the header's T."""
    lines = iter(Path(path).read_text().splitlines())
    num_frames = int(next(lines))
    slots = np.zeros((KINECT_SLOTS, num_frames, NUM_JOINTS, 3))
    for t in range(num_frames):
        for m in range(int(next(lines))):
            next(lines)                                           # body info
            for j in range(int(next(lines))):
                xyz = [float(v) for v in next(lines).split()[:3]]
                if m < KINECT_SLOTS and j < NUM_JOINTS:
                    slots[m, t, j] = xyz

    def energy(body):
        valid = body[body.sum(axis=(1, 2)) != 0]
        return sum(valid[:, :, c].std() for c in range(3)) if len(valid) else 0.0

    order = np.argsort([energy(b) for b in slots])[::-1][:KEPT_BODIES]
    return slots[order], num_frames


def _rotation(vector, target):
    """rotation.py's matrix for ``rotation_matrix(cross(v, target), angle_between(v, target))``."""
    v, target = np.asarray(vector, dtype=np.float64), np.asarray(target, dtype=np.float64)
    axis = np.cross(v, target)
    angle = 0.0 if np.abs(v).sum() < EPS else float(np.arccos(np.clip(np.dot(v / np.linalg.norm(v), target), -1, 1)))
    if np.abs(axis).sum() < EPS or abs(angle) < EPS:
        return np.eye(3)
    axis = axis / math.sqrt(np.dot(axis, axis))
    a = math.cos(angle / 2)
    b, c, d = -axis * math.sin(angle / 2)
    return np.array([[a * a + b * b - c * c - d * d, 2 * (b * c + a * d), 2 * (b * d - a * c)],
                     [2 * (b * c - a * d), a * a + c * c - b * b - d * d, 2 * (c * d + a * b)],
                     [2 * (b * d + a * c), 2 * (c * d - a * b), a * a + d * d - b * b - c * c]])


def restated_pre_normalisation(bodies: np.ndarray) -> np.ndarray:
    """``(2, T, 25, 3)`` -> ``(2, MAX_FRAME, 25, 3)`` float32, step by step."""
    s = np.zeros((KEPT_BODIES, MAX_FRAME, NUM_JOINTS, 3), dtype=np.float32)
    s[:, : bodies.shape[1]] = bodies
    if s.sum() == 0:
        return s
    for person in s:                                              # views: edited in place
        if person.sum() == 0:
            continue
        if person[0].sum() == 0:
            kept = person[person.sum(axis=-1).sum(axis=-1) != 0].copy()
            person[:] = 0
            person[: len(kept)] = kept
        for t in range(MAX_FRAME):
            if person[t].sum() == 0 and person[t:].sum() == 0:
                person[t:] = np.concatenate([person[:t]] * -(-(MAX_FRAME - t) // t))[: MAX_FRAME - t]
                break
    centre = s[0, :, CENTRE_JOINT : CENTRE_JOINT + 1].copy()
    for p in range(KEPT_BODIES):
        if s[p].sum() != 0:
            s[p] = (s[p] - centre) * (s[p].sum(axis=-1) != 0)[..., None]
    for (tail, head), target in ((Z_BONE, (0.0, 0.0, 1.0)), (X_BONE, (1.0, 0.0, 0.0))):
        matrix = _rotation(s[0, 0, head] - s[0, 0, tail], target)      # from the values stored so far
        for p in range(KEPT_BODIES):
            if s[p].sum() == 0:
                continue
            frames = s[p].sum(axis=(1, 2)) != 0
            s[p, frames] = (s[p, frames].astype(np.float64) @ matrix.T).astype(np.float32)
    return s


def _assert_like_reference(path: Path):
    bodies, header = restated_read(path)
    expected = restated_pre_normalisation(bodies)
    ours, num_frame = process_file(path)
    ours = ours.transpose(3, 1, 2, 0)                              # (C, T, V, M) -> (M, T, V, C)
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    assert num_frame == header
    np.testing.assert_array_equal(ours == 0, expected == 0)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=ATOL)


def test_genuine_samples_equal_the_restated_reference(ntu_samples_dir):
    files = sorted(ntu_samples_dir.glob("*.skeleton"))
    assert files
    for path in files:
        _assert_like_reference(path)


def _edit(frames, edit):
    frames = [list(bodies) for bodies in frames]
    edit(frames)
    return frames


def _blank(frames, start, stop, keep=0):
    for t in range(start, min(stop, len(frames))):
        frames[t] = frames[t][:keep]


def _swap_start(frames):
    for t in range(10):
        frames[t] = frames[t][1:]


EDGE_CASES = {
    "two_bodies": lambda f: None,
    "leading_empty": lambda f: _blank(f, 0, 5),
    "interior_empty": lambda f: _blank(f, 30, 35),
    "leading_interior_trailing_empty": lambda f: (_blank(f, 0, 3), _blank(f, 20, 24), _blank(f, 60, 10 ** 6)),
    "second_body_late": lambda f: _blank(f, 0, 20, keep=1),
    "second_body_leaves": lambda f: _blank(f, 50, 10 ** 6, keep=1),
    "second_body_in_slot_0_first": _swap_start,
    "five_bodies_per_frame": lambda f: f.__setitem__(slice(None), [b + b[::-1] + b[:1] for b in f]),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_equal_the_restated_reference(tmp_path, case):
    rng = np.random.default_rng(7)
    frames = _edit(synthetic_sequence(rng, num_frames=80, num_bodies=2), EDGE_CASES[case])
    _assert_like_reference(write(tmp_path / "S001C001P001R001A050.skeleton", frames))
