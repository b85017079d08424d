"""CTR-GCN blocks and stem: shapes, CTR-GCN inits, paper-size parameter count."""
import numpy as np
import pytest
import torch

from net.ctrgcn import CTRGC, CTRGCNBlock, CTRGCNStem, GraphConv, MultiScaleTemporalConv, relation_channels
from net.graph import get_layout


@pytest.mark.parametrize("layout", ["ntu25", "kinect_v1"])
@pytest.mark.parametrize("num_person", [2, 1])
def test_stem_shape(layout, num_person):
    adjacency = get_layout(layout).adjacency()
    v = adjacency.shape[-1]
    stem = CTRGCNStem(3, num_person, adjacency, [8, 16, 8])
    x = torch.randn(2, 3, 16, v, num_person)
    y = stem(x)
    assert y.shape == (2 * num_person, 8, 16, v)
    assert stem.data_bn.num_features == num_person * v * 3
    assert stem.block_names == ["l1", "l2", "l3"]


def test_block_parts_shapes_and_inits():
    adjacency = get_layout("ntu25").adjacency()
    block = CTRGCNBlock(8, 16, adjacency, residual=True, kernel_size=5, dilations=(1, 2))
    x = torch.randn(3, 8, 12, 25)
    assert block(x).shape == (3, 16, 12, 25)
    gcn = block.gcn1
    assert torch.equal(gcn.PA.detach(), torch.from_numpy(adjacency))
    assert gcn.alpha.item() == 0.0
    assert torch.allclose(gcn.bn.weight, torch.full((16,), 1e-6))
    assert gcn.down is not None and torch.all(gcn.down[1].weight == 1)
    assert all(torch.all(c.conv3.bias == 0) for c in gcn.convs)
    assert block.residual is not None and torch.all(block.residual.bn.weight == 1)
    # multi-scale TCN: 4 branches of out/4 channels; BN weights ~ N(1, 0.02)
    assert len(block.tcn1.branches) == 4
    assert block.tcn1.branches[0][3].conv.dilation == (1, 1) and block.tcn1.branches[1][3].conv.dilation == (2, 1)
    bns = [m for m in block.tcn1.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    weights = torch.cat([bn.weight.detach() for bn in bns])
    assert len(bns) == 7 and not torch.all(weights == 1)                   # drawn, not PyTorch's ones
    assert abs(weights.mean().item() - 1.0) < 0.02 and 0.01 < weights.std().item() < 0.04
    assert all(torch.all(bn.bias == 0) for bn in bns)


def test_first_block_has_no_residual_and_same_width_is_identity():
    adjacency = get_layout("ntu25").adjacency()
    first = CTRGCNBlock(3, 8, adjacency, residual=False, kernel_size=5, dilations=(1, 2))
    assert not first.use_residual and first.residual is None
    same = CTRGCNBlock(8, 8, adjacency, residual=True, kernel_size=5, dilations=(1, 2))
    assert same.use_residual and same.residual is None and same.gcn1.down is None


def test_ctrgc_alpha_zero_is_plain_graph_conv():
    """With alpha = 0 the refined topology is A itself: y[:, c, t, u] = sum_v A[u, v] conv3(x)[:, c, t, v]."""
    ctrgc = CTRGC(4, 6, relation_channels(4))
    x = torch.randn(2, 4, 5, 7)
    a = torch.rand(7, 7)
    y = ctrgc(x, a, torch.zeros(1))
    expected = torch.einsum("uv,nctv->nctu", a, ctrgc.conv3(x))
    assert torch.allclose(y, expected, atol=1e-6)


def test_relation_channels_convention():
    assert relation_channels(3) == 8 and relation_channels(9) == 8
    assert relation_channels(64) == 8 and relation_channels(256) == 32 and relation_channels(4) == 1


def test_tcn_rejects_indivisible_width():
    with pytest.raises(ValueError, match="branches"):
        MultiScaleTemporalConv(6, 6, 5, (1, 2))


def test_graph_conv_rejects_bad_adjacency():
    with pytest.raises(ValueError, match="subsets"):
        GraphConv(3, 8, np.eye(5, dtype=np.float32))


def test_paper_stem_parameter_count():
    stem = CTRGCNStem(3, 2, get_layout("ntu25").adjacency(), [64, 256, 64])
    assert sum(p.numel() for p in stem.parameters()) == 363_928
