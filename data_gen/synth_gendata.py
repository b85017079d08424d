"""Write a small synthetic demo dataset as genuine NTU RGB+D ``.skeleton`` files.

The files have exactly the text layout of the official release (see
``shared/data/README.md``): line 1 = frame count; per frame the body count;
per body a 10-field info line (``bodyID clippedEdges handLeftConfidence
handLeftState handRightConfidence handRightState isRestricted leanX leanY
trackingState``), the joint count ``25`` and 25 joint lines of 12 fields
(``x y z depthX depthY colorX colorY orientationW..Z trackingState``), in
Kinect camera coordinates (metres, y up, z = depth).  File names are
``SsssCcccPpppRrrrAaaa.skeleton``; some files use CRLF line endings, some
start with a few zero-body frames, as in the official release, so the same
``data_gen/ntu_gendata.py`` path runs on them.

Motions come from :mod:`data_gen.synth_motions` (a forward-kinematics body,
per-performer bone lengths, class-specific joint-angle curves).  One take
(setup, performer, replication, action) is seen by every camera at once, as
in NTU: cameras differ by viewpoint (rotation about the vertical axis,
default -45, 0, +45 degrees), distance, height, tilt and sensor noise.

Action ``A00k`` is motion ``k`` of :data:`data_gen.synth_motions.MOTIONS`;
``<out>/class_names.txt`` lists the class names in label order.

Usage::

    python data_gen/synth_gendata.py --out data/demo/raw [--num-classes 10] [--seed 0]

Python: :func:`generate_dataset` ``(out_dir, **options) -> list[Path]``.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data_gen.cli import exit_code_of, positive_int  # noqa: E402
from data_gen.synth_motions import (  # noqa: E402
    LAYOUT, MOTIONS, BodyShape, forward_kinematics, neutral_params, sample_body_shape,
)
from feeder.io import atomic_open, save_text_atomic  # noqa: E402

__all__ = ["SynthOptions", "generate_dataset", "render_sample", "format_skeleton_text",
           "sample_name", "main"]

logger = logging.getLogger(__name__)

# Kinect v2 projections fitted on the real NTU samples (camera metres -> pixels):
# pixel = offset + focal * coord / z + skew / z.
_DEPTH_X = (250.15, 368.91, 25.36)
_DEPTH_Y = (207.49, -367.84, 4.51)
_COLOR_X = (965.69, 1057.71, 33.97)
_COLOR_Y = (588.15, -1036.32, -95.32)
_KINECT_BODY_ID_BASE = 2 ** 56          # real body ids are 2**56 + a small counter
_JOINTS_WITHOUT_ORIENTATION = ("head", "foot_left", "foot_right", "hand_tip_left", "thumb_left",
                               "hand_tip_right", "thumb_right")
_NOISY_JOINTS = ("wrist_left", "hand_left", "hand_tip_left", "thumb_left", "wrist_right",
                 "hand_right", "hand_tip_right", "thumb_right", "ankle_left", "foot_left",
                 "ankle_right", "foot_right")
_FIELDS_PER_JOINT = 12


@dataclass
class SynthOptions:
    """Generation options (CLI flags of the same names).

    Attributes:
        num_classes: first ``num_classes`` motions of the library (A001..).
        performers, cameras, replications, setups: ids written into the file names.
        camera_angles: viewpoint (degrees about the vertical axis) per camera id, cycled.
        seed: everything is a pure function of the seed and the file's ids.
        min_frames, max_frames: clip range of the sequence length (frames with bodies;
            the optional leading zero-body frames come on top).
        noise: std (metres) of the per-frame sensor jitter (hand/foot joints get 1.5x).
        crlf_fraction: share of files written with CRLF line endings.
        empty_lead_fraction: share of files that start with 1-4 frames without bodies.
        inferred_fraction: share of joint readings marked trackingState 1 (inferred).
        time_warp: std of the knots of a random monotone time warp of each take.
        style_jitter: each motion curve of a take is scaled by U(1 - j, 1 + j).
    """

    num_classes: int = 10
    performers: Sequence[int] = tuple(range(1, 9))
    cameras: Sequence[int] = (1, 2, 3)
    replications: Sequence[int] = (1, 2)
    setups: Sequence[int] = (1,)
    camera_angles: Sequence[float] = (-45.0, 0.0, 45.0)
    seed: int = 0
    min_frames: int = 40
    max_frames: int = 300
    noise: float = 0.006
    crlf_fraction: float = 0.3
    empty_lead_fraction: float = 0.05
    inferred_fraction: float = 0.04
    time_warp: float = 0.06
    style_jitter: float = 0.25

    def validate(self) -> None:
        if not 1 <= self.num_classes <= len(MOTIONS):
            raise ValueError(f"num_classes must be in 1..{len(MOTIONS)} (size of the motion library), "
                             f"got {self.num_classes}")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")
        for name in ("performers", "cameras", "replications", "setups"):
            ids = list(getattr(self, name))
            if not ids or min(ids) < 1 or max(ids) > 999 or len(set(ids)) != len(ids):
                raise ValueError(f"{name}: expected distinct ids in 1..999, got {ids}")
        for name in ("crlf_fraction", "empty_lead_fraction", "inferred_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("noise", "time_warp", "style_jitter"):
            if not 0 <= getattr(self, name) < math.inf:                 # NaN fails too
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.style_jitter >= 1:                 # U(1 - j, 1 + j) would take negative scales: mirrored motions
            raise ValueError(f"style_jitter must be below 1 (motion curves are scaled by U(1 - j, 1 + j)), "
                             f"got {self.style_jitter}")


def sample_name(setup: int, camera: int, performer: int, replication: int, action: int) -> str:
    return f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}"


# ------------------------------------------------------------------ one take -> camera arrays
def _performer_shape(seed: int, performer: int, role: int) -> BodyShape:
    """role 0 = the performer, role 1 = the partner who plays opposite them in two-person classes."""
    return sample_body_shape(np.random.default_rng([seed, 11, role, performer]))


def _take_world(opts: SynthOptions, setup: int, performer: int, replication: int,
                action: int) -> np.ndarray:
    """The performance in scene coordinates: ``(T, M, 25, 3)`` metres, floor y = 0, camera 2 at -z."""
    motion = MOTIONS[action - 1]
    rng = np.random.default_rng([opts.seed, 23, setup, performer, replication, action])
    shapes = [_performer_shape(opts.seed, performer, role) for role in range(motion.persons)]
    length = motion.base_frames * shapes[0].speed * rng.uniform(0.8, 1.25) * rng.lognormal(0.0, 0.2)
    t = int(np.clip(round(length), opts.min_frames, opts.max_frames))

    onset, tail = rng.uniform(0.0, 0.12), rng.uniform(0.0, 0.1)
    u = np.clip((np.linspace(0.0, 1.0, t) - onset) / (1.0 - onset - tail), 0.0, 1.0)
    # random monotone time warp: piecewise-linear through jittered knots
    knots = np.sort(np.clip(np.linspace(0.0, 1.0, 5)[1:-1] + rng.normal(0.0, opts.time_warp, 3), 0.02, 0.98))
    s = np.interp(u, np.linspace(0.0, 1.0, 5), np.concatenate([[0.0], knots, [1.0]]))
    amp = shapes[0].amplitude * rng.uniform(0.9, 1.1)
    offsets = motion.fn(s, rng, amp)
    # per-take style: every angle curve of the motion scaled independently
    offsets = [{k: v * rng.uniform(1.0 - opts.style_jitter, 1.0 + opts.style_jitter) for k, v in o.items()}
               for o in offsets]

    scene_yaw = rng.uniform(-15.0, 15.0)
    if motion.persons == 1:
        placement = [(rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(-10.0, 10.0))]
    else:
        gap = rng.uniform(1.2, 1.5)
        placement = [(-gap / 2, rng.uniform(-0.1, 0.1), -90.0 + rng.uniform(-12.0, 12.0)),
                     (gap / 2, rng.uniform(-0.1, 0.1), 90.0 + rng.uniform(-12.0, 12.0))]
    bodies = []
    for shape, offset, (px, pz, yaw) in zip(shapes, offsets, placement):
        params = neutral_params(shape, t, rng)
        for key, value in offset.items():
            params[key] = params[key] + value
        params["yaw"] = params["yaw"] + yaw + scene_yaw
        joints = forward_kinematics(params, shape)
        joints[..., 0] += px
        joints[..., 2] += pz
        bodies.append(joints)
    return np.stack(bodies, 1)


def _to_camera(world: np.ndarray, opts: SynthOptions, setup: int, camera: int,
               rng: np.random.Generator) -> np.ndarray:
    """Scene -> Kinect camera coordinates for one camera; adds sensor noise.  ``(T, M, 25, 3)``."""
    cam_rng = np.random.default_rng([opts.seed, 31, setup, camera])
    angle = opts.camera_angles[(camera - 1) % len(opts.camera_angles)] + cam_rng.uniform(-3.0, 3.0)
    distance = cam_rng.uniform(2.7, 3.4) + rng.uniform(-0.15, 0.15)
    height = cam_rng.uniform(0.8, 1.2)
    tilt = np.deg2rad(cam_rng.uniform(-6.0, 6.0))
    a = np.deg2rad(angle)
    # A camera at azimuth ``angle`` sees the scene rotated by ``-angle`` about the vertical axis.
    rot_y = np.array([[np.cos(a), 0.0, -np.sin(a)], [0.0, 1.0, 0.0], [np.sin(a), 0.0, np.cos(a)]])
    rot_x = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(tilt), -np.sin(tilt)], [0.0, np.sin(tilt), np.cos(tilt)]])
    cam = world @ rot_y.T
    cam = cam + np.array([0.0, -height, distance])
    cam = cam @ rot_x.T

    t, m, v, _ = cam.shape
    if opts.noise > 0:
        scale = np.ones(v)
        scale[[LAYOUT.joint_names.index(n) for n in _NOISY_JOINTS]] = 1.5
        jitter = rng.normal(0.0, opts.noise, size=cam.shape) * scale[None, None, :, None]
        # slow wobble of the skeleton fit (two sinusoids per joint and axis)
        freq = rng.uniform(0.01, 0.05, size=(2, 1, m, v, 3))
        phase = rng.uniform(0.0, 2 * np.pi, size=(2, 1, m, v, 3))
        frames = np.arange(t)[None, :, None, None, None]
        wobble = np.sin(2 * np.pi * freq * frames + phase).sum(0) * (opts.noise * 0.5)
        cam = cam + jitter + wobble
    return cam


# ------------------------------------------------------------------ text formatting
def _projections(xyz: np.ndarray) -> np.ndarray:
    """(..., 3) camera metres -> (..., 4) depthX depthY colorX colorY pixels."""
    x, y, z = xyz[..., 0], xyz[..., 1], np.maximum(xyz[..., 2], 0.1)
    cols = [off + focal * c / z + skew / z
            for (off, focal, skew), c in ((_DEPTH_X, x), (_DEPTH_Y, y), (_COLOR_X, x), (_COLOR_Y, y))]
    return np.stack(cols, -1)


def _orientations(cam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T, M, 25, 4) plausible unit quaternions (w x y z) from the body heading; 0 at leaf joints."""
    left = cam[:, :, LAYOUT.left_shoulder]
    right = cam[:, :, LAYOUT.right_shoulder]
    heading = np.arctan2(right[..., 2] - left[..., 2], right[..., 0] - left[..., 0])  # (T, M)
    half = heading[..., None] / 2.0
    t, m, v, _ = cam.shape
    quat = np.stack([np.cos(half) * np.ones(v), np.zeros((t, m, v)),
                     np.sin(half) * np.ones(v), np.zeros((t, m, v))], -1)
    quat = quat + rng.normal(0.0, 0.15, size=quat.shape)
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    leaves = [LAYOUT.joint_names.index(n) for n in _JOINTS_WITHOUT_ORIENTATION]
    quat[:, :, leaves] = 0.0
    return quat


def format_skeleton_text(cam: np.ndarray, body_ids: Sequence[int], rng: np.random.Generator,
                         empty_lead: int = 0, inferred_fraction: float = 0.04,
                         newline: str = "\n") -> str:
    """The text of one ``.skeleton`` file for camera-space joints ``cam`` ``(T, M, 25, 3)``.

    Built with a single ``%`` formatting call over a per-file template (no per-joint
    Python loop).  ``empty_lead`` zero-body frames are written first.
    """
    t, m, v, _ = cam.shape
    fields_per_joint = np.concatenate([
        cam, _projections(cam), _orientations(cam, rng),
        np.where(rng.random((t, m, v, 1)) < inferred_fraction, 1.0, 2.0),
    ], -1)  # (T, M, V, 12)
    assert fields_per_joint.shape[-1] == _FIELDS_PER_JOINT
    spine, base = cam[:, :, LAYOUT.spine], cam[:, :, LAYOUT.hip]
    torso = spine - base
    torso /= np.maximum(np.linalg.norm(torso, axis=-1, keepdims=True), 1e-9)
    lean_x = torso[..., 0]
    lean_y = -torso[..., 2]
    hand_state = rng.choice([1, 1, 1, 2, 3], size=(t, m, 2)).astype(np.float64)
    body_fields = np.stack([hand_state[..., 0], hand_state[..., 1], lean_x, lean_y], -1)  # (T, M, 4)
    values = np.concatenate([body_fields, fields_per_joint.reshape(t, m, v * _FIELDS_PER_JOINT)], -1)
    values = np.where(values == 0.0, 0.0, values)  # no "-0"

    joint_line = " ".join(["%.7g"] * (_FIELDS_PER_JOINT - 1)) + " %d\n"
    frame_tpl = f"{m}\n"
    for body in range(m):
        frame_tpl += f"{int(body_ids[body])} 0 1 %d 1 %d 0 %.7g %.7g 2\n{v}\n" + joint_line * v
    text = f"{t + empty_lead}\n" + "0\n" * empty_lead + (frame_tpl * t) % tuple(values.ravel().tolist())
    if newline != "\n":
        text = text.replace("\n", newline)
    return text


def render_sample(opts: SynthOptions, setup: int, camera: int, performer: int, replication: int,
                  action: int, crlf: bool) -> Tuple[str, np.ndarray]:
    """Text of one file and its camera-space joints ``(T, M, 25, 3)``."""
    world = _take_world(opts, setup, performer, replication, action)
    rng = np.random.default_rng([opts.seed, 41, setup, camera, performer, replication, action])
    cam = _to_camera(world, opts, setup, camera, rng)
    id_rng = np.random.default_rng([opts.seed, 53, setup, performer, replication, action])
    body_ids = _KINECT_BODY_ID_BASE + id_rng.choice(np.arange(1000, 60000), size=cam.shape[1], replace=False)
    empty_lead = int(rng.integers(1, 5)) if rng.random() < opts.empty_lead_fraction else 0
    text = format_skeleton_text(cam, body_ids, rng, empty_lead=empty_lead,
                                inferred_fraction=opts.inferred_fraction,
                                newline="\r\n" if crlf else "\n")
    return text, cam


# ------------------------------------------------------------------ dataset
def _options(options: Dict) -> SynthOptions:
    known = {f.name for f in fields(SynthOptions)}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    opts = SynthOptions(**options)
    opts.validate()
    return opts


def _refuse_other_files(out_dir: Path, names) -> None:
    """ValueError when ``out_dir`` holds ``.skeleton`` files this set would not write (module docstring)."""
    other = sorted(p.name for p in out_dir.glob("*.skeleton") if p.name not in names)
    if other:
        examples = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
        raise ValueError(f"{out_dir} holds {len(other)} .skeleton file(s) that these options do not write "
                         f"(e.g. {examples}), left by a run with other options or from another dataset; "
                         f"data_gen/ntu_gendata.py would read them with the new ones: give an empty --out folder")


def generate_dataset(out_dir, progress: bool = True, **options) -> List[Path]:
    """Write the demo set to ``out_dir``; returns the written ``.skeleton`` paths (sorted).

    ``options`` are the fields of :class:`SynthOptions`.  Also writes
    ``out_dir/class_names.txt`` (one class name per line, label order).  A folder that
    holds other ``.skeleton`` files (a run with more classes or performers) is refused
    (ValueError) before anything is written; a rerun with the same ids rewrites its files.
    """
    opts = _options(options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = [(s, c, p, r, a)
            for s in opts.setups for c in opts.cameras for p in opts.performers
            for r in opts.replications for a in range(1, opts.num_classes + 1)]
    keys.sort(key=lambda k: sample_name(*k))
    _refuse_other_files(out_dir, {f"{sample_name(*k)}.skeleton" for k in keys})
    n_crlf = int(round(opts.crlf_fraction * len(keys)))
    crlf = np.zeros(len(keys), dtype=bool)
    crlf[np.random.default_rng([opts.seed, 61]).permutation(len(keys))[:n_crlf]] = True

    start = time.perf_counter()
    paths, lengths, bodies = [], [], []
    for key, use_crlf in tqdm(list(zip(keys, crlf)), desc="synth .skeleton", unit="file",
                              disable=not progress):
        text, cam = render_sample(opts, *key, crlf=bool(use_crlf))
        path = out_dir / f"{sample_name(*key)}.skeleton"
        with atomic_open(path, "wb") as handle:
            handle.write(text.encode("ascii"))
        paths.append(path)
        lengths.append(cam.shape[0])
        bodies.append(cam.shape[1])
    save_text_atomic(out_dir / "class_names.txt",
                     "".join(f"{m.name}\n" for m in MOTIONS[:opts.num_classes]))
    lengths_arr = np.array(lengths)
    logger.info("wrote %d files (%d classes, %d two-person files, %d CRLF) to %s in %.1f s; "
                "frames min/median/max %d/%d/%d", len(paths), opts.num_classes,
                int(np.sum(np.array(bodies) == 2)), int(crlf.sum()), out_dir,
                time.perf_counter() - start, lengths_arr.min(), int(np.median(lengths_arr)),
                lengths_arr.max())
    return paths


def _id_list(text: str) -> List[int]:
    """'1-8' or '1,2,5' or '1-3,7' -> ids."""
    ids: List[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-")
            ids.extend(range(int(lo), int(hi) + 1))
        elif part:
            ids.append(int(part))
    return ids


def build_parser() -> argparse.ArgumentParser:
    d = SynthOptions()
    parser = argparse.ArgumentParser(
        description="Write a synthetic demo dataset of NTU-format .skeleton files "
                    "(SsssCcccPpppRrrrAaaa.skeleton + class_names.txt).")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the .skeleton files")
    parser.add_argument("--num-classes", type=int, default=d.num_classes,
                        help=f"number of action classes A001.. (1..{len(MOTIONS)}; default {d.num_classes})")
    parser.add_argument("--performers", type=_id_list, default=list(d.performers),
                        help="performer ids, e.g. '1-8' or '1,2,3' (default 1-8: NTU-60 x-sub trains "
                             "on 1,2,4,5,8 and tests on 3,6,7)")
    parser.add_argument("--cameras", type=_id_list, default=list(d.cameras),
                        help="camera ids (default 1-3; x-view trains on 2,3, tests on 1)")
    parser.add_argument("--replications", type=_id_list, default=list(d.replications),
                        help="replication ids (default 1-2)")
    parser.add_argument("--setups", type=_id_list, default=list(d.setups), help="setup ids (default 1)")
    parser.add_argument("--camera-angles", type=float, nargs="+", default=list(d.camera_angles),
                        help="viewpoint in degrees about the vertical axis for camera 1, 2, 3, ... "
                             "(cycled; default -45 0 45)")
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed; same seed -> identical files")
    parser.add_argument("--min-frames", type=int, default=d.min_frames, help=f"shortest sequence in frames with bodies (default {d.min_frames})")
    parser.add_argument("--max-frames", type=positive_int, default=d.max_frames, help=f"longest sequence in frames with bodies (default {d.max_frames})")
    parser.add_argument("--noise", type=float, default=d.noise,
                        help=f"sensor jitter std in metres (default {d.noise})")
    parser.add_argument("--crlf-fraction", type=float, default=d.crlf_fraction,
                        help=f"share of files written with CRLF line endings (default {d.crlf_fraction})")
    parser.add_argument("--empty-lead-fraction", type=float, default=d.empty_lead_fraction,
                        help="share of files starting with 1-4 zero-body frames "
                             f"(default {d.empty_lead_fraction})")
    parser.add_argument("--inferred-fraction", type=float, default=d.inferred_fraction,
                        help="share of joint readings with trackingState 1 "
                             f"(default {d.inferred_fraction})")
    parser.add_argument("--time-warp", type=float, default=d.time_warp,
                        help=f"std of the random time-warp knots of each take (default {d.time_warp})")
    parser.add_argument("--style-jitter", type=float, default=d.style_jitter,
                        help="each motion curve of a take is scaled by U(1-j, 1+j) "
                             f"(default {d.style_jitter})")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> List[Path]:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return generate_dataset(
        args.out, progress=not args.no_progress, num_classes=args.num_classes,
        performers=args.performers, cameras=args.cameras, replications=args.replications,
        setups=args.setups, camera_angles=args.camera_angles, seed=args.seed,
        min_frames=args.min_frames, max_frames=args.max_frames, noise=args.noise,
        crlf_fraction=args.crlf_fraction, empty_lead_fraction=args.empty_lead_fraction,
        inferred_fraction=args.inferred_fraction, time_warp=args.time_warp,
        style_jitter=args.style_jitter)


def _cli() -> int:
    main()
    return 0


if __name__ == "__main__":
    sys.exit(exit_code_of(_cli))
