"""Temporal crop-resize: bounds, exact window length, agreement with F.interpolate."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from feeder.temporal import (center_crop_bounds, center_crop_resize, crop_resize, random_crop_bounds,
                             resize_positions, valid_length)


def _clip(t=300, valid=120, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((3, t, 25, 2), dtype=np.float32)
    x[:, :valid] = rng.standard_normal((3, valid, 25, 2))
    return x


@pytest.mark.parametrize("valid,ratio,min_len", [(120, (0.1, 1.0), 64), (40, (0.1, 1.0), 64),
                                                  (300, (0.5, 0.5), 64), (1, (0.1, 1.0), 64)])
def test_random_crop_bounds_respect_valid_and_min_length(valid, ratio, min_len):
    rng = np.random.default_rng(1)
    for _ in range(200):
        start, length = random_crop_bounds(rng, valid, ratio, min_len)
        assert 0 <= start and start + length <= valid
        assert length == min(max(length, min_len), valid)          # clipped to [min_len, valid]
        assert length >= min(min_len, valid)
        assert length <= max(int(np.floor(valid * ratio[1])), min(min_len, valid))


def test_center_crop_bounds():
    assert center_crop_bounds(100, 0.95) == (2, 96)
    assert center_crop_bounds(300, 1.0) == (0, 300)
    start, length = center_crop_bounds(1, 0.95)
    assert (start, length) == (0, 1)


def test_valid_length_clips_and_rejects_empty():
    assert valid_length(500, 300) == 300
    with pytest.raises(ValueError, match="at least one valid frame, got num_frame=0"):
        valid_length(0, 300)


@pytest.mark.parametrize("start,length,window", [(10, 100, 64), (0, 40, 64), (5, 64, 64), (3, 1, 64), (0, 300, 64)])
def test_crop_resize_matches_torch_interpolate(start, length, window):
    x = _clip()
    out = crop_resize(x, start, length, window)
    assert out.shape == (3, window, 25, 2) and out.dtype == np.float32
    seg = torch.from_numpy(x[:, start:start + length]).permute(0, 2, 3, 1).reshape(1, 1, -1, length)
    ref = F.interpolate(seg, size=(seg.shape[2], window), mode="bilinear", align_corners=False)
    ref = ref.reshape(3, 25, 2, window).permute(0, 3, 1, 2).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_crop_resize_identity_when_length_equals_window():
    x = _clip()
    np.testing.assert_array_equal(crop_resize(x, 7, 64, 64), x[:, 7:71])


def test_crop_resize_reads_only_inside_crop():
    x = _clip()
    x[:, 50:] = np.nan                                  # anything outside [10, 50) must not leak in
    out = crop_resize(x, 10, 40, 64)
    assert np.isfinite(out).all()
    with pytest.raises(ValueError, match=r"crop \[290, 310\) outside the 300 stored frames"):
        crop_resize(x, 290, 20, 64)


def test_center_crop_resize_shape():
    out = center_crop_resize(_clip(valid=37), 37, 64, 0.95)
    assert out.shape == (3, 64, 25, 2)
    assert np.abs(out).sum() > 0


@pytest.mark.parametrize("ratio,bounds", [(0.95, (3, 114)), (0.5, (30, 60)), (1.0, (0, 120))])
def test_center_crop_resize_is_the_crop_resize_of_the_centre_bounds(ratio, bounds):
    x = _clip(valid=120)
    assert center_crop_bounds(120, ratio) == bounds
    out = center_crop_resize(x, 120, 64, ratio)
    np.testing.assert_array_equal(out, crop_resize(x, *bounds, 64))
    for other in {0.95, 0.5, 1.0} - {ratio}:                 # the ratio matters
        assert not np.allclose(out, crop_resize(x, *center_crop_bounds(120, other), 64), atol=1e-3)
    # num_frame beyond storage is clipped to the stored frames
    np.testing.assert_array_equal(center_crop_resize(x, 500, 64, ratio),
                                  crop_resize(x, *center_crop_bounds(300, ratio), 64))


def test_resize_positions_numpy_equals_torch():
    starts, lengths = np.array([0, 5, 17]), np.array([64, 33, 283])
    a = resize_positions(starts, lengths, 64)
    b = resize_positions(torch.from_numpy(starts), torch.from_numpy(lengths), 64, xp=torch)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v.numpy())


@pytest.mark.parametrize("min_len", [0, -3, 2.5])
def test_random_crop_bounds_rejects_min_length_below_one(min_len):
    """A length-0 crop would be refused by crop_resize but read a garbage clip in the batch path."""
    with pytest.raises(ValueError, match="min_length must be an integer >= 1"):
        random_crop_bounds(np.random.default_rng(0), 5, (0.1, 1.0), min_len)
