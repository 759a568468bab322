"""Annotated images: boxes and labels drawn on a copy of the frame."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def class_color_bgr(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct colour per class (golden-ratio hue steps)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((0.33 + class_id * 0.618034) % 1.0, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def annotate(
    frame_bgr: np.ndarray,
    xyxy: np.ndarray,
    scores: np.ndarray,
    labels: list[str],
    class_ids: np.ndarray,
) -> np.ndarray:
    """A copy of `frame_bgr (H,W,3)` with `xyxy (N,4)` boxes and "label score" captions."""
    import cv2

    canvas = frame_bgr.copy()
    thickness = max(1, round(min(canvas.shape[:2]) / 400))
    font_scale = max(0.5, min(canvas.shape[:2]) / 1200)
    for box, score, label, class_id in zip(xyxy, scores, labels, class_ids, strict=True):
        color = class_color_bgr(int(class_id))
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), color, thickness, cv2.LINE_AA)
        caption = f"{label} {score:.2f}"
        (text_w, text_h), baseline = cv2.getTextSize(
            caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness
        )
        top = max(y0 - text_h - baseline, 0)
        cv2.rectangle(canvas, (x0, top), (x0 + text_w, top + text_h + baseline), color, -1)
        cv2.putText(
            canvas,
            caption,
            (x0, top + text_h),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            thickness,
            cv2.LINE_AA,
        )
    return canvas


def track_color_bgr(track_id: int) -> tuple[int, int, int]:
    """A stable colour per track, apart from the class colours' sequence."""
    return class_color_bgr(track_id * 7 + 3)


def draw_trails(canvas_bgr: np.ndarray, trails: Mapping[int, np.ndarray]) -> np.ndarray:
    """Draws each track's recent `(K,2)` points on `canvas_bgr` as a line, in place."""
    import cv2

    thickness = max(1, round(min(canvas_bgr.shape[:2]) / 400))
    for track_id, points in trails.items():
        if len(points) > 1:
            cv2.polylines(canvas_bgr, [np.round(points).astype(np.int32).reshape(-1, 1, 2)],
                          False, track_color_bgr(track_id), thickness, cv2.LINE_AA)  # fmt: skip
    return canvas_bgr
