"""PretrainDataset / DownstreamDataset on small split files built in tmp_path."""
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from feeder.batch_augment import BatchAugmenter
from feeder.datasets import DownstreamDataset, PretrainDataset
from feeder.io import lines_sha256, save_json_atomic, save_npy_atomic, save_pickle_atomic
from feeder.skeleton_ops import to_bone
from feeder.temporal import center_crop_bounds, crop_resize
from net.graph import get_layout

N, T, V, M = 12, 80, 25, 2
ALL_ON = {name: {"p": 1.0} for name in ("rotate", "flip", "shear", "spatial_mask", "temporal_mask")}


@pytest.fixture()
def split(tmp_path):
    rng = np.random.default_rng(0)
    num_frame = rng.integers(5, T + 1, size=N).astype(np.int64)
    data = np.zeros((N, 3, T, V, M), dtype=np.float32)
    for i, nf in enumerate(num_frame):
        data[i, :, :nf] = rng.standard_normal((3, nf, V, M))
    paths = {
        "data_path": tmp_path / "train_data_joint.npy",
        "num_frame_path": tmp_path / "train_num_frame.npy",
        "label_path": tmp_path / "train_label.pkl",
    }
    save_npy_atomic(paths["data_path"], data)
    save_npy_atomic(paths["num_frame_path"], num_frame)
    save_pickle_atomic(paths["label_path"], ([f"S{i:03d}" for i in range(N)], [i % 4 for i in range(N)]))
    text = rng.standard_normal((N, 77, 16)).astype(np.float16)
    paths["text_path"] = tmp_path / "text" / "train_clip.npy"
    save_npy_atomic(paths["text_path"], text)
    return paths, data, num_frame, text


def test_pretrain_item_shapes_and_text(split):
    paths, _, _, text = split
    ds = PretrainDataset(**paths, window=64, transform=ALL_ON, seed=3)
    assert len(ds) == N
    v1, v2, t, idx = ds[5]
    assert v1.shape == v2.shape == (3, 64, V, M) and v1.dtype == v2.dtype == np.float32
    assert t.shape == (77, 16) and t.dtype == np.float32 and idx == 5
    np.testing.assert_array_equal(t, text[5].astype(np.float32))
    assert not np.array_equal(v1, v2)
    no_text = PretrainDataset(paths["data_path"], paths["num_frame_path"], window=64)
    assert no_text[0][2].shape == (0,)


def test_pretrain_determinism_across_epochs_and_instances(split):
    paths, _, _, _ = split
    a = PretrainDataset(**paths, window=64, transform=ALL_ON, seed=3)
    b = PretrainDataset(**paths, window=64, transform=ALL_ON, seed=3)
    a.set_epoch(4)
    b.set_epoch(4)
    for x, y in zip(a[7][:2], b[7][:2]):
        np.testing.assert_array_equal(x, y)
    e4 = a[7][0]
    a.set_epoch(5)
    assert not np.array_equal(e4, a[7][0])
    c = PretrainDataset(**paths, window=64, transform=ALL_ON, seed=4)
    c.set_epoch(4)
    assert not np.array_equal(e4, c[7][0])


def test_pretrain_dataloader_workers_match_single_process(split):
    paths, _, _, _ = split
    ds = PretrainDataset(**paths, window=64, transform=ALL_ON, seed=1)
    ds.set_epoch(2)
    ref = next(iter(DataLoader(ds, batch_size=N, shuffle=False, num_workers=0)))
    got = next(iter(DataLoader(ds, batch_size=N, shuffle=False, num_workers=2)))
    for r, g in zip(ref, got):
        torch.testing.assert_close(r, g)
    assert ref[0].shape == (N, 3, 64, V, M) and ref[2].shape == (N, 77, 16)


def test_pickle_is_small_and_lazy(split):
    paths, data, _, _ = split
    ds = PretrainDataset(**paths, window=64)
    _ = ds[0]                                           # opens the memmaps
    assert isinstance(ds.data, np.memmap)
    blob = pickle.dumps(ds)
    assert len(blob) < data.nbytes / 10
    clone = pickle.loads(blob)
    clone.set_epoch(0)
    np.testing.assert_array_equal(clone[3][0], ds[3][0])


def test_text_mismatch_error_names_both_files(split, tmp_path):
    paths, _, _, text = split
    bad = tmp_path / "bad_text.npy"
    np.save(bad, text[:-1])
    with pytest.raises(ValueError) as err:
        PretrainDataset(paths["data_path"], paths["num_frame_path"], text_path=bad)
    assert str(bad) in str(err.value) and str(paths["data_path"]) in str(err.value)


def test_text_features_encoded_for_other_samples_are_refused(split):
    """Same count, other names (or order): the names recorded by encode_text.py must be the split's."""
    paths, _, _, _ = split
    names = [f"S{i:03d}" for i in range(N)]
    meta = paths["text_path"].with_suffix(".json")

    def dataset():
        return PretrainDataset(paths["data_path"], paths["num_frame_path"], paths["label_path"],
                               text_path=paths["text_path"])

    save_json_atomic(meta, {"encoder": "clip"})                     # written before the names were recorded
    assert dataset().text_shape == (N, 77, 16)
    save_json_atomic(meta, {"encoder": "clip", "names_sha256": lines_sha256(names)})
    assert dataset().text_shape == (N, 77, 16)
    save_json_atomic(meta, {"encoder": "clip", "names_sha256": lines_sha256(names[::-1])})
    with pytest.raises(ValueError, match=r"train_clip\.npy were encoded for other samples .*train_label\.pkl.*"
                                         r"encode_text\.py"):
        dataset()
    meta.write_text("{cut")
    with pytest.raises(ValueError, match=r"train_clip\.json: unreadable text-feature metadata"):
        dataset()


def test_text_features_whose_sample_order_cannot_be_checked_are_named_in_a_warning(split, caplog):
    """A .npy without its .json (or with one that records no names) was accepted by N alone without a word:
    a split regenerated in another order with the same N then trained every sample on another's text."""
    paths, _, _, _ = split
    meta = paths["text_path"].with_suffix(".json")

    def warnings_for_the_text_file():
        caplog.clear()
        with caplog.at_level("WARNING", logger="feeder.datasets"):
            PretrainDataset(paths["data_path"], paths["num_frame_path"], paths["label_path"],
                            text_path=paths["text_path"])
        return [r.getMessage() for r in caplog.records if str(paths["text_path"]) in r.getMessage()]

    found = warnings_for_the_text_file()                               # no .json at all
    assert len(found) == 1 and "train_clip.json" in found[0] and "only their count (N=12)" in found[0]
    assert "encode_text.py" in found[0]
    save_json_atomic(meta, {"encoder": "clip"})                        # a .json without the names
    found = warnings_for_the_text_file()
    assert len(found) == 1 and "records no sample names" in found[0]
    save_json_atomic(meta, {"encoder": "clip", "names_sha256": lines_sha256([f"S{i:03d}" for i in range(N)])})
    assert warnings_for_the_text_file() == []                          # checked: nothing to say


def test_length_mismatch_errors_name_files(split, tmp_path):
    paths, _, num_frame, _ = split
    nf_bad = tmp_path / "nf.npy"
    np.save(nf_bad, num_frame[:-2])
    with pytest.raises(ValueError, match="nf.npy"):
        PretrainDataset(paths["data_path"], nf_bad)
    lab_bad = tmp_path / "lab.pkl"
    with open(lab_bad, "wb") as f:
        pickle.dump((["a"], [0]), f)
    with pytest.raises(ValueError, match="lab.pkl"):
        DownstreamDataset(paths["data_path"], paths["num_frame_path"], lab_bad)
    with pytest.raises(FileNotFoundError, match=r"array file not found: .*missing\.npy"):
        PretrainDataset(tmp_path / "missing.npy", paths["num_frame_path"])


def test_load_split_refuses_files_of_different_lengths_and_duplicate_names(split, tmp_path):
    """describe.py / action_images.py read splits through load_split: rows, frame counts and names must agree."""
    from feeder.splits import load_split

    paths, data, num_frame, _ = split
    assert [len(x) for x in load_split(tmp_path, "train")] == [N] * 4
    save_npy_atomic(paths["num_frame_path"], num_frame[:-1])
    with pytest.raises(ValueError, match=rf"train_data_joint\.npy has {N} samples, train_num_frame\.npy {N - 1}"):
        load_split(tmp_path, "train")
    save_npy_atomic(paths["num_frame_path"], num_frame)
    names = [f"S{i:03d}" for i in range(N)]
    names[5] = names[2]
    save_pickle_atomic(paths["label_path"], (names, [i % 4 for i in range(N)]))
    with pytest.raises(ValueError, match=r"train_label\.pkl: sample name 'S002' appears more than once \(again at index 5\)"):
        load_split(tmp_path, "train")
    with pytest.raises(ValueError, match="appears more than once"):
        DownstreamDataset(paths["data_path"], paths["num_frame_path"], paths["label_path"])


def test_truncated_files_are_named(split, tmp_path):
    paths, _, _, _ = split
    for key, name in (("num_frame_path", "nf_cut.npy"), ("label_path", "lab_cut.pkl"), ("data_path", "x_cut.npy")):
        cut = tmp_path / name
        cut.write_bytes(paths[key].read_bytes()[:60])  # an interrupted copy
        files = dict(paths, **{key: cut})
        files.pop("text_path")
        with pytest.raises(ValueError, match=name.replace(".", r"\.") + ": cannot read"):
            DownstreamDataset(**files)
    floats = tmp_path / "lab_float.pkl"
    with open(floats, "wb") as f:
        pickle.dump(([f"S{i:03d}" for i in range(N)], [0.5] * N), f)
    with pytest.raises(ValueError, match=r"lab_float\.pkl: labels must be integers, got 0\.5"):
        DownstreamDataset(paths["data_path"], paths["num_frame_path"], floats)


def test_labels_outside_num_classes_name_the_label_file(split):
    paths, _, _, _ = split  # labels 0..3
    files = {k: v for k, v in paths.items() if k != "text_path"}
    assert len(DownstreamDataset(**files, num_classes=4)) == N
    with pytest.raises(ValueError, match=r"train_label\.pkl: 3 of 12 labels lie outside \[0, 3\) "
                                         r"\(data.num_classes = 3\), the first 'S003' = 3"):
        DownstreamDataset(**files, num_classes=3)


def test_return_raw_params_reproduce_views_on_batch_path(split):
    paths, data, num_frame, _ = split
    ds = PretrainDataset(**paths, window=64, transform=ALL_ON, seed=5)
    raw = PretrainDataset(**paths, window=64, transform=ALL_ON, seed=5, return_raw=True, raw_params=True)
    raw_nf = PretrainDataset(**paths, window=64, transform=ALL_ON, seed=5, return_raw=True)
    for d in (ds, raw, raw_nf):
        d.set_epoch(3)
    clip, params, _, idx = raw[2]
    np.testing.assert_array_equal(clip, data[2])
    assert clip.flags.writeable and idx == 2 and len(params) == 2
    assert int(params[0][0]["start"]) + int(params[0][0]["length"]) <= num_frame[2]
    views = next(iter(DataLoader(ds, batch_size=N, num_workers=0)))
    clips, batch_params, _, _ = next(iter(DataLoader(raw, batch_size=N, num_workers=0)))
    aug = BatchAugmenter(raw.pipeline, seed=5)
    clips2, nf, _, index = next(iter(DataLoader(raw_nf, batch_size=N, num_workers=0)))
    assert torch.equal(clips, clips2) and nf.tolist() == num_frame.tolist()
    for view in (0, 1):
        torch.testing.assert_close(aug(clips, params=batch_params[view]), views[view], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(aug(clips2, nf, index, epoch=3, view=view), views[view], atol=1e-5, rtol=1e-5)


def test_downstream_items_and_subset(split):
    paths, data, num_frame, _ = split
    ds = DownstreamDataset(paths["data_path"], paths["num_frame_path"], paths["label_path"], stream="bone",
                           window=64, center_crop_ratio=0.95)
    assert len(ds) == N and ds.labels.tolist() == [i % 4 for i in range(N)] and ds.sample_names[1] == "S001"
    x, label, idx = ds[3]
    assert x.shape == (3, 64, V, M) and x.dtype == np.float32 and label == 3 and idx == 3
    np.testing.assert_array_equal(x, ds[3][0])                  # deterministic
    joint = crop_resize(data[3], *center_crop_bounds(int(num_frame[3]), 0.95), 64)
    np.testing.assert_allclose(x, to_bone(joint, get_layout("ntu25")), atol=1e-6)   # the bones of the centre crop
    sub = DownstreamDataset(paths["data_path"], paths["num_frame_path"], paths["label_path"], stream="bone",
                            window=64, indices=[9, 2])
    assert len(sub) == 2 and sub.sample_names == ["S009", "S002"] and sub.labels.tolist() == [1, 2]
    x9, label9, idx9 = sub[0]
    assert idx9 == 9 and label9 == 1
    np.testing.assert_array_equal(x9, ds[9][0])
    with pytest.raises(IndexError, match=rf"indices must lie in \[0, {N}\) for .*_data_joint\.npy"):
        DownstreamDataset(paths["data_path"], paths["num_frame_path"], paths["label_path"], indices=[N])


def test_split_without_its_label_file_reads_as_an_interrupted_conversion(split):
    from feeder.splits import split_files

    paths, _, _, _ = split
    root = paths["data_path"].parent
    assert split_files(root, "train").label == paths["label_path"]
    paths["label_path"].unlink()                # what an interrupt in SplitWriter's commit leaves
    with pytest.raises(FileNotFoundError, match=r"train_label\.pkl.*interrupted conversion: rerun"):
        split_files(root, "train")


def test_missing_text_features_name_the_ones_that_exist(split, tmp_path):
    from feeder.splits import split_files

    with pytest.raises(FileNotFoundError, match=r"train_minilm\.npy.*encode_text\.py \(this folder has data\.text=clip\)"):
        split_files(tmp_path, "train", text="minilm")


def test_an_unprepared_folder_points_at_data_gen_and_at_encode_text(tmp_path):
    from feeder.splits import split_files

    with pytest.raises(FileNotFoundError) as info:
        split_files(tmp_path / "nothing", "train", text="minilm")
    message = str(info.value)
    assert message.count("missing") == 1 and "train_data_joint.npy" in message and "train_minilm.npy" in message
    assert "prepare the data with the data_gen/ scripts" in message and "encode_text.py" in message
    assert "interrupted" not in message and "this folder has" not in message


def test_an_empty_split_is_named_when_read(tmp_path):
    save_npy_atomic(tmp_path / "d.npy", np.zeros((0, 3, T, V, M), np.float32))
    save_npy_atomic(tmp_path / "n.npy", np.zeros(0, np.int64))
    with pytest.raises(ValueError, match=r"d\.npy: the split holds no samples"):
        PretrainDataset(tmp_path / "d.npy", tmp_path / "n.npy")


def test_num_frame_beyond_the_stored_frames_is_an_error_naming_both_files(split, tmp_path):
    """data_gen caps num_frame at the stored T: a larger count is of another conversion (e.g. another
    --max-frames), not something to clip silently to T."""
    paths, _, num_frame, _ = split
    bad = tmp_path / "nf_long.npy"
    long = num_frame.copy()
    long[4] = T + 20
    save_npy_atomic(bad, long)
    for make in (lambda: PretrainDataset(paths["data_path"], bad),
                 lambda: DownstreamDataset(paths["data_path"], bad, paths["label_path"])):
        with pytest.raises(ValueError, match=rf"nf_long\.npy: sample 4 has num_frame={T + 20} but "
                                             rf".*train_data_joint\.npy stores {T} frames"):
            make()
    long[4] = T                                           # exactly the stored length is fine
    save_npy_atomic(bad, long)
    assert len(PretrainDataset(paths["data_path"], bad)) == N


def test_pretraining_on_data_without_three_coordinates_fails_at_construction(split, tmp_path):
    """rotate / shear / scale need (x, y, z): 2-D data used to pass the first items (p = 0.5) and fail in a
    worker later with an error naming no file."""
    paths, data, _, _ = split
    flat = tmp_path / "train_data_2d.npy"
    save_npy_atomic(flat, data[:, :2])
    with pytest.raises(ValueError, match=r"train_data_2d\.npy: C=2 coordinate channels, but the augmentations "
                                         r"\['rotate', 'shear'\] need 3"):
        PretrainDataset(flat, paths["num_frame_path"], transform={"order": ["rotate", "flip", "shear"]})
    ds = PretrainDataset(flat, paths["num_frame_path"], transform={"order": ["flip", "temporal_mask"]})
    assert ds[0][0].shape == (2, 64, V, M)
