"""Cross-domain and cross-modal losses against hand computations."""
import math

import pytest
import torch
import torch.nn.functional as F

from net.losses import cross_domain_loss, cross_modal_loss, pairwise_film_loss, queue_info_nce


def _hand_info_nce(u, v, queue, tau):
    """-log(exp(u.v/tau) / (exp(u.v/tau) + sum_l exp(u.m_l/tau))) averaged over rows, with python floats."""
    total = 0.0
    for i in range(u.shape[0]):
        pos = math.exp(sum(a * b for a, b in zip(u[i].tolist(), v[i].tolist())) / tau)
        neg = sum(math.exp(sum(a * b for a, b in zip(u[i].tolist(), queue[:, l].tolist())) / tau)
                  for l in range(queue.shape[1]))
        total += -math.log(pos / (pos + neg))
    return total / u.shape[0]


def _unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float64), dim=-1)


def test_queue_info_nce_matches_hand():
    u, v = _unit([1.0, 0.0], [0.6, 0.8]), _unit([0.8, 0.6], [0.0, 1.0])
    queue = _unit([1.0, 1.0], [-1.0, 0.0], [0.0, -1.0]).T
    loss, acc = queue_info_nce(u, v, queue, 0.2)
    assert loss.item() == pytest.approx(_hand_info_nce(u, v, queue, 0.2), rel=1e-9)
    # row 0: u.v = 0.8 > u.m = 0.707, -1, 0; row 1: u.v = 0.8 < u.(1,1)/sqrt2 = 0.99 -> accuracy 1/2
    assert acc.item() == pytest.approx(0.5)


def test_cross_domain_loss_pairs_each_term_with_its_key_queue():
    g = torch.Generator().manual_seed(1)
    q = {k: F.normalize(torch.randn(2, 3, generator=g, dtype=torch.float64), dim=1) for k in "tsg"}
    k = {k_: F.normalize(torch.randn(2, 3, generator=g, dtype=torch.float64), dim=1) for k_ in "tsg"}
    queues = {k_: F.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=0) for k_ in "tsg"}
    tau = 0.2
    out = cross_domain_loss(q, k, queues, tau)
    expected = (_hand_info_nce(q["g"], k["s"], queues["s"], tau) + _hand_info_nce(q["g"], k["t"], queues["t"], tau)
                + _hand_info_nce(q["s"], k["g"], queues["g"], tau) + _hand_info_nce(q["t"], k["g"], queues["g"], tau))
    assert out["loss"].item() == pytest.approx(expected, rel=1e-9)
    assert out["loss_g_s"].item() == pytest.approx(_hand_info_nce(q["g"], k["s"], queues["s"], tau), rel=1e-9)
    assert out["loss_t_g"].item() == pytest.approx(_hand_info_nce(q["t"], k["g"], queues["g"], tau), rel=1e-9)
    accs = [out[f"acc_{a}_{b}"] for a, b in (("g", "s"), ("g", "t"), ("s", "g"), ("t", "g"))]
    assert out["acc"].item() == pytest.approx(torch.stack(accs).mean().item())


def _hand_cross_modal(text, skel, tau):
    t, s = F.normalize(text, dim=1), F.normalize(skel, dim=1)
    sim = (t @ s.T).tolist()
    b = len(sim)

    def ce(rows):
        return sum(-math.log(math.exp(rows[i][i] / tau) / sum(math.exp(x / tau) for x in rows[i]))
                   for i in range(b)) / b

    return 0.5 * (ce(sim) + ce([list(r) for r in zip(*sim)]))


def test_cross_modal_loss_matches_hand_and_is_symmetric():
    g = torch.Generator().manual_seed(2)
    text = torch.randn(5, 4, generator=g, dtype=torch.float64)
    skel = torch.randn(5, 4, generator=g, dtype=torch.float64)
    loss, acc = cross_modal_loss(text, skel, 0.15)
    assert loss.item() == pytest.approx(_hand_cross_modal(text, skel, 0.15), rel=1e-9)
    swapped, acc_swapped = cross_modal_loss(skel, text, 0.15)   # the two directions exchange roles
    assert swapped.item() == pytest.approx(loss.item(), rel=1e-12)
    assert acc_swapped.item() == pytest.approx(acc.item())
    assert 0.0 <= acc.item() <= 1.0


def test_cross_modal_loss_is_log_batch_for_identical_features():
    feats = torch.randn(1, 8).expand(6, 8)
    loss, _ = cross_modal_loss(feats * 3.0, feats, 0.15)
    assert loss.item() == pytest.approx(math.log(6), rel=1e-6)


def test_cross_modal_loss_gradient_reaches_both_modalities():
    text, skel = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    cross_modal_loss(text, skel, 0.15)[0].backward()
    assert text.grad.abs().sum() > 0 and skel.grad.abs().sum() > 0


def test_perfect_alignment_gives_full_accuracy():
    feats = torch.eye(4)
    loss, acc = cross_modal_loss(feats, feats, 0.1)
    assert acc.item() == 1.0 and loss.item() < 1e-3


def _hand_pairwise(text, gamma, beta, skel, tau):
    """S_ij = cos(gamma_j * text_i + beta_j, skel_j) and the symmetric CE, with python floats."""
    b = text.shape[0]

    def cos(u, v):
        return sum(x * y for x, y in zip(u, v)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v))

    sim = [[cos([g * t + e for g, t, e in zip(gamma[j].tolist(), text[i].tolist(), beta[j].tolist())],
                skel[j].tolist()) / tau for j in range(b)] for i in range(b)]

    def ce(rows):
        return sum(math.log(sum(math.exp(x) for x in rows[i])) - rows[i][i] for i in range(b)) / b

    return 0.5 * (ce(sim) + ce([list(r) for r in zip(*sim)]))


def test_pairwise_film_loss_matches_hand_and_keeps_the_papers_diagonal():
    g = torch.Generator().manual_seed(3)
    text, gamma, beta, skel = (torch.randn(5, 4, generator=g, dtype=torch.float64) for _ in range(4))
    loss, acc = pairwise_film_loss(text, gamma, beta, skel, 0.15)
    assert loss.item() == pytest.approx(_hand_pairwise(text, gamma, beta, skel, 0.15), rel=1e-9)
    assert 0.0 <= acc.item() <= 1.0
    # with one sample, the single score is the paper's cos(gamma * q' + beta, q_g) (eq. 8-10)
    one = [x[:1] for x in (text, gamma, beta, skel)]
    assert pairwise_film_loss(*one, 0.15)[0].item() == pytest.approx(0.0, abs=1e-12)


def test_pairwise_film_loss_cannot_be_won_without_the_text():
    """beta(q_g) = q_g, gamma = 0 wins the paper's loss (accuracy 1) for any text; here the same
    branch sits at chance: every text scores the same against a skeleton."""
    g = torch.Generator().manual_seed(4)
    skel = torch.randn(6, 8, generator=g, dtype=torch.float64)
    text = torch.randn(6, 8, generator=g, dtype=torch.float64)
    gamma, beta = torch.zeros_like(skel), skel.clone()
    _, paper_acc = cross_modal_loss(gamma * text + beta, skel, 0.15)
    assert paper_acc.item() == 1.0
    loss, _ = pairwise_film_loss(text, gamma, beta, skel, 0.15)
    assert loss.item() == pytest.approx(math.log(6), rel=1e-9)
    # a text-blind branch with a non-zero gamma: the skeleton-anchored half stays at ln B, the rest >= ln B
    same_text = torch.randn(1, 8, generator=g, dtype=torch.float64).expand(6, 8)
    gamma = torch.randn(6, 8, generator=g, dtype=torch.float64)
    assert pairwise_film_loss(same_text, gamma, beta, skel, 0.15)[0].item() >= math.log(6) - 1e-9


def test_pairwise_film_loss_gradient_reaches_text_and_skeleton():
    text, gamma, beta, skel = (torch.randn(4, 8, requires_grad=True) for _ in range(4))
    pairwise_film_loss(text, gamma, beta, skel, 0.15)[0].backward()
    assert all(x.grad.abs().sum() > 0 for x in (text, gamma, beta, skel))
