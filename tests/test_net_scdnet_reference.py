"""End-to-end check of the skeleton branch against an independent restatement of SCD-Net's computation.

The functions below restate, with ``torch.nn.functional`` only, what the official SCD-Net code computes
(``model/ctrgcn.py``: data_bn, CTR-GC, unit_gcn, multi-scale TCN, TCN_GCN_unit; ``scd/scd_encoder.py``:
token layouts, token MLPs, batch-first post-norm Transformer, max over tokens, projectors on
``[v_t, v_s]``; ``scd/builder.py``: momentum update before the key forward, the four cross-domain
InfoNCE terms with the old queues, enqueue after).  They read the weights of our modules and must
give our outputs.  Written in the straightforward SCD-Net order (convolutions on the full clip and
then the time mean, batch-first tokens), so the fast paths of ``net/`` (time mean first, GEMM 1x1
convolutions, channels-last pooling, sequence-first Transformer) are checked against it too.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from net.acsar import ACSAR

# a small configuration (every path of the paper model, a CPU-second to run)
CFG = dict(layout="ntu25", in_channels=3, num_person=2, num_frame=8, stem_channels=[8, 16, 8], hidden_dim=32,
           num_heads=4, num_layers=1, ff_dim=32, dropout=0.0, proj_hidden=32, proj_dim=16, queue_size=16,
           momentum=0.9, tau_domain=0.2, text=None)
N, C, T, V, M = 4, 3, CFG["num_frame"], 25, CFG["num_person"]
WEIGHT_JITTER = 0.05    # moves alpha, the BN affines and PA off their inits so that every term contributes
TOL = 1e-5


def _bn(x, bn, training):
    """BatchNorm with the module's affine and a copy of its running statistics."""
    return F.batch_norm(x, bn.running_mean.clone(), bn.running_var.clone(), bn.weight, bn.bias, training,
                        bn.momentum, bn.eps)


def _conv(x, conv, **kw):
    return F.conv2d(x, conv.weight, conv.bias, **kw)


def _ctrgc(x, c, a, alpha):
    """(B, C_in, T, V) -> (B, C_out, T, V): relation of the time-averaged conv1 / conv2 maps."""
    m1 = _conv(x, c.conv1).mean(2)                                   # (B, R, V)
    m2 = _conv(x, c.conv2).mean(2)
    relation = torch.tanh(m1[..., :, None] - m2[..., None, :])       # (B, R, V_u, V_v)
    topology = _conv(relation, c.conv4) * alpha + a                  # (B, C_out, V, V)
    return torch.einsum("bcuv,bctv->bctu", topology, _conv(x, c.conv3))


def _unit_gcn(x, g, training):
    y = sum(_ctrgc(x, conv, g.PA[i], g.alpha) for i, conv in enumerate(g.convs))
    y = _bn(y, g.bn, training)
    down = x if g.down is None else _bn(_conv(x, g.down[0]), g.down[1], training)
    return F.relu(y + down)


def _ms_tcn(x, tcn, training):
    """Dilated branches [1x1, BN, ReLU, k x 1 conv, BN], then max-pool [1x1, BN, ReLU, pool, BN], then [1x1, BN]."""
    *dilated, pool, point = tcn.branches
    outs = []
    for br in dilated:
        h = F.relu(_bn(_conv(x, br[0]), br[1], training))
        conv = br[3].conv
        k, d = conv.kernel_size[0], conv.dilation[0]
        h = F.conv2d(h, conv.weight, conv.bias, padding=((k + (k - 1) * (d - 1) - 1) // 2, 0), dilation=(d, 1))
        outs.append(_bn(h, br[3].bn, training))
    h = F.relu(_bn(_conv(x, pool[0]), pool[1], training))
    outs.append(_bn(F.max_pool2d(h, (3, 1), 1, (1, 0)), pool[4], training))
    outs.append(_bn(_conv(x, point[0]), point[1], training))
    return torch.cat(outs, 1)


def _stem(x, stem, training):
    """(N, C, T, V, M) -> (N*M, C1, T, V): data_bn over the (M, V, C) channels, then the blocks."""
    n, c, t, v, m = x.shape
    h = _bn(x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t), stem.data_bn, training)
    h = h.reshape(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
    for name in stem.block_names:
        block = getattr(stem, name)
        y = _ms_tcn(_unit_gcn(h, block.gcn1, training), block.tcn1, training)
        if block.use_residual:
            y = y + (h if block.residual is None else _bn(_conv(h, block.residual.conv), block.residual.bn, training))
        h = F.relu(y)
    return h


def _linear(x, lin):
    return F.linear(x, lin.weight, lin.bias)


def _token_mlp(x, mlp):
    h = _linear(x, mlp[0])
    h = F.layer_norm(h, mlp[1].normalized_shape, mlp[1].weight, mlp[1].bias, mlp[1].eps)
    return _linear(F.relu(h), mlp[3])


def _post_norm_layer(x, layer):
    """(B, L, D) -> (B, L, D): LN(x + MHA(x)), then LN(x + W2 relu(W1 x)); no dropout (p = 0)."""
    attn = layer.self_attn
    b, length, d = x.shape
    heads = attn.num_heads
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (z.reshape(b, length, heads, d // heads).transpose(1, 2) for z in (q, k, v))
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1) @ v
    x = F.layer_norm(x + _linear(a.transpose(1, 2).reshape(b, length, d), attn.out_proj), (d,),
                     layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
    ff = _linear(F.relu(_linear(x, layer.linear1)), layer.linear2)
    return F.layer_norm(x + ff, (d,), layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)


def _encoder(x, enc, training):
    """(N, C, T, V, M) -> (v_t, v_s): tokens B T (M V C) and B (M V) (T C), MLP, Transformer, max over tokens."""
    feats = []
    for stem, mlp, transformer, spatial in ((enc.stem_t, enc.embed_t, enc.transformer_t, False),
                                            (enc.stem_s, enc.embed_s, enc.transformer_s, True)):
        h = _stem(x, stem, training)
        nm, c1, t, v = h.shape
        h = h.reshape(nm // M, M, c1, t, v)                                        # (N, M, C1, T, V)
        if spatial:
            tokens = h.permute(0, 1, 4, 3, 2).reshape(nm // M, M * v, t * c1)      # (N, M V, T C1)
        else:
            tokens = h.permute(0, 3, 1, 4, 2).reshape(nm // M, t, M * v * c1)      # (N, T, M V C1)
        tokens = _token_mlp(tokens, mlp)
        for layer in transformer.layers:
            tokens = _post_norm_layer(tokens, layer)
        feats.append(tokens.amax(dim=1))
    return feats[0], feats[1]


def _head(z, head):
    return _linear(F.relu(_linear(z, head[0])), head[2])


def _projected(x, side, training):
    """(q_t, q_s, q_g) with q_g from [v_t, v_s] (SCD-Net's i_proj input order)."""
    v_t, v_s = _encoder(x, side.encoder, training)
    return _head(v_t, side.proj_t), _head(v_s, side.proj_s), _head(torch.cat([v_t, v_s], 1), side.proj_g)


def _model():
    torch.manual_seed(0)
    model = ACSAR(**CFG)
    with torch.no_grad():
        for side in (model.encoder_q, model.encoder_k):
            for p in side.parameters():
                p.add_(WEIGHT_JITTER * torch.randn_like(p))
    return model


@pytest.mark.parametrize("training", [False, True])
def test_projected_encoder_equals_the_scdnet_restatement(training):
    model = _model().train(training)
    x = torch.randn(N, C, T, V, M)
    with torch.no_grad():
        ours = model.encoder_q(x)
        ref = _projected(x, model.encoder_q, training)
        z_ours, z_ref = model.encoder_q.encoder(x), _encoder(x, model.encoder_q.encoder, training)
    for a, b in zip(z_ours, z_ref):
        assert torch.allclose(a, b, atol=TOL, rtol=TOL)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=TOL, rtol=TOL)


def test_training_step_equals_the_scdnet_builder():
    """Key update before the key forward, L(q_t,k_i)+L(q_s,k_i)+L(q_i,k_t)+L(q_i,k_s) on the old queues, enqueue."""
    model = _model().train()
    x1, x2 = torch.randn(N, C, T, V, M), torch.randn(N, C, T, V, M)
    query, key = copy.deepcopy(model.encoder_q), copy.deepcopy(model.encoder_k)
    queues = {kind: getattr(model, f"queue_{kind}").keys.clone() for kind in "tsg"}
    out = model(x1, x2)
    with torch.no_grad():
        for pq, pk in zip(query.parameters(), key.parameters()):
            pk.copy_(pk * CFG["momentum"] + pq * (1 - CFG["momentum"]))
        q_t, q_s, q_i = (F.normalize(z, dim=1) for z in _projected(x1, query, True))
        k_t, k_s, k_i = (F.normalize(z, dim=1) for z in _projected(x2, key, True))

        def info_nce(q, k, queue):
            logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue], 1) / CFG["tau_domain"]
            return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))

        ref = (info_nce(q_t, k_i, queues["g"]) + info_nce(q_s, k_i, queues["g"])
               + info_nce(q_i, k_t, queues["t"]) + info_nce(q_i, k_s, queues["s"]))
    assert torch.allclose(out["loss_domain"], ref, atol=TOL, rtol=TOL)
    for a, b in zip(model.encoder_k.parameters(), key.parameters()):
        assert torch.allclose(a, b, atol=TOL)
    for kind, k in (("t", k_t), ("s", k_s), ("g", k_i)):
        queue = getattr(model, f"queue_{kind}")
        assert torch.allclose(queue.keys[:, :N], k.T, atol=TOL)
        assert torch.equal(queue.keys[:, N:], queues[kind][:, N:])
        assert int(queue.ptr) == N
