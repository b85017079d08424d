"""Action images: K frames of one sample concatenated left to right in time order.

One RGB image per sample, ``<out>/<sample>.jpg`` (paper §3.3, §5.4.4 Table 9; acsar_facts.md §2: K = 5 frames
sampled uniformly over the valid frames; the paper also tried 3 and 8).  The paper says
"in time order" (§3.3) and gives neither the direction nor the exact sampling: left to right,
first and last frame included, is our reading [ours].  It crops every frame and then samples;
we sample the K frames first and detect the person in those only [ours]: the same images
unless a frame without a person would have been dropped.

Sources:
- ``video``: a video file per sample (NTU ``<sample>_rgb.avi``) or a clip
  ``[start, end]`` of a long video (PKU-MMD, from a CSV ``name,video,start,end``);
  frames decoded with OpenCV, the target person found by YOLO and cropped
  (:mod:`data_gen.person_crop`), crops resized to a common height.
- ``skeleton``: gendata arrays ``{split}_data_joint.npy`` (N, 3, 300, V, 2) and
  ``{split}_num_frame.npy``; each frame rendered as a stick figure
  (:mod:`data_gen.skeleton_render`).

Resumable (existing images are skipped), atomic writes, ``--limit``, progress bars.
The settings that determine the images (source, frames, height, layout and yaw /
detector weights (path and sha256), size, confidence, person class, two-person mode, and which frames
of which video: the ``--pattern`` of per-sample videos, or a sha256 of the ``--clips``
table's rows ``name, video, start, end``) are recorded in
``<out>/images_settings.json``; a rerun with other settings into the same folder --
a corrected clips CSV included -- is refused (:mod:`data_gen.output_settings`) unless
``--overwrite``, which moves the folder's old images into
``<out>/overwritten/<UTC time>/`` and makes every one again.  Input folders and the
device are not recorded (samples are matched by name).

The clips CSV: header ``name,video[,start,end]``; a row with too few or too many
fields, an empty name or video, a bad or reversed ``start`` / ``end`` or a name given
twice is an error naming the file and line.

Usage::

    python data_gen/action_images.py video --videos nturgb+d_rgb --label-pkl data/ntu60/xsub/train_label.pkl \\
        --weights weights/yolov5mu.pt --out data/ntu60/action_images
    python data_gen/action_images.py video --clips pku_clips.csv --weights weights/yolov5mu.pt --out ...
    python data_gen/action_images.py skeleton --data data/nwucla/xview --split train --layout kinect_v1 --out ...
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_gen import offline  # noqa: E402,F401  (offline switches before any hub-aware import)

import argparse  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Callable, List, Optional, Sequence  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from feeder.io import atomic_open, file_sha256, load_sample_names  # noqa: E402
from feeder.splits import load_split  # noqa: E402
from net.graph import Layout, get_layout  # noqa: E402
from data_gen.cli import exit_code_of, positive_int  # noqa: E402
from data_gen.skeleton_render import RenderStyle, render_skeleton_frames  # noqa: E402
from data_gen.output_settings import check_output_settings, output_files, start_output_dir  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = [
    "Clip", "sample_frame_indices", "read_video_frames", "concat_strip", "save_jpeg_atomic",
    "video_action_image", "skeleton_action_image", "read_clip_csv", "clips_sha256", "make_action_images",
    "SETTINGS_FILE",
    "output_settings",
]

#: Sidecar in the output folder with the settings its images were made with.
SETTINGS_FILE = "images_settings.json"


@dataclass(frozen=True)
class Clip:
    """One sample's video: frames ``start..end`` (inclusive; ``end=None`` = to the last frame)."""

    name: str
    video: Path
    start: int = 0
    end: Optional[int] = None


def sample_frame_indices(num_valid: int, num_frames: int = 5) -> np.ndarray:
    """``num_frames`` indices spread uniformly over ``[0, num_valid)``, first and last frame included."""
    if num_valid < 1:
        raise ValueError(f"need at least one valid frame, got {num_valid}")
    return np.round(np.linspace(0, num_valid - 1, num_frames)).astype(np.int64)


def read_video_frames(path: Path, indices: Sequence[int]) -> List[np.ndarray]:
    """Decode the frames at absolute ``indices`` (sorted) as RGB arrays.

    Frames past the end of the stream repeat the last decoded frame (logged).
    """
    path = Path(path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise IOError(f"cannot open video {path}")
    wanted = sorted(set(int(i) for i in indices))
    got = {}
    frame_id, last = 0, None
    try:
        for target in wanted:
            while frame_id < target:
                if not cap.grab():
                    break
                frame_id += 1
            ok, frame = cap.read()
            if not ok:
                break
            last = frame[..., ::-1].copy()
            got[target] = last
            frame_id += 1
    finally:
        cap.release()
    if last is None:
        raise IOError(f"{path}: no frame could be decoded")
    missing = [i for i in wanted if i not in got]
    if missing:
        logger.warning("%s: frames %s past the end of the stream; repeating the last frame", path, missing)
    return [got.get(int(i), last) for i in indices]


def video_num_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise IOError(f"cannot open video {path}")
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    if n <= 0:
        raise IOError(f"{path}: the container reports no frame count")
    return n


def concat_strip(images: Sequence[np.ndarray], height: Optional[int] = None) -> np.ndarray:
    """Resize RGB images to one height (default: the first image's) and join them left to right."""
    if not images:
        raise ValueError("no images to concatenate")
    height = int(height or images[0].shape[0])
    resized = []
    for img in images:
        if img.shape[0] != height:
            w = max(1, int(round(img.shape[1] * height / img.shape[0])))
            img = cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA)
        resized.append(img)
    return np.concatenate(resized, axis=1)


def save_jpeg_atomic(path: Path, rgb: np.ndarray, quality: int = 95) -> None:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise IOError(f"JPEG encoding failed for {path}")
    with atomic_open(path, "wb") as handle:
        handle.write(buf.tobytes())


def video_action_image(clip: Clip, detector, num_frames: int = 5, height: int = 224,
                       two_person: str = "auto") -> np.ndarray:
    """Strip of ``num_frames`` person crops from one clip: ``(height, W, 3)`` RGB uint8.

    ``detector`` has ``detect(frames) -> list of (n, 5) boxes`` (:class:`person_crop.PersonDetector`).
    """
    from data_gen.person_crop import crop_frames, select_target_boxes

    end = clip.end if clip.end is not None else video_num_frames(clip.video) - 1
    if end < clip.start:
        raise ValueError(f"{clip.name}: end frame {end} before start frame {clip.start}")
    indices = clip.start + sample_frame_indices(end - clip.start + 1, num_frames)
    frames = read_video_frames(clip.video, indices)
    boxes = select_target_boxes(detector.detect(frames), frames[0].shape[:2], mode=two_person)
    return concat_strip(crop_frames(frames, boxes, height=height))


def skeleton_action_image(sample: np.ndarray, num_valid: int, layout: Layout, num_frames: int = 5,
                          style: Optional[RenderStyle] = None) -> np.ndarray:
    """Strip of ``num_frames`` rendered skeleton frames from ``sample`` (3, T, V, M)."""
    idx = sample_frame_indices(max(1, min(int(num_valid), sample.shape[1])), num_frames)
    return concat_strip(render_skeleton_frames(sample, idx, layout, style))


def read_clip_csv(path: Path) -> List[Clip]:
    """Clips from a CSV with header ``name,video,start,end`` (``end`` may be empty; paths relative to the CSV).

    ``start`` and ``end`` are 0-based frame indices and ``end`` is **inclusive** (:class:`Clip`); a
    PKU-MMD label's ``start,end`` cuts the skeleton clip ``frames[start:end]`` (``pku_gendata.py``),
    so write ``end - 1`` to take the image from the same frames.

    Every bad row is a ``ValueError`` naming ``path:line`` and what was expected: fewer or more fields
    than the header, an empty ``name`` / ``video``, a ``start`` / ``end`` that is not a whole number
    ``>= 0`` or an ``end`` before ``start``, and a name given twice (both lines named; clips are
    looked up by name).
    """
    path = Path(path)
    clips: List[Clip] = []
    first_line = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = {"name", "video"} - set(header)
        if missing:
            raise ValueError(f"{path}: header must hold name,video[,start,end]; missing {sorted(missing)}")
        for row in reader:
            line = reader.line_num
            expected = f"expected {len(header)} fields ({','.join(header)})"
            if None in row:
                raise ValueError(f"{path}:{line}: {len(header) + len(row[None])} fields, {expected}")
            short = [k for k in header if row[k] is None]
            if short:
                raise ValueError(f"{path}:{line}: {len(header) - len(short)} field(s), {expected}; "
                                 f"missing {','.join(short)}")
            name, video = row["name"].strip(), row["video"].strip()
            if not name or not video:
                raise ValueError(f"{path}:{line}: empty {'name' if not name else 'video'}; expected a sample "
                                 f"name and a video path")
            try:
                start = int(row.get("start") or 0)
                end = int(row["end"]) if (row.get("end") or "").strip() else None
            except ValueError as err:
                raise ValueError(f"{path}:{line}: bad start/end ({err}); expected whole frame numbers") from None
            if start < 0 or (end is not None and end < start):
                raise ValueError(f"{path}:{line}: start {start}, end {end}; expected 0 <= start <= end")
            if name in first_line:
                raise ValueError(f"{path}:{line}: clip name {name!r} already given on line {first_line[name]}; "
                                 f"expected one row per clip (the images are named by it)")
            first_line[name] = line
            clips.append(Clip(name, Path(video) if Path(video).is_absolute() else path.parent / video,
                              start, end))
    return clips


def clips_sha256(clips: Sequence[Clip], base: Optional[Path] = None) -> str:
    """sha256 of the clip table's rows ``name, video, start, end`` in order (video relative to ``base``,
    the CSV's folder, when inside it), recorded in the settings: other boundaries are other images."""
    h = hashlib.sha256()
    for c in clips:
        video = Path(c.video)
        if base is not None:
            try:
                video = video.relative_to(base)
            except ValueError:
                pass
        h.update(json.dumps([c.name, video.as_posix(), c.start, c.end]).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def make_action_images(names: Sequence[str], make: Callable[[str], np.ndarray], out_dir: Path,
                       limit: Optional[int] = None, desc: str = "action images") -> int:
    """Write ``make(name)`` to ``out_dir/<name>.jpg`` for each name without an image yet.

    Returns the number of images written (skipped ones not counted).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [n for n in names if not (out_dir / f"{n}.jpg").exists()]
    if limit is not None:
        todo = todo[:limit]
    logger.info("%d of %d images to make in %s", len(todo), len(names), out_dir)
    for name in tqdm(todo, desc=desc, unit="sample"):
        save_jpeg_atomic(out_dir / f"{name}.jpg", make(name))
    return len(todo)



def output_settings(args: argparse.Namespace, clips: Optional[Sequence[Clip]] = None) -> dict:
    """The settings that determine the images (recorded in :data:`SETTINGS_FILE`).

    Video source: the detector weights' path and, for a file, its sha256; with ``--clips``, a sha256 of its
    rows (``clips``, read from ``args.clips`` when not
    given; :func:`clips_sha256`); else the ``--pattern`` that names each sample's video.
    """
    common = {"source": args.source, "num_frames": args.num_frames, "height": args.height}
    if args.source == "skeleton":
        return {**common, "layout": args.layout, "yaw": args.yaw}
    weights = Path(args.weights)
    if args.clips:
        clips = read_clip_csv(args.clips) if clips is None else clips
        frames = {"clips_sha256": clips_sha256(clips, Path(args.clips).parent)}
    else:
        frames = {"pattern": args.pattern}
    # the weights by content too (a YOLO .pt is 6-140 MB): other weights put at the same path are other crops
    identity = {"weights_sha256": file_sha256(weights)} if weights.is_file() else {}
    return {**common, "weights": str(weights.resolve()) if weights.exists() else args.weights, **identity,
            "imgsz": args.imgsz, "conf": args.conf, "person_class": args.person_class,
            "two_person": args.two_person, **frames}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="source", required=True)
    for p in (sub.add_parser("video", help="person crops from RGB videos"),
              sub.add_parser("skeleton", help="stick figures rendered from gendata skeletons")):
        p.add_argument("--out", type=Path, required=True, help="folder for <sample>.jpg")
        p.add_argument("--num-frames", type=positive_int, default=5, help="frames per image (paper: 5; tried 3, 5, 8)")
        p.add_argument("--limit", type=positive_int, default=None, help="make at most this many new images")
        p.add_argument("--overwrite", action="store_true",
                       help="--out holds images made with other settings: move them into "
                            "<out>/overwritten/<time>/ and make every image again (default: refuse)")
        p.add_argument("--log-level", default="INFO")
    v = sub.choices["video"]
    v.add_argument("--videos", type=Path, help="folder of per-sample videos")
    v.add_argument("--pattern", default="{name}_rgb.avi", help="video file name for a sample (NTU: {name}_rgb.avi)")
    v.add_argument("--label-pkl", type=Path, action="append", default=[],
                   help="sample names from gendata label pickle(s); default: every video in --videos")
    v.add_argument("--clips", type=Path, help="CSV name,video,start,end (PKU-MMD clips cut by the label files)")
    v.add_argument("--weights", required=True, help="local YOLO weights (.pt), e.g. YOLOv5-m")
    v.add_argument("--imgsz", type=positive_int, default=640, help="letterbox size (paper: 640)")
    v.add_argument("--conf", type=float, default=0.25, help="detection confidence (paper: 0.25)")
    v.add_argument("--person-class", type=int, default=0, help="class id of 'person' in the model")
    v.add_argument("--two-person", choices=["auto", "one", "two"], default="auto")
    v.add_argument("--height", type=positive_int, default=224, help="crop height in pixels")
    v.add_argument("--device", default="cpu")
    s = sub.choices["skeleton"]
    s.add_argument("--data", type=Path, required=True, help="folder with {split}_data_joint.npy etc.")
    s.add_argument("--split", action="append", required=True, help="split name(s), e.g. train, val")
    s.add_argument("--layout", default="ntu25")
    s.add_argument("--height", type=positive_int, default=256)
    s.add_argument("--yaw", type=float, default=0.0, help="camera yaw in degrees (0 = front view)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    clip_list = read_clip_csv(args.clips) if args.source == "video" and args.clips else None
    settings = output_settings(args, clip_list)
    check_output_settings(args.out, settings, SETTINGS_FILE, ".jpg", args.overwrite, what="action images")

    if args.source == "video":
        from data_gen.person_crop import PersonDetector

        if args.clips:
            clips = {c.name: c for c in clip_list}    # names are unique (read_clip_csv)
        else:
            if args.videos is None:
                parser.error("video: give --videos (with --pattern) or --clips")
            names = load_sample_names(args.label_pkl)
            if not names:
                suffix = args.pattern.replace("{name}", "")
                names = [p.name[: -len(suffix)] for p in output_files(args.videos, suffix)]   # sorted, no .*
            clips = {n: Clip(n, args.videos / args.pattern.format(name=n)) for n in names}
        detector = PersonDetector(args.weights, imgsz=args.imgsz, conf=args.conf,
                                  person_class=args.person_class, device=args.device)
        start_output_dir(args.out, settings, SETTINGS_FILE, ".jpg", args.overwrite, what="action images")
        made = make_action_images(
            list(clips), lambda n: video_action_image(clips[n], detector, args.num_frames, args.height,
                                                      args.two_person), args.out, args.limit)
        detector.log_summary()
    else:
        layout = get_layout(args.layout)
        style = RenderStyle(height=args.height, yaw_deg=args.yaw)
        splits = [load_split(args.data, split) for split in args.split]  # memmaps: bad input fails before any write
        start_output_dir(args.out, settings, SETTINGS_FILE, ".jpg", args.overwrite, what="action images")
        made = 0
        for split, (data, num_frame, names, _) in zip(args.split, splits):
            index = {n: i for i, n in enumerate(names)}
            limit = None if args.limit is None else max(0, args.limit - made)
            made += make_action_images(
                names, lambda n: skeleton_action_image(np.asarray(data[index[n]]), num_frame[index[n]], layout,
                                                       args.num_frames, style), args.out, limit, desc=split)
    logger.info("made %d action images", made)
    return 0


if __name__ == "__main__":
    sys.exit(exit_code_of(main))
