"""Gather helpers: identities without a process group; with 2 gloo ranks the cross-modal losses
(the paper's and the pairwise FiLM one) and their gradients equal the single-process ones over the
global batch (after DDP-style averaging)."""
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from net.distributed import concat_all_gather, gather_with_grad, rank, world_size
from net.losses import cross_modal_loss, pairwise_film_loss

WORLD, B, C, TAU = 2, 3, 5, 0.15
NAMES = ("text", "skel", "gamma", "beta")


def test_identity_without_process_group():
    x = torch.randn(4, 3, requires_grad=True)
    assert world_size() == 1 and rank() == 0
    assert gather_with_grad(x) is x
    gathered = concat_all_gather(x)
    assert torch.equal(gathered, x) and not gathered.requires_grad


def _data():
    """text, skeleton, gamma, beta rows of the global batch, each (WORLD * B, C)."""
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(WORLD * B, C, generator=g) for _ in range(4))


def _join_group(local_rank, init_file, root):
    """In a spawned rank: import path, one thread, the gloo group; returns this rank's rows of the batch."""
    sys.path.insert(0, root)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=local_rank, world_size=WORLD)
    return slice(local_rank * B, (local_rank + 1) * B)


def _exit_rank():
    """Leave without the interpreter's teardown: at exit, gloo / autograd worker threads of torch's C++
    runtime can still be alive and std::terminate the process (SIGABRT after a finished, correct run).
    The results are on disk; an exception before this still propagates to mp.spawn as a failure."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _spawn(worker, tmp_path, prefix):
    """Run ``worker`` on WORLD ranks; returns the dicts they saved as ``<prefix><rank>.pt``."""
    root = str(Path(__file__).resolve().parents[1])
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path), root), nprocs=WORLD, join=True)
    return [torch.load(tmp_path / f"{prefix}{r}.pt") for r in range(WORLD)]


def _worker(local_rank, init_file, out_dir, root):
    rows = _join_group(local_rank, init_file, root)
    try:
        text, skel, gamma, beta = (x[rows].clone().requires_grad_(True) for x in _data())
        loss, _ = cross_modal_loss(text, skel, TAU)
        loss.backward()
        keys = concat_all_gather(skel.detach())
        # DDP averages parameter gradients over ranks, i.e. each rank contributes its row gradients / WORLD
        out = {"loss": loss.detach(), "g_text": text.grad / WORLD, "g_skel": skel.grad / WORLD, "keys": keys}
        for x in (text, skel):
            x.grad = None
        pairwise, _ = pairwise_film_loss(text, gamma, beta, skel, TAU)
        pairwise.backward()
        out.update(pairwise=pairwise.detach(),
                   **{f"pairwise_g_{n}": x.grad / WORLD for n, x in zip(NAMES, (text, skel, gamma, beta))})
        torch.save(out, Path(out_dir) / f"rank{local_rank}.pt")
        dist.barrier()  # no rank tears the group down while another still talks to it
    finally:
        dist.destroy_process_group()
    _exit_rank()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_rank_cross_modal_loss_matches_global_batch(tmp_path):
    results = _spawn(_worker, tmp_path, "rank")
    text_all, skel_all, gamma_all, beta_all = _data()
    text_ref, skel_ref = text_all.clone().requires_grad_(True), skel_all.clone().requires_grad_(True)
    loss_ref, _ = cross_modal_loss(text_ref, skel_ref, TAU)
    loss_ref.backward()
    mean_loss = sum(r["loss"] for r in results) / WORLD
    assert mean_loss.item() == pytest.approx(loss_ref.item(), rel=1e-5)
    g_text = torch.cat([r["g_text"] for r in results])
    g_skel = torch.cat([r["g_skel"] for r in results])
    assert torch.allclose(g_text, text_ref.grad, atol=1e-6)
    assert torch.allclose(g_skel, skel_ref.grad, atol=1e-6)
    assert all(torch.equal(r["keys"], skel_all) for r in results)

    refs = [x.clone().requires_grad_(True) for x in (text_all, skel_all, gamma_all, beta_all)]
    pairwise_ref, _ = pairwise_film_loss(refs[0], refs[2], refs[3], refs[1], TAU)
    pairwise_ref.backward()
    assert (sum(r["pairwise"] for r in results) / WORLD).item() == pytest.approx(pairwise_ref.item(), rel=1e-5)
    for name, ref in zip(NAMES, refs):
        grad = torch.cat([r[f"pairwise_g_{name}"] for r in results])
        assert torch.allclose(grad, ref.grad, atol=1e-6), name


def test_all_reduce_batch_norm_keeps_float32_statistics_under_bf16(tmp_path):
    """amp: bf16 under CPU torchrun: the synchronised BN gets bf16 activations; its statistics (and the
    running buffers they update) stay float32, as native BatchNorm's do."""
    from net.sync_bn import AllReduceBatchNorm

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        x = torch.randn(8, 6, 5, 4, generator=torch.Generator().manual_seed(0)) * 0.5 + 4.0
        ours, ref = AllReduceBatchNorm(6).train(), torch.nn.BatchNorm2d(6).train()
        with torch.no_grad():
            y = ours(x.bfloat16())
            y_ref = ref(x.bfloat16().float())
        assert y.dtype == torch.bfloat16 and ours.running_var.dtype == torch.float32
        assert torch.allclose(y.float(), y_ref, atol=0.05)
        assert torch.allclose(ours.running_mean, ref.running_mean, atol=1e-5)
        assert torch.allclose(ours.running_var, ref.running_var, atol=1e-4)
    finally:
        dist.destroy_process_group()


def test_all_reduce_batch_norm_variance_keeps_its_digits_when_the_mean_is_large(tmp_path):
    """Mean 3, spread 0.003: E[x^2] - mean^2 in float32 was 5 % off; the two-pass variance is not."""
    from net.sync_bn import AllReduceBatchNorm

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        x = torch.randn(64, 4, 8, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.003 + 3.0
        bn = AllReduceBatchNorm(4, momentum=1.0).train()
        xr = x.float().requires_grad_(True)
        y = bn(xr)
        var = x.float().double().var(dim=(0, 2, 3), unbiased=True)
        torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-4, atol=0)
        ref = torch.nn.BatchNorm2d(4, momentum=1.0).double().train()
        xd = x.float().double().requires_grad_(True)
        torch.testing.assert_close(y.double(), ref(xd), rtol=0, atol=2e-3)
        weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
        (y * weights).sum().backward()
        (ref(xd) * weights.double()).sum().backward()
        torch.testing.assert_close(xr.grad.double(), xd.grad, rtol=0, atol=5e-2 * xd.grad.abs().max().item())
    finally:
        dist.destroy_process_group()


def _bn_data():
    g = torch.Generator().manual_seed(3)
    return torch.randn(WORLD * B, 4, 5, 3, generator=g) * 0.7 + 1.5, torch.randn(WORLD * B, 4, 5, 3, generator=g)


def _bn_worker(local_rank, init_file, out_dir, root):
    rows = _join_group(local_rank, init_file, root)
    import warnings

    from net.sync_bn import AllReduceBatchNorm

    try:
        x_all, w_all = _bn_data()
        x = x_all[rows].clone().requires_grad_(True)
        bn = AllReduceBatchNorm(4).train()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y = bn(x)
            (y * w_all[rows]).sum().backward()
        torch.save({"y": y.detach(), "g_x": x.grad, "g_weight": bn.weight.grad, "g_bias": bn.bias.grad,
                    "running_var": bn.running_var, "warnings": [str(w.message) for w in caught]},
                   Path(out_dir) / f"bn{local_rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()
    _exit_rank()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_rank_sync_batch_norm_matches_global_batch_without_deprecation_warnings(tmp_path):
    """AllReduceBatchNorm on two gloo ranks (half the batch each) = BatchNorm2d on the whole batch: outputs,
    running variance and gradients of the input, weight and bias (the latter summed over ranks); and no
    deprecated torch.distributed.nn call (FutureWarning) on the way."""
    results = _spawn(_bn_worker, tmp_path, "bn")
    x_all, w_all = _bn_data()
    x_ref = x_all.clone().requires_grad_(True)
    ref = torch.nn.BatchNorm2d(4).train()
    y_ref = ref(x_ref)
    (y_ref * w_all).sum().backward()
    torch.testing.assert_close(torch.cat([r["y"] for r in results]), y_ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([r["g_x"] for r in results]), x_ref.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sum(r["g_weight"] for r in results), ref.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sum(r["g_bias"] for r in results), ref.bias.grad, rtol=1e-4, atol=1e-5)
    assert all(torch.allclose(r["running_var"], ref.running_var, atol=1e-5) for r in results)
    assert [r["warnings"] for r in results] == [[], []]
