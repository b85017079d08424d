"""FeatureQueue: normalised init, FIFO writes, pointer wrap-around, oversize batches."""
import pytest
import torch

from net.queue import FeatureQueue


def test_init_is_normalised():
    q = FeatureQueue(8, 10)
    assert q.keys.shape == (8, 10) and q.ptr.tolist() == [0]
    assert torch.allclose(q.keys.norm(dim=0), torch.ones(10), atol=1e-5)
    assert set(dict(q.named_buffers())) == {"keys", "ptr"}


def test_wrap_around_when_size_not_multiple_of_batch():
    q = FeatureQueue(2, 5)
    batches = [torch.arange(6, dtype=torch.float32).reshape(3, 2) + 100 * i for i in range(3)]
    q.enqueue(batches[0])
    assert q.ptr.item() == 3
    assert torch.equal(q.keys[:, :3], batches[0].T)
    q.enqueue(batches[1])  # columns 3, 4, 0
    assert q.ptr.item() == 1
    assert torch.equal(q.keys[:, 3], batches[1][0]) and torch.equal(q.keys[:, 4], batches[1][1])
    assert torch.equal(q.keys[:, 0], batches[1][2])
    assert torch.equal(q.keys[:, 1:3], batches[0][1:].T)
    q.enqueue(batches[2])  # columns 1, 2, 3
    assert q.ptr.item() == 4
    assert torch.equal(q.keys[:, 1:4], batches[2].T)


def test_batch_larger_than_queue_keeps_the_last_keys():
    q = FeatureQueue(1, 4)
    q.enqueue(torch.zeros(2, 1))                              # ptr 2
    q.enqueue(torch.arange(1, 7, dtype=torch.float32)[:, None])  # 6 keys into a queue of 4
    # a sequential write from column 2 leaves 3,4 at columns 0,1 and 5,6 at columns 2,3
    assert q.keys[0].tolist() == [3.0, 4.0, 5.0, 6.0]
    assert q.ptr.item() == (2 + 6) % 4


def test_enqueue_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        FeatureQueue(4, 8).enqueue(torch.zeros(2, 3))
