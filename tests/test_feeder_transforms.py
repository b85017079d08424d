"""Augmentation ops and pipelines: shapes, invariants, determinism, config handling."""
import re

import numpy as np
import pytest

from feeder.skeleton_ops import to_bone, to_motion
from feeder.temporal import center_crop_bounds, crop_resize
from feeder.transforms import (DEFAULT_PRETRAIN_CFG, RandomCropResize, RandomFlip, RandomRotate, RandomScale,
                               RandomShear, SkeletonPipeline, SpatialMask, StreamConvert, TemporalMask,
                               build_eval_transform, build_pretrain_transform, rotation_matrix, view_rng)
from net.graph import get_layout

LAYOUT = get_layout("ntu25")
ALL_ON = {name: {"p": 1.0} for name in ("rotate", "flip", "shear", "spatial_mask", "temporal_mask")}


def _view(seed=0, t=64):
    return np.random.default_rng(seed).standard_normal((3, t, 25, 2)).astype(np.float32) + 0.5


def _raw(valid=120):
    x = np.zeros((3, 300, 25, 2), dtype=np.float32)
    x[:, :valid] = np.random.default_rng(3).standard_normal((3, valid, 25, 2))
    return x


def test_rotation_matrix_is_orthonormal():
    r = rotation_matrix(np.deg2rad([10.0, 20.0, 30.0]))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(r), 1.0)


def test_rotation_matrix_axes_and_order_rz_ry_rx():
    """Right-handed 90 deg turns about each axis, composed as Rz @ Ry @ Rx (x applied first)."""
    ex, ey, ez = np.eye(3)
    q = np.pi / 2
    np.testing.assert_allclose(rotation_matrix([q, 0, 0]) @ ey, ez, atol=1e-12)    # Rx: y -> z
    np.testing.assert_allclose(rotation_matrix([0, q, 0]) @ ez, ex, atol=1e-12)    # Ry: z -> x
    np.testing.assert_allclose(rotation_matrix([0, 0, q]) @ ex, ey, atol=1e-12)    # Rz: x -> y
    # x first then y: e_y -Rx-> e_z -Ry-> e_x (the reverse order Rx @ Ry would give e_z)
    np.testing.assert_allclose(rotation_matrix([q, q, 0]) @ ey, ex, atol=1e-12)
    # all three: e_x -Rx-> e_x -Ry-> -e_z -Rz-> -e_z; e_z -> -e_y -> -e_y -> e_x
    r = rotation_matrix([q, q, q])
    np.testing.assert_allclose(r @ ex, -ez, atol=1e-12)
    np.testing.assert_allclose(r @ ez, ex, atol=1e-12)
    np.testing.assert_allclose(r @ ey, ey, atol=1e-12)


def test_rotate_preserves_bone_lengths_and_draw_ranges():
    op = RandomRotate(p=1.0)
    x = _view()
    angles = []
    for i in range(20):
        params = op.sample(np.random.default_rng(i), {})
        y = op.apply(x, params)
        assert y.shape == x.shape and y.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(to_bone(y, LAYOUT), axis=0),
                                   np.linalg.norm(to_bone(x, LAYOUT), axis=0), rtol=1e-5, atol=1e-5)
        angle = np.degrees(np.arccos(np.clip((np.trace(params["matrix"]) - 1) / 2, -1, 1)))
        assert angle <= 30.0 + 3 * 1.0 + 1e-3          # main <= 30 deg, the two others <= 1 deg each
        assert angle > 0.1                             # p = 1: a real rotation, not the identity
        assert not np.allclose(y, x, atol=1e-4)
        angles.append(angle)
    assert max(angles) > 15.0                          # main angle drawn from U(0, 30)


def _scdnet_rotate(x, main, angles_deg):
    """SCD-Net feeder's Rotate restated: per axis x, y, z in turn, ``seq(T, V, M, C) @ R.T`` with R written
    as [[1,0,0],[0,c,s],[0,-s,c]] (x), [[c,0,-s],[0,1,0],[s,0,c]] (y), [[c,s,0],[-s,c,0],[0,0,1]] (z)."""
    out = x.astype(np.float64)
    for axis in range(3):
        c, s = np.cos(np.deg2rad(angles_deg[axis])), np.sin(np.deg2rad(angles_deg[axis]))
        r = {0: [[1, 0, 0], [0, c, s], [0, -s, c]],
             1: [[c, 0, -s], [0, 1, 0], [s, 0, c]],
             2: [[c, s, 0], [-s, c, 0], [0, 0, 1]]}[axis]
        out = np.dot(out.transpose(1, 2, 3, 0), np.array(r).T).transpose(3, 0, 1, 2)
    return out


def test_rotate_turns_the_way_scdnet_does():
    """facts §5 / SCD-Net Rotate: the main axis by U(0, 30) deg, the others by U(0, 1) deg, x then y then z, in
    SCD-Net's direction (its matrices are R(-angle) for column vectors): the same draws give the same view."""
    op = RandomRotate(p=1.0)
    x = _view()
    for seed in range(10):
        rng = np.random.default_rng(seed)             # RandomRotate.sample: fire flag, main axis, 3 small, 1 main
        rng.random()
        main = int(rng.integers(3))
        angles = rng.uniform(0.0, 1.0, size=3)
        angles[main] = rng.uniform(0.0, 30.0)
        y = op.apply(x, op.sample(np.random.default_rng(seed), {}))
        np.testing.assert_allclose(y, _scdnet_rotate(x, main, angles), atol=1e-5)


def test_rotate_off_is_identity():
    op = RandomRotate(p=0.0)
    params = op.sample(np.random.default_rng(0), {})
    assert not params["apply"]
    np.testing.assert_array_equal(params["matrix"], np.eye(3, dtype=np.float32))


def test_flip_matches_layout_and_is_involution():
    op = RandomFlip(LAYOUT.flip, p=1.0)
    x = _view()
    params = op.sample(np.random.default_rng(0), {})
    y = op.apply(x, params)
    np.testing.assert_array_equal(y, x[:, :, list(LAYOUT.flip)])
    np.testing.assert_array_equal(op.apply(y, params), x)
    np.testing.assert_array_equal(y[:, :, 4], x[:, :, 8])          # left shoulder <- right shoulder
    assert np.array_equal(np.sort(y, axis=None), np.sort(x, axis=None))   # coordinates not negated


def test_shear_matrix_structure():
    op = RandomShear(p=1.0, s=1.0)
    params = op.sample(np.random.default_rng(0), {})
    m = params["matrix"]
    np.testing.assert_array_equal(np.diag(m), np.ones(3))
    off = m[~np.eye(3, dtype=bool)]
    assert (np.abs(off) <= 1.0).all() and (off != 0).all()
    x = _view()
    np.testing.assert_allclose(op.apply(x, params), np.einsum("ij,jtvm->itvm", m, x), atol=1e-5)


def test_shear_entries_cover_both_signs():
    """Off-diagonal entries are U(-s, s): negative and positive values, up to |s|."""
    op = RandomShear(p=1.0, s=0.7)
    off = np.concatenate([op.sample(np.random.default_rng(i), {})["matrix"][~np.eye(3, dtype=bool)]
                          for i in range(30)])
    assert (np.abs(off) <= 0.7 + 1e-6).all()
    assert (off < 0).mean() > 0.3 and (off > 0).mean() > 0.3
    assert off.min() < -0.5 and off.max() > 0.5


def test_scale_multiplies_every_coordinate_by_one_factor_in_range():
    op = RandomScale(p=1.0, range=[0.8, 1.25])
    x = _view()
    factors = []
    for seed in range(50):
        params = op.sample(np.random.default_rng(seed), {})
        m = params["matrix"]
        np.testing.assert_array_equal(m, np.eye(3, dtype=np.float32) * m[0, 0])
        factors.append(float(m[0, 0]))
        np.testing.assert_allclose(op.apply(x, params), m[0, 0] * x, rtol=1e-6)
    assert 0.8 <= min(factors) < 0.9 and 1.15 < max(factors) <= 1.25
    off = RandomScale(p=0.0).sample(np.random.default_rng(0), {})
    assert not off["apply"] and op.apply(x, off) is not None
    np.testing.assert_array_equal(RandomScale(p=0.0).apply(x, off), x)
    with pytest.raises(ValueError, match="range"):
        RandomScale(range=[1.2, 0.8])


def test_scale_runs_only_when_listed_in_order():
    names = [type(op).__name__ for op in build_pretrain_transform(None, LAYOUT, 64).ops]
    assert "RandomScale" not in names
    pipe = build_pretrain_transform({"order": ["scale", "rotate"]}, LAYOUT, 64)
    assert [type(op).__name__ for op in pipe.ops[2:]] == ["RandomScale", "RandomRotate"]


@pytest.mark.parametrize("layout_name", ["ntu25", "kinect_v1", "coco17"])
def test_spatial_mask_zeros_exactly_k_joints(layout_name):
    layout = get_layout(layout_name)
    op = SpatialMask(layout, p=1.0, centres=5, hops=2, k=8)
    x = np.random.default_rng(0).standard_normal((3, 64, layout.num_joints, 2)).astype(np.float32) + 2.0
    for i in range(50):
        params = op.sample(np.random.default_rng(i), {})
        y = op.apply(x, params)
        zero_joint = (y == 0).all(axis=(0, 1, 3))
        assert zero_joint.sum() == 8
        assert ((y != 0).all(axis=(0, 1, 3)) | zero_joint).all()   # masked joints: all coords, frames, persons


def test_spatial_mask_ranking_prefers_most_covered_joints():
    op = SpatialMask(LAYOUT, p=1.0, centres=5, hops=2, k=8, rule="coverage")
    hop = LAYOUT.hop_distance()
    for i in range(30):
        rng = np.random.default_rng(i)
        params = op.sample(rng, {})
        rng = np.random.default_rng(i)                          # replay the draws to get the centres
        rng.random()
        centres = rng.choice(25, size=5, replace=False)
        count = (hop[centres] <= 2).sum(0)
        masked = params["keep"] == 0
        assert count[masked].min() >= count[~masked].max()
        if (count > 0).sum() >= 8:                              # union large enough: all from the union
            assert (count[masked] > 0).all()
        assert (hop[centres][:, masked].min(0) <= 2).sum() == min(8, (count > 0).sum())


# SCD-Net's NTU bone list (1-based), written out again here so the walk counts are checked against
# an adjacency that does not come from net.graph.
_SCDNET_NTU_INWARD = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
                      (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
                      (20, 19), (22, 23), (23, 8), (24, 25), (25, 12)]


def test_spatial_mask_walks_rule_is_scdnets_two_step_walk_count():
    """The default rule: centres drawn with replacement, joints scored by the rows of (I + A)^2 summed
    over the centres (SCD-Net's ``A @ A``), the 8 best zeroed; a joint scored strictly above a masked one
    is never kept."""
    a = np.eye(25)
    for i, j in _SCDNET_NTU_INWARD:
        a[i - 1, j - 1] = a[j - 1, i - 1] = 1.0
    walks = a @ a
    op = SpatialMask(LAYOUT, p=1.0, centres=5, hops=2, k=8)
    assert op.rule == "walks"
    repeated = 0
    for seed in range(60):
        masked = op.sample(np.random.default_rng(seed), {})["keep"] == 0
        rng = np.random.default_rng(seed)
        rng.random()
        centres = rng.integers(25, size=5)
        repeated += len(set(centres.tolist())) < 5
        score = walks[centres].sum(0)
        assert masked.sum() == 8
        assert score[masked].min() >= score[~masked].max(), seed
    assert repeated > 0                                     # some draws repeat a centre (with replacement)


def test_spatial_mask_walks_ties_are_broken_by_the_draw():
    """One centre at a hand (joint 8, 0-based 7): its 2-step walk scores have ties at the boundary of the
    top 4, so which tied joint is masked depends on the tie-break draw, not on the joint index."""
    op = SpatialMask(LAYOUT, p=1.0, centres=1, hops=2, k=4)
    chosen = set()
    for seed in range(400):
        rng = np.random.default_rng(seed)
        rng.random()
        if rng.integers(25, size=1)[0] != 7:
            continue
        chosen.add(tuple(np.flatnonzero(op.sample(np.random.default_rng(seed), {})["keep"] == 0)))
    assert len(chosen) > 1


def test_spatial_mask_rule_is_checked():
    with pytest.raises(ValueError, match="rule"):
        SpatialMask(LAYOUT, rule="union")
    with pytest.raises(ValueError, match="hops"):
        SpatialMask(LAYOUT, hops=-1)


def _replay_centres(seed, centres, v=25):
    rng = np.random.default_rng(seed)                           # SpatialMask.sample: fire flag, then centres
    rng.random()
    return rng.choice(v, size=centres, replace=False)


@pytest.mark.parametrize("centres,hops,k", [(1, 0, 6), (2, 1, 12)])
def test_spatial_mask_fills_a_small_union_with_the_nearest_joints(centres, hops, k):
    """Union of the neighbourhoods smaller than k: the rest of the k joints are the next-nearest ones
    (hop distance to the nearest centre, ascending), not random joints."""
    op = SpatialMask(LAYOUT, p=1.0, centres=centres, hops=hops, k=k, rule="coverage")
    hop = LAYOUT.hop_distance()
    small_unions = 0
    for i in range(40):
        params = op.sample(np.random.default_rng(i), {})
        c = _replay_centres(i, centres)
        count = (hop[c] <= hops).sum(0)
        nearest = hop[c].min(0)
        masked = params["keep"] == 0
        assert masked.sum() == k
        assert masked[count > 0].all() or (count > 0).sum() > k     # the whole union first
        if (count > 0).sum() < k:
            small_unions += 1
            outside = count == 0
            assert nearest[masked & outside].max() <= nearest[~masked & outside].min(), (i, c)
    assert small_unions >= 30


def test_spatial_mask_single_centre_by_hand():
    """Centre 1 (0-based, the spine), hops 0, k 4: the centre, then its only two 1-hop neighbours 0 and 20,
    then one 2-hop joint."""
    hop = LAYOUT.hop_distance()
    assert sorted(np.flatnonzero(hop[1] == 1).tolist()) == [0, 20]
    op = SpatialMask(LAYOUT, p=1.0, centres=1, hops=0, k=4, rule="coverage")
    for i in range(200):
        if _replay_centres(i, 1)[0] != 1:
            continue
        masked = np.flatnonzero(op.sample(np.random.default_rng(i), {})["keep"] == 0)
        assert {1, 0, 20} <= set(masked.tolist()) and hop[1][masked].max() == 2
        break
    else:
        raise AssertionError("no seed drew centre 1")


def test_temporal_mask_zeros_exactly_n_cubes():
    op = TemporalMask(p=1.0, cubes=16, n=6)
    x = _view()
    for i in range(20):
        params = op.sample(np.random.default_rng(i), {"frames": 64})
        y = op.apply(x, params)
        zero_frame = (y == 0).all(axis=(0, 2, 3))
        assert zero_frame.sum() == 6 * 4
        cubes = zero_frame.reshape(16, 4)
        assert (cubes.all(1) | ~cubes.any(1)).all() and cubes.all(1).sum() == 6


def test_temporal_mask_uneven_cubes():
    op = TemporalMask(p=1.0, cubes=16, n=6)
    keep = op.sample(np.random.default_rng(0), {"frames": 50})["keep"]
    assert keep.shape == (50,) and 6 * 3 <= (keep == 0).sum() <= 6 * 4


def test_pretrain_pipeline_shapes_and_determinism():
    pipe = build_pretrain_transform(ALL_ON, LAYOUT, 64, "joint")
    x = _raw()
    a = pipe(x, 120, view_rng(1, 2, 3, 0))
    b = pipe(x, 120, view_rng(1, 2, 3, 0))
    assert a.shape == (3, 64, 25, 2) and a.dtype == np.float32 and a.flags.c_contiguous
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, pipe(x, 120, view_rng(1, 3, 3, 0)))    # other epoch
    assert not np.array_equal(a, pipe(x, 120, view_rng(1, 2, 3, 1)))    # other view


@pytest.mark.parametrize("stream", ["joint", "bone", "motion"])
def test_pipelines_all_streams(stream):
    """Both pipelines end in the stream asked: the eval pipeline is the centre crop, then bone vectors (joint
    minus parent) or motion (frame differences, the last frame zero) of the cropped window; in the pretraining
    pipeline the stream is taken of the random crop, before the augmentations (here none: ``order: []``)."""
    x = _raw(valid=30)
    for pipe in (build_pretrain_transform(None, LAYOUT, 64, stream), build_eval_transform(None, LAYOUT, 64, stream)):
        y = pipe(x, 30, view_rng(0, 0, 0, 0))
        assert y.shape == (3, 64, 25, 2) and y.dtype == np.float32
    joint = crop_resize(x, *center_crop_bounds(30, 0.95), 64)
    expected = {"joint": joint, "bone": to_bone(joint, LAYOUT), "motion": to_motion(joint)}
    out = build_eval_transform(None, LAYOUT, 64, stream)(x, 30)
    np.testing.assert_allclose(out, expected[stream], atol=1e-6)
    for other in set(expected) - {stream}:
        assert not np.allclose(out, expected[other], atol=1e-3), other
    views = {s: build_pretrain_transform({"order": []}, LAYOUT, 64, s)(x, 30, view_rng(0, 0, 0, 0)) for s in expected}
    converted = {"joint": views["joint"], "bone": to_bone(views["joint"], LAYOUT), "motion": to_motion(views["joint"])}
    np.testing.assert_allclose(views[stream], converted[stream], atol=1e-6)


def test_eval_pipeline_is_deterministic_without_rng():
    pipe = build_eval_transform({"center_crop_ratio": 0.95}, LAYOUT, 64, "bone")
    x = _raw()
    np.testing.assert_array_equal(pipe(x, 120), pipe(x, 120))
    with pytest.raises(TypeError, match="rng"):
        build_pretrain_transform(None, LAYOUT, 64)(x, 120)


@pytest.mark.parametrize("cfg,ratio", [(None, 0.95), ({"center_crop_ratio": 0.95}, 0.95),
                                       ({"center_crop_ratio": 0.5}, 0.5)])
def test_eval_pipeline_is_the_centre_crop_at_the_configured_ratio(cfg, ratio):
    x = _raw(valid=120)
    start, length = center_crop_bounds(120, ratio)
    assert (start, length) == {0.95: (3, 114), 0.5: (30, 60)}[ratio]
    out = build_eval_transform(cfg, LAYOUT, 64, "joint")(x, 120)
    np.testing.assert_allclose(out, crop_resize(x, start, length, 64), atol=1e-6)
    other = center_crop_bounds(120, 1.0 if ratio != 1.0 else 0.5)
    assert not np.allclose(out, crop_resize(x, *other, 64), atol=1e-3)


def test_error_messages():
    x = _view()
    with pytest.raises(ValueError, match="unknown stream 'jont'"):
        StreamConvert("jont", LAYOUT)
    with pytest.raises(ValueError, match="unknown stream"):
        build_eval_transform(None, LAYOUT, 64, "bones")
    flip = RandomFlip(LAYOUT.flip, p=1.0)
    with pytest.raises(ValueError, match="flip permutation has 25 joints, data has V=20"):
        flip.apply(x[:, :, :20], flip.sample(np.random.default_rng(0), {}))
    with pytest.raises(ValueError, match=r"spatial_mask\.centres must be in \[1, 25\], got 0"):
        SpatialMask(LAYOUT, centres=0)
    with pytest.raises(ValueError, match=r"spatial_mask\.centres must be in \[1, 25\], got 26"):
        SpatialMask(LAYOUT, centres=26)
    with pytest.raises(ValueError, match=r"spatial_mask\.k must be in \[0, 25\], got 26"):
        SpatialMask(LAYOUT, k=26)
    with pytest.raises(ValueError, match=r"spatial_mask\.k must be in \[0, 25\], got -1"):
        SpatialMask(LAYOUT, k=-1)
    SpatialMask(LAYOUT, centres=25, k=25)                          # both bounds inclusive
    with pytest.raises(ValueError, match=r"temporal_mask\.n must be in \[0, cubes=16\], got 17"):
        TemporalMask(cubes=16, n=17)
    TemporalMask(cubes=16, n=16)
    with pytest.raises(ValueError, match="16 cubes need at least as many frames, got 15"):
        TemporalMask(cubes=16, n=6).sample(np.random.default_rng(0), {"frames": 15})
    # ... which a pretraining pipeline of a shorter window now says when it is built, naming both keys
    with pytest.raises(ValueError, match=r"augment\.temporal_mask\.cubes=16 needs a window of at least as many "
                                         r"frames \(data\.window=8\)"):
        build_pretrain_transform({}, LAYOUT, window=8)
    build_pretrain_transform({"order": ["flip"]}, LAYOUT, window=8)     # no temporal mask listed: nothing to check
    params = TemporalMask(p=1.0).sample(np.random.default_rng(0), {"frames": 64})
    with pytest.raises(ValueError, match="drawn for 64 frames, data has T=32"):
        TemporalMask(p=1.0).apply(x[:, :32], params)
    with pytest.raises(ValueError, match="must start with a temporal crop-resize op"):
        SkeletonPipeline([RandomFlip(LAYOUT.flip), RandomCropResize(64)])
    with pytest.raises(ValueError, match="must start with a temporal crop-resize op"):
        SkeletonPipeline([])
    with pytest.raises(ValueError, match=r"augment\.rotate\.p: a probability must be in \[0, 1\], got -0.1"):
        RandomRotate(p=-0.1)


def test_config_defaults_and_errors():
    pipe = build_pretrain_transform(None, LAYOUT, 64)
    names = [op.name for op in pipe.ops]
    assert names == ["temporal_crop", "stream", "rotate", "flip", "shear", "spatial_mask", "temporal_mask"]
    assert pipe.ops[2].p == DEFAULT_PRETRAIN_CFG["rotate"]["p"] == 0.5
    assert pipe.ops[0].min_length == 64
    short = build_pretrain_transform({"order": ["flip"], "flip": {"p": 0.0}}, LAYOUT, 32)
    assert [op.name for op in short.ops] == ["temporal_crop", "stream", "flip"] and short.window == 32
    with pytest.raises(KeyError, match="rotat"):
        build_pretrain_transform({"rotat": {"p": 1}}, LAYOUT, 64)
    with pytest.raises(KeyError, match="pp"):
        build_pretrain_transform({"rotate": {"pp": 1}}, LAYOUT, 64)
    with pytest.raises(ValueError, match=r"augment\.flip\.p: a probability must be in \[0, 1\], got 2"):
        build_pretrain_transform({"flip": {"p": 2}}, LAYOUT, 64)
    with pytest.raises(ValueError, match=r"augment\.order: unknown ops \['jitter'\]"):
        build_pretrain_transform({"order": ["jitter"]}, LAYOUT, 64)
    with pytest.raises(TypeError, match=r"augment\.rotate: expected a mapping, got float"):
        build_pretrain_transform({"rotate": 0.5}, LAYOUT, 64)
    with pytest.raises(KeyError, match=r"eval_transform: unknown key 'ratio'"):
        build_eval_transform({"ratio": 0.9}, LAYOUT, 64)


def test_probability_half_fires_about_half():
    pipe = build_pretrain_transform(None, LAYOUT, 64)
    fired = np.array([[bool(p["apply"]) for p in pipe.sample(view_rng(0, 0, i, 0), 120, 300)[2:]]
                      for i in range(400)])
    rate = fired.mean(0)
    assert ((rate > 0.4) & (rate < 0.6)).all(), rate


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"])
def test_temporal_crop_min_length_is_checked_at_construction(bad):
    """min_length 0 used to draw length-0 crops: a misleading per-sample error, a silent batched clip."""
    with pytest.raises(ValueError, match=r"temporal_crop\.min_length must be an integer >= 1.*got"):
        build_pretrain_transform({"temporal_crop": {"min_length": bad}}, LAYOUT, 64)
    pipe = build_pretrain_transform({"temporal_crop": {"min_length": 1}}, LAYOUT, 64)
    assert pipe.ops[0].min_length == 1
    lengths = {int(pipe.sample(view_rng(s, 0, 0, 0), 5, 300)[0]["length"]) for s in range(50)}
    assert min(lengths) >= 1 and lengths <= set(range(1, 6))


@pytest.mark.parametrize("cfg, key", [
    ({"temporal_crop": {"ratio": [1.0, 0.5]}}, "temporal_crop.ratio"),
    ({"order": ["scale"], "scale": {"range": [1.2, 0.8]}}, "scale.range"),
    ({"order": ["scale"], "scale": {"range": [0.8, float("inf")]}}, "scale.range"),
    ({"shear": {"s": -1.0}}, "shear.s"),
    ({"shear": {"s": float("nan")}}, "shear.s"),
    ({"shear": {"s": float("inf")}}, "shear.s"),
    ({"rotate": {"main_max_deg": -30.0}}, "rotate.main_max_deg"),
    ({"rotate": {"other_max_deg": float("nan")}}, "rotate.other_max_deg"),
    ({"flip": {"p": 2}}, "flip.p"),
    ({"spatial_mask": {"k": 26}}, "spatial_mask.k"),
    ({"spatial_mask": {"centres": 0}}, "spatial_mask.centres"),
    ({"spatial_mask": {"hops": -1}}, "spatial_mask.hops"),
    ({"spatial_mask": {"rule": "nearest"}}, "spatial_mask.rule"),
    ({"temporal_mask": {"n": 20}}, "temporal_mask.n"),
    ({"temporal_mask": {"cubes": 0, "n": 0}}, "temporal_mask.cubes"),
    ({"temporal_crop": {"min_length": 0}}, "temporal_crop.min_length"),
])
def test_bad_augmentation_values_name_their_key_when_the_pipeline_is_built(cfg, key):
    """A negative shear or angle used to pass the build and fail on every sample inside a loader worker as
    numpy's "high - low < 0" (a NaN one gave NaN views); reversed ranges and the rest named no config key."""
    with pytest.raises(ValueError, match=rf"^augment\.{re.escape(key)}"):
        build_pretrain_transform(cfg, LAYOUT, 64)


@pytest.mark.parametrize("bad", [[0.1, 10.0], [0.5, 1.5], [1.2, 1.2], [0.0, 1.0], [0.6, 0.5], [0.5]])
def test_temporal_crop_ratio_is_a_fraction_of_the_valid_frames(bad):
    """A ratio above 1 used to be clipped to the whole clip silently ([0.1, 10] ~ always the full length)."""
    with pytest.raises(ValueError, match=r"temporal_crop\.ratio must be \[low, high\] with 0 < low <= high <= 1"):
        build_pretrain_transform({"temporal_crop": {"ratio": bad}}, LAYOUT, 64)
    assert build_pretrain_transform({"temporal_crop": {"ratio": [1.0, 1.0]}}, LAYOUT, 64).ops[0].ratio == (1.0, 1.0)
