"""Action images: frame sampling, YOLO person crops from a video file, skeleton strips."""
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_gen import action_images as ai
from data_gen.person_crop import PersonDetector, box_iou, crop_frames, select_target_boxes
from data_gen.skeleton_render import RenderStyle, render_skeleton_frames
from net.graph import get_layout


def write_video(path: Path, num_frames: int = 12, size=(160, 120)) -> Path:
    """A short synthetic MJPG .avi: a dark 'person' rectangle drifting right on grey."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    assert writer.isOpened()
    for t in range(num_frames):
        frame = np.full((h, w, 3), 200, np.uint8)
        x = 20 + 5 * t
        frame[20:100, x:x + 30] = (30, 60, 90)
        writer.write(frame)
    writer.release()
    return path


def _seeded_detector() -> PersonDetector:
    """Random-weight YOLO, seeded here: a module-scoped fixture is built before the autouse seed of the
    test that first asks for it, so its weights would otherwise depend on the tests run before."""
    import random

    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    return PersonDetector("yolov8n.yaml", imgsz=640, conf=0.25, person_class=0)


@pytest.fixture(scope="module")
def detector():
    return _seeded_detector()


def test_random_weight_detector_does_not_depend_on_earlier_randomness():
    import torch

    first = _seeded_detector().model.model.state_dict()
    torch.rand(1000), np.random.rand(10)                   # what earlier tests might have drawn
    second = _seeded_detector().model.model.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_sample_frame_indices():
    assert ai.sample_frame_indices(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert ai.sample_frame_indices(3, 5).tolist() == [0, 0, 1, 2, 2]
    assert len(ai.sample_frame_indices(300, 8)) == 8
    with pytest.raises(ValueError, match="need at least one valid frame, got 0"):
        ai.sample_frame_indices(0)


def test_box_selection_tracks_and_falls_back():
    hw = (100, 200)
    big_left = [10, 10, 60, 90, 0.9]
    small_centre = [95, 45, 105, 55, 0.9]
    moved_left = [14, 10, 64, 90, 0.8]
    dets = [np.zeros((0, 5)), np.array([big_left, small_centre]), np.zeros((0, 5)),
            np.array([small_centre, moved_left])]
    boxes = select_target_boxes(dets, hw, mode="one")
    assert boxes.shape == (4, 4)
    np.testing.assert_allclose(boxes[0], big_left[:4])     # leading empty frame: first detected box
    np.testing.assert_allclose(boxes[2], big_left[:4])     # empty frame: previous box
    np.testing.assert_allclose(boxes[3], moved_left[:4])   # IoU tracking beats the centre box
    assert box_iou(np.array([big_left[:4]]), np.array([moved_left[:4]]))[0, 0] > 0.8
    # nothing ever detected: the full frame
    np.testing.assert_allclose(select_target_boxes([np.zeros((0, 5))] * 2, hw), [[0, 0, 200, 100]] * 2)
    # two similar boxes in most frames: auto merges them
    pair = np.array([[10, 10, 60, 90, 0.9], [120, 12, 170, 92, 0.9]])
    merged = select_target_boxes([pair, pair, pair[:1]], hw, mode="auto")
    np.testing.assert_allclose(merged[0], [10, 10, 170, 92])


def test_crop_frames_common_height():
    rows, cols = np.mgrid[0:100, 0:200]
    frame = np.stack([cols, rows, np.zeros_like(rows)], axis=-1).astype(np.uint8)   # pixel = (x, y, 0)
    boxes = np.array([[10, 10, 60, 90], [0, 0, 200, 100], [50, 50, 50, 80]], np.float32)
    crops = crop_frames([frame] * 3, boxes, height=64)
    assert [c.shape[0] for c in crops] == [64, 64, 64]
    # box grown by 5 % of its size (2.5 x 4 px), floored / ceiled: x 7..63, y 6..94, then 88 rows -> 64 (width 41)
    expected = cv2.resize(frame[6:94, 7:63], (41, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(crops[0], expected)
    assert crops[0][0, 0, :2].tolist() == [7, 6] and crops[0][-1, -1, :2].tolist() == [62, 93]
    # the whole frame (the margin is clipped at the borders) and an empty box (under 2 px wide: falls back to it)
    full = cv2.resize(frame, (128, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(crops[1], full)
    np.testing.assert_array_equal(crops[2], full)


def test_video_to_action_image_with_yolo(tmp_path, detector):
    video = write_video(tmp_path / "S001C001P001R001A001_rgb.avi")
    frames = ai.read_video_frames(video, [0, 5, 11, 40])  # 40 is past the end: repeats the last frame
    assert len(frames) == 4 and frames[0].shape == (120, 160, 3)
    np.testing.assert_array_equal(frames[3], frames[2])
    dets = detector.detect(frames[:2])
    assert len(dets) == 2 and all(d.ndim == 2 and d.shape[1] == 5 for d in dets)

    clip = ai.Clip("S001C001P001R001A001", video)
    strip = ai.video_action_image(clip, detector, num_frames=5, height=48)
    assert strip.dtype == np.uint8 and strip.shape[0] == 48 and strip.shape[2] == 3
    # random weights find nobody: full-frame fallback, 5 crops of 64 px each at height 48
    assert strip.shape[1] == 5 * 64
    # a PKU-style clip cut by start/end frames
    part = ai.video_action_image(ai.Clip("x", video, 2, 6), detector, num_frames=3, height=48)
    assert part.shape == (48, 3 * 64, 3)


def test_cli_video_resumable(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("A", "B", "C"):
        write_video(videos / f"{name}_rgb.avi", num_frames=6)
    out = tmp_path / "images"
    args = ["video", "--videos", str(videos), "--weights", "yolov8n.yaml", "--out", str(out), "--height", "32"]
    assert ai.main(args + ["--limit", "2"]) == 0
    assert sorted(p.name for p in out.glob("*.jpg")) == ["A.jpg", "B.jpg"]
    mtime = (out / "A.jpg").stat().st_mtime_ns
    assert ai.main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["A.jpg", "B.jpg", "C.jpg", ai.SETTINGS_FILE]
    assert (out / "A.jpg").stat().st_mtime_ns == mtime  # not redone
    img = cv2.imread(str(out / "C.jpg"))
    assert img.shape[0] == 32


def test_clip_csv(tmp_path):
    (tmp_path / "clips.csv").write_text("name,video,start,end\nc1,v.avi,10,40\nc2,/abs/w.avi,0,\n")
    clips = ai.read_clip_csv(tmp_path / "clips.csv")
    assert clips[0] == ai.Clip("c1", tmp_path / "v.avi", 10, 40)
    assert clips[1].end is None and clips[1].video == Path("/abs/w.avi")
    (tmp_path / "bad.csv").write_text("name,video,start\nc1,v.avi,x\n")
    with pytest.raises(ValueError, match="bad.csv:2"):
        ai.read_clip_csv(tmp_path / "bad.csv")


@pytest.mark.parametrize("layout_name", ["ntu25", "kinect_v1"])
def test_skeleton_strip(layout_name):
    layout = get_layout(layout_name)
    rng = np.random.default_rng(0)
    sample = np.zeros((3, 40, layout.num_joints, 2), np.float32)
    base = rng.normal(0, 0.3, (3, 1, layout.num_joints))
    sample[:, :30, :, 0] = base + np.linspace(0, 0.2, 30)[None, :, None]
    style = RenderStyle(height=96)
    frames = render_skeleton_frames(sample, [0, 10, 29], layout, style)
    assert len({f.shape for f in frames}) == 1 and frames[0].shape[0] == 96
    assert (frames[0] == 255).mean() > 0.5 and (frames[0] < 255).any()  # white background, a figure drawn
    assert not np.array_equal(frames[0], frames[2])                      # it moved
    strip = ai.skeleton_action_image(sample, 30, layout, num_frames=5, style=style)
    assert strip.shape == (96, 5 * frames[0].shape[1], 3)


def test_cli_skeleton(tmp_path):
    from feeder.io import save_pickle_atomic

    layout = get_layout("ntu25")
    data = np.random.default_rng(1).normal(0, 0.3, (2, 3, 300, 25, 2)).astype(np.float32)
    data[..., 1] = 0
    np.save(tmp_path / "train_data_joint.npy", data)
    np.save(tmp_path / "train_num_frame.npy", np.array([50, 300]))
    save_pickle_atomic(tmp_path / "train_label.pkl", (["s1", "s2"], [0, 1]))
    out = tmp_path / "img"
    assert ai.main(["skeleton", "--data", str(tmp_path), "--split", "train", "--out", str(out),
                    "--layout", layout.name, "--height", "64", "--num-frames", "3"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(["s1.jpg", "s2.jpg", ai.SETTINGS_FILE])
    assert cv2.imread(str(out / "s1.jpg")).shape[0] == 64


def test_cli_skeleton_other_settings_refused_then_overwritten(tmp_path, caplog):
    """Other --num-frames / --height into the same folder: a clear error, not a silent resume."""
    import json

    from data_gen.output_settings import SettingsMismatch
    from feeder.io import save_pickle_atomic

    data = np.random.default_rng(4).normal(0, 0.3, (2, 3, 300, 25, 2)).astype(np.float32)
    np.save(tmp_path / "train_data_joint.npy", data)
    np.save(tmp_path / "train_num_frame.npy", np.array([40, 80]))
    save_pickle_atomic(tmp_path / "train_label.pkl", (["s1", "s2"], [0, 1]))
    out = tmp_path / "img"
    args = ["skeleton", "--data", str(tmp_path), "--split", "train", "--out", str(out), "--height", "48"]
    assert ai.main(args + ["--num-frames", "3"]) == 0
    width3 = cv2.imread(str(out / "s1.jpg")).shape[1]
    with pytest.raises(SettingsMismatch, match=r"(?s)img.*num_frames: 3 there, 5 asked.*--overwrite"):
        ai.main(args + ["--num-frames", "5"])
    with pytest.raises(SettingsMismatch, match=r"height: 48 there, 64 asked"):
        ai.main(args[:-1] + ["64", "--num-frames", "3"])
    assert cv2.imread(str(out / "s1.jpg")).shape[1] == width3                 # untouched
    assert ai.main(args + ["--num-frames", "5", "--overwrite", "--limit", "1"]) == 0   # a redo, interrupted
    assert sorted(p.name for p in out.glob("*.jpg")) == ["s1.jpg"]          # the old s2 is moved aside
    (kept,) = (out / "overwritten").iterdir()
    assert sorted(p.name for p in kept.glob("*.jpg")) == ["s1.jpg", "s2.jpg"]
    assert cv2.imread(str(kept / "s1.jpg")).shape[1] == width3
    assert ai.main(args + ["--num-frames", "5"]) == 0                        # same settings: resumes
    layout, style = get_layout("ntu25"), RenderStyle(height=48)
    expected = [ai.skeleton_action_image(data[i], n, layout, 5, style).shape for i, n in enumerate((40, 80))]
    assert [cv2.imread(str(out / f"{n}.jpg")).shape for n in ("s1", "s2")] == expected   # both at 5 frames
    assert expected[0][1] > width3
    assert json.loads((out / ai.SETTINGS_FILE).read_text())["num_frames"] == 5
    # a folder made before the settings file existed: resumed with a warning
    (out / ai.SETTINGS_FILE).unlink()
    mtime = (out / "s1.jpg").stat().st_mtime_ns
    with caplog.at_level("WARNING"):
        assert ai.main(args + ["--num-frames", "3"]) == 0
    assert "no images_settings.json" in caplog.text
    assert (out / "s1.jpg").stat().st_mtime_ns == mtime


def _saved_yolo(path: Path, yaml: str, names=None) -> Path:
    """A random-weight YOLO built from ``yaml`` and saved as a ``.pt`` (optionally with class names)."""
    from data_gen import offline

    offline.configure_ultralytics()
    from ultralytics import YOLO

    model = YOLO(yaml)
    if names is not None:
        model.model.names = dict(enumerate(names))
    model.save(str(path))
    return path


def test_detector_refuses_non_detection_or_non_person_weights(tmp_path):
    """A classification .pt, or a class id not named 'person', used to give full-frame crops silently."""
    cls = _saved_yolo(tmp_path / "yolov8n-cls.pt", "yolov8n-cls.yaml")
    with pytest.raises(ValueError, match=r"yolov8n-cls\.pt: a YOLO 'classify' model, expected a detection model"):
        PersonDetector(cls)
    unnamed = _saved_yolo(tmp_path / "unnamed.pt", "yolov8n.yaml")          # names '0', '1', ...
    with pytest.raises(ValueError, match=r"unnamed\.pt: class person_class=0 is named '0', expected 'person'; "
                                         r"this model has no class named 'person'"):
        PersonDetector(unnamed)
    cars = _saved_yolo(tmp_path / "cars.pt", "yolov8n.yaml", ["car", "Person", "dog"])
    with pytest.raises(ValueError, match=r"named 'car'.*pass person_class=1"):
        PersonDetector(cars)
    det = PersonDetector(cars, person_class=1)                                # case-insensitive 'person'
    assert det.model.task == "detect" and det.person_class == 1
    coco = _saved_yolo(tmp_path / "coco.pt", "yolov8n.yaml", ["person", "bicycle"])
    assert PersonDetector(coco).person_class == 0


def test_detector_counts_frames_without_person(detector, caplog):
    before = (detector.frames_seen, detector.frames_without_person, detector.clips_seen)
    frames = [np.full((120, 160, 3), 200, np.uint8)] * 3
    dets = detector.detect(frames)                      # random weights: nobody found
    assert all(len(d) == 0 for d in dets)
    assert detector.frames_seen - before[0] == 3 and detector.frames_without_person - before[1] == 3
    assert detector.clips_seen - before[2] == 1
    with caplog.at_level("INFO", logger="data_gen.person_crop"):
        detector.log_summary()
    record = caplog.records[-1]
    assert record.levelname == "WARNING"
    assert (f"no person in {detector.frames_without_person} of {detector.frames_seen} frames"
            in record.getMessage())


@pytest.mark.parametrize("body, match", [
    ("c1,v.avi,0,10\nc2\nc3,w.avi,5,20\n", r"clips\.csv:3: 1 field\(s\), expected 4 fields \(name,video,start,end\)"),
    ("c1,v.avi,0,10,99\n", r"clips\.csv:2: 5 fields, expected 4 fields"),
    ("c1,v.avi,0,10\n\nc1,w.avi,5,20\n", r"clips\.csv:4: clip name 'c1' already given on line 2"),
    ("c1,,0,10\n", r"clips\.csv:2: empty video"),
    ("c1,v.avi,10,5\n", r"clips\.csv:2: start 10, end 5; expected 0 <= start <= end"),
])
def test_clip_csv_bad_rows_name_file_and_line(tmp_path, body, match):
    """A short row raised a TypeError naming nothing; a duplicate name silently kept the last row."""
    path = tmp_path / "clips.csv"
    path.write_text("name,video,start,end\n" + body)
    with pytest.raises(ValueError, match=match):
        ai.read_clip_csv(path)


def test_video_settings_record_clip_table_and_pattern(tmp_path):
    """A corrected clips CSV (other start/end) used to keep the images cut at the old boundaries."""
    import argparse
    import json

    from data_gen.output_settings import SettingsMismatch

    write_video(tmp_path / "long.avi", num_frames=12)
    csv_path = tmp_path / "clips.csv"
    csv_path.write_text("name,video,start,end\nc1,long.avi,0,5\nc2,long.avi,6,11\n")
    out = tmp_path / "img"
    args = ["video", "--clips", str(csv_path), "--weights", "yolov8n.yaml", "--out", str(out), "--height", "32",
            "--num-frames", "3"]
    assert ai.main(args) == 0
    recorded = json.loads((out / ai.SETTINGS_FILE).read_text())
    assert recorded["clips_sha256"] == ai.clips_sha256(ai.read_clip_csv(csv_path), tmp_path)
    csv_path.write_text("name,video,start,end\nc1,long.avi,0,4\nc2,long.avi,6,11\n")     # corrected boundary
    with pytest.raises(SettingsMismatch, match=r"clips_sha256: '[0-9a-f]{64}' there, '[0-9a-f]{64}' asked"):
        ai.main(args)
    # the digest follows the rows, not the CSV's formatting or folder
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "clips.csv").write_bytes(b"name,video,start,end\r\nc1,long.avi, 0,4\r\nc2,long.avi,6,11\r\n")
    assert ai.clips_sha256(ai.read_clip_csv(moved / "clips.csv"), moved) == ai.clips_sha256(
        ai.read_clip_csv(csv_path), tmp_path)
    ns = argparse.Namespace(source="video", num_frames=5, height=224, weights="yolov8n.yaml", imgsz=640,
                            conf=0.25, person_class=0, two_person="auto", clips=None, pattern="{name}_rgb.avi")
    assert ai.output_settings(ns)["pattern"] == "{name}_rgb.avi"
    assert ai.output_settings(argparse.Namespace(**{**vars(ns), "pattern": "{name}.mp4"})) != ai.output_settings(ns)
    # other weights put at the path of the first are other settings (the path alone was recorded before)
    weights = tmp_path / "yolo.pt"
    weights.write_bytes(b"weights of one detector")
    first = ai.output_settings(argparse.Namespace(**{**vars(ns), "weights": str(weights)}))
    weights.write_bytes(b"weights of another one")
    second = ai.output_settings(argparse.Namespace(**{**vars(ns), "weights": str(weights)}))
    assert first["weights"] == second["weights"] and first != second
    assert second["weights_sha256"] == hashlib.sha256(b"weights of another one").hexdigest()


def test_detector_letterboxes_to_a_square_640(detector):
    """Paper §5.1: resized and padded to 640x640.  YOLO.predict's default rect=True letterboxed a batch of
    equal 16:9 frames to 384x640 (ultralytics' minimal-stride padding); the model must see 640x640."""
    seen = []
    detector.detect([np.full((90, 160, 3), 200, np.uint8)])      # the predictor is set up by the first call
    backend = detector.model.predictor.model                     # AutoBackend: the module predict() runs
    hook = backend.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    try:
        detector.detect([np.full((90, 160, 3), 200, np.uint8)] * 2)      # 16:9
        detector.detect([np.full((160, 90, 3), 200, np.uint8)])          # 9:16
    finally:
        hook.remove()
    assert seen == [(2, 3, 640, 640), (1, 3, 640, 640)]


@pytest.mark.parametrize("source, option, value", [
    ("skeleton", "--num-frames", "0"), ("skeleton", "--height", "0"), ("video", "--num-frames", "-2"),
    ("video", "--height", "0"), ("video", "--imgsz", "0"), ("skeleton", "--limit", "-1")])
def test_counts_below_one_are_refused_before_anything_is_written(tmp_path, capsys, source, option, value):
    """``--num-frames 0`` recorded the settings, then failed in concat_strip ("no images to concatenate");
    a height or letterbox size of 0 failed later inside OpenCV / YOLO: neither error named the option."""
    out = tmp_path / "img"
    args = (["skeleton", "--data", str(tmp_path), "--split", "train"] if source == "skeleton" else
            ["video", "--videos", str(tmp_path), "--weights", "yolov8n.yaml"])
    with pytest.raises(SystemExit) as exit_info:
        ai.main(args + ["--out", str(out), option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: expected an integer >= 1, got {value}" in capsys.readouterr().err
    assert not out.exists()
