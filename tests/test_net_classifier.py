"""Downstream classifier: shapes, frozen encoder (no grad, BN statistics fixed), checkpoint loading."""
import pytest
import torch

from net.acsar import ACSAR
from net.classifier import SkeletonClassifier
from net.scdnet_checkpoint import to_scdnet

MODEL = dict(layout="kinect_v1", in_channels=3, num_person=1, num_frame=16, stem_channels=[8, 16, 8],
             hidden_dim=32, num_heads=2, num_layers=1, ff_dim=32, dropout=0.0, proj_hidden=16, proj_dim=8,
             queue_size=12, momentum=0.999, tau_domain=0.2,
             text=dict(mode="film", feature_dim=12, num_tokens=7, level="token", hidden_dim=10, tau_cross=0.15,
                       weight=0.5))


def _x(n=4):
    return torch.randn(n, 3, 16, 20, 1)


def test_shapes_and_from_config():
    clf = SkeletonClassifier.from_config(MODEL, num_classes=5, freeze_encoder=False)
    assert clf.features(_x()).shape == (4, 64)
    assert clf(_x()).shape == (4, 5)
    assert clf.fc.in_features == 64 and torch.all(clf.fc.bias == 0)


def test_frozen_encoder_keeps_bn_statistics_and_gets_no_grad():
    clf = SkeletonClassifier.from_config(MODEL, num_classes=5, freeze_encoder=True)
    clf.train()
    assert clf.training and not clf.encoder.training
    assert not any(m.training for m in clf.encoder.modules())
    before = {k: v.clone() for k, v in clf.encoder.state_dict().items()}
    logits = clf(_x())
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is None for p in clf.encoder.parameters())
    assert clf.fc.weight.grad is not None
    assert [n for n, p in clf.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    assert all(torch.equal(v, before[k]) for k, v in clf.encoder.state_dict().items())


def test_unfrozen_encoder_trains():
    clf = SkeletonClassifier.from_config(MODEL, num_classes=5, freeze_encoder=False).train()
    assert clf.encoder.training
    clf(_x()).sum().backward()
    grads = dict((n, p.grad) for n, p in clf.encoder.named_parameters())
    assert [n for n, g in grads.items() if g is None] == []            # both branches, every layer, in the graph
    # only CTR-GC's relation convs get a zero gradient: they enter through alpha * relation, alpha = 0 at init
    zero = {n for n, g in grads.items() if g.abs().sum() == 0}
    assert zero and all(n.split(".")[-2] in ("conv1", "conv2", "conv4") and ".convs." in n for n in zero), zero
    assert grads["stem_t.l1.gcn1.alpha"].abs().sum() > 0 and grads["stem_s.l1.gcn1.PA"].abs().sum() > 0


@pytest.mark.parametrize("kind", ["ours", "scdnet"])
def test_load_encoder_from_pretraining_state(kind):
    pretrain = ACSAR(**MODEL)
    with torch.no_grad():
        for p in pretrain.encoder_q.parameters():
            p.add_(0.5)  # distinguish from a fresh init
    state = pretrain.state_dict() if kind == "ours" else to_scdnet(pretrain.state_dict())
    clf = SkeletonClassifier.from_config(MODEL, num_classes=5, freeze_encoder=True)
    clf.load_encoder_state(state)
    for k, v in pretrain.encoder_q.encoder.state_dict().items():
        assert torch.equal(clf.encoder.state_dict()[k], v), k
    pretrain.eval()
    x = _x()
    with torch.no_grad():  # same (fast) Transformer path on both sides
        z_t, z_s = pretrain.encoder_q.encoder(x)
        assert torch.allclose(clf.features(x), torch.cat([z_t, z_s], 1), atol=1e-5)


def test_load_encoder_reports_mismatches():
    clf = SkeletonClassifier.from_config(MODEL, num_classes=5, freeze_encoder=True)
    state = dict(clf.encoder.state_dict())
    state.pop("embed_t.0.weight")
    state["stray.weight"] = torch.zeros(1)
    state["embed_s.0.bias"] = torch.zeros(3)
    with pytest.raises(KeyError) as err:
        clf.load_encoder_state(state)
    message = str(err.value)
    assert "missing [embed_t.0.weight]" in message and "unexpected [stray.weight]" in message
    assert "embed_s.0.bias: checkpoint (3,) vs model (32,)" in message
