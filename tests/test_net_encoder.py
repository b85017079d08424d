"""Dual-branch encoder and projectors: token shapes, outputs, paper-size parameter counts."""
import inspect

import pytest
import torch

from net.acsar import ACSAR
from net.encoder import ENCODER_KWARGS, DualBranchEncoder
from net.graph import get_layout
from net.projector import ProjectedEncoder

SMALL = dict(in_channels=3, num_frame=16, stem_channels=[8, 16, 8], hidden_dim=32, num_heads=2, num_layers=1,
             ff_dim=32, dropout=0.0)
PAPER = dict(layout="ntu25", in_channels=3, num_person=2, num_frame=64, stem_channels=[64, 256, 64],
             hidden_dim=2048, num_heads=8, num_layers=1, ff_dim=2048, dropout=0.1)


@pytest.mark.parametrize("layout", ["ntu25", "kinect_v1"])
@pytest.mark.parametrize("num_person", [2, 1])
def test_encoder_shapes(layout, num_person):
    v = get_layout(layout).num_joints
    enc = DualBranchEncoder(layout=layout, num_person=num_person, **SMALL)
    assert enc.embed_t[0].in_features == num_person * v * 8      # M*V*C1
    assert enc.embed_s[0].in_features == 16 * 8                   # T*C1
    z_t, z_s = enc(torch.randn(3, 3, 16, v, num_person))
    assert z_t.shape == (3, 32) and z_s.shape == (3, 32)
    assert enc.feature_dim == 64


def test_encoder_token_layout_matches_rearrange():
    """Temporal tokens are frames (T, N, M V C); spatial tokens are (person, joint) (M V, N, T C)."""
    enc = DualBranchEncoder(layout="kinect_v1", num_person=2, **SMALL).eval()
    x = torch.randn(2, 3, 16, 20, 2)
    captured = {}
    enc.embed_t.register_forward_hook(lambda m, i, o: captured.__setitem__("t", i[0]))
    enc.embed_s.register_forward_hook(lambda m, i, o: captured.__setitem__("s", i[0]))
    enc(x)
    y_t = enc.stem_t(x).reshape(2, 2, 8, 16, 20)          # (N, M, C, T, V)
    y_s = enc.stem_s(x).reshape(2, 2, 8, 16, 20)
    assert captured["t"].shape == (16, 2, 2 * 20 * 8)
    assert torch.allclose(captured["t"][5, 1].reshape(2, 20, 8), y_t[1, :, :, 5].permute(0, 2, 1))
    assert captured["s"].shape == (2 * 20, 2, 16 * 8)
    assert torch.allclose(captured["s"][20 + 3, 1].reshape(16, 8), y_s[1, 1, :, :, 3].T)


def test_encoder_rejects_wrong_input():
    enc = DualBranchEncoder(layout="ntu25", num_person=2, **SMALL)
    with pytest.raises(ValueError, match=r"\(N, C, T, V, M\)"):
        enc(torch.randn(2, 3, 20, 25, 2))


def test_heads_that_do_not_divide_the_width_are_a_value_error_naming_the_keys():
    """nn.MultiheadAttention asserts: an AssertionError ended `main.py pretrain_acsar model.num_heads=3` in a
    traceback, not in the one error line of a config value that cannot work."""
    with pytest.raises(ValueError, match=r"model\.num_heads=3 does not divide model\.hidden_dim=32"):
        DualBranchEncoder(layout="ntu25", num_person=2, **dict(SMALL, num_heads=3))


def test_transformer_is_post_norm_sequence_first():
    enc = DualBranchEncoder(layout="ntu25", num_person=2, **SMALL)
    layer = enc.transformer_t.layers[0]
    assert not layer.norm_first and not layer.self_attn.batch_first and layer.linear1.out_features == 32
    assert len(enc.transformer_s.layers) == 1


@pytest.mark.parametrize("training", [True, False])
def test_sequence_first_transformer_equals_batch_first(training):
    """The sequence-first layout (one GEMM per projection) computes what SCD-Net's batch-first layer does."""
    torch.manual_seed(0)
    enc = DualBranchEncoder(layout="ntu25", num_person=2, **SMALL).double().train(training)
    batch_first = torch.nn.TransformerEncoderLayer(32, 2, dim_feedforward=32, dropout=0.0, batch_first=True,
                                                   norm_first=False).double().train(training)
    batch_first.load_state_dict(enc.transformer_s.layers[0].state_dict())
    x = torch.randn(3, 3, 16, 25, 2, dtype=torch.float64)
    captured = {}
    enc.embed_s.register_forward_hook(lambda m, i, o: captured.__setitem__("h", o))
    _, z_s = enc(x)
    reference = batch_first(captured["h"].transpose(0, 1)).amax(dim=1)          # (N, L, C2) in, max over L
    torch.testing.assert_close(z_s, reference, rtol=1e-10, atol=1e-10)


def test_projected_encoder_shapes():
    model = ProjectedEncoder(proj_hidden=24, proj_dim=8, layout="ntu25", num_person=2, **SMALL)
    q_t, q_s, q_g = model(torch.randn(2, 3, 16, 25, 2))
    assert q_t.shape == q_s.shape == q_g.shape == (2, 8)
    assert model.proj_g[0].in_features == 64 and model.proj_t[0].in_features == 32


def test_projected_encoder_global_head_sees_t_then_s():
    model = ProjectedEncoder(proj_hidden=24, proj_dim=8, layout="ntu25", num_person=2, **SMALL).eval()
    x = torch.randn(2, 3, 16, 25, 2)
    z_t, z_s = model.encoder(x)
    assert torch.allclose(model(x)[2], model.proj_g(torch.cat([z_t, z_s], 1)))


def test_paper_parameter_counts():
    with torch.device("meta"):
        model = ProjectedEncoder(proj_hidden=2048, proj_dim=128, **PAPER)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model) == 92_017_840
    assert count(model.encoder) == 74_447_664
    assert count(model.encoder.stem_t) == count(model.encoder.stem_s) == 363_928


def test_encoder_kwargs_are_the_encoder_signature():
    """ENCODER_KWARGS (the keys SkeletonClassifier.from_config and encoder_config copy from a model config) is
    written by hand: an argument added to DualBranchEncoder but not there would be dropped silently (its default
    used) when a pretrained encoder is rebuilt for evaluation; ACSAR must take every one of them too."""
    encoder = [n for n in inspect.signature(DualBranchEncoder.__init__).parameters if n != "self"]
    assert sorted(ENCODER_KWARGS) == sorted(encoder)
    assert set(ENCODER_KWARGS) <= set(inspect.signature(ACSAR.__init__).parameters)
