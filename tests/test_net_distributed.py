"""Gather helpers: identities without a process group; with 2 gloo ranks the cross-modal loss
gradient equals the single-process gradient over the global batch (after DDP-style averaging)."""
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from net.distributed import concat_all_gather, gather_with_grad, rank, world_size
from net.losses import cross_modal_loss

WORLD, B, C, TAU = 2, 3, 5, 0.15


def test_identity_without_process_group():
    x = torch.randn(4, 3, requires_grad=True)
    assert world_size() == 1 and rank() == 0
    assert gather_with_grad(x) is x
    gathered = concat_all_gather(x)
    assert torch.equal(gathered, x) and not gathered.requires_grad


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(WORLD * B, C, generator=g), torch.randn(WORLD * B, C, generator=g)


def _worker(local_rank, init_file, out_dir, root):
    sys.path.insert(0, root)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=local_rank, world_size=WORLD)
    try:
        text_all, skel_all = _data()
        rows = slice(local_rank * B, (local_rank + 1) * B)
        text = text_all[rows].clone().requires_grad_(True)
        skel = skel_all[rows].clone().requires_grad_(True)
        loss, _ = cross_modal_loss(text, skel, TAU)
        loss.backward()
        keys = concat_all_gather(skel.detach())
        # DDP averages parameter gradients over ranks, i.e. each rank contributes its row gradients / WORLD
        torch.save({"loss": loss.detach(), "g_text": text.grad / WORLD, "g_skel": skel.grad / WORLD, "keys": keys},
                   Path(out_dir) / f"rank{local_rank}.pt")
        dist.barrier()  # no rank tears the group down while another still talks to it
    finally:
        dist.destroy_process_group()
    # Leave without the interpreter's teardown: at exit, gloo / autograd worker threads of torch's C++
    # runtime can still be alive and std::terminate the process (SIGABRT after a finished, correct run).
    # The results are on disk; an exception above still propagates to mp.spawn as a failure.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_rank_cross_modal_loss_matches_global_batch(tmp_path):
    root = str(Path(__file__).resolve().parents[1])
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path), root), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    text_all, skel_all = _data()
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
