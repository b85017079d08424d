"""net/graph.py layouts against acsar_facts.md §5-§6 and shared/data/README.md."""
import numpy as np
import pytest

from net.graph import LAYOUTS, get_layout

# acsar_facts.md §6, 1-based (child, parent); (21, 21) is the centre.
NTU_BONES_1BASED = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
                    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
                    (20, 19), (21, 21), (22, 23), (23, 8), (24, 25), (25, 12)]
NTU_FLIP = (0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15, 20, 23, 24, 21, 22)


def test_ntu_bones_match_facts():
    layout = get_layout("ntu25")
    assert layout.num_joints == 25 and layout.center == 20
    assert layout.bone_pairs == tuple((c - 1, p - 1) for c, p in NTU_BONES_1BASED)
    assert len(layout.inward) == 24
    np.testing.assert_array_equal(layout.parents, [p - 1 for _, p in NTU_BONES_1BASED])
    assert layout.flip == NTU_FLIP
    assert (layout.hip, layout.spine, layout.left_shoulder, layout.right_shoulder) == (0, 1, 4, 8)


def test_adjacency_is_identity_plus_normalised_directions():
    for layout in LAYOUTS.values():
        a = layout.adjacency()
        v = layout.num_joints
        assert a.shape == (3, v, v) and a.dtype == np.float32
        np.testing.assert_array_equal(a[0], np.eye(v))
        for k in (1, 2):
            col = a[k].sum(axis=0)
            assert np.all((np.abs(col - 1) < 1e-6) | (col == 0))
        assert (a[1] > 0).sum() == (a[2] > 0).sum() == v - 1
        np.testing.assert_array_equal(a[1] > 0, (a[2] > 0).T)


def test_hop_distance_and_flip_consistency():
    for layout in LAYOUTS.values():
        d = layout.hop_distance()
        v = layout.num_joints
        np.testing.assert_array_equal(d, d.T)
        assert (np.diag(d) == 0).all() and (d < v).all()            # connected tree
        for c, p in layout.inward:
            assert d[c, p] == 1
        flip = np.array(layout.flip)
        np.testing.assert_array_equal(flip[flip], np.arange(v))      # an involution
        assert flip[layout.left_shoulder] == layout.right_shoulder
        # flipping keeps the skeleton: edges map onto edges
        edges = {frozenset(e) for e in layout.inward}
        assert {frozenset((flip[c], flip[p])) for c, p in layout.inward} == edges


def test_kinect_v1_matches_readme():
    layout = get_layout("kinect_v1")
    assert layout.num_joints == 20
    assert layout.joint_names[0] == "hip_center" and layout.joint_names[4] == "shoulder_left"
    assert (layout.hip, layout.spine, layout.left_shoulder, layout.right_shoulder) == (0, 1, 4, 8)


def test_unknown_layout_raises():
    # a ValueError, which main.py ends with one `error:` line (data.layout=ntu was a KeyError traceback)
    with pytest.raises(ValueError, match=r"unknown skeleton layout 'smpl'; known: \['coco17', 'kinect_v1', 'ntu25'\]"):
        get_layout("smpl")
