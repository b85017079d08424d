"""The fast paths of net/ctrgcn.py give the straightforward formulation's outputs and gradients.

Guards (bench/train_step.py): CTR-GC's relation convs on the time mean, the in-place
subset / residual sums, the 1x1 convolutions as one GEMM (float64, so the tolerance is tight) and
the channels-last max-pool (bitwise equal, float32).
"""
import pytest
import torch

from net.ctrgcn import CTRGC, CTRGCNStem, GraphConv, PointwiseConv, TemporalMaxPool
from net.graph import get_layout


def _perturbed(module):
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("alpha"):
                p.fill_(0.7)                       # the refinement term must count (it is 0 at init)
            elif name.endswith("PA"):
                p.add_(0.1 * torch.randn_like(p))
    return module


def _outputs_and_grads(module, fn, x, grad):
    module.zero_grad()
    xi = x.clone().requires_grad_()
    y = fn(xi)
    y.backward(grad)
    return y.detach(), xi.grad, {n: p.grad.clone() for n, p in module.named_parameters()}


def _assert_same(a, b):
    torch.testing.assert_close(a[0], b[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a[1], b[1], rtol=1e-9, atol=1e-9)
    assert a[2].keys() == b[2].keys()
    for name in a[2]:
        torch.testing.assert_close(a[2][name], b[2][name], rtol=1e-9, atol=1e-9, msg=name)


def test_ctrgc_time_mean_relation_equals_reference():
    torch.manual_seed(0)
    layer = CTRGC(5, 7, 3).double()
    x = torch.randn(2, 5, 6, 25, dtype=torch.float64)
    a = torch.tensor(get_layout("ntu25").adjacency()[1], dtype=torch.float64)
    alpha = torch.tensor([0.4], dtype=torch.float64)
    torch.testing.assert_close(layer(x, a, alpha), layer.reference_forward(x, a, alpha), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c_in,c_out", [(3, 8), (8, 8), (8, 12)])
def test_graph_conv_fast_paths_equal_reference(c_in, c_out):
    torch.manual_seed(0)
    layer = _perturbed(GraphConv(c_in, c_out, get_layout("ntu25").adjacency()).double())
    x = torch.randn(2, c_in, 5, 25, dtype=torch.float64)
    grad = torch.randn(2, c_out, 5, 25, dtype=torch.float64)
    fast = _outputs_and_grads(layer, layer, x, grad)
    ref = _outputs_and_grads(layer, layer.reference_forward, x, grad)
    _assert_same(fast, ref)


def test_stem_fast_paths_equal_reference():
    torch.manual_seed(0)
    stem = _perturbed(CTRGCNStem(3, 2, get_layout("ntu25").adjacency(), [8, 16, 8]).double())
    x = torch.randn(3, 3, 8, 25, 2, dtype=torch.float64)
    grad = torch.randn(6, 8, 8, 25, dtype=torch.float64)
    fast = _outputs_and_grads(stem, stem, x, grad)
    ref = _outputs_and_grads(stem, stem.reference_forward, x, grad)
    _assert_same(fast, ref)
    # running statistics move identically (BatchNorm sees the same batches)
    state = {k: v.clone() for k, v in stem.state_dict().items()}
    stem.reference_forward(x)
    ref_state = {k: v.clone() for k, v in stem.state_dict().items()}
    stem.load_state_dict(state)
    stem(x)
    for key, value in stem.state_dict().items():
        torch.testing.assert_close(value, ref_state[key], rtol=1e-10, atol=1e-10, msg=key)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_pointwise_conv_gemm_equals_convolution(bias, dtype, tol):
    torch.manual_seed(0)
    conv = PointwiseConv(6, 10, bias=bias).to(dtype)
    assert conv.weight.shape == (10, 6, 1, 1) and set(conv.state_dict()) == ({"weight", "bias"} if bias else {"weight"})
    x = torch.randn(3, 6, 7, 25, dtype=dtype)
    grad = torch.randn(3, 10, 7, 25, dtype=dtype)
    fast = _outputs_and_grads(conv, conv, x, grad)
    ref = _outputs_and_grads(conv, conv.conv_forward, x, grad)
    for a, b in zip(fast[:2], ref[:2]):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    for name in ref[2]:
        torch.testing.assert_close(fast[2][name], ref[2][name], rtol=tol, atol=tol * 10, msg=name)


def test_pointwise_conv_takes_the_convolution_path_for_strided_inputs(monkeypatch):
    """Strided and channels-last inputs go to ``conv_forward`` (the values alone could not tell: the GEMM path
    computes the same sums), a contiguous CPU input to the GEMM."""
    torch.manual_seed(0)
    conv = PointwiseConv(4, 5)
    calls = []
    plain = PointwiseConv.conv_forward
    monkeypatch.setattr(PointwiseConv, "conv_forward", lambda self, x: calls.append(x.shape) or plain(self, x))
    x = torch.randn(2, 7, 4, 25).transpose(1, 2)            # (2, 4, 7, 25), not contiguous
    torch.testing.assert_close(conv(x), plain(conv, x.contiguous()), rtol=1e-6, atol=1e-6)
    x_cl = torch.randn(2, 4, 7, 25).to(memory_format=torch.channels_last)
    torch.testing.assert_close(conv(x_cl), plain(conv, x_cl.contiguous()), rtol=1e-6, atol=1e-6)
    assert len(calls) == 2
    conv(torch.randn(2, 4, 7, 25))
    assert len(calls) == 2                                   # contiguous: the batched GEMM


@pytest.mark.parametrize("channels", [4, 16])
def test_temporal_max_pool_equals_the_plain_pool_bitwise(channels):
    """Values and input gradients equal nn.MaxPool2d's exactly, with the ties ReLU outputs and
    repeated frames make (the gradient of a tie goes to the window's first maximum in both)."""
    torch.manual_seed(0)
    x = torch.relu(torch.randn(3, channels, 12, 25))          # about half the values are tied zeros
    x[:, :, 1::2] = x[:, :, 0::2]                              # repeated frames: tied positive maxima
    grad = torch.randn_like(x)
    plain = torch.nn.MaxPool2d(kernel_size=(3, 1), stride=1, padding=(1, 0))
    results = []
    for pool in (plain, TemporalMaxPool()):
        xi = x.clone().requires_grad_()
        y = pool(xi)
        y.backward(grad)
        assert y.is_contiguous() and y.shape == x.shape
        results.append((y.detach(), xi.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])
    assert not torch.equal(results[0][1], grad)                # the pool routed the gradient
