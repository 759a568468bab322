"""Motion gating: whether a frame needs the detector at all, and where.

A cheap difference at low resolution (160 px wide, blurred grey) against what the detector last
saw there finds what changed since it looked: nothing (the detector is skipped; tracks hold
where they are), a small region (the detector runs on its crop only, grown by a margin) or much
of the frame (the whole frame). Against the last look rather than a running-average background
(Frigate's motion detector): an object that stops is skipped from the next frame on, with no
ghost of where it was to fade first, and one that creeps a pixel a frame adds up until it
counts. The whole frame is still looked at every `full_every_s`, so that what a crop left out
is found. A crop is at least the model's input size, as Frigate's regions are: the detector then
sees the objects at least as large as on the frame, never enlarged to fill its input (a detector
trained at one scale misses objects blown up 5x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import JetkitError

SKIP, CROP, FULL = "skip", "crop", "full"


@dataclass(frozen=True)
class MotionConfig:
    """`width_px`: the analysis width; `threshold`: the grey-level change that is motion;
    `min_area`: the share of the frame that must change; `crop_max_area`: the largest moving
    region (share of the frame) run as a crop; `margin`: how much a crop grows on each side
    (share of its size); `full_every_s`: the longest time between two looks at the whole frame."""

    width_px: int = 160
    threshold: float = 20.0
    min_area: float = 0.0005
    crop_max_area: float = 0.25
    margin: float = 0.25
    full_every_s: float = 5.0

    def __post_init__(self) -> None:
        checks = (
            ("width_px", 16 <= self.width_px <= 1920),
            ("threshold", 0 < self.threshold < 255),
            ("min_area", 0 <= self.min_area < 1),
            ("crop_max_area", 0 <= self.crop_max_area <= 1),
            ("margin", 0 <= self.margin <= 2),
            ("full_every_s", self.full_every_s > 0),
        )
        for name, ok in checks:
            if not ok:
                raise JetkitError(f"motion.{name} is out of range: {getattr(self, name)!r}")


@dataclass(frozen=True)
class MotionDecision:
    """`kind` SKIP, CROP or FULL; `xyxy` the crop in frame pixels (CROP only); `changed` the
    share of the frame that moved."""

    kind: str
    xyxy: tuple[int, int, int, int] | None
    changed: float


def grow_to(
    box_xyxy: tuple[int, int, int, int], min_size_wh: tuple[int, int], frame_size_wh: tuple[int, int]
) -> tuple[int, int, int, int]:
    """`box_xyxy` grown about its centre to at least `min_size_wh` (each side at most the
    frame's), then shifted to lie inside the frame."""
    x0, y0, x1, y1 = box_xyxy
    corners = []
    for low, high, least, limit in ((x0, x1, min_size_wh[0], frame_size_wh[0]),
                                    (y0, y1, min_size_wh[1], frame_size_wh[1])):  # fmt: skip
        side = min(max(high - low, least), limit)
        start = min(max((low + high - side) // 2, 0), limit - side)
        corners.append((start, start + side))
    (left, right), (top, bottom) = corners
    return left, top, right, bottom


class MotionGate:
    """One stream's gate: `decide(image_bgr, time_s)` per frame, in order. `min_crop_wh`: the
    smallest crop, the model's input size (None: any)."""

    def __init__(
        self, config: MotionConfig | None = None, min_crop_wh: tuple[int, int] | None = None
    ) -> None:
        self.config = config or MotionConfig()
        self.min_crop_wh = min_crop_wh
        self._seen: np.ndarray | None = None  # grey, small: the frame as the detector last saw it
        self._last_full_s: float | None = None

    def decide(self, image_bgr: np.ndarray, time_s: float) -> MotionDecision:
        import cv2

        config = self.config
        height, width = image_bgr.shape[:2]
        small_w = min(config.width_px, width)
        small_h = max(1, round(height * small_w / width))
        grey = cv2.cvtColor(
            cv2.resize(image_bgr, (small_w, small_h), interpolation=cv2.INTER_AREA),
            cv2.COLOR_BGR2GRAY,
        )
        # A light blur takes out sensor noise and compression blocks.
        grey = cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)
        if self._seen is None or self._seen.shape != grey.shape:
            return self._full(grey, time_s, 1.0)
        moved = np.abs(grey - self._seen) > config.threshold
        changed = float(moved.mean())
        due = self._last_full_s is None or time_s - self._last_full_s >= config.full_every_s
        if due:
            return self._full(grey, time_s, changed)
        if changed < config.min_area:
            return MotionDecision(SKIP, None, changed)
        rows, cols = np.nonzero(moved)
        x0, x1 = cols.min(), cols.max() + 1
        y0, y1 = rows.min(), rows.max() + 1
        grow_x, grow_y = (x1 - x0) * config.margin, (y1 - y0) * config.margin
        scale = width / small_w
        box = (
            max(int((x0 - grow_x) * scale), 0),
            max(int((y0 - grow_y) * scale), 0),
            min(int(np.ceil((x1 + grow_x) * scale)), width),
            min(int(np.ceil((y1 + grow_y) * scale)), height),
        )
        if self.min_crop_wh is not None:
            box = grow_to(box, self.min_crop_wh, (width, height))
        area = (box[2] - box[0]) * (box[3] - box[1]) / (width * height)
        if area > config.crop_max_area:
            return self._full(grey, time_s, changed)
        # The detector sees the crop now: what is inside it counts as seen.
        left, top = int(box[0] / scale), int(box[1] / scale)
        right, bottom = int(np.ceil(box[2] / scale)), int(np.ceil(box[3] / scale))
        self._seen[top:bottom, left:right] = grey[top:bottom, left:right]
        return MotionDecision(CROP, box, changed)

    def _full(self, grey: np.ndarray, time_s: float, changed: float) -> MotionDecision:
        self._seen = grey
        self._last_full_s = time_s
        return MotionDecision(FULL, None, changed)
