"""net.batch_norm.BatchNorm2d gives nn.BatchNorm2d's outputs, gradients and running statistics.

The fast path (CPU training statistics in the input's precision, bench/EXPERIMENTS.md §3.5) is
checked in float64 against PyTorch's kernel to 1e-12, in float32 to float32 rounding, with a
large offset that an uncentred variance (E[x^2] - mean^2) would get wrong, and through two
training steps of every running-statistics mode; the paths it must not take fall back to the
parent's kernel exactly.
"""
import pytest
import torch
from torch import nn

from net.batch_norm import BatchNorm2d, batch_norm_train, uses_fast_path


def _pair(channels, dtype, **kwargs):
    torch.manual_seed(0)
    ref = nn.BatchNorm2d(channels, **kwargs).to(dtype)
    if ref.affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 2.0)
            ref.bias.normal_()
    fast = BatchNorm2d(channels, **kwargs).to(dtype)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def _steps(module, inputs, grads):
    """Forward + backward over each (x, grad) pair; the outputs, input grads and final state."""
    outs = []
    for x, g in zip(inputs, grads):
        module.zero_grad()
        xi = x.clone().requires_grad_()
        y = module(xi)
        y.backward(g)
        params = [p.grad.clone() for p in module.parameters()]
        outs.append((y.detach(), xi.grad, params))
    return outs, {k: v.clone() for k, v in module.state_dict().items()}


def _compare(ref, fast, shape, dtype, tol, offset=3.0, steps=2):
    torch.manual_seed(1)
    inputs = [torch.randn(shape, dtype=dtype) * 2.5 + offset for _ in range(steps)]
    grads = [torch.randn(shape, dtype=dtype) for _ in range(steps)]
    (a, state_a), (b, state_b) = _steps(ref, inputs, grads), _steps(fast, inputs, grads)
    for (ya, gxa, gpa), (yb, gxb, gpb) in zip(a, b):
        torch.testing.assert_close(yb, ya, rtol=tol, atol=tol)
        torch.testing.assert_close(gxb, gxa, rtol=tol, atol=tol)
        assert len(gpa) == len(gpb)
        for pa, pb in zip(gpa, gpb):
            torch.testing.assert_close(pb, pa, rtol=tol, atol=tol * 10)
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        torch.testing.assert_close(state_b[key], state_a[key], rtol=tol, atol=tol, msg=key)


@pytest.mark.parametrize("kwargs", [{}, {"momentum": None}, {"affine": False},
                                    {"track_running_stats": False}, {"momentum": 0.3, "eps": 1e-3}])
def test_float64_training_equals_pytorch(kwargs):
    ref, fast = _pair(6, torch.float64, **kwargs)
    x = torch.randn(3, 6, 5, 4, dtype=torch.float64)
    assert uses_fast_path(fast, x)
    _compare(ref, fast, (3, 6, 5, 4), torch.float64, tol=1e-12)


def test_float32_training_equals_pytorch_within_rounding():
    ref, fast = _pair(16, torch.float32)
    _compare(ref, fast, (8, 16, 32, 25), torch.float32, tol=2e-5)


def test_variance_is_centred_at_a_large_offset():
    """Mean 1000, std 1 in float32: E[x^2] - mean^2 would lose the variance to cancellation."""
    torch.manual_seed(2)
    x = torch.randn(8, 4, 16, 25, dtype=torch.float64) + 1000.0
    truth = nn.BatchNorm2d(4).double()(x)
    fast = BatchNorm2d(4)(x.float())
    torch.testing.assert_close(fast.double(), truth, rtol=0, atol=2e-3)


def test_gradients_pass_gradcheck():
    torch.manual_seed(3)
    weight = torch.empty(3, dtype=torch.float64).uniform_(0.5, 2.0).requires_grad_()
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *args: batch_norm_train(*args, 1e-5)[0], (x, weight, bias))


def test_non_contiguous_input_and_gradient():
    ref, fast = _pair(5, torch.float64)
    torch.manual_seed(4)
    x = torch.randn(2, 5, 4, 3, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    g = torch.randn(2, 3, 4, 5, dtype=torch.float64).permute(0, 3, 2, 1)      # (2, 5, 4, 3), strided
    assert not x.is_contiguous() and not g.is_contiguous()
    outs = []
    for module in (ref, fast):
        xi = x.clone().requires_grad_()
        y = module(xi)
        y.backward(g)
        outs.append((y.detach(), xi.grad))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outs[1][1], outs[0][1], rtol=1e-12, atol=1e-12)


def test_evaluation_and_reduced_precision_take_pytorchs_kernel():
    ref, fast = _pair(4, torch.float32)
    x = torch.randn(2, 4, 3, 5)
    _steps(ref, [x], [torch.ones_like(x)])
    _steps(fast, [x], [torch.ones_like(x)])
    ref.eval()
    fast.eval()
    assert not uses_fast_path(fast, x)
    assert torch.equal(fast(x), ref(x))
    fast.train()
    assert not uses_fast_path(fast, x.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not uses_fast_path(fast, x)


def test_state_dict_is_nn_batchnorm2ds():
    ref, fast = _pair(4, torch.float32)
    assert isinstance(fast, nn.BatchNorm2d)
    assert list(fast.state_dict()) == list(ref.state_dict())
