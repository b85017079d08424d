"""Fast, strict reader for NTU RGB+D ``.skeleton`` text files, and body selection.

Format (shared/data/README.md): line 1 = number of frames; per frame a line
with the number of bodies; per body one line of 10 fields (bodyID ...
trackingState), one line with the joint count (25), then one line of 12 fields
per joint (x y z depthX depthY colorX colorY orientationW..Z trackingState).
CRLF and LF files are both accepted.

Shapes:
    :func:`read_skeleton` -> :class:`SkeletonSequence` with ``joints`` of shape
    ``(S, T, V, 3)``: S body *slots* (the m-th body listed in a frame goes to slot
    m, the SCD-Net / 2s-AGCN convention, at most ``max_bodies`` = 4), T = the
    header's frame count (frames without a body stay zero).
    :func:`select_bodies` ``(S, T, V, 3) -> (num, T, V, 3)``, the ``num`` slots with
    the largest energy (sum over x, y, z of the std over the non-zero frames).

Speed: the file is read once and tokenised with ``str.split``; the body records
have a fixed size, so a loop over frames/bodies (never joints) finds where each
joint block starts, and the x, y, z tokens of all joints are gathered and
converted in one numpy call.  Only the fields the pipeline uses (counts, body
ids, x y z) are converted on that path; any inconsistency (wrong counts, a
non-numeric or non-finite value, a field count that breaks the record
structure, trailing data) falls back to a line-by-line validator that raises
:class:`SkeletonFormatError` naming the file, the line and what was expected.
``strict=True`` runs that validator on every file (all 12 joint fields).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

__all__ = [
    "SkeletonFormatError", "SkeletonSequence", "read_skeleton", "parse_skeleton_text",
    "validate_skeleton_text", "body_energy", "select_bodies", "BODY_INFO_FIELDS",
    "JOINT_FIELDS", "NTU_NUM_JOINTS", "KINECT_MAX_BODIES",
]

BODY_INFO_FIELDS = 10          # bodyID clippedEdges ... trackingState
JOINT_FIELDS = 12              # x y z depthX depthY colorX colorY orientationWXYZ trackingState
NTU_NUM_JOINTS = 25            # Kinect v2
KINECT_MAX_BODIES = 4          # slots kept by the reference reader (read_xyz max_body)

PathLike = Union[str, Path]


class SkeletonFormatError(ValueError):
    """A ``.skeleton`` (or other skeleton text) file does not follow its format.

    ``str(error)`` reads ``"<file>:<line>: <what was expected>"``; the parts are
    also available as ``.path``, ``.line`` and ``.reason``.
    """

    def __init__(self, path: PathLike, line: Optional[int], reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # keep the three fields across multiprocessing
        return (type(self), (self.path, self.line, self.reason))


@dataclass
class SkeletonSequence:
    """One parsed ``.skeleton`` file.

    Attributes:
        name: sample name (file stem, e.g. ``S001C001P001R001A001``).
        num_frames: the header's frame count T.
        joints: ``(S, T, V, 3)`` float32 x y z in metres, slot order, zero = absent.
        present: ``(S, T)`` bool, slot s holds a body in frame t.
        body_ids: ``(S, T)`` int64 Kinect body id per slot and frame (-1 = absent).
        bodies_per_frame: ``(T,)`` int, the per-frame body counts as in the file.
    """

    name: str
    num_frames: int
    joints: np.ndarray
    present: np.ndarray
    body_ids: np.ndarray
    bodies_per_frame: np.ndarray

    @property
    def max_bodies(self) -> int:
        """Largest number of bodies in one frame (may exceed the number of slots)."""
        return int(self.bodies_per_frame.max(initial=0))

    def by_body_id(self) -> Dict[int, np.ndarray]:
        """``{body_id: (T, V, 3)}``: the joints regrouped by tracked body id instead of slot."""
        out: Dict[int, np.ndarray] = {}
        for body_id in np.unique(self.body_ids[self.present]):
            where = self.present & (self.body_ids == body_id)            # (S, T)
            arr = np.zeros(self.joints.shape[1:], dtype=self.joints.dtype)
            slot, frame = np.nonzero(where)
            arr[frame] = self.joints[slot, frame]
            out[int(body_id)] = arr
        return out


def _error(path, line, reason):
    return SkeletonFormatError(path, line, reason)


def _parse_count(token: str) -> int:
    value = int(token)                    # ValueError on '3.5', 'abc'
    if value < 0:
        raise ValueError("negative count")
    return value


def parse_skeleton_text(text: Union[str, bytes], path: PathLike = "<text>", max_bodies: int = KINECT_MAX_BODIES,
                        num_joints: int = NTU_NUM_JOINTS) -> SkeletonSequence:
    """Parse the content of a ``.skeleton`` file (fast path; on any error the validator explains it)."""
    raw = text.encode("ascii", errors="replace") if isinstance(text, str) else bytes(text)
    try:
        return _parse_fast(raw, path, max_bodies, num_joints)
    except SkeletonFormatError:
        raise
    except (ValueError, IndexError, OverflowError):
        pass
    try:
        decoded = raw.decode("ascii") if not isinstance(text, str) else text
    except UnicodeDecodeError as exc:
        raise _error(path, raw[: exc.start].count(b"\n") + 1, "non-ASCII byte: expected plain numbers") from None
    validate_skeleton_text(decoded, path, num_joints)
    # The validator found nothing wrong line by line: report what the fast path saw.
    raise _error(path, None, "inconsistent record structure (no single line to blame)")


def _parse_fast(raw: bytes, path: PathLike, max_bodies: int, num_joints: int) -> SkeletonSequence:
    tokens = raw.split()
    if not tokens:
        raise _error(path, 1, "empty file: expected the number of frames on line 1")
    num_frames = _parse_count(tokens[0])
    if num_frames == 0:
        raise _error(path, 1, "the header says 0 frames: expected at least one frame")
    body_record = 1 + BODY_INFO_FIELDS + num_joints * JOINT_FIELDS   # info + joint count + joints
    joint_token = str(num_joints).encode()
    bodies_per_frame = [0] * num_frames
    id_pos: List[int] = []        # token index of the body id of each kept (slot < max_bodies) body
    slots: List[int] = []
    frames: List[int] = []
    pos = 1
    for t in range(num_frames):
        nb = _parse_count(tokens[pos])
        bodies_per_frame[t] = nb
        pos += 1
        for m in range(nb):
            if tokens[pos + BODY_INFO_FIELDS] != joint_token and int(tokens[pos + BODY_INFO_FIELDS]) != num_joints:
                raise ValueError("joint count")
            if m < max_bodies:
                id_pos.append(pos)
                slots.append(m)
                frames.append(t)
            pos += body_record
    if pos != len(tokens):
        raise ValueError("trailing or missing tokens")
    bodies = np.asarray(bodies_per_frame, dtype=np.int64)
    num_slots = max(1, min(max_bodies, int(bodies.max(initial=0))))
    joints = np.zeros((num_slots, num_frames, num_joints, 3), dtype=np.float32)
    present = np.zeros((num_slots, num_frames), dtype=bool)
    body_ids = np.full((num_slots, num_frames), -1, dtype=np.int64)
    if id_pos:
        first_joint = np.asarray(id_pos) + (BODY_INFO_FIELDS + 1)
        offsets = (np.arange(num_joints)[:, None] * JOINT_FIELDS + np.arange(3)[None, :]).ravel()
        index = (first_joint[:, None] + offsets[None, :]).ravel().tolist()
        values = np.array(operator.itemgetter(*index)(tokens), dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("non-finite coordinate")
        slot_idx, frame_idx = np.asarray(slots), np.asarray(frames)
        joints[slot_idx, frame_idx] = values.reshape(len(id_pos), num_joints, 3)
        present[slot_idx, frame_idx] = True
        body_ids[slot_idx, frame_idx] = [int(tokens[i]) for i in id_pos]
    return SkeletonSequence(name=Path(str(path)).stem, num_frames=num_frames, joints=joints,
                            present=present, body_ids=body_ids, bodies_per_frame=bodies)


def _check_numbers(fields: List[str], path, line: int, what: str) -> None:
    for k, field in enumerate(fields):
        try:
            value = float(field)
        except ValueError:
            raise _error(path, line, f"{what}: field {k + 1} is {field!r}, expected a number") from None
        if not math.isfinite(value):
            raise _error(path, line, f"{what}: field {k + 1} is {field!r}, expected a finite number")


def validate_skeleton_text(text: str, path: PathLike = "<text>", num_joints: int = NTU_NUM_JOINTS) -> None:
    """Check a ``.skeleton`` file line by line; raise :class:`SkeletonFormatError` at the first fault.

    Slow (a Python loop over every line): used to explain a failure of the fast
    parser and for ``strict=True``.
    """
    lines = text.splitlines()
    n = len(lines)

    def need(i: int, what: str) -> List[str]:
        if i >= n:
            raise _error(path, i + 1, f"unexpected end of file: expected {what}")
        return lines[i].split()

    def count(i: int, what: str) -> int:
        fields = need(i, what)
        if len(fields) != 1:
            raise _error(path, i + 1, f"expected {what} (one integer), got {len(fields)} fields")
        try:
            return _parse_count(fields[0])
        except ValueError:
            raise _error(path, i + 1, f"expected {what} (a non-negative integer), got {fields[0]!r}") from None

    num_frames = count(0, "the number of frames")
    if num_frames == 0:
        raise _error(path, 1, "the header says 0 frames: expected at least one frame")
    i = 1
    for t in range(num_frames):
        nb = count(i, f"the number of bodies of frame {t + 1}/{num_frames}")
        i += 1
        for m in range(nb):
            info = need(i, f"the body info line of frame {t + 1}, body {m + 1}")
            if len(info) != BODY_INFO_FIELDS:
                raise _error(path, i + 1, f"body info line of frame {t + 1}, body {m + 1}: "
                                          f"expected {BODY_INFO_FIELDS} fields, got {len(info)}")
            try:
                int(info[0])
            except ValueError:
                raise _error(path, i + 1, f"body info line: bodyID {info[0]!r} is not an integer") from None
            _check_numbers(info[1:], path, i + 1, "body info line")
            i += 1
            nj = count(i, f"the joint count of frame {t + 1}, body {m + 1}")
            if nj != num_joints:
                raise _error(path, i + 1, f"expected {num_joints} joints, got {nj}")
            i += 1
            for j in range(nj):
                fields = need(i, f"joint {j + 1}/{nj} of frame {t + 1}, body {m + 1}")
                if len(fields) != JOINT_FIELDS:
                    raise _error(path, i + 1, f"joint line: expected {JOINT_FIELDS} fields, got {len(fields)}")
                _check_numbers(fields, path, i + 1, "joint line")
                i += 1
    for k in range(i, n):
        if lines[k].strip():
            raise _error(path, k + 1, f"unexpected data after the {num_frames} frames announced on line 1")


def read_skeleton(path: PathLike, max_bodies: int = KINECT_MAX_BODIES, num_joints: int = NTU_NUM_JOINTS,
                  strict: bool = False) -> SkeletonSequence:
    """Read one ``.skeleton`` file (see :func:`parse_skeleton_text`).

    Raises:
        SkeletonFormatError: malformed content (file and line in the message).
        OSError: the file cannot be read.
    """
    raw = Path(path).read_bytes()
    if strict:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise _error(path, raw[: exc.start].count(b"\n") + 1, "non-ASCII byte: expected plain numbers") from None
        validate_skeleton_text(text, path, num_joints)
    return parse_skeleton_text(raw, path, max_bodies, num_joints)


def body_energy(joints: np.ndarray) -> np.ndarray:
    """``(S, T, V, 3) -> (S,)``: sum over x, y, z of the std over the slot's non-zero frames.

    A slot with no non-zero frame has energy 0 (the reference's ``get_nonzero_std``).
    """
    joints = np.asarray(joints, dtype=np.float64)
    valid = joints.sum(axis=(2, 3)) != 0                                   # (S, T)
    count = valid.sum(axis=1) * joints.shape[2]                            # values per axis
    w = valid[:, :, None, None]
    safe = np.maximum(count, 1)[:, None]
    mean = (joints * w).sum(axis=(1, 2)) / safe                            # (S, 3)
    var = (((joints - mean[:, None, None, :]) ** 2) * w).sum(axis=(1, 2)) / safe
    energy = np.sqrt(var).sum(axis=1)
    return np.where(count > 0, energy, 0.0)


def select_bodies(joints: np.ndarray, num: int = 2) -> np.ndarray:
    """``(S, T, V, 3) -> (num, T, V, 3)``: the ``num`` highest-energy slots, highest first.

    Ties keep slot order; fewer than ``num`` slots are padded with zero bodies.
    """
    joints = np.asarray(joints)
    order = np.argsort(-body_energy(joints), kind="stable")[:num]
    out = np.zeros((num,) + joints.shape[1:], dtype=joints.dtype)
    out[: len(order)] = joints[order]
    return out
