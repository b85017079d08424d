"""ResumableSampler: the batches every rank draws, per epoch and across a resume."""
import pytest

from processor.sampler import ResumableSampler


def _ranks(n, batch, world, drop_last, indices=None, epoch=0, start_batch=0):
    out = []
    for rank in range(world):
        s = ResumableSampler(n, batch, seed=3, drop_last=drop_last, rank=rank, world_size=world, indices=indices)
        s.set_epoch(epoch, start_batch)
        out.append((list(s), len(s)))
    return out


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("n,batch", [(1, 1), (1, 3), (2, 4), (5, 4), (7, 2), (10, 3), (12, 4), (13, 5)])
def test_every_rank_draws_its_length_and_the_epoch_covers_the_samples(n, batch, world, drop_last):
    indices = list(range(100, 100 + n))
    num_batches = n // (batch * world) if drop_last else -(-n // (batch * world))
    if num_batches == 0:                                            # make_loader refuses this case
        assert ResumableSampler(n, batch, seed=3, drop_last=True, world_size=world).num_batches() == 0
        return
    for idx in (None, indices):
        base = list(range(n)) if idx is None else indices
        ranks = _ranks(n, batch, world, drop_last, idx)
        drawn = []
        for got, length in ranks:
            assert len(got) == length == num_batches * batch          # same batch count and size on every rank
            drawn += got
        if drop_last:
            assert len(set(drawn)) == len(drawn) and set(drawn) <= set(base)
        else:                                                       # padded by wrapping: all, some twice
            assert set(drawn) == set(base) and len(drawn) == num_batches * batch * world
        for start in range(num_batches):                            # a resume at batch `start` of the epoch
            for (full, _), (resumed, length) in zip(ranks, _ranks(n, batch, world, drop_last, idx, 0, start)):
                assert resumed == full[start * batch:] and length == len(resumed)


def test_epochs_draw_other_orders_from_the_seed():
    a = _ranks(20, 4, 1, True, epoch=0)[0][0]
    assert a == _ranks(20, 4, 1, True, epoch=0)[0][0]
    assert a != _ranks(20, 4, 1, True, epoch=1)[0][0]
    assert sorted(a) == list(range(20))


@pytest.mark.parametrize("batch, rank, world", [(0, 0, 1), (-2, 0, 1), (4, 2, 2), (4, -1, 2), (4, 0, 0)])
def test_impossible_batch_or_rank_is_refused(batch, rank, world):
    """A rank outside the world drew nothing while its length promised batches; batch 0 divided by zero."""
    with pytest.raises(ValueError, match=r"needs batch_size >= 1 and 0 <= rank < world_size"):
        ResumableSampler(10, batch, seed=0, rank=rank, world_size=world)
