"""SCD-Net key mapping: paper-size layout against the reference key list, round trips, file loading."""
import ast
from pathlib import Path

import pytest
import torch

from net.acsar import ACSAR
from net.scdnet_checkpoint import (encoder_state_dict, from_scdnet, load_scdnet_checkpoint, read_state_dict,
                                   to_scdnet)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "scdnet_checkpoint_keys.txt"
PAPER = dict(layout="ntu25", in_channels=3, num_person=2, num_frame=64, stem_channels=[64, 256, 64],
             hidden_dim=2048, num_heads=8, num_layers=1, ff_dim=2048, dropout=0.1, proj_hidden=2048, proj_dim=128,
             queue_size=8192, momentum=0.999, tau_domain=0.2)
SMALL = dict(PAPER, num_frame=16, stem_channels=[8, 16, 8], hidden_dim=32, num_heads=2, ff_dim=32, proj_hidden=16,
             proj_dim=8, queue_size=12)
TEXT = dict(mode="film", feature_dim=12, num_tokens=7, level="token", hidden_dim=10, tau_cross=0.15, weight=0.5)


def _reference_keys():
    """{name: (shape, dtype)} of the official layout; encoder_k.* mirrors encoder_q.* (stated in the file)."""
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} not available")
    keys = {}
    for line in REFERENCE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, rest = line.split(" ", 1)
        shape, dtype = rest.rsplit(" ", 1)
        keys[name] = (tuple(ast.literal_eval(shape)), dtype)
    keys.update({"encoder_k." + k[len("encoder_q."):]: v for k, v in list(keys.items()) if k.startswith("encoder_q.")})
    return keys


def test_paper_model_maps_onto_the_official_layout():
    reference = _reference_keys()
    with torch.device("meta"):
        model = ACSAR(**PAPER, text=dict(TEXT, feature_dim=512, num_tokens=77, hidden_dim=256))
    ours = model.state_dict()
    theirs = to_scdnet(ours)
    assert set(theirs) == set(reference)
    for name, (shape, dtype) in reference.items():
        assert tuple(theirs[name].shape) == shape, name
        assert str(theirs[name].dtype).replace("torch.", "") == dtype, name
    back = from_scdnet(theirs)
    assert list(back) == [k for k in ours if not k.startswith("text.")]


def test_round_trip_is_identical():
    model = ACSAR(**SMALL, text=TEXT)
    model(torch.randn(2, 3, 16, 25, 2), torch.randn(2, 3, 16, 25, 2), torch.randn(2, 7, 12))  # move BN stats, queues
    ours = model.state_dict()
    back = from_scdnet(to_scdnet(ours))
    skeleton = {k: v for k, v in ours.items() if not k.startswith("text.")}
    assert list(back) == list(skeleton)
    assert all(torch.equal(back[k], v) for k, v in skeleton.items())
    fresh = ACSAR(**SMALL, text=TEXT)
    result = fresh.load_state_dict(back, strict=False)
    assert result.unexpected_keys == [] and all(k.startswith("text.") for k in result.missing_keys)
    assert torch.equal(fresh.queue_g.keys, model.queue_g.keys) and fresh.queue_g.ptr.item() == 2


def test_unknown_keys_are_reported():
    with pytest.raises(KeyError, match="encoder_q.extra.weight"):
        from_scdnet({"encoder_q.extra.weight": torch.zeros(1), "t_queue": torch.zeros(1)})
    with pytest.raises(KeyError, match="t_queue_ptrx"):
        from_scdnet({"t_queue_ptrx": torch.zeros(1)})


def test_checkpoint_file_loading(tmp_path):
    model = ACSAR(**SMALL)
    path = tmp_path / "checkpoint.pth.tar"
    state = {"module." + k: v for k, v in to_scdnet(model.state_dict()).items()}  # DDP-style prefix
    torch.save({"epoch": 3, "state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.01}]}}, path)
    loaded = load_scdnet_checkpoint(path)
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    assert set(read_state_dict(path)) == set(to_scdnet(model.state_dict()))
    with pytest.raises(FileNotFoundError, match=r"missing\.pth\.tar does not exist"):
        read_state_dict(tmp_path / "missing.pth.tar")
    bad = tmp_path / "bad.pth.tar"
    torch.save({"state_dict": {"a": 1}}, bad)
    with pytest.raises(ValueError, match="state dict"):
        read_state_dict(bad)


def test_encoder_state_dict_from_every_source():
    model = ACSAR(**SMALL, text=TEXT)
    expected = model.encoder_q.encoder.state_dict()
    for source in (model.state_dict(), to_scdnet(model.state_dict()),
                   {"module." + k: v for k, v in model.state_dict().items()},
                   {f"encoder.{k}": v for k, v in expected.items()},
                   expected):
        got = encoder_state_dict(source)
        assert list(got) == list(expected) and all(torch.equal(got[k], v) for k, v in expected.items())
    official_downstream = {k.replace("encoder_q.", "", 1): v for k, v in to_scdnet(model.state_dict()).items()
                           if k.startswith("encoder_q.encoder.")}
    official_downstream.update({"fc.weight": torch.zeros(3, 64), "fc.bias": torch.zeros(3)})
    assert set(encoder_state_dict(official_downstream)) == set(expected)
