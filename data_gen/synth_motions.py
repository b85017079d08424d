"""Procedural 25-joint body model and motion library for the embedded demo dataset.

A person is a kinematic tree (Kinect v2 / NTU-25 joints, names from
``net.graph.get_layout("ntu25")``) driven by a handful of joint-angle curves
per frame: torso pitch/roll, head pitch, per arm (elevation, plane azimuth,
elbow flexion, medial bend), per leg (hip flexion, abduction, knee flexion)
and a root translation.  :func:`forward_kinematics` turns the curves of ``T``
frames into joint positions ``(T, 25, 3)`` in the person's own frame
(metres, y up, x = the person's right, facing -z, floor at y = 0), vectorised
over frames.

Every motion in :data:`MOTIONS` starts from the same neutral standing pose
(two-person motions: the same "two people facing each other" pose), so a
single first frame carries no class information; classes differ in their
dynamics only (raise-and-hold vs raise-and-lower, wave vs reach, sit down
vs squat-and-rise, ...).

Motion functions take the normalised time ``s`` (``(T,)`` in [0, 1]), a
``numpy.random.Generator`` for style variation and an amplitude factor, and
return one dict of parameter offsets per person (see :data:`PARAM_NAMES`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np

from net.graph import get_layout

__all__ = [
    "PARAM_NAMES", "BodyShape", "Motion", "MOTIONS", "motion_names", "sample_body_shape",
    "neutral_params", "forward_kinematics", "smooth_ramp", "bump", "oscillation",
]

LAYOUT = get_layout("ntu25")
_J = {name: i for i, name in enumerate(LAYOUT.joint_names)}

# Angles in degrees; translations in metres (body frame: fwd = facing direction, side = the person's right).
PARAM_NAMES: Tuple[str, ...] = (
    "fwd", "side", "lift", "yaw", "torso_pitch", "torso_roll", "head_pitch",
    "l_elev", "l_azim", "l_elbow", "l_bend_in", "r_elev", "r_azim", "r_elbow", "r_bend_in",
    "l_hip_flex", "l_hip_abd", "l_knee", "r_hip_flex", "r_hip_abd", "r_knee",
)

# Reference segment lengths (metres) for a 1.70 m person; scaled per performer.
_REFERENCE_HEIGHT = 1.70
_THUMB_ANGLE = 40.0  # degrees between the hand axis and the thumb
_SEGMENTS = {
    "spine_low": 0.27, "spine_up": 0.21, "neck": 0.07, "head": 0.13,
    "shoulder_w": 0.17, "shoulder_drop": 0.02, "upper_arm": 0.28, "forearm": 0.25,
    "hand": 0.07, "hand_tip": 0.07, "thumb": 0.05,
    "hip_w": 0.08, "hip_drop": 0.02, "thigh": 0.41, "shank": 0.40, "ankle_h": 0.08,
    "foot_fwd": 0.11, "foot_drop": 0.06,
}


@dataclass(frozen=True)
class BodyShape:
    """Per-performer bone lengths (metres) and neutral-pose style."""

    seg: Dict[str, float]
    neutral: Dict[str, float]
    amplitude: float  # performer's movement amplitude factor
    speed: float      # performer's tempo factor (>1 = slower, more frames)


def sample_body_shape(rng: np.random.Generator) -> BodyShape:
    """Bone lengths from a height of 1.55-1.90 m with +-5 % proportion jitter, plus neutral style."""
    height = rng.uniform(1.55, 1.90)
    scale = height / _REFERENCE_HEIGHT
    seg = {k: float(v * scale * rng.uniform(0.95, 1.05)) for k, v in _SEGMENTS.items()}
    neutral = {
        "l_elev": rng.uniform(4, 14), "r_elev": rng.uniform(4, 14),
        "l_azim": rng.uniform(10, 50), "r_azim": rng.uniform(10, 50),
        "l_elbow": rng.uniform(5, 25), "r_elbow": rng.uniform(5, 25),
        "l_hip_abd": rng.uniform(1, 6), "r_hip_abd": rng.uniform(1, 6),
        "l_knee": rng.uniform(0, 6), "r_knee": rng.uniform(0, 6),
        "torso_pitch": rng.uniform(-4, 6), "head_pitch": rng.uniform(-8, 10),
        "torso_roll": rng.uniform(-3, 3),
    }
    return BodyShape(seg=seg, neutral=neutral, amplitude=float(rng.uniform(0.85, 1.1)),
                     speed=float(rng.uniform(0.85, 1.2)))


def neutral_params(shape: BodyShape, num_frames: int, rng: np.random.Generator,
                   jitter_deg: float = 3.0) -> Dict[str, np.ndarray]:
    """Neutral standing pose for ``num_frames`` frames: the performer's style + a per-take jitter."""
    params = {name: np.zeros(num_frames) for name in PARAM_NAMES}
    for name, value in shape.neutral.items():
        params[name] += value + rng.normal(0.0, jitter_deg)
    return params


# ------------------------------------------------------------------ time-curve helpers
def smooth_ramp(s: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 before ``a``, 1 after ``b``, a smoothstep in between."""
    x = np.clip((s - a) / max(b - a, 1e-6), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def bump(s: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    """Rise over [a, b], hold, fall over [c, d]."""
    return smooth_ramp(s, a, b) * (1.0 - smooth_ramp(s, c, d))


def oscillation(s: np.ndarray, a: float, d: float, cycles: float, phase: float = 0.0) -> np.ndarray:
    """``sin`` with ``cycles`` periods inside [a, d], zero outside (soft edges)."""
    x = np.clip((s - a) / max(d - a, 1e-6), 0.0, 1.0)
    env = bump(s, a, a + 0.1 * (d - a), d - 0.1 * (d - a), d)
    return np.sin(2 * np.pi * cycles * x + phase) * env


# ------------------------------------------------------------------ kinematics
def _rot_x(deg: np.ndarray) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(deg: np.ndarray) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(deg: np.ndarray) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _apply(rot: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """(T,3,3) @ (T,3) or (3,) -> (T,3)."""
    return np.einsum("tij,tj->ti", rot, np.broadcast_to(vec, (rot.shape[0], 3)))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _bend(direction: np.ndarray, preferred: np.ndarray, angle_deg: np.ndarray,
          fallback: np.ndarray) -> np.ndarray:
    """Rotate unit ``direction`` (T,3) by ``angle`` toward the part of ``preferred`` orthogonal to it."""
    perp = preferred - np.sum(preferred * direction, -1, keepdims=True) * direction
    norm = np.linalg.norm(perp, axis=-1, keepdims=True)
    fb = fallback - np.sum(fallback * direction, -1, keepdims=True) * direction
    perp = np.where(norm > 1e-3, perp, fb)
    perp = _unit(perp)
    a = np.deg2rad(angle_deg)[:, None]
    return np.cos(a) * direction + np.sin(a) * perp


def _limb_direction(elev: np.ndarray, azim: np.ndarray, side: float) -> np.ndarray:
    """Unit vector: elev 0 = straight down, 90 = horizontal, 180 = up; azim 0 = forward, 90 = sideways."""
    e, a = np.deg2rad(elev), np.deg2rad(azim)
    return np.stack([side * np.sin(e) * np.sin(a), -np.cos(e), -np.sin(e) * np.cos(a)], -1)


def forward_kinematics(params: Dict[str, np.ndarray], shape: BodyShape) -> np.ndarray:
    """Joint positions ``(T, 25, 3)`` in the person's frame (floor y = 0, facing -z before ``yaw``)."""
    seg = shape.seg
    t = len(params["fwd"])
    out = np.zeros((t, LAYOUT.num_joints, 3))
    up, fwd, right = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0]), np.array([1.0, 0.0, 0.0])

    # Legs in the pelvis frame (pelvis origin, pelvis yaw applied at the end with the rest of the body).
    legs = {}
    extent = []
    for side_name, side in (("left", -1.0), ("right", 1.0)):
        p = side_name[0]
        hip = np.array([side * seg["hip_w"], -seg["hip_drop"], 0.0])
        # hip: flexion forward, abduction sideways
        flex, abd = np.deg2rad(params[f"{p}_hip_flex"]), np.deg2rad(params[f"{p}_hip_abd"])
        thigh = _unit(np.stack([side * np.sin(abd) * np.cos(flex),
                                -np.cos(flex) * np.cos(abd), -np.sin(flex)], -1))
        shank = _bend(thigh, np.array([0.0, -0.5, 1.0]), params[f"{p}_knee"], np.array([0.0, 0.0, 1.0]))
        knee = hip + seg["thigh"] * thigh
        ankle = knee + seg["shank"] * shank
        foot = ankle + np.array([0.0, -seg["foot_drop"], -seg["foot_fwd"]])
        legs[side_name] = (np.broadcast_to(hip, (t, 3)), knee, ankle, foot)
        extent.append(-ankle[:, 1])
    # The lower (supporting) leg sets the pelvis height above the floor.
    pelvis_h = np.max(np.stack(extent, 0), 0) + seg["ankle_h"] + params["lift"]

    torso = _rot_z(-params["torso_roll"]) @ _rot_x(-params["torso_pitch"])
    spine_mid = _apply(torso, seg["spine_low"] * up)
    spine_sh = spine_mid + _apply(torso, seg["spine_up"] * up)
    head_rot = torso @ _rot_x(-params["head_pitch"])
    neck = spine_sh + _apply(head_rot, seg["neck"] * up)
    head = neck + _apply(head_rot, seg["head"] * up)
    out[:, _J["spine_mid"]] = spine_mid
    out[:, _J["spine_shoulder"]] = spine_sh
    out[:, _J["neck"]] = neck
    out[:, _J["head"]] = head
    for side_name, side in (("left", -1.0), ("right", 1.0)):
        hip, knee, ankle, foot = legs[side_name]
        out[:, _J[f"hip_{side_name}"]] = hip
        out[:, _J[f"knee_{side_name}"]] = knee
        out[:, _J[f"ankle_{side_name}"]] = ankle
        out[:, _J[f"foot_{side_name}"]] = foot

        p = side_name[0]
        shoulder = spine_sh + _apply(torso, np.array([side * seg["shoulder_w"], -seg["shoulder_drop"], 0.0]))
        upper_local = _limb_direction(params[f"{p}_elev"], params[f"{p}_azim"], side)
        medial = np.array([-side, 0.0, 0.0])
        preferred = fwd + 0.3 * up + params[f"{p}_bend_in"][:, None] * medial
        fore_local = _bend(upper_local, preferred, params[f"{p}_elbow"], up)
        upper, fore = _apply(torso, upper_local), _apply(torso, fore_local)
        elbow = shoulder + seg["upper_arm"] * upper
        wrist = elbow + seg["forearm"] * fore
        hand = wrist + seg["hand"] * fore
        tip = hand + seg["hand_tip"] * fore
        # thumb at a fixed angle to the hand axis, turned toward the body's midline
        thumb_side = _bend(fore, _apply(torso, medial + 0.5 * fwd), np.full(t, 90.0), _apply(torso, fwd))
        thumb_dir = np.cos(np.deg2rad(_THUMB_ANGLE)) * fore + np.sin(np.deg2rad(_THUMB_ANGLE)) * thumb_side
        thumb = hand + seg["thumb"] * thumb_dir
        out[:, _J[f"shoulder_{side_name}"]] = shoulder
        out[:, _J[f"elbow_{side_name}"]] = elbow
        out[:, _J[f"wrist_{side_name}"]] = wrist
        out[:, _J[f"hand_{side_name}"]] = hand
        out[:, _J[f"hand_tip_{side_name}"]] = tip
        out[:, _J[f"thumb_{side_name}"]] = thumb

    # Pelvis frame -> person frame: lift to pelvis height, translate, yaw.
    out[:, :, 1] += pelvis_h[:, None]
    yaw = _rot_y(params["yaw"])
    out = np.einsum("tij,tvj->tvi", yaw, out)
    move = params["side"][:, None] * right + params["fwd"][:, None] * fwd
    out += _apply(yaw, move)[:, None, :]
    return out


# ------------------------------------------------------------------ motion library
MotionFn = Callable[[np.ndarray, np.random.Generator, float], List[Dict[str, np.ndarray]]]


@dataclass(frozen=True)
class Motion:
    """One action class: name, number of people, typical duration (frames at 30 fps), curve function."""

    name: str
    persons: int
    base_frames: int
    fn: MotionFn


def _zeros(s: np.ndarray) -> Dict[str, np.ndarray]:
    return {name: np.zeros_like(s) for name in PARAM_NAMES}


def _wave(s, rng, amp):
    p = _zeros(s)
    up = bump(s, 0.0, 0.2, 0.8, 1.0)
    p["r_elev"] += up * 125 * amp
    p["r_azim"] += up * 40
    p["r_elbow"] += up * 45
    p["r_azim"] += oscillation(s, 0.2, 0.8, rng.uniform(3, 5)) * 25 * amp
    p["r_elbow"] += oscillation(s, 0.2, 0.8, rng.uniform(3, 5), 1.0) * 10
    return [p]


def _raise_hand(s, rng, amp):
    p = _zeros(s)
    up = smooth_ramp(s, 0.05, rng.uniform(0.35, 0.5))
    p["r_elev"] += up * 155 * amp
    p["r_azim"] += up * -10
    p["r_elbow"] += up * -5
    return [p]


def _reach_forward(s, rng, amp):
    p = _zeros(s)
    out = bump(s, 0.05, 0.4, 0.6, 0.95)
    p["r_elev"] += out * 85 * amp
    p["r_azim"] += out * -20
    p["r_elbow"] += out * -10
    p["torso_pitch"] += out * 12
    return [p]


def _drink(s, rng, amp):
    p = _zeros(s)
    lift = bump(s, 0.05, 0.35, 0.7, 0.95)
    p["r_elev"] += lift * 40 * amp
    p["r_azim"] += lift * -20
    p["r_elbow"] += lift * 115
    p["r_bend_in"] += lift * 0.6
    p["head_pitch"] += bump(s, 0.35, 0.45, 0.6, 0.7) * -20
    return [p]


def _clap(s, rng, amp):
    p = _zeros(s)
    up = bump(s, 0.0, 0.2, 0.8, 1.0)
    cycles = rng.uniform(4, 7)
    for a in ("l", "r"):
        p[f"{a}_elev"] += up * 55 * amp
        p[f"{a}_azim"] += up * -20 + oscillation(s, 0.2, 0.8, cycles) * 18
        p[f"{a}_elbow"] += up * 60
        p[f"{a}_bend_in"] += up * 1.0
    return [p]


def _hands_to_chest(s, rng, amp):
    p = _zeros(s)
    on = bump(s, 0.05, 0.35, 0.7, 0.95)
    for a in ("l", "r"):
        p[f"{a}_elev"] += on * 55 * amp
        p[f"{a}_azim"] += on * -20
        p[f"{a}_elbow"] += on * 60
        p[f"{a}_bend_in"] += on * 1.0
    return [p]


def _sit_down(s, rng, amp):
    p = _zeros(s)
    down = smooth_ramp(s, 0.1, 0.6)
    for a in ("l", "r"):
        p[f"{a}_hip_flex"] += down * 88
        p[f"{a}_knee"] += down * 88
        p[f"{a}_elev"] += down * 25
        p[f"{a}_elbow"] += down * 50
    p["torso_pitch"] += bump(s, 0.1, 0.35, 0.4, 0.7) * 30 + down * 5
    p["fwd"] += down * -0.15
    return [p]


def _squat(s, rng, amp):
    p = _zeros(s)
    down = bump(s, 0.05, 0.4, 0.6, 0.95)
    for a in ("l", "r"):
        p[f"{a}_hip_flex"] += down * 100 * amp
        p[f"{a}_knee"] += down * 120 * amp
        p[f"{a}_hip_abd"] += down * 8
        p[f"{a}_elev"] += down * 70
        p[f"{a}_azim"] += down * -25
    p["torso_pitch"] += down * 30
    return [p]


def _bow(s, rng, amp):
    p = _zeros(s)
    down = bump(s, 0.1, 0.4, 0.55, 0.9)
    p["torso_pitch"] += down * 50 * amp
    p["head_pitch"] += down * 15
    for a in ("l", "r"):
        p[f"{a}_elev"] += down * 35
        p[f"{a}_azim"] += down * -60
    return [p]


def _pick_up(s, rng, amp):
    p = _zeros(s)
    down = bump(s, 0.05, 0.35, 0.45, 0.75)
    p["torso_pitch"] += down * 70 * amp
    for a in ("l", "r"):
        p[f"{a}_hip_flex"] += down * 20
        p[f"{a}_knee"] += down * 40
    p["r_elev"] += down * 75 + smooth_ramp(s, 0.45, 0.8) * 25
    p["r_azim"] += down * -40
    p["r_elbow"] += smooth_ramp(s, 0.45, 0.8) * 80
    return [p]


def _kick(s, rng, amp):
    p = _zeros(s)
    chamber = bump(s, 0.1, 0.35, 0.55, 0.85)
    extend = bump(s, 0.35, 0.45, 0.5, 0.6)
    p["r_hip_flex"] += chamber * 70 * amp
    p["r_knee"] += chamber * 80 - extend * 75
    p["torso_pitch"] += chamber * -10
    p["l_elev"] += chamber * 25
    p["r_elev"] += chamber * 25
    return [p]


def _jump(s, rng, amp):
    p = _zeros(s)
    crouch = bump(s, 0.1, 0.3, 0.33, 0.4) + bump(s, 0.55, 0.6, 0.65, 0.85)
    air = bump(s, 0.36, 0.45, 0.45, 0.56)
    for a in ("l", "r"):
        p[f"{a}_hip_flex"] += crouch * 50 + air * 10
        p[f"{a}_knee"] += crouch * 70 + air * 20
        p[f"{a}_elev"] += -crouch * 15 + air * 60
    p["torso_pitch"] += crouch * 25
    p["lift"] += air * 0.25 * amp
    return [p]


def _walk_in_place(s, rng, amp):
    p = _zeros(s)
    cycles = rng.uniform(3, 5)
    step = oscillation(s, 0.05, 0.95, cycles)
    p["l_hip_flex"] += np.clip(step, 0, None) * 45 * amp
    p["l_knee"] += np.clip(step, 0, None) * 70 * amp
    p["r_hip_flex"] += np.clip(-step, 0, None) * 45 * amp
    p["r_knee"] += np.clip(-step, 0, None) * 70 * amp
    p["l_elev"] += -step * 20
    p["r_elev"] += step * 20
    return [p]


def _pair_base(s):
    return _zeros(s), _zeros(s)


def _handshake(s, rng, amp):
    a, b = _pair_base(s)
    approach = bump(s, 0.05, 0.3, 0.75, 0.95)
    hand = bump(s, 0.2, 0.4, 0.7, 0.9)
    shake = oscillation(s, 0.4, 0.7, rng.uniform(2, 4)) * 12
    for p in (a, b):
        p["fwd"] += approach * 0.28
        p["r_elev"] += hand * 45 + shake * hand
        p["r_azim"] += hand * -30
        p["r_elbow"] += hand * 30
        p["r_bend_in"] += hand * 0.5
    return [a, b]


def _push(s, rng, amp):
    a, b = _pair_base(s)
    approach = smooth_ramp(s, 0.05, 0.4)
    arms = bump(s, 0.2, 0.4, 0.7, 0.9)
    thrust = bump(s, 0.4, 0.47, 0.55, 0.7)
    a["fwd"] += approach * 0.35
    for side in ("l", "r"):
        a[f"{side}_elev"] += arms * 80
        a[f"{side}_azim"] += arms * -15
        a[f"{side}_elbow"] += arms * 90 - thrust * 80
    a["torso_pitch"] += thrust * 15
    hit = smooth_ramp(s, 0.45, 0.65)
    b["fwd"] += -hit * 0.35 * amp
    b["torso_pitch"] += -bump(s, 0.45, 0.55, 0.65, 0.85) * 20
    for side in ("l", "r"):
        b[f"{side}_elev"] += bump(s, 0.45, 0.55, 0.7, 0.9) * 40
    return [a, b]


def _hug(s, rng, amp):
    a, b = _pair_base(s)
    approach = bump(s, 0.05, 0.35, 0.75, 0.95)
    wrap = bump(s, 0.25, 0.45, 0.7, 0.85)
    for p in (a, b):
        p["fwd"] += approach * 0.38
        for side in ("l", "r"):
            p[f"{side}_elev"] += wrap * 75 * amp
            p[f"{side}_azim"] += wrap * 30
            p[f"{side}_elbow"] += wrap * 85
            p[f"{side}_bend_in"] += wrap * 1.0
    return [a, b]


def _point_at(s, rng, amp):
    a, b = _pair_base(s)
    point = bump(s, 0.1, 0.3, 0.7, 0.9)
    a["r_elev"] += point * 85 * amp
    a["r_azim"] += point * -5
    a["r_elbow"] += point * -10
    b["torso_pitch"] += -bump(s, 0.3, 0.4, 0.7, 0.8) * 8
    return [a, b]


# Order = action ids A001, A002, ... ; the first ten hold three two-person classes.
MOTIONS: Tuple[Motion, ...] = (
    Motion("wave right hand", 1, 90, _wave),
    Motion("raise right hand", 1, 70, _raise_hand),
    Motion("reach forward", 1, 70, _reach_forward),
    Motion("drink water", 1, 90, _drink),
    Motion("clap hands", 1, 90, _clap),
    Motion("sit down", 1, 90, _sit_down),
    Motion("squat down and stand up", 1, 90, _squat),
    Motion("shake hands", 2, 110, _handshake),
    Motion("push other person", 2, 90, _push),
    Motion("hug other person", 2, 110, _hug),
    Motion("bow", 1, 80, _bow),
    Motion("pick up", 1, 100, _pick_up),
    Motion("kick forward", 1, 70, _kick),
    Motion("jump up", 1, 60, _jump),
    Motion("hands on chest", 1, 80, _hands_to_chest),
    Motion("walk in place", 1, 120, _walk_in_place),
    Motion("point at other person", 2, 80, _point_at),
)


def motion_names() -> List[str]:
    return [m.name for m in MOTIONS]
