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
them one after the other to the non-empty frames, which gives the same result.

Step 4 rotates about ``(r - l) x e_x``; like the reference it can tilt the bone
of step 3 when the shoulder line is not perpendicular to it (for real bodies it
nearly is).  Degenerate vectors (zero, or anti-parallel to the target: the
reference's cross product is then zero) leave the sample unrotated, as in the
reference.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from net.graph import Layout

__all__ = ["pre_normalise", "rotation_aligning", "pad_persons", "detect_axes"]

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
    axis = np.cross(v, t)
    nv, nt = np.linalg.norm(v), np.linalg.norm(t)
    if np.abs(axis).sum() < _AXIS_EPS or nv == 0 or nt == 0:
        return np.eye(3)
    angle = np.arccos(np.clip(np.dot(v / nv, t / nt), -1.0, 1.0))
    if abs(angle) < _ANGLE_EPS:
        return np.eye(3)
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * (kx @ kx)


def pad_persons(s: np.ndarray) -> np.ndarray:
    """Step 1 in place on ``(M, T, V, C)``: drop leading empty frames, repeat to fill the tail."""
    num_frames = s.shape[1]
    frame_sum = s.sum(axis=(2, 3))                      # (M, T)
    for p in range(s.shape[0]):                          # M <= 2: a loop over persons only
        nonzero = frame_sum[p] != 0
        if not nonzero.any():
            continue
        if not nonzero[0]:
            kept = s[p][nonzero].copy()
            s[p] = 0
            s[p, : len(kept)] = kept
            nonzero = np.zeros(num_frames, dtype=bool)
            nonzero[: len(kept)] = True
        valid = int(np.flatnonzero(nonzero)[-1]) + 1     # frames after this are all empty
        if valid < num_frames:
            reps = -(-(num_frames - valid) // valid)
            s[p, valid:] = np.concatenate([s[p, :valid]] * reps, axis=0)[: num_frames - valid]
    return s


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
    persons; absent joints are zero and stay zero.
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
    s = np.array(s, dtype=np.float32, order="C", copy=True)

    present = [p for p in range(s.shape[0]) if s[p].sum() != 0]
    if present:
        pad_persons(s)

        # 2. centre on person 0's spine joint, only where a joint is present.
        centre = s[0, :, layout.spine, :].copy()                           # (T, C)
        for p in present:                                                   # M <= 2
            mask = s[p].sum(axis=-1) != 0                                   # (T, V)
            s[p] -= centre[:, None, :] * mask[..., None]

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

    if axes == "CTVM":
        return np.ascontiguousarray(np.transpose(s, (3, 1, 2, 0)))
    return s
