"""Person detection (ultralytics YOLO) and target-person crops for action images.

Pipeline for the K sampled frames of one clip (acsar_facts.md §2):

1. :class:`PersonDetector` runs a YOLO model (weights from a local ``.pt`` path;
   a ``.yaml`` builds a random-weight model, for tests) on the frames, resized and
   padded to a square ``imgsz`` x ``imgsz`` (640 x 640, paper §5.1; ``predict(rect=False)``,
   see :meth:`PersonDetector.detect`), confidence ``conf`` (0.25), keeping one class id
   (``person_class``, 0 = person in COCO models).  Output per frame: ``(n, 5)``
   float array ``x1, y1, x2, y2, score`` in frame pixels.  A ``.pt`` must be a
   box-producing model (task ``detect``; ``segment`` / ``pose`` also give boxes)
   whose class ``person_class`` is named "person" (any case): a classification
   model, or a wrong class id, would find nobody and silently give full-frame
   crops, so it is refused.  The detector counts the frames and clips without a
   person; :meth:`PersonDetector.log_summary` reports them.
2. :func:`select_target_boxes` picks one box per frame: in the first frame with
   detections the box with the best size-and-centrality score; afterwards the box
   with the highest IoU to the previous choice (IoU tracking), or the best-scored
   box when none overlaps.  Two-person actions (``mode="two"``, or ``"auto"``
   when most frames hold two large boxes) use the union of the two best boxes.
   **Fallback**: a frame with no box takes the previous frame's box; frames
   before the first detection take the first detected box; a clip with no
   detection at all uses the full frame.
3. :func:`crop_frames` cuts the boxes (with a small margin) and resizes every
   crop to one common height.

Frames are RGB ``uint8`` ``(H, W, 3)`` arrays throughout.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Sequence

import cv2
import numpy as np

from data_gen import offline

logger = logging.getLogger(__name__)

__all__ = ["PersonDetector", "box_iou", "select_target_boxes", "crop_frames"]


class PersonDetector:
    """A YOLO person detector from a local weights file (no hub access).

    Args:
        weights: local ``.pt`` checkpoint (e.g. YOLOv5-m ``yolov5mu.pt``) or a model ``.yaml``
            (random weights; tests only).
        imgsz: side of the square letterbox the frames are resized and padded to (paper: 640 x 640).
        conf: confidence threshold (paper: 0.25).
        person_class: class id kept (0 = person for COCO-trained models); for a ``.pt`` it must be
            the class named "person" (checked; a ``.yaml`` has no class names).
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.
    """

    #: ultralytics tasks whose results carry ``boxes``
    BOX_TASKS = ("detect", "segment", "pose")

    def __init__(self, weights: str | Path, imgsz: int = 640, conf: float = 0.25, person_class: int = 0,
                 device: str = "cpu") -> None:
        offline.configure_ultralytics()
        from ultralytics import YOLO

        weights = str(weights)
        is_yaml = weights.endswith((".yaml", ".yml"))
        if not is_yaml and not Path(weights).is_file():
            raise FileNotFoundError(f"YOLO weights not found: {weights} (give a local .pt path; nothing is downloaded)")
        self.model = YOLO(weights)
        self.imgsz = int(imgsz)
        self.conf = float(conf)
        self.person_class = int(person_class)
        self.device = device
        self._check_model(weights, is_yaml)
        self.frames_seen = 0
        self.frames_without_person = 0
        self.clips_seen = 0
        self.clips_without_person = 0

    def _check_model(self, weights: str, is_yaml: bool) -> None:
        """A box-producing model whose class ``person_class`` is "person"; else a ValueError naming ``weights``."""
        task = getattr(self.model, "task", None)
        if task not in self.BOX_TASKS:
            raise ValueError(f"{weights}: a YOLO {task!r} model, expected a detection model (task 'detect'; "
                             f"also accepted: {list(self.BOX_TASKS[1:])}) trained with a 'person' class, "
                             f"e.g. yolov5mu.pt / yolov8n.pt")
        names = getattr(self.model, "names", None) or {}
        names = dict(enumerate(names)) if isinstance(names, (list, tuple)) else dict(names)
        if is_yaml:
            logger.warning("%s: a model built from a .yaml has random weights and no class names "
                           "(tests only): class %d is taken as 'person'", weights, self.person_class)
            return
        name = names.get(self.person_class)
        if str(name).strip().lower() != "person":
            persons = [k for k, v in names.items() if str(v).strip().lower() == "person"]
            hint = (f"the class named 'person' is {persons[0]}: pass person_class={persons[0]} (--person-class)"
                    if persons else "this model has no class named 'person'")
            shown = dict(list(names.items())[:10])
            raise ValueError(f"{weights}: class person_class={self.person_class} is named {name!r}, expected "
                             f"'person'; {hint} (classes: {shown}{' ...' if len(names) > 10 else ''}, "
                             f"{len(names)} in all)")

    def log_summary(self) -> None:
        """Log how many frames and clips had no person detected (WARNING when any did, else INFO)."""
        level = logging.WARNING if self.frames_without_person else logging.INFO
        logger.log(level, "person detection: no person in %d of %d frames (%d of %d clips entirely: "
                   "full-frame crops)", self.frames_without_person, self.frames_seen,
                   self.clips_without_person, self.clips_seen)

    def detect(self, frames: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Boxes per frame: a list of ``(n, 5)`` float32 arrays ``x1, y1, x2, y2, score``.

        One call is counted as one clip in :meth:`log_summary`.

        The frames are letterboxed to a square ``imgsz`` x ``imgsz`` as in the paper (§5.1).  ultralytics'
        ``YOLO.predict`` defaults to ``rect=True``, and its predictor then letterboxes a batch of equal-shape
        frames to the smallest stride multiple (``LetterBox(auto=same_shapes and rect and ...)``, ultralytics
        8.4 ``BasePredictor.pre_transform``): a 16:9 video would reach the model as 640 x 384.  ``rect=False``
        makes ``auto`` false, so every frame is padded to the full square.
        """
        if len(frames) == 0:
            return []
        bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames]  # ultralytics reads numpy arrays as BGR
        results = self.model.predict(bgr, imgsz=self.imgsz, conf=self.conf, classes=[self.person_class],
                                     device=self.device, rect=False, verbose=False)
        out = []
        for res in results:
            boxes = res.boxes
            if boxes is None or len(boxes) == 0:
                out.append(np.zeros((0, 5), np.float32))
                continue
            xyxy = boxes.xyxy.cpu().numpy().astype(np.float32)
            score = boxes.conf.cpu().numpy().astype(np.float32)[:, None]
            out.append(np.concatenate([xyxy, score], axis=1))
        empty = sum(len(d) == 0 for d in out)
        self.frames_seen += len(out)
        self.frames_without_person += empty
        self.clips_seen += 1
        self.clips_without_person += int(empty == len(out))
        return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(n, 4)`` against ``(m, 4)`` xyxy boxes -> ``(n, m)``."""
    a = np.asarray(a, np.float64)[:, None, :4]
    b = np.asarray(b, np.float64)[None, :, :4]
    lt = np.maximum(a[..., :2], b[..., :2])
    rb = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[..., 2:] - a[..., :2], 0, None).prod(-1)
    area_b = np.clip(b[..., 2:] - b[..., :2], 0, None).prod(-1)
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def _box_scores(boxes: np.ndarray, frame_hw: tuple, centre_weight: float) -> np.ndarray:
    """Size-and-centrality score: area fraction minus ``centre_weight`` × normalised centre distance."""
    h, w = frame_hw
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / float(h * w)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 / w - 0.5
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 / h - 0.5
    return area - centre_weight * np.hypot(cx, cy)


def _union(boxes: np.ndarray) -> np.ndarray:
    return np.array([boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()], np.float32)


def select_target_boxes(detections: Sequence[np.ndarray], frame_hw: tuple, mode: str = "auto",
                        two_person_area_ratio: float = 0.5, centre_weight: float = 0.5,
                        min_track_iou: float = 0.1) -> np.ndarray:
    """One xyxy box per frame for the target person (or the pair).

    Args:
        detections: per frame ``(n, >=4)`` boxes.
        frame_hw: ``(height, width)`` of the frames.
        mode: ``"one"``, ``"two"`` (union of the two best boxes) or ``"auto"`` (two when, in at least
            half of the frames with detections, the second-largest box has at least
            ``two_person_area_ratio`` of the largest box's area).
        two_person_area_ratio: see ``mode``.
        centre_weight: weight of the distance-to-centre penalty in the first choice.
        min_track_iou: below this IoU with the previous box a frame re-selects by score.

    Returns:
        ``(K, 4)`` float32 boxes (the full frame where nothing was ever detected).
    """
    if mode not in ("one", "two", "auto"):
        raise ValueError(f"mode must be 'one', 'two' or 'auto', got {mode!r}")
    h, w = frame_hw
    k = len(detections)
    full = np.array([0, 0, w, h], np.float32)
    dets = [np.asarray(d, np.float32).reshape(-1, 4 if np.size(d) == 0 else np.shape(d)[-1])[:, :4]
            for d in detections]
    if mode == "auto":
        votes = []
        for d in dets:
            if len(d) == 0:
                continue
            area = np.sort((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]))[::-1]
            votes.append(len(area) >= 2 and area[1] >= two_person_area_ratio * area[0])
        mode = "two" if votes and np.mean(votes) >= 0.5 else "one"

    chosen: List[np.ndarray | None] = [None] * k
    previous = None
    for t, d in enumerate(dets):
        if len(d) == 0:
            chosen[t] = previous
            continue
        scores = _box_scores(d, frame_hw, centre_weight)
        if mode == "two" and len(d) >= 2:
            best = np.argsort(-scores)[:2]
            box = _union(d[best])
        elif previous is not None:
            iou = box_iou(previous[None], d)[0]
            box = d[int(np.argmax(iou))] if iou.max() >= min_track_iou else d[int(np.argmax(scores))]
        else:
            box = d[int(np.argmax(scores))]
        chosen[t] = previous = np.asarray(box, np.float32)
    first = next((b for b in chosen if b is not None), None)
    if first is None:
        logger.debug("no person detected in any frame: using the full frame")
        return np.tile(full, (k, 1))
    out = []
    for b in chosen:  # leading empty frames take the first detected box
        out.append(first if b is None else b)
    return np.stack(out).astype(np.float32)


def crop_frames(frames: Sequence[np.ndarray], boxes: np.ndarray, height: int = 224,
                margin: float = 0.05) -> List[np.ndarray]:
    """Crop ``frames[i]`` to ``boxes[i]`` (grown by ``margin`` of its size) and resize to ``height`` rows."""
    crops = []
    for frame, box in zip(frames, boxes):
        fh, fw = frame.shape[:2]
        x1, y1, x2, y2 = [float(v) for v in box[:4]]
        mx, my = margin * (x2 - x1), margin * (y2 - y1)
        x1, y1 = int(max(0, np.floor(x1 - mx))), int(max(0, np.floor(y1 - my)))
        x2, y2 = int(min(fw, np.ceil(x2 + mx))), int(min(fh, np.ceil(y2 + my)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            x1, y1, x2, y2 = 0, 0, fw, fh
        crop = frame[y1:y2, x1:x2]
        new_w = max(1, int(round(crop.shape[1] * height / crop.shape[0])))
        crops.append(cv2.resize(crop, (new_w, height), interpolation=cv2.INTER_AREA))
    return crops
