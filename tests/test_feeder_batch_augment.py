"""Batched torch augmentation equals the per-sample numpy path for the same parameters."""
import numpy as np
import pytest
import torch

from feeder.batch_augment import BatchAugmenter, collate_params
from feeder.transforms import build_eval_transform, build_pretrain_transform, view_rng
from net.graph import get_layout

LAYOUT = get_layout("ntu25")
OPS = ("scale", "rotate", "flip", "shear", "spatial_mask", "temporal_mask")


def _batch(n=6, t=300):
    rng = np.random.default_rng(0)
    num_frame = np.array([120, 30, 300, 64, 1, 77][:n], dtype=np.int64)
    x = np.zeros((n, 3, t, 25, 2), dtype=np.float32)
    for i, nf in enumerate(num_frame):
        x[i, :, :nf] = rng.standard_normal((3, nf, 25, 2))
    return x, num_frame


def _numpy_views(pipe, x, num_frame, params_per_sample):
    return np.stack([pipe.apply(x[i], params_per_sample[i]) for i in range(len(x))])


@pytest.mark.parametrize("only", OPS + ("all",))
@pytest.mark.parametrize("stream", ["joint", "bone", "motion"])
def test_each_transform_numpy_equals_torch(only, stream):
    names = list(OPS) if only == "all" else [only]
    cfg = {"order": names, **{name: {"p": 1.0} for name in names}}
    pipe = build_pretrain_transform(cfg, LAYOUT, 64, stream)
    x, num_frame = _batch()
    per_sample = [pipe.sample(view_rng(0, 1, i, 0), int(num_frame[i]), x.shape[2]) for i in range(len(x))]
    ref = _numpy_views(pipe, x, num_frame, per_sample)
    out = pipe.apply_batch(torch.from_numpy(x), collate_params(per_sample))
    assert out.shape == (len(x), 3, 64, 25, 2) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5, rtol=1e-5)


def test_mixed_fire_flags_default_p():
    pipe = build_pretrain_transform(None, LAYOUT, 64, "joint")
    x, num_frame = _batch()
    per_sample = [pipe.sample(view_rng(4, 0, i, 1), int(num_frame[i]), x.shape[2]) for i in range(len(x))]
    ref = _numpy_views(pipe, x, num_frame, per_sample)
    out = pipe.apply_batch(torch.from_numpy(x), collate_params(per_sample))
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5, rtol=1e-5)


def test_batch_augmenter_reproduces_dataset_views():
    pipe = build_pretrain_transform({name: {"p": 1.0} for name in OPS}, LAYOUT, 64, "bone")
    x, num_frame = _batch()
    indices = np.array([10, 3, 7, 0, 5, 99])
    aug = BatchAugmenter(pipe, seed=11)
    for view in (0, 1):
        out = aug(torch.from_numpy(x), torch.from_numpy(num_frame), torch.from_numpy(indices), epoch=2, view=view)
        ref = np.stack([pipe(x[k], int(num_frame[k]), view_rng(11, 2, int(i), view)) for k, i in enumerate(indices)])
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-5, rtol=1e-5)


def test_eval_pipeline_batch():
    pipe = build_eval_transform(None, LAYOUT, 64, "motion")
    x, num_frame = _batch()
    out = BatchAugmenter(pipe, seed=0)(torch.from_numpy(x), num_frame, np.arange(len(x)))
    ref = np.stack([pipe(x[i], int(num_frame[i])) for i in range(len(x))])
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5, rtol=1e-5)


def test_batch_augmenter_input_errors():
    aug = BatchAugmenter(build_pretrain_transform(None, LAYOUT, 64), seed=0)
    with pytest.raises(ValueError, match=r"expects \(N, C, T, V, M\), got \(3, 300, 25, 2\)"):
        aug(torch.zeros(3, 300, 25, 2))
    with pytest.raises(ValueError, match=r"needs num_frame and indices \(or params=\)"):
        aug(torch.zeros(2, 3, 300, 25, 2))
