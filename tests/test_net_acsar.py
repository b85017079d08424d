"""ACSAR MoCo builder: outputs, momentum, queues after the loss, text switches, summary."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from net.acsar import ACSAR
from net.graph import get_layout
from net.losses import cross_domain_loss, cross_modal_loss, pairwise_film_loss

TEXT = dict(mode="film", feature_dim=12, num_tokens=7, level="token", hidden_dim=10, tau_cross=0.15, weight=0.5)


def small_cfg(layout="ntu25", num_person=2, text=None, **kw):
    cfg = dict(layout=layout, in_channels=3, num_person=num_person, num_frame=16, stem_channels=[8, 16, 8],
               hidden_dim=32, num_heads=2, num_layers=1, ff_dim=32, dropout=0.0, proj_hidden=16, proj_dim=8,
               queue_size=10, momentum=0.9, tau_domain=0.2, text=text)
    cfg.update(kw)
    return cfg


def views(n=4, v=25, m=2):
    return torch.randn(n, 3, 16, v, m), torch.randn(n, 3, 16, v, m)


OUT_KEYS = {"loss", "loss_domain", "loss_cross", "acc_domain", "acc_cross", "acc_cross_rolled",
            "loss_g_s", "loss_g_t", "loss_s_g", "loss_t_g", "acc_g_s", "acc_g_t", "acc_s_g", "acc_t_g"}


@pytest.mark.parametrize("layout,v,m", [("ntu25", 25, 2), ("kinect_v1", 20, 1)])
def test_forward_outputs(layout, v, m):
    model = ACSAR(**small_cfg(layout, m, text=TEXT))
    x1, x2 = views(4, v, m)
    out = model(x1, x2, torch.randn(4, 7, 12).half())
    assert set(out) == OUT_KEYS
    assert all(t.dim() == 0 for t in out.values())
    assert out["loss"].requires_grad and not out["loss_domain"].requires_grad
    assert out["loss"].item() == pytest.approx(out["loss_domain"].item() + 0.5 * out["loss_cross"].item(), rel=1e-5)
    assert 0.0 <= out["acc_domain"].item() <= 1.0 and out["loss_cross"].item() > 0


def test_key_encoder_is_a_copy_without_grad():
    model = ACSAR(**small_cfg())
    for (name, pq), (_, pk) in zip(model.encoder_q.named_parameters(), model.encoder_k.named_parameters()):
        assert torch.equal(pq, pk), name
        assert pq.requires_grad and not pk.requires_grad
    out = model(*views())
    out["loss"].backward()
    assert all(p.grad is None for p in model.encoder_k.parameters())
    assert [n for n, p in model.encoder_q.named_parameters() if p.grad is None] == []   # all three heads, both stems
    assert model.encoder_q.encoder.stem_s.l1.gcn1.PA.grad.abs().sum() > 0


def test_xavier_on_2d_params_and_ctrgcn_inits_kept():
    model = ACSAR(**small_cfg())
    w = model.encoder_q.proj_g[0].weight                 # (16, 64): xavier bound sqrt(6 / 80)
    assert w.abs().max().item() <= (6 / (16 + 64)) ** 0.5 + 1e-6
    assert w.abs().max().item() > 0.9 * (6 / (16 + 64)) ** 0.5        # PyTorch's default stops at 1/sqrt(64)
    # xavier_uniform std = sqrt(2 / (fan_in + fan_out)); PyTorch's Linear default is ~0.4-0.6 of that here
    checked = 0
    for name, p in model.encoder_q.named_parameters():
        if p.dim() == 2 and p.numel() >= 512:
            fan_out, fan_in = p.shape
            ratio = p.std().item() / (2 / (fan_in + fan_out)) ** 0.5
            assert 0.8 < ratio < 1.2, (name, ratio)
            checked += 1
    assert checked >= 10
    for pq, pk in zip(model.encoder_q.parameters(), model.encoder_k.parameters()):
        assert torch.equal(pq, pk)                        # the key encoder is a copy of the xavier-initialised one
    gcn = model.encoder_q.encoder.stem_t.l1.gcn1
    assert torch.equal(gcn.PA.detach(), torch.from_numpy(get_layout("ntu25").adjacency()))  # 3-D: not xavier


def test_momentum_update_math():
    model = ACSAR(**small_cfg(momentum=0.9))
    with torch.no_grad():
        for p in model.encoder_q.parameters():
            p.add_(torch.randn_like(p))
    q_before = [p.detach().clone() for p in model.encoder_q.parameters()]
    k_before = [p.detach().clone() for p in model.encoder_k.parameters()]
    model.momentum_update()
    for q, k_old, k_new in zip(q_before, k_before, model.encoder_k.parameters()):
        assert torch.allclose(k_new, 0.9 * k_old + 0.1 * q, atol=1e-6)


def test_loss_uses_old_queues_and_enqueues_keys_after():
    """Momentum update first, then the keys (from the updated key encoder), then the loss, then enqueue."""
    model = ACSAR(**small_cfg(momentum=0.5)).train()
    with torch.no_grad():                                    # query != key encoder: the update matters
        for p in model.encoder_q.parameters():
            p.add_(0.05 * torch.randn_like(p))
    key_before = copy.deepcopy(model.encoder_k)
    x1, x2 = views(4)
    queues_before = {k: v.clone() for k, v in model.queues().items()}
    out = model(x1, x2)
    for q_p, k_old, k_new in zip(model.encoder_q.parameters(), key_before.parameters(),
                                 model.encoder_k.parameters()):
        assert torch.allclose(k_new, 0.5 * k_old + 0.5 * q_p, atol=1e-6)   # exactly one update
    with torch.no_grad():
        q = dict(zip("tsg", (F.normalize(t, dim=1) for t in model.encoder_q(x1))))
        k = dict(zip("tsg", (F.normalize(t, dim=1) for t in model.encoder_k(x2))))   # after the update
        k_stale = dict(zip("tsg", (F.normalize(t, dim=1) for t in key_before(x2))))
    expected = cross_domain_loss(q, k, queues_before, 0.2)
    assert out["loss_domain"].item() == pytest.approx(expected["loss"].item(), rel=1e-5)
    stale = cross_domain_loss(q, k_stale, queues_before, 0.2)["loss"].item()
    assert abs(stale - expected["loss"].item()) > 1e-3        # the test can tell the two orders apart
    for kind, queue in zip("tsg", (model.queue_t, model.queue_s, model.queue_g)):
        assert queue.ptr.item() == 4
        assert torch.allclose(queue.keys[:, :4], k[kind].T, atol=1e-6)
        assert torch.equal(queue.keys[:, 4:], queues_before[kind][:, 4:])
    model(x1, x2)
    model(x1, x2)                                            # 12 keys into 10 columns: wrapped
    assert model.queue_g.ptr.item() == 2


def test_eval_mode_neither_updates_nor_enqueues():
    model = ACSAR(**small_cfg(momentum=0.5)).eval()
    with torch.no_grad():
        for p in model.encoder_q.parameters():
            p.add_(1.0)
    state = copy.deepcopy(model.state_dict())
    model(*views())
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_text_off_is_pure_scdnet():
    for text in (None, {"mode": "none"}):
        model = ACSAR(**small_cfg(text=text))
        assert model.text is None and not any(k.startswith("text.") for k in model.state_dict())
        out = model(*views(), torch.randn(4, 7, 12))        # text given but ignored
        assert out["loss_cross"].item() == 0.0 and out["acc_cross"].item() == 0.0
        assert out["acc_cross_rolled"].item() == 0.0
        assert out["loss"].item() == pytest.approx(out["loss_domain"].item())
        assert model.summary()["text branch"] == 0


def test_text_on_needs_text_and_counts_parameters():
    model = ACSAR(**small_cfg(text=TEXT))
    with pytest.raises(ValueError, match="text features"):
        model(*views())
    # token proj 12+1, MLP 7*10+10 + 10*8+8, FiLM 2*(8*8+8)
    assert model.summary()["text branch"] == 13 + 80 + 88 + 144


def test_cross_loss_uses_q_g_with_gradient():
    torch.manual_seed(0)
    model = ACSAR(**small_cfg(text=dict(TEXT, mode="plain"))).eval()
    x1, x2 = views()
    text = torch.randn(4, 7, 12)
    out = model(x1, x2, text)
    q_g = model.encoder_q(x1)[2]
    expected, _ = cross_modal_loss(model.text(text, q_g), q_g, 0.15)
    assert out["loss_cross"].item() == pytest.approx(expected.item(), rel=1e-5)
    model.zero_grad()
    expected.backward()
    assert model.encoder_q.proj_g[2].weight.grad.abs().sum() > 0      # q_g carries gradient
    assert model.encoder_q.proj_t[2].weight.grad is None


@pytest.mark.parametrize("mode", ["plain", "film"])
def test_model_loss_backpropagates_the_cross_loss_into_q_g(mode):
    """grad of out['loss'] (weight 0.5) - grad at weight 0 = 0.5 * grad of L_cross: q_g is not detached."""
    torch.manual_seed(0)
    model = ACSAR(**small_cfg(text=dict(TEXT, mode=mode))).eval()      # eval: no update / enqueue between calls
    x1, x2 = views()
    text = torch.randn(4, 7, 12)
    proj = model.encoder_q.proj_g[2].weight
    grads = {}
    for weight in (0.5, 0.0):
        model.text_weight = weight
        model.zero_grad()
        model(x1, x2, text)["loss"].backward()
        grads[weight] = proj.grad.clone()
    model.zero_grad()
    q_g = model.encoder_q(x1)[2]
    cross, _ = cross_modal_loss(model.text(text, q_g), q_g, 0.15)
    cross.backward()
    assert proj.grad.abs().sum() > 0
    assert not torch.allclose(grads[0.5], grads[0.0], atol=1e-7)
    torch.testing.assert_close(grads[0.5] - grads[0.0], 0.5 * proj.grad, rtol=1e-4, atol=1e-6)


def test_film_and_plain_models_differ_only_in_the_text_modulation():
    torch.manual_seed(3)
    plain = ACSAR(**small_cfg(text=dict(TEXT, mode="plain")))
    torch.manual_seed(3)
    film = ACSAR(**small_cfg(text=TEXT))
    sd_plain, sd_film = plain.state_dict(), film.state_dict()
    film_only = {"text.gamma.weight", "text.gamma.bias", "text.beta.weight", "text.beta.bias"}
    assert set(sd_film) - set(sd_plain) == film_only
    assert all(torch.equal(v, sd_film[k]) for k, v in sd_plain.items())


def test_missing_text_settings_are_reported():
    with pytest.raises(ValueError, match="tau_cross"):
        ACSAR(**small_cfg(text={"mode": "film", "feature_dim": 12, "num_tokens": 7, "level": "token",
                                "hidden_dim": 10, "weight": 0.5}))


def test_summary_keys():
    summary = ACSAR(**small_cfg(text=TEXT)).summary()
    assert list(summary) == ["query encoder", "query projectors", "key encoder", "key projectors", "text branch",
                             "queues (buffer elements)", "trainable", "total parameters"]
    assert summary["query encoder"] == summary["key encoder"]
    assert summary["trainable"] == summary["query encoder"] + summary["query projectors"] + summary["text branch"]
    assert summary["queues (buffer elements)"] == 3 * (8 * 10 + 1)


def test_paper_configuration_counts():
    cfg = dict(layout="ntu25", in_channels=3, num_person=2, num_frame=64, stem_channels=[64, 256, 64],
               hidden_dim=2048, num_heads=8, num_layers=1, ff_dim=2048, dropout=0.1, proj_hidden=2048, proj_dim=128,
               queue_size=8192, momentum=0.999, tau_domain=0.2,
               text=dict(mode="film", feature_dim=512, num_tokens=77, level="token", hidden_dim=256,
                         tau_cross=0.15, weight=0.5))
    with torch.device("meta"):
        summary = ACSAR(**cfg).summary()
    assert summary["query encoder"] == 74_447_664
    assert summary["query encoder"] + summary["query projectors"] == 92_017_840
    assert summary["text branch"] == 86_401          # 513 + 52,864 + 33,024


@torch.no_grad()
def _text_blind_film(model):
    """gamma = 0, beta = identity: q*_text = q_g whatever the text (the eq. 8 shortcut)."""
    model.text.gamma.weight.zero_(), model.text.gamma.bias.zero_()
    model.text.beta.weight.copy_(torch.eye(model.text.beta.in_features)), model.text.beta.bias.zero_()


def _rolled_score(mode, batch, seed=None):
    """The model's acc_cross_rolled and the cross-modal accuracy with every clip given its neighbour's text."""
    if seed is not None:
        torch.manual_seed(seed)
    model = ACSAR(**small_cfg(text=dict(TEXT, mode=mode) if mode else TEXT)).eval()
    x1, x2 = views(batch)
    text = torch.randn(batch, 7, 12)
    out = model(x1, x2, text)
    q_g = model.encoder_q(x1)[2]
    _, expected = cross_modal_loss(model.text(text.roll(1, 0), q_g), q_g, 0.15)
    assert out["acc_cross_rolled"].item() == pytest.approx(expected.item())
    assert not out["acc_cross_rolled"].requires_grad
    return model, (x1, x2), text, q_g, expected


def test_acc_cross_rolled_scores_the_neighbours_text():
    _rolled_score(None, 6)


def test_acc_cross_rolled_in_cross_attention_mode_rolls_the_tokens_too():
    """cross_attention reads the raw tokens as well as q'_text: the rolled score gives both the neighbour's."""
    model, (x1, x2), text, q_g, expected = _rolled_score("cross_attention", 8, seed=2)
    tokens, q_text = model.text.embed(text)
    _, half_rolled = cross_modal_loss(model.text.modulate(tokens, q_text.roll(1, 0), q_g), q_g, 0.15)
    assert half_rolled.item() != pytest.approx(expected.item())     # this case tells the two apart

    # a branch that reads only the tokens: the right tokens match their skeleton, the neighbour's do not
    model.text.embed = lambda text: (text, torch.zeros(text.shape[0], 8))
    model.text.modulate = lambda tokens, q_text, q_g: tokens[:, 0]
    q_g = q_g.detach()
    out = model(x1, x2, q_g[:, None, :].expand(8, 3, 8).clone())
    assert out["acc_cross"].item() == 1.0 and out["acc_cross_rolled"].item() == 0.0


def test_acc_cross_rolled_exposes_a_branch_that_ignores_the_text():
    """FiLM with gamma = 0 and beta = identity gives q*_text = q_g whatever the text (the eq. 8
    shortcut): the wrong text scores as well as the right one.  A branch whose output is the text
    itself scores the right text only."""
    torch.manual_seed(0)
    model = ACSAR(**small_cfg(text=TEXT)).eval()
    x1, x2 = views(6)
    _text_blind_film(model)
    out = model(x1, x2, torch.randn(6, 7, 12))
    assert out["acc_cross"].item() == out["acc_cross_rolled"].item() == 1.0

    model.text.embed = lambda text: (text, text)                # q*_text = the text features (N, C3)
    model.text.modulate = lambda tokens, q_text, q_g: q_text
    q_g = model.encoder_q(x1)[2].detach()
    out = model(x1, x2, q_g.clone())                            # the right text matches its skeleton
    assert out["acc_cross"].item() == 1.0 and out["acc_cross_rolled"].item() == 0.0


def test_pairwise_film_needs_film_and_scores_all_pairs():
    for mode in ("plain", "none"):
        with pytest.raises(ValueError, match="pairwise.*film"):
            ACSAR(**small_cfg(text={**TEXT, "mode": mode, "pairwise": True}))
    torch.manual_seed(0)
    model = ACSAR(**small_cfg(text={**TEXT, "pairwise": True})).eval()
    x1, x2 = views(6)
    text = torch.randn(6, 7, 12)
    out = model(x1, x2, text)
    assert set(out) == OUT_KEYS
    q_g = model.encoder_q(x1)[2]
    q_text = model.text.embed(text)[1]
    expected, _ = pairwise_film_loss(q_text, model.text.gamma(q_g), model.text.beta(q_g), q_g, 0.15)
    assert out["loss_cross"].item() == pytest.approx(expected.item(), rel=1e-6)
    # the paper's shortcut (gamma = 0, beta = identity) no longer wins: chance loss, whatever the text
    _text_blind_film(model)
    assert model(x1, x2, text)["loss_cross"].item() == pytest.approx(math.log(6), rel=1e-5)
