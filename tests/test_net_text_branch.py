"""Text branch: shapes per mode and level, what each switch changes."""
import pytest
import torch

from net.text_branch import TEXT_MODES, TextBranch

C3 = 8


def _branch(mode, level="token", **kw):
    torch.manual_seed(0)
    args = dict(mode=mode, feature_dim=12, num_tokens=7, level=level, hidden_dim=10, out_dim=C3)
    args.update(kw)
    return TextBranch(**args)


@pytest.mark.parametrize("mode", [m for m in TEXT_MODES if m != "none"])
def test_modes_shapes_and_gradients(mode):
    branch = _branch(mode, attention_heads=2)
    text = torch.randn(3, 7, 12).half()         # on-disk dtype
    q_g = torch.randn(3, C3, requires_grad=True)
    out = branch(text, q_g)
    assert out.shape == (3, C3) and out.dtype == torch.float32
    out.sum().backward()
    assert branch.token_proj.weight.grad.abs().sum() > 0          # the text reaches the output, not just the graph
    assert branch.mlp[0].weight.grad.abs().sum() > 0
    if mode != "plain":
        assert q_g.grad is not None and q_g.grad.abs().sum() > 0


def test_token_projection_and_mlp_sizes():
    branch = _branch("film")
    assert branch.token_proj.in_features == 12 and branch.token_proj.out_features == 1
    assert branch.mlp[0].in_features == 7 and branch.mlp[2].out_features == C3
    assert branch.gamma.in_features == branch.gamma.out_features == C3


def test_sentence_level_uses_one_token():
    branch = _branch("film", level="sentence")
    assert branch.mlp[0].in_features == 1
    q_g = torch.randn(2, C3)
    flat = torch.randn(2, 12)
    single = flat[:, None, :]
    assert torch.allclose(branch(flat, q_g), branch(single, q_g))
    with pytest.raises(ValueError, match=r"\(N, 1, 12\)"):
        branch(torch.randn(2, 7, 12), q_g)


def test_token_level_checks_shape():
    with pytest.raises(ValueError, match=r"\(N, 7, 12\)"):
        _branch("plain")(torch.randn(2, 77, 12), torch.randn(2, C3))


def test_film_differs_from_plain_only_by_the_modulation():
    plain, film = _branch("plain"), _branch("film")
    # same seed, same construction order: token projection and MLP are identical
    for name, value in plain.state_dict().items():
        assert torch.equal(value, film.state_dict()[name])
    film_only = {"gamma.weight", "gamma.bias", "beta.weight", "beta.bias"}
    assert set(film.state_dict()) - set(plain.state_dict()) == film_only
    text, q_g = torch.randn(4, 7, 12), torch.randn(4, C3)
    assert not torch.allclose(plain(text, q_g), film(text, q_g))
    with torch.no_grad():  # gamma = 1, beta = 0 turns FiLM into the identity
        film.gamma.weight.zero_()
        film.gamma.bias.fill_(1.0)
        film.beta.weight.zero_()
        film.beta.bias.zero_()
    assert torch.allclose(plain(text, q_g), film(text, q_g))
    # film: q* = gamma(q_g) * q' + beta(q_g)
    film2 = _branch("film")
    q_text = film2.encode(text)
    assert torch.allclose(film2(text, q_g), film2.gamma(q_g) * q_text + film2.beta(q_g))


def test_gated_is_a_convex_mix():
    branch = _branch("gated")
    text, q_g = torch.randn(3, 7, 12), torch.randn(3, C3)
    q_text = branch.encode(text)
    out = branch(text, q_g)
    lo, hi = torch.minimum(q_text, q_g), torch.maximum(q_text, q_g)
    assert torch.all(out >= lo - 1e-6) and torch.all(out <= hi + 1e-6)
    # the hand formula: g = sigmoid(W [q', q_g] + b); q* = g * q' + (1 - g) * q_g
    w, b = branch.fuse.weight, branch.fuse.bias
    gate = torch.sigmoid(q_text @ w[:, :C3].T + q_g @ w[:, C3:].T + b)
    torch.testing.assert_close(out, gate * q_text + (1 - gate) * q_g, rtol=1e-5, atol=1e-6)
    swapped = (1 - gate) * q_text + gate * q_g
    assert not torch.allclose(out, swapped, atol=1e-3)


def test_linear_is_one_linear_layer_on_text_then_skeleton():
    branch = _branch("linear")
    assert branch.fuse.in_features == 2 * C3 and branch.fuse.out_features == C3
    text, q_g = torch.randn(3, 7, 12), torch.randn(3, C3)
    q_text = branch.encode(text)
    w, b = branch.fuse.weight, branch.fuse.bias
    expected = q_text @ w[:, :C3].T + q_g @ w[:, C3:].T + b           # [q', q_g]: text columns first
    torch.testing.assert_close(branch(text, q_g), expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(branch(text, q_g), q_g @ w[:, :C3].T + q_text @ w[:, C3:].T + b, atol=1e-3)


def test_cross_attention_is_q_text_plus_skeleton_attending_over_the_tokens():
    """q* = q' + out_proj(softmax(q k^T / sqrt(C3 / heads)) v), query = q_g, keys = values = the raw tokens."""
    branch = _branch("cross_attention", attention_heads=2)
    text, q_g = torch.randn(3, 7, 12), torch.randn(3, C3)
    att = branch.attention
    bq, bk, bv = att.in_proj_bias.chunk(3)
    q = q_g @ att.q_proj_weight.T + bq                                  # (N, C3)
    k = text @ att.k_proj_weight.T + bk                                 # (N, L, C3)
    v = text @ att.v_proj_weight.T + bv
    heads, d = 2, C3 // 2
    q, k, v = q.view(3, heads, d), k.view(3, 7, heads, d), v.view(3, 7, heads, d)
    weights = torch.softmax(torch.einsum("nhd,nlhd->nhl", q, k) / d ** 0.5, dim=-1)
    attended = torch.einsum("nhl,nlhd->nhd", weights, v).reshape(3, C3) @ att.out_proj.weight.T + att.out_proj.bias
    expected = branch.encode(text) + attended
    torch.testing.assert_close(branch(text, q_g), expected, rtol=1e-5, atol=1e-6)
    # row-wise: sample 0's output depends on sample 0's text and skeleton only
    other = text.clone()
    other[1:] = torch.randn(2, 7, 12)
    torch.testing.assert_close(branch(other, q_g)[0], expected[0], rtol=1e-5, atol=1e-6)


def test_bad_mode_and_level():
    with pytest.raises(ValueError, match="mode"):
        _branch("none")
    with pytest.raises(ValueError, match="level"):
        _branch("film", level="word")


def test_cross_attention_over_one_sentence_token_is_refused():
    """One key: the softmax weighs it 1 for every query, so the skeleton never reached the output (the query
    projection got zero gradient) and the mode silently acted as plain + a text-only term."""
    with pytest.raises(ValueError, match=r"text\.mode=cross_attention at text\.level=sentence: .*q_g would not "
                                         r"reach the output"):
        _branch("cross_attention", level="sentence")
    _branch("cross_attention", level="token")


def test_cross_attention_heads_must_divide_the_projection_width():
    with pytest.raises(ValueError, match=rf"text\.attention_heads=3 does not divide the projection width {C3} "
                                         r"\(model\.proj_dim\)"):
        _branch("cross_attention", attention_heads=3)
    _branch("film", attention_heads=3)               # only cross_attention has heads
