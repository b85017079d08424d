"""Skeleton augmentations as small composable ops (acsar_facts.md §5).

A view is made by a :class:`SkeletonPipeline`, a list of ops.  Every op splits
into two steps so that the per-sample numpy path and the batched torch path
(:mod:`feeder.batch_augment`) share one definition of the randomness:

- ``op.sample(rng, ctx) -> dict``: draws the op's parameters for one sample from a
  ``numpy.random.Generator`` (the same calls whether or not the op fires; what they consume can depend on
  the clip, e.g. a crop covering it whole; the views stay fixed by (seed, epoch, index, view));
- ``op.apply(x, params)``: numpy, one sample ``(C, T, V, M)``;
- ``op.apply_batch(x, params)``: torch, a batch ``(N, C, T, V, M)`` with the
  per-sample parameters stacked along a leading axis.

Pretraining pipeline (facts §5, in this order): temporal crop-resize of the valid
frames to ``window`` -> stream conversion (bone / motion) -> rotate -> flip ->
shear -> spatial mask -> temporal mask, the last five each with probability ``p``.
``scale`` (isotropic body-size scaling, pyskl's ``RandomScale`` idea) is not in
the paper's list; it runs only when named in ``order`` **[ours]**.
Evaluation pipeline: centre crop (ratio 0.95) -> stream conversion.

Randomness: a sample's view is drawn from ``view_rng(seed, epoch, index, view)``
(``numpy.random.default_rng([seed, epoch, index, view])``), so it does not depend
on worker count, order or batch composition, and a resumed run reproduces it.

Config schema (``build_pretrain_transform``; every key optional, defaults = paper):

.. code-block:: yaml

    order: [rotate, flip, shear, spatial_mask, temporal_mask]   # ops after crop + stream, in order
    temporal_crop: {ratio: [0.1, 1.0], min_length: null}   # null -> window
    scale:         {p: 0.5, range: [0.8, 1.2]}             # only if listed in order [ours]
    rotate:        {p: 0.5, main_max_deg: 30.0, other_max_deg: 1.0}
    flip:          {p: 0.5}
    shear:         {p: 0.5, s: 1.0}
    spatial_mask:  {p: 0.5, centres: 5, hops: 2, k: 8, rule: walks}   # or rule: coverage
    temporal_mask: {p: 0.5, cubes: 16, n: 6}

``build_eval_transform`` reads ``center_crop_ratio`` (default 0.95).

Spatial mask, ``rule: walks`` (the default; SCD-Net feeder's ``spatial_masking``, facts §5):
draw ``centres`` joints with replacement; score every joint by the number of walks of length
``hops`` from the centres along the skeleton with self-loops, ``((I + A)^hops)[centres].sum(0)``
(A the undirected 0/1 bone adjacency; with hops = 2 SCD-Net's ``A @ A``); zero the ``k`` best-scored
joints, ties broken uniformly at random **[ours]** (SCD-Net takes numpy ``argsort``'s order).
``rule: coverage`` **[ours]**, an earlier reading kept as an option: ``centres`` distinct joints;
rank by (1) how many centres' ``hops``-neighbourhoods contain the joint, descending, (2) hop
distance to the nearest centre, ascending, (3) a uniform random tie-break.  Either way exactly
``k`` joints are masked (all channels, frames and persons).

Temporal mask: the ``T`` frames of the view are split into ``cubes`` contiguous
cubes (edges ``floor(c * T / cubes)``; 64 / 16 = 4 frames each) and ``n`` distinct
cubes are zeroed.

Shapes: ``SkeletonPipeline.__call__(x (C, T_store, V, M), num_frame, rng)`` ->
``(C, window, V, M)`` float32.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
import torch

from feeder.batch_augment import (crop_resize_batch, flip_batch, frame_mask_batch, joint_mask_batch,
                                  linear_batch)
from feeder.skeleton_ops import STREAMS, convert_stream
from feeder.temporal import (center_crop_bounds, crop_resize, random_crop_bounds, valid_length)
from net.graph import Layout

__all__ = [
    "view_rng", "rotation_matrix", "Op", "RandomCropResize", "CenterCropResize", "StreamConvert",
    "RandomRotate", "RandomFlip", "RandomShear", "RandomScale", "SpatialMask", "TemporalMask", "SkeletonPipeline",
    "DEFAULT_PRETRAIN_CFG", "DEFAULT_EVAL_CFG", "build_pretrain_transform", "build_eval_transform",
]

Params = Dict[str, np.ndarray]


def view_rng(seed: int, epoch: int, index: int, view: int) -> np.random.Generator:
    """The generator of one view of one sample in one epoch (order/worker independent)."""
    for name, value in (("seed", seed), ("epoch", epoch), ("index", index), ("view", view)):
        if int(value) < 0:
            raise ValueError(f"view_rng: {name} must be >= 0, got {value}")
    return np.random.default_rng([int(seed), int(epoch), int(index), int(view)])


def rotation_matrix(angles_rad: Sequence[float]) -> np.ndarray:
    """(3, 3) float64 ``Rz @ Ry @ Rx`` (rotate about x first), right-handed, angles in radians."""
    ax, ay, az = (float(a) for a in angles_rad)
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _check_p(name: str, p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"augment.{name}.p: a probability must be in [0, 1], got {p}")
    return p


def _check_extent(key: str, value: float) -> float:
    """A finite half-width >= 0 of a ``U(0, value)`` / ``U(-value, value)`` draw: checked when the op is built, else
    numpy fails on every sample inside a loader worker ("high - low < 0") or draws NaN views (``nan``)."""
    value = float(value)
    if not 0.0 <= value < np.inf:
        raise ValueError(f"augment.{key} must be a finite number >= 0, got {value}")
    return value


def _apply_linear(x: np.ndarray, matrix: np.ndarray, who: str) -> np.ndarray:
    if x.shape[0] != 3:
        raise ValueError(f"{who} needs 3-D coordinates (C=3), got C={x.shape[0]}")
    c = x.shape[0]
    return (matrix.astype(np.float32) @ x.reshape(c, -1)).reshape(x.shape)


class Op:
    """One step of a pipeline: ``sample`` parameters, then ``apply`` / ``apply_batch`` them."""

    name = "op"

    def sample(self, rng: np.random.Generator, ctx: Dict[str, int]) -> Params:
        return {}

    def apply(self, x: np.ndarray, params: Params) -> np.ndarray:
        raise NotImplementedError

    def apply_batch(self, x: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


# ----------------------------------------------------------------- temporal
class RandomCropResize(Op):
    """Random crop of ``ratio ~ U(low, high)`` of the valid frames, resized to ``window``.

    Crop length is clipped to ``[min_length, valid]`` (``min_length`` defaults to
    ``window``; SCD-Net: 64; an integer >= 1, checked here).  Raw ``(C, T_store, V, M)`` in, ``(C, window, V, M)`` out.
    """

    name = "temporal_crop"

    def __init__(self, window: int, ratio: Sequence[float] = (0.1, 1.0), min_length: int | None = None) -> None:
        if len(ratio) != 2 or not 0.0 < float(ratio[0]) <= float(ratio[1]) <= 1.0:   # a fraction of the valid frames
            raise ValueError(f"augment.temporal_crop.ratio must be [low, high] with 0 < low <= high <= 1, "
                             f"got {list(ratio)}")
        self.window = int(window)
        self.ratio = (float(ratio[0]), float(ratio[1]))
        if min_length is not None and (isinstance(min_length, bool) or not isinstance(min_length, (int, np.integer))
                                       or min_length < 1):
            raise ValueError(f"augment.temporal_crop.min_length must be an integer >= 1 (or null for the window, "
                             f"{self.window}), got {min_length!r}")
        self.min_length = self.window if min_length is None else int(min_length)

    def sample(self, rng, ctx):
        valid = valid_length(ctx["num_frame"], ctx["storage_frames"])
        start, length = random_crop_bounds(rng, valid, self.ratio, self.min_length)
        ctx["frames"] = self.window
        return {"start": np.int64(start), "length": np.int64(length)}

    def apply(self, x, params):
        return crop_resize(x, int(params["start"]), int(params["length"]), self.window)

    def apply_batch(self, x, params):
        return crop_resize_batch(x, params["start"], params["length"], self.window)


class CenterCropResize(RandomCropResize):
    """Deterministic centre crop keeping ``ratio`` (0.95) of the valid frames, resized to ``window``."""

    name = "center_crop"

    def __init__(self, window: int, ratio: float = 0.95) -> None:
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError(f"center_crop_ratio must be in (0, 1], got {ratio}")
        self.window = int(window)
        self.center_ratio = float(ratio)

    def sample(self, rng, ctx):
        valid = valid_length(ctx["num_frame"], ctx["storage_frames"])
        start, length = center_crop_bounds(valid, self.center_ratio)
        ctx["frames"] = self.window
        return {"start": np.int64(start), "length": np.int64(length)}


class StreamConvert(Op):
    """Joint -> bone / motion on the cropped clip (``joint`` is the identity)."""

    name = "stream"

    def __init__(self, stream: str, layout: Layout) -> None:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")
        self.stream = stream
        self.layout = layout

    def apply(self, x, params):
        return convert_stream(x, self.stream, self.layout)

    def __repr__(self) -> str:
        return f"StreamConvert(stream={self.stream!r}, layout={self.layout.name!r})"

    def apply_batch(self, x, params):
        return convert_stream(x, self.stream, self.layout)


# ---------------------------------------------------------------- geometric
class RandomRotate(Op):
    """With prob ``p``: one random main axis by ``U(0, main_max_deg)``, the other two by ``U(0, other_max_deg)``.

    Turned about x, then y, then z in SCD-Net's direction: its feeder's ``Rotate`` right-multiplies the
    ``(T, V, M, C)`` rows by ``R.T`` with ``R = [[1,0,0],[0,c,s],[0,-s,c]]`` (x, likewise y and z), which for
    column vectors is the right-handed rotation by ``-angle``; so ``matrix = rotation_matrix(-angles)``.
    Draws: fire flag, main axis, three small angles, one main angle (always all of them).
    """

    name = "rotate"

    def __init__(self, p: float = 0.5, main_max_deg: float = 30.0, other_max_deg: float = 1.0) -> None:
        self.p = _check_p(self.name, p)
        self.main_max_deg = _check_extent("rotate.main_max_deg", main_max_deg)
        self.other_max_deg = _check_extent("rotate.other_max_deg", other_max_deg)

    def sample(self, rng, ctx):
        fire = rng.random() < self.p
        main = int(rng.integers(3))
        angles = rng.uniform(0.0, self.other_max_deg, size=3)
        angles[main] = rng.uniform(0.0, self.main_max_deg)
        matrix = rotation_matrix(-np.deg2rad(angles)) if fire else np.eye(3)   # SCD-Net's direction (above)
        return {"apply": np.bool_(fire), "matrix": matrix.astype(np.float32)}

    def apply(self, x, params):
        return _apply_linear(x, params["matrix"], "rotate") if params["apply"] else x

    def apply_batch(self, x, params):
        return linear_batch(x, params["matrix"])


class RandomFlip(Op):
    """With prob ``p``: swap left/right joints by ``layout.flip`` (coordinates not negated)."""

    name = "flip"

    def __init__(self, perm: Sequence[int], p: float = 0.5) -> None:
        self.p = _check_p(self.name, p)
        self.perm = np.asarray(perm, dtype=np.int64)

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p}, perm={tuple(self.perm.tolist())})"

    def sample(self, rng, ctx):
        return {"apply": np.bool_(rng.random() < self.p)}

    def apply(self, x, params):
        if not params["apply"]:
            return x
        if x.shape[2] != len(self.perm):
            raise ValueError(f"flip permutation has {len(self.perm)} joints, data has V={x.shape[2]}")
        return x[:, :, self.perm]

    def apply_batch(self, x, params):
        return flip_batch(x, params["apply"], self.perm.tolist())


class RandomShear(Op):
    """With prob ``p``: ``x' = S x``, ``S`` = identity with off-diagonal entries ``U(-s, s)``."""

    name = "shear"

    def __init__(self, p: float = 0.5, s: float = 1.0) -> None:
        self.p = _check_p(self.name, p)
        self.s = _check_extent("shear.s", s)

    def sample(self, rng, ctx):
        fire = rng.random() < self.p
        off = rng.uniform(-self.s, self.s, size=6)
        matrix = np.eye(3)
        if fire:
            matrix[~np.eye(3, dtype=bool)] = off
        return {"apply": np.bool_(fire), "matrix": matrix.astype(np.float32)}

    def apply(self, x, params):
        return _apply_linear(x, params["matrix"], "shear") if params["apply"] else x

    def apply_batch(self, x, params):
        return linear_batch(x, params["matrix"])


class RandomScale(Op):
    """With prob ``p``: ``x' = s x`` with one factor ``s ~ U(low, high)`` for all axes (body size).

    Draws: fire flag, factor (always both).
    """

    name = "scale"

    def __init__(self, p: float = 0.5, range: Sequence[float] = (0.8, 1.2)) -> None:  # noqa: A002 (config key)
        self.p = _check_p(self.name, p)
        if len(range) != 2 or not 0.0 < float(range[0]) <= float(range[1]) < np.inf:
            raise ValueError(f"augment.scale.range must be [low, high] with 0 < low <= high (finite), got {list(range)}")
        low, high = (float(v) for v in range)
        self.range = (low, high)

    def sample(self, rng, ctx):
        fire = rng.random() < self.p
        factor = rng.uniform(*self.range)
        matrix = np.eye(3) * (factor if fire else 1.0)
        return {"apply": np.bool_(fire), "matrix": matrix.astype(np.float32)}

    def apply(self, x, params):
        return _apply_linear(x, params["matrix"], "scale") if params["apply"] else x

    def apply_batch(self, x, params):
        return linear_batch(x, params["matrix"])


# -------------------------------------------------------------------- masks
class SpatialMask(Op):
    """With prob ``p``: zero ``k`` joints ranked from the ``hops``-hop neighbourhoods of ``centres`` random joints.

    ``rule`` ``walks`` (SCD-Net) or ``coverage``: see the module docstring.  Draws: fire flag, centres,
    one tie-break number per joint (always all of them).  Params: ``keep`` ``(V,)`` float32 (0 = masked).
    """

    name = "spatial_mask"
    RULES = ("walks", "coverage")

    def __init__(self, layout: Layout, p: float = 0.5, centres: int = 5, hops: int = 2, k: int = 8,
                 rule: str = "walks") -> None:
        self.p = _check_p(self.name, p)
        v = layout.num_joints
        if rule not in self.RULES:
            raise ValueError(f"augment.spatial_mask.rule must be one of {list(self.RULES)}, got {rule!r}")
        if not 1 <= int(centres) <= v:
            raise ValueError(f"augment.spatial_mask.centres must be in [1, {v}], got {centres}")
        if not 0 <= int(k) <= v:
            raise ValueError(f"augment.spatial_mask.k must be in [0, {v}], got {k}")
        if int(hops) < 0:
            raise ValueError(f"augment.spatial_mask.hops must be >= 0, got {hops}")
        self.centres, self.hops, self.k, self.rule = int(centres), int(hops), int(k), rule
        self._hop = layout.hop_distance()
        self._walks = np.linalg.matrix_power((self._hop <= 1).astype(np.int64), self.hops)   # (I + A)^hops
        self._num_joints = v

    def sample(self, rng, ctx):
        v = self._num_joints
        fire = rng.random() < self.p
        if self.rule == "walks":
            centres = rng.integers(v, size=self.centres)                # with replacement, as SCD-Net
        else:
            centres = rng.choice(v, size=self.centres, replace=False)
        tie = rng.random(v)
        keep = np.ones(v, dtype=np.float32)
        if fire:
            if self.rule == "walks":
                order = np.lexsort((tie, -self._walks[centres].sum(0)))   # last key is primary
            else:
                hop = self._hop[centres]                                  # (centres, V)
                order = np.lexsort((tie, hop.min(0), -(hop <= self.hops).sum(0)))
            keep[order[: self.k]] = 0.0
        return {"apply": np.bool_(fire), "keep": keep}

    def apply(self, x, params):
        if not params["apply"]:
            return x
        return x * params["keep"][None, None, :, None]

    def apply_batch(self, x, params):
        return joint_mask_batch(x, params["keep"])


class TemporalMask(Op):
    """With prob ``p``: split the view's frames into ``cubes`` contiguous cubes and zero ``n`` of them.

    Params: ``keep`` ``(T,)`` float32 (0 = masked).
    """

    name = "temporal_mask"

    def __init__(self, p: float = 0.5, cubes: int = 16, n: int = 6) -> None:
        self.p = _check_p(self.name, p)
        if int(cubes) < 1:
            raise ValueError(f"augment.temporal_mask.cubes must be >= 1, got {cubes}")
        if not 0 <= int(n) <= int(cubes):
            raise ValueError(f"augment.temporal_mask.n must be in [0, cubes={cubes}], got {n}")
        self.cubes, self.n = int(cubes), int(n)

    def sample(self, rng, ctx):
        frames = int(ctx["frames"])
        if self.cubes > frames:
            raise ValueError(f"temporal_mask: {self.cubes} cubes need at least as many frames, got {frames}")
        fire = rng.random() < self.p
        chosen = rng.choice(self.cubes, size=self.n, replace=False)
        keep = np.ones(frames, dtype=np.float32)
        if fire:
            edges = (np.arange(self.cubes + 1) * frames) // self.cubes
            cube_of_frame = np.searchsorted(edges, np.arange(frames), side="right") - 1
            keep[np.isin(cube_of_frame, chosen)] = 0.0
        return {"apply": np.bool_(fire), "keep": keep}

    def apply(self, x, params):
        if not params["apply"]:
            return x
        if x.shape[1] != params["keep"].shape[0]:
            raise ValueError(f"temporal_mask drawn for {params['keep'].shape[0]} frames, data has T={x.shape[1]}")
        return x * params["keep"][None, :, None, None]

    def apply_batch(self, x, params):
        return frame_mask_batch(x, params["keep"])


# ----------------------------------------------------------------- pipeline
class _NoRng:
    """Stands in for a generator in deterministic pipelines; any draw is an error."""

    def __getattr__(self, name):
        raise TypeError("this pipeline draws random parameters: pass rng= (e.g. view_rng(seed, epoch, index, view))")


class SkeletonPipeline:
    """A list of ops; the first one crops the raw stored clip.

    ``pipeline(x_raw, num_frame, rng)`` -> ``(C, window, V, M)`` float32;
    ``sample`` / ``apply`` / ``apply_batch`` expose the two halves.
    """

    def __init__(self, ops: Sequence[Op]) -> None:
        self.ops: List[Op] = list(ops)
        if not self.ops or not isinstance(self.ops[0], RandomCropResize):
            raise ValueError("a skeleton pipeline must start with a temporal crop-resize op")

    @property
    def window(self) -> int:
        return self.ops[0].window

    def sample(self, rng: np.random.Generator, num_frame: int, storage_frames: int) -> List[Params]:
        ctx: Dict[str, int] = {"num_frame": int(num_frame), "storage_frames": int(storage_frames)}
        return [op.sample(rng, ctx) for op in self.ops]

    def apply(self, x: np.ndarray, params: Sequence[Params]) -> np.ndarray:
        for op, p in zip(self.ops, params):
            x = op.apply(x, p)
        return np.ascontiguousarray(x, dtype=np.float32)

    def apply_batch(self, x: torch.Tensor, params: Sequence[Mapping[str, torch.Tensor]]) -> torch.Tensor:
        for op, p in zip(self.ops, params):
            x = op.apply_batch(x, p)
        return x

    def __call__(self, x: np.ndarray, num_frame: int, rng: np.random.Generator | None = None) -> np.ndarray:
        if rng is None:
            rng = _NoRng()
        return self.apply(x, self.sample(rng, num_frame, x.shape[1]))

    def __repr__(self) -> str:
        return "SkeletonPipeline(\n  " + ",\n  ".join(repr(op) for op in self.ops) + "\n)"


# ----------------------------------------------------------------- builders
DEFAULT_PRETRAIN_CFG: Dict[str, Any] = {
    # acsar_facts.md §5 (AC-SAR §3.2 / SCD-Net feeder).
    "order": ["rotate", "flip", "shear", "spatial_mask", "temporal_mask"],
    "temporal_crop": {"ratio": [0.1, 1.0], "min_length": None},
    "rotate": {"p": 0.5, "main_max_deg": 30.0, "other_max_deg": 1.0},
    "flip": {"p": 0.5},
    "shear": {"p": 0.5, "s": 1.0},
    "spatial_mask": {"p": 0.5, "centres": 5, "hops": 2, "k": 8, "rule": "walks"},
    "temporal_mask": {"p": 0.5, "cubes": 16, "n": 6},
    "scale": {"p": 0.5, "range": [0.8, 1.2]},   # [ours]; applied only when listed in "order"
}
DEFAULT_EVAL_CFG: Dict[str, Any] = {"center_crop_ratio": 0.95}   # facts §5, downstream feeders

_OP_NAMES = ("scale", "rotate", "flip", "shear", "spatial_mask", "temporal_mask")


def _merge(cfg: Mapping[str, Any] | None, default: Mapping[str, Any], where: str) -> Dict[str, Any]:
    out = copy.deepcopy(dict(default))
    for key, value in (cfg or {}).items():
        if key not in default:
            raise KeyError(f"{where}: unknown key {key!r}; known: {sorted(default)}")
        if isinstance(default[key], dict):
            if not isinstance(value, Mapping):
                raise TypeError(f"{where}.{key}: expected a mapping, got {type(value).__name__}")
            out[key] = _merge(value, default[key], f"{where}.{key}")
        else:
            out[key] = value
    return out


def build_pretrain_transform(cfg: Mapping[str, Any] | None, layout: Layout, window: int,
                             stream: str = "joint") -> SkeletonPipeline:
    """Pretraining view pipeline from ``cfg`` (schema in the module docstring; missing keys = paper)."""
    c = _merge(cfg, DEFAULT_PRETRAIN_CFG, "augment")
    unknown = [name for name in c["order"] if name not in _OP_NAMES]
    if unknown:
        raise ValueError(f"augment.order: unknown ops {unknown}; known: {list(_OP_NAMES)}")
    ops: List[Op] = [RandomCropResize(window, **c["temporal_crop"]), StreamConvert(stream, layout)]
    makers = {
        "rotate": lambda a: RandomRotate(**a),
        "flip": lambda a: RandomFlip(layout.flip, **a),
        "shear": lambda a: RandomShear(**a),
        "scale": lambda a: RandomScale(**a),
        "spatial_mask": lambda a: SpatialMask(layout, **a),
        "temporal_mask": lambda a: TemporalMask(**a),
    }
    ops += [makers[name](c[name]) for name in c["order"]]
    masks = [op for op in ops if isinstance(op, TemporalMask)]
    if masks and masks[0].cubes > int(window):       # else every sample fails later, inside a loader worker
        raise ValueError(f"augment.temporal_mask.cubes={masks[0].cubes} needs a window of at least as many frames "
                         f"(data.window={window}): lower the cubes or raise the window")
    return SkeletonPipeline(ops)


def build_eval_transform(cfg: Mapping[str, Any] | None, layout: Layout, window: int,
                         stream: str = "joint") -> SkeletonPipeline:
    """Downstream pipeline: centre crop (``center_crop_ratio``) -> ``window`` frames -> stream."""
    c = _merge(cfg, DEFAULT_EVAL_CFG, "eval_transform")
    return SkeletonPipeline([CenterCropResize(window, c["center_crop_ratio"]), StreamConvert(stream, layout)])
