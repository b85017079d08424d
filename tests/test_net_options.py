"""Optional, non-paper switches: batch-normalised projector heads and a standardised linear head."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from net.acsar import ACSAR
from net.losses import cross_domain_loss
from net.classifier import SkeletonClassifier

SMALL = dict(layout="ntu25", in_channels=3, num_person=2, num_frame=8, stem_channels=[4, 8, 4], hidden_dim=16,
             num_heads=2, num_layers=1, ff_dim=16, dropout=0.0)


def test_projector_norm_is_off_by_default_and_adds_batchnorm():
    plain = ACSAR(**SMALL, proj_hidden=16, proj_dim=8, queue_size=16, momentum=0.99, tau_domain=0.2)
    normed = ACSAR(**SMALL, proj_hidden=16, proj_dim=8, queue_size=16, momentum=0.99, tau_domain=0.2,
                   proj_norm=True)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in plain.encoder_q.proj_g.modules())
    assert isinstance(normed.encoder_q.proj_g[1], nn.BatchNorm1d)
    extra = sum(p.numel() for p in normed.encoder_q.parameters()) - sum(p.numel() for p in plain.encoder_q.parameters())
    assert extra == 3 * 2 * 16  # weight + bias of one BatchNorm1d(16) per head
    out = normed(torch.randn(4, 3, 8, 25, 2), torch.randn(4, 3, 8, 25, 2))
    assert torch.isfinite(out["loss"])


def test_projector_norm_head_values_and_loss():
    """proj_norm head = Linear -> BatchNorm1d (batch statistics in training) -> ReLU -> Linear; the loss is the
    cross-domain loss of those heads' outputs."""
    torch.manual_seed(0)
    model = ACSAR(**SMALL, proj_hidden=16, proj_dim=8, queue_size=16, momentum=0.5, tau_domain=0.2,
                  proj_norm=True).train()
    x1, x2 = torch.randn(6, 3, 8, 25, 2), torch.randn(6, 3, 8, 25, 2)
    z_t, z_s = model.encoder_q.encoder(x1)
    head = model.encoder_q.proj_g
    h = head[0](torch.cat([z_t, z_s], dim=1))
    hand = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + head[1].eps)   # weight 1, bias 0 at init
    torch.testing.assert_close(head(torch.cat([z_t, z_s], dim=1)), head[3](torch.relu(hand)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(head[1].running_mean, 0.1 * h.mean(0).detach(),
                               rtol=1e-4, atol=1e-6)     # one update by the call above: 0.9 * 0 + 0.1 * mean

    queues = {k: v.clone() for k, v in model.queues().items()}
    out = model(x1, x2)
    with torch.no_grad():
        q = dict(zip("tsg", (F.normalize(t, dim=1) for t in model.encoder_q(x1))))
        k = dict(zip("tsg", (F.normalize(t, dim=1) for t in model.encoder_k(x2))))
    assert out["loss_domain"].item() == pytest.approx(cross_domain_loss(q, k, queues, 0.2)["loss"].item(), rel=1e-5)
    plain = copy.deepcopy(model.encoder_q)                         # the same weights without the batch norms
    for name in ("proj_t", "proj_s", "proj_g"):
        setattr(plain, name, nn.Sequential(*(m for m in getattr(plain, name) if not isinstance(m, nn.BatchNorm1d))))
    with torch.no_grad():
        q_plain = F.normalize(plain(x1)[2], dim=1)
    assert not torch.allclose(q_plain, q["g"], atol=1e-3)          # the norm changes the features


def test_head_norm_standardises_features_and_stays_linear():
    clf = SkeletonClassifier(num_classes=5, freeze_encoder=True, head_norm=True, **SMALL)
    assert isinstance(clf.fc[0], nn.BatchNorm1d) and not clf.fc[0].affine
    x = torch.randn(6, 3, 8, 25, 2)
    clf.train()
    logits = clf(x)
    assert logits.shape == (6, 5)
    clf.eval()
    feats = clf.features(x)
    bn = clf.fc[0]
    expected = clf.fc[1]((feats - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps))
    assert torch.allclose(clf(x), expected, atol=1e-5)


def test_head_norm_statistics_of_a_frozen_encoder_do_not_drift_with_epochs():
    torch.manual_seed(0)
    clf = SkeletonClassifier(num_classes=5, freeze_encoder=True, head_norm=True, **SMALL)
    batches = [torch.randn(4, 3, 8, 25, 2) for _ in range(2)]
    feats = torch.cat([clf.features(x) for x in batches])
    clf.train()
    bn = clf.fc[0]
    stats = []
    for _ in range(3):                      # three "epochs" over the same frozen features
        for x in batches:
            clf(x)
        stats.append((bn.running_mean.clone(), bn.running_var.clone()))
    per_batch = feats.view(2, 4, -1)
    assert torch.allclose(stats[0][0], feats.mean(0), atol=1e-5)          # exact mean after one pass
    assert torch.allclose(stats[0][1], per_batch.var(1).mean(0), atol=1e-5)
    for mean, var in stats[1:]:
        assert torch.allclose(mean, stats[0][0], atol=1e-5) and torch.allclose(var, stats[0][1], atol=1e-5)


def test_head_norm_of_a_trained_encoder_keeps_the_exponential_average():
    torch.manual_seed(0)
    clf = SkeletonClassifier(num_classes=5, freeze_encoder=False, head_norm=True, **SMALL)
    assert clf.fc[0].momentum == 0.1
    clf.train()
    bn = clf.fc[0]
    x = [torch.randn(4, 3, 8, 25, 2) for _ in range(2)]
    mean = torch.zeros_like(bn.running_mean)
    var = torch.ones_like(bn.running_var)
    for batch in x:                          # exponential average: r <- 0.9 r + 0.1 batch statistic
        with torch.no_grad():
            feats = clf.features(batch)      # train mode, no dropout (SMALL): the same features as the forward
        clf(batch)
        mean = 0.9 * mean + 0.1 * feats.mean(0)
        var = 0.9 * var + 0.1 * feats.var(0)
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, var, rtol=1e-4, atol=1e-5)
