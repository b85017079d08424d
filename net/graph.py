"""Skeleton layouts: joints, bones, flips and the CTR-GCN adjacency, in one place.

Every other module asks a :class:`Layout` for joint indices; nothing else in the
code names a joint number.  Adding a layout (e.g. COCO-17) is adding one entry
to :data:`LAYOUTS`.

``Layout.adjacency()`` returns the 3-subset adjacency used by CTR-GCN,
``stack(I, normalised inward, normalised outward)`` of shape ``(3, V, V)``
(acsar_facts.md §6).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

__all__ = ["Layout", "LAYOUTS", "get_layout"]


@dataclass(frozen=True)
class Layout:
    """A skeleton convention.

    Attributes:
        name: registry key.
        num_joints: V.
        inward: 0-based ``(child, parent)`` edges pointing toward ``center``.
        center: the root joint; its bone is the zero vector ``joint[c] - joint[c]``.
        flip: left/right joint permutation (joints swapped, coordinates kept).
        hip, spine: pre-normalisation joints (first-frame hip->spine bone -> +z,
            spine joint at the origin).
        left_shoulder, right_shoulder: right-minus-left shoulder -> +x.
        joint_names: human-readable names, used by describers and plots.
    """

    name: str
    num_joints: int
    inward: Tuple[Tuple[int, int], ...]
    center: int
    flip: Tuple[int, ...]
    hip: int
    spine: int
    left_shoulder: int
    right_shoulder: int
    joint_names: Tuple[str, ...]

    def __post_init__(self) -> None:
        v = self.num_joints
        if sorted(self.flip) != list(range(v)):
            raise ValueError(f"layout {self.name}: flip is not a permutation of {v} joints")
        if len(self.joint_names) != v:
            raise ValueError(f"layout {self.name}: {len(self.joint_names)} names for {v} joints")
        if len(self.inward) != v - 1:
            raise ValueError(f"layout {self.name}: a tree on {v} joints has {v - 1} edges, got {len(self.inward)}")

    # ------------------------------------------------------------------ bones
    @property
    def bone_pairs(self) -> Tuple[Tuple[int, int], ...]:
        """``(child, parent)`` for every joint, ordered by child: V pairs.

        ``bone[child] = joint[child] - joint[parent]``; the centre joint is its
        own parent, so its bone is zero.
        """
        parent = {c: p for c, p in self.inward}
        parent[self.center] = self.center
        missing = set(range(self.num_joints)) - set(parent)
        if missing:
            raise ValueError(f"layout {self.name}: joints {sorted(missing)} have no parent")
        return tuple((c, parent[c]) for c in range(self.num_joints))

    @property
    def parents(self) -> np.ndarray:
        """(V,) int64 index of each joint's parent (the centre is its own parent)."""
        return np.array([p for _, p in self.bone_pairs], dtype=np.int64)

    @property
    def outward(self) -> Tuple[Tuple[int, int], ...]:
        return tuple((p, c) for c, p in self.inward)

    # -------------------------------------------------------------- adjacency
    def _edge_matrix(self, edges) -> np.ndarray:
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for i, j in edges:
            a[j, i] = 1.0
        return a

    @staticmethod
    def _normalise_columns(a: np.ndarray) -> np.ndarray:
        degree = a.sum(0)
        inv = np.where(degree > 0, 1.0 / np.maximum(degree, 1e-12), 0.0)
        return (a @ np.diag(inv)).astype(np.float32)

    def adjacency(self) -> np.ndarray:
        """(3, V, V) float32: identity, normalised inward, normalised outward."""
        eye = np.eye(self.num_joints, dtype=np.float32)
        inward = self._normalise_columns(self._edge_matrix(self.inward))
        outward = self._normalise_columns(self._edge_matrix(self.outward))
        return np.stack([eye, inward, outward])

    def hop_distance(self) -> np.ndarray:
        """(V, V) int64 graph distance along the undirected skeleton (V = unreachable)."""
        v = self.num_joints
        reach = np.eye(v, dtype=bool)
        link = reach.copy()
        for c, p in self.inward:
            link[c, p] = link[p, c] = True
        dist = np.full((v, v), v, dtype=np.int64)
        dist[reach] = 0
        for hop in range(1, v):
            new = (reach.astype(np.int64) @ link.astype(np.int64)) > 0
            dist[new & ~reach] = hop
            if (new == reach).all():
                break
            reach = new
        return dist


def _one_based(pairs):
    return tuple((c - 1, p - 1) for c, p in pairs)


# NTU RGB+D / Kinect v2, 25 joints (acsar_facts.md §5, §6; 1-based pairs as published).
_NTU_INWARD = _one_based([
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21),
    (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1),
    (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
])
_NTU_NAMES = (
    "spine_base", "spine_mid", "neck", "head", "shoulder_left", "elbow_left",
    "wrist_left", "hand_left", "shoulder_right", "elbow_right", "wrist_right",
    "hand_right", "hip_left", "knee_left", "ankle_left", "foot_left", "hip_right",
    "knee_right", "ankle_right", "foot_right", "spine_shoulder", "hand_tip_left",
    "thumb_left", "hand_tip_right", "thumb_right",
)

# Kinect v1, 20 joints, NW-UCLA / MSR Action3D order (shared/data/README.md).
_KINECT_V1_INWARD = _one_based([
    (1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17),
    (19, 18), (20, 19),
])
_KINECT_V1_NAMES = (
    "hip_center", "spine", "shoulder_center", "head", "shoulder_left", "elbow_left",
    "wrist_left", "hand_left", "shoulder_right", "elbow_right", "wrist_right",
    "hand_right", "hip_left", "knee_left", "ankle_left", "foot_left", "hip_right",
    "knee_right", "ankle_right", "foot_right",
)

# COCO-17 keypoints (2-D pose estimators), centred on the nose for the tree.
_COCO_INWARD = (
    (1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5), (8, 6), (9, 7),
    (10, 8), (11, 5), (12, 6), (13, 11), (14, 12), (15, 13), (16, 14),
)
_COCO_NAMES = (
    "nose", "eye_left", "eye_right", "ear_left", "ear_right", "shoulder_left",
    "shoulder_right", "elbow_left", "elbow_right", "wrist_left", "wrist_right",
    "hip_left", "hip_right", "knee_left", "knee_right", "ankle_left", "ankle_right",
)

LAYOUTS: Dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            name="ntu25", num_joints=25, inward=_NTU_INWARD, center=20,
            flip=(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15,
                  20, 23, 24, 21, 22),
            hip=0, spine=1, left_shoulder=4, right_shoulder=8, joint_names=_NTU_NAMES,
        ),
        Layout(
            name="kinect_v1", num_joints=20, inward=_KINECT_V1_INWARD, center=2,
            flip=(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15),
            hip=0, spine=1, left_shoulder=4, right_shoulder=8, joint_names=_KINECT_V1_NAMES,
        ),
        Layout(
            name="coco17", num_joints=17, inward=_COCO_INWARD, center=0,
            flip=(0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15),
            # COCO has no spine or mid-hip joint: the left side's hip -> shoulder bone stands in [ours], so the
            # pre-normalisation centres a clip on the left shoulder and turns that bone to +z
            hip=11, spine=5, left_shoulder=5, right_shoulder=6, joint_names=_COCO_NAMES,
        ),
    )
}


def get_layout(name: str) -> Layout:
    """The layout registered under ``name`` (``ntu25``, ``kinect_v1``, ``coco17``); ValueError for another name
    (a config value or command-line option, which main.py and the data_gen scripts report in one line)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown skeleton layout {name!r}; known: {sorted(LAYOUTS)}") from None
