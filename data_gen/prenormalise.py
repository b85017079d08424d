"""SCD-Net / 2s-AGCN skeleton pre-normalisation, vectorised, one sample at a time.

Input and output: one sample, either ``(M, T, V, C)`` (persons first) or
``(C, T, V, M)`` (the on-disk layout); the result has the input's layout and is
float32.  ``T`` is the padded length (``--max-frames``, 300 for NTU), ``C = 3``.

The steps reproduce ``pre_normalization`` of 2s-AGCN / SCD-Net
(acsar_facts.md §6), with the joint indices taken from a :class:`net.graph.Layout`:

1. per person: if its first frame is empty, move all its non-empty frames to the
   front (this drops the leading empty frames); then fill the trailing empty
   frames by repeating the sequence from its start;
2. subtract person 0's ``layout.spine`` joint, frame by frame, from every joint
   that is present (non-zero), of both persons;
3. rotate so that person 0's first-frame bone ``layout.hip -> layout.spine``
   is parallel to +z;
4. then rotate so that person 0's first-frame ``right_shoulder - left_shoulder``
   is parallel to +x.

Steps 3 and 4 are composed into one matrix applied to every joint of the
present persons (absent joints are zero and stay zero); the reference applies
them one after the other to the non-empty frames (float64 matrix, float32 storage
after each), which gives the same result up to float32 rounding (at most 2.4e-7 on
the genuine NTU samples; tests/test_ntu_scdnet_reference.py).

Step 4 rotates about ``(r - l) x e_x``; like the reference it can tilt the bone
of step 3 when the shoulder line is not perpendicular to it (for real bodies it
nearly is).  Degenerate vectors (zero, or anti-parallel to the target: the
reference's cross product is then zero) leave the sample unrotated, as in the
reference.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from net.graph import Layout

__all__ = ["pre_normalise", "pre_normalise_inplace", "mtvc_to_ctvm", "rotation_aligning", "detect_axes"]

# Below these the reference treats an axis / angle as zero and returns the identity.
_AXIS_EPS = 1e-6
_ANGLE_EPS = 1e-6


def detect_axes(shape) -> str:
    """``"MTVC"`` or ``"CTVM"`` for a 4-D sample shape (C is the axis of size 3)."""
    if len(shape) != 4:
        raise ValueError(f"expected a 4-D sample (M,T,V,C) or (C,T,V,M), got shape {tuple(shape)}")
    first, last = shape[0] == 3, shape[-1] == 3
    if last and not first:
        return "MTVC"
    if first and not last:
        return "CTVM"
    raise ValueError(f"cannot tell (M,T,V,C) from (C,T,V,M) for shape {tuple(shape)}; pass axes=")


def rotation_aligning(vector: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 3) rotation about ``vector x target`` taking ``vector``'s direction onto ``target``'s.

    Identity when the cross product or the angle is (numerically) zero, as in
    the reference implementation.
    """
    v = np.asarray(vector, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    # v x t, the products and differences of np.cross (which costs more than the rest here)
    axis = np.array([v[1] * t[2] - v[2] * t[1], v[2] * t[0] - v[0] * t[2], v[0] * t[1] - v[1] * t[0]])
    nv, nt = np.linalg.norm(v), np.linalg.norm(t)
    if np.abs(axis).sum() < _AXIS_EPS or nv == 0 or nt == 0:
        return np.eye(3)
    angle = np.arccos(np.clip(np.dot(v / nv, t / nt), -1.0, 1.0))
    if abs(angle) < _ANGLE_EPS:
        return np.eye(3)
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * (kx @ kx)


def _compact_persons(s: np.ndarray) -> List[int]:
    """Step 1 without the tail fill, in place on ``(M, T, V, C)``; returns each person's period.

    A person whose first frame is empty gets its non-empty frames moved to the front.
    The period is the number of frames up to the last non-empty one (0 for an absent
    person); frames from there on are empty and are filled by :func:`_repeat_fill`.
    """
    num_frames = s.shape[1]
    frame_sum = s.sum(axis=(2, 3))                      # (M, T)
    periods = []
    for p in range(s.shape[0]):                          # M <= 2: a loop over persons only
        nonzero = frame_sum[p] != 0
        if not nonzero.any():
            periods.append(0)
            continue
        if not nonzero[0]:
            kept = s[p][nonzero].copy()
            s[p] = 0
            s[p, : len(kept)] = kept
            periods.append(len(kept))
        else:
            periods.append(int(np.flatnonzero(nonzero)[-1]) + 1)
    return periods


def _repeat_fill(person: np.ndarray, period: int) -> None:
    """``(T, V, C)`` in place: frame ``t >= period`` becomes a copy of frame ``t % period``."""
    num_frames, filled = person.shape[0], period
    while 0 < filled < num_frames:                       # doubling copies: O(log(T / period)) calls
        step = min(filled, num_frames - filled)
        person[filled : filled + step] = person[:step]
        filled += step


def _centre(person: np.ndarray, centre: np.ndarray) -> None:
    """``person`` ``(t, V, 3)`` -= ``centre`` ``(t, 3)`` in place, only at present (non-zero) joints.

    A joint is present when x + y + z != 0, summed left to right in float32 (what
    ``person.sum(axis=-1)`` computes for a length-3 axis, at a fraction of the cost).
    """
    present = ((person[..., 0] + person[..., 1]) + person[..., 2] != 0).astype(person.dtype)   # (t, V)
    person -= centre[:, None, :] * present[..., None]


def pre_normalise_inplace(s: np.ndarray, layout: Layout, rotate_z: bool = True,
                          rotate_x: bool = True) -> np.ndarray:
    """:func:`pre_normalise` of a C-contiguous float32 ``(M, T, V, C)`` sample, in place; returns it.

    Same arithmetic as the step-by-step procedure, done on fewer frames: a person's
    tail frames are copies of its first ``period`` frames, and so are person 0's
    spine positions, so centring the first ``period`` frames and then filling the
    tail gives the same numbers (a person whose period differs from person 0's is
    filled first and centred on all T frames).  The rotation is applied to all frames.
    """
    if s.dtype != np.float32 or s.ndim != 4 or not s.flags.c_contiguous:
        raise ValueError(f"pre_normalise_inplace needs a C-contiguous float32 (M,T,V,C) array, "
                         f"got {s.dtype} {s.shape}")
    present = [p for p in range(s.shape[0]) if s[p].sum() != 0]
    if not present:
        return s
    periods = _compact_persons(s)
    # 2. centre on person 0's (filled) spine joint, only where a joint is present.  Person 0
    #    without any non-empty frame means a zero centre: nothing to subtract.
    lead = periods[0]
    centre = s[0, :lead, layout.spine, :].copy()                           # (period, C)
    for p in range(s.shape[0]):                                             # M <= 2
        centred = p in present and lead > 0
        if centred and periods[p] == lead:
            _centre(s[p, :lead], centre)
            _repeat_fill(s[p], lead)
            continue
        _repeat_fill(s[p], periods[p])
        if centred:
            full = np.empty((s.shape[1], s.shape[3]), dtype=s.dtype)
            full[:lead] = centre
            _repeat_fill(full, lead)
            _centre(s[p], full)

    # 3./4. align person 0's first-frame hip->spine with +z, then shoulders with +x.
    rotation = np.eye(3)
    if rotate_z:
        bone = s[0, 0, layout.spine].astype(np.float64) - s[0, 0, layout.hip]
        rotation = rotation_aligning(bone, np.array([0.0, 0.0, 1.0]))
    if rotate_x:
        shoulders = s[0, 0, layout.right_shoulder].astype(np.float64) - s[0, 0, layout.left_shoulder]
        rotation = rotation_aligning(rotation @ shoulders, np.array([1.0, 0.0, 0.0])) @ rotation
    if not np.array_equal(rotation, np.eye(3)):
        rt = rotation.T.astype(np.float32)
        for p in present:
            s[p] = s[p] @ rt
    return s


def mtvc_to_ctvm(s: np.ndarray) -> np.ndarray:
    """``(M, T, V, C) -> (C, T, V, M)`` C-contiguous copy.

    One strided copy per (c, m) pair with a long inner loop, several times faster than
    ``np.ascontiguousarray(s.transpose(3, 1, 2, 0))`` whose inner loop runs over M (= 2).
    """
    m, t, v, c = s.shape
    out = np.empty((c, t, v, m), dtype=s.dtype)
    src, dst = s.reshape(m, t * v, c), out.reshape(c, t * v, m)
    for ci in range(c):                                  # C * M = 6 copies of T * V values
        for mi in range(m):
            dst[ci, :, mi] = src[mi, :, ci]
    return out


def pre_normalise(data: np.ndarray, layout: Layout, axes: Optional[str] = None,
                  rotate_z: bool = True, rotate_x: bool = True) -> np.ndarray:
    """Pre-normalise one sample (see the module docstring); returns float32 in the input layout.

    Args:
        data: ``(M, T, V, C)`` or ``(C, T, V, M)`` joint coordinates, zeros = absent.
        layout: supplies ``hip``, ``spine``, ``left_shoulder``, ``right_shoulder``.
        axes: ``"MTVC"`` or ``"CTVM"``; guessed from the shape when omitted.
        rotate_z, rotate_x: switch off steps 3 / 4 (tests, ablations).

    The two rotations are composed into one matrix (the second is computed from
    the rotated shoulder vector) and applied to every joint of the present
    persons; absent joints are zero and stay zero.  The input is not modified
    (see :func:`pre_normalise_inplace` to skip the copy).
    """
    axes = axes or detect_axes(data.shape)
    if axes == "CTVM":
        s = np.transpose(np.asarray(data), (3, 1, 2, 0))
    elif axes == "MTVC":
        s = np.asarray(data)
    else:
        raise ValueError(f"axes must be 'MTVC' or 'CTVM', got {axes!r}")
    if s.shape[2] != layout.num_joints:
        raise ValueError(f"pre_normalise: {s.shape[2]} joints but layout {layout.name} has {layout.num_joints}")
    s = pre_normalise_inplace(np.array(s, dtype=np.float32, order="C", copy=True), layout, rotate_z, rotate_x)
    if axes == "CTVM":
        return mtvc_to_ctvm(s)
    return s
