"""Render skeleton frames as clean stick figures (for datasets without video).

Input: one gendata sample ``(C=3, T, V, M)`` in pre-normalised coordinates
(metres, +z up, +x = right shoulder minus left shoulder), the indices of the
frames to draw and a :class:`net.graph.Layout`.  Output: one RGB ``uint8`` image
``(H, W, 3)`` per frame, all of the same size, drawn from a fixed orthographic
virtual camera and cropped to the union of the body's box over the drawn frames
(so the scale is the same in every frame of a strip).

The camera faces the person (the person's right side appears on the image's
left, as in a video); ``yaw_deg`` turns it about the vertical axis for a 3/4 view.
Limbs are coloured by side, from the layout's joint names: left = blue,
right = red, centre = grey; a second person is drawn in darker shades.  The head
is a circle around the joint named ``head`` (or ``nose``).
"""
from __future__ import annotations

from typing import List, Sequence

import cv2
import numpy as np

from net.graph import Layout

__all__ = ["project_points", "render_skeleton_frames", "RenderStyle"]


class RenderStyle:
    """Drawing parameters (colours are RGB).

    Args:
        height: output height in pixels of every frame.
        margin: blank border in pixels around the body's box.
        line_width, joint_radius: in pixels.
        head_radius_m: head circle radius in metres (scaled like the body).
        yaw_deg: camera rotation about the vertical axis (0 = front view).
    """

    LEFT = (40, 90, 220)
    RIGHT = (220, 50, 40)
    CENTRE = (90, 90, 90)
    SECOND_PERSON_SHADE = 0.6
    BACKGROUND = 255

    def __init__(self, height: int = 256, margin: int = 12, line_width: int = 3, joint_radius: int = 3,
                 head_radius_m: float = 0.1, yaw_deg: float = 0.0) -> None:
        self.height = int(height)
        self.margin = int(margin)
        self.line_width = int(line_width)
        self.joint_radius = int(joint_radius)
        self.head_radius_m = float(head_radius_m)
        self.yaw_deg = float(yaw_deg)


def project_points(points: np.ndarray, yaw_deg: float = 0.0) -> np.ndarray:
    """Orthographic projection of ``(..., 3)`` world points to ``(..., 2)`` image-plane (u right, v up).

    The camera looks at the person's front: image-right is world ``-x`` turned by ``yaw_deg``
    about ``+z``; image-up is ``+z``.
    """
    yaw = np.deg2rad(yaw_deg)
    u = -(points[..., 0] * np.cos(yaw) + points[..., 1] * np.sin(yaw))
    v = points[..., 2]
    return np.stack([u, v], axis=-1)


def _side_colour(name: str) -> tuple:
    if "left" in name:
        return RenderStyle.LEFT
    if "right" in name:
        return RenderStyle.RIGHT
    return RenderStyle.CENTRE


def _head_index(layout: Layout) -> int | None:
    for wanted in ("head", "nose"):
        if wanted in layout.joint_names:
            return layout.joint_names.index(wanted)
    return None


def render_skeleton_frames(sample: np.ndarray, frame_indices: Sequence[int], layout: Layout,
                           style: RenderStyle | None = None) -> List[np.ndarray]:
    """Draw ``sample[:, t]`` for each ``t`` in ``frame_indices``.

    Args:
        sample: ``(3, T, V, M)`` joint coordinates; an all-zero person (or frame) is not drawn.
        frame_indices: frames to draw, in order.
        layout: joint layout (edges = ``layout.inward``; names give sides and the head).
        style: drawing parameters.

    Returns:
        ``len(frame_indices)`` RGB uint8 images of identical shape ``(style.height, W, 3)``.
    """
    style = style or RenderStyle()
    sample = np.asarray(sample, dtype=np.float32)
    if sample.ndim != 4 or sample.shape[0] != 3 or sample.shape[2] != layout.num_joints:
        raise ValueError(f"expected a (3, T, {layout.num_joints}, M) sample, got {sample.shape}")
    idx = np.asarray(list(frame_indices), dtype=np.int64)
    pts = sample[:, idx].transpose(1, 3, 2, 0)  # (K, M, V, 3)
    present = np.abs(pts).sum(axis=(2, 3)) > 0  # (K, M)
    uv = project_points(pts, style.yaw_deg)  # (K, M, V, 2)

    if present.any():
        drawn = uv[present]  # (P, V, 2)
        lo, hi = drawn.reshape(-1, 2).min(0), drawn.reshape(-1, 2).max(0)
    else:
        lo, hi = np.array([-0.5, -1.0]), np.array([0.5, 1.0])
    head = _head_index(layout)
    pad = style.head_radius_m
    lo, hi = lo - pad, hi + pad
    extent = np.maximum(hi - lo, 1e-3)
    scale = (style.height - 2 * style.margin) / extent[1]
    width = int(np.ceil(extent[0] * scale)) + 2 * style.margin
    # pixel coordinates: x from the left, y from the top
    px = np.empty_like(uv)
    px[..., 0] = (uv[..., 0] - lo[0]) * scale + style.margin
    px[..., 1] = (hi[1] - uv[..., 1]) * scale + style.margin
    px = np.round(px).astype(np.int32)

    colours = [_side_colour(layout.joint_names[c]) for c, _ in layout.inward]
    head_px = max(2, int(round(style.head_radius_m * scale)))
    frames = []
    for k in range(len(idx)):
        canvas = np.full((style.height, width, 3), RenderStyle.BACKGROUND, dtype=np.uint8)
        for m in np.flatnonzero(present[k]):
            shade = 1.0 if m == 0 else RenderStyle.SECOND_PERSON_SHADE
            p = px[k, m]
            for (c, par), colour in zip(layout.inward, colours):
                col = tuple(int(ch * shade) for ch in colour)
                cv2.line(canvas, tuple(map(int, p[c])), tuple(map(int, p[par])), col, style.line_width, cv2.LINE_AA)
            for j in range(layout.num_joints):
                cv2.circle(canvas, tuple(map(int, p[j])), style.joint_radius, (40, 40, 40), -1, cv2.LINE_AA)
            if head is not None:
                cv2.circle(canvas, tuple(map(int, p[head])), head_px, (60, 60, 60), style.line_width, cv2.LINE_AA)
        frames.append(canvas)
    return frames
