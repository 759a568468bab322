"""Motion gating: whether a frame needs the detector at all, and where.

As Frigate does, a cheap difference against a running-average background at low resolution
finds what moved: nothing (the detector is skipped; tracks hold where they are), a small region
(the detector runs on its crop only, grown by a margin) or much of the frame (the whole frame).
The whole frame is still looked at every `full_every_s`, so that an object that arrived and
stopped between two looks is found.
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
    (share of its size); `alpha`: how fast the background follows the frames."""

    width_px: int = 160
    threshold: float = 20.0
    min_area: float = 0.0005
    crop_max_area: float = 0.25
    margin: float = 0.25
    alpha: float = 0.1
    full_every_s: float = 5.0

    def __post_init__(self) -> None:
        checks = (
            ("width_px", 16 <= self.width_px <= 1920),
            ("threshold", 0 < self.threshold < 255),
            ("min_area", 0 <= self.min_area < 1),
            ("crop_max_area", 0 <= self.crop_max_area <= 1),
            ("margin", 0 <= self.margin <= 2),
            ("alpha", 0 < self.alpha <= 1),
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


class MotionGate:
    """One stream's gate: `decide(image_bgr, time_s)` per frame, in order."""

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self._background: np.ndarray | None = None
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
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey
            return self._full(time_s, 1.0)
        moved = np.abs(grey - self._background) > config.threshold
        cv2.accumulateWeighted(grey, self._background, config.alpha)
        changed = float(moved.mean())
        due = self._last_full_s is None or time_s - self._last_full_s >= config.full_every_s
        if due:
            return self._full(time_s, changed)
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
        area = (box[2] - box[0]) * (box[3] - box[1]) / (width * height)
        if area > config.crop_max_area:
            return self._full(time_s, changed)
        return MotionDecision(CROP, box, changed)

    def _full(self, time_s: float, changed: float) -> MotionDecision:
        self._last_full_s = time_s
        return MotionDecision(FULL, None, changed)
