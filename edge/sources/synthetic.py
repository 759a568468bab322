"""`test://` frames: made in numpy, paced like a camera, the same for the same seed.

`blobs` (the default) draws a red, a green and a blue box, each sliding and bouncing in its own
third of the frame, on the sample detector's textured background, so `edge.samples`'s blob
detector finds them (ground truth: `blob_boxes`). `noise` is uniform noise, `gradient` colour
ramps that drift. Frame k's image depends only on the params and k, never on timing.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.samples import BLOB_CLASSES, draw_blob_scene
from edge.sources.uri import SourceSpec, SyntheticParams

Box = tuple[int, int, int, int]


def _bounce(position: float, span: int) -> int:
    """Where a point moving along `[0, span]` is after `position` pixels, turning at the ends."""
    if span <= 0:
        return 0
    folded = position % (2 * span)
    return int(folded if folded <= span else 2 * span - folded)


def blob_boxes(size_wh: tuple[int, int], index: int, seed: int) -> dict[str, Box]:
    """Frame `index`'s boxes (class name → xyxy pixels); each class keeps to its own horizontal
    band so that no box hides another."""
    width, height = size_wh
    band_h = height // len(BLOB_CLASSES)
    box_w, box_h = max(width // 5, 2), max(band_h * 3 // 5, 2)
    rng = np.random.default_rng(seed)
    boxes = {}
    for band, name in enumerate(BLOB_CLASSES):
        start_x, start_y = rng.uniform(0.0, 1.0, 2) * (width - box_w, band_h - box_h)
        # Between 1/250 and 1/80 of the frame per frame: visible motion that stays trackable.
        speed_x, speed_y = rng.uniform(0.004, 0.0125, 2) * (width, band_h) * rng.choice((-1, 1), 2)
        x0 = _bounce(start_x + speed_x * index, width - box_w)
        y0 = band * band_h + _bounce(start_y + speed_y * index, band_h - box_h)
        boxes[name] = (x0, y0, x0 + box_w, y0 + box_h)
    return boxes


@functools.cache
def _class_bgr(name: str) -> np.ndarray:
    """The colour draw_blob_scene gives class `name`, read off a one-pixel scene."""
    return draw_blob_scene((1, 1), {name: (0, 0, 1, 1)})[0, 0]


def blob_frame(background_bgr: np.ndarray, index: int, seed: int) -> np.ndarray:
    """`blob_boxes` drawn on a copy of a `draw_blob_scene` background."""
    import cv2

    height, width = background_bgr.shape[:2]
    frame = background_bgr.copy()
    for name, (x0, y0, x1, y1) in blob_boxes((width, height), index, seed).items():
        # cv2 fills rows in C; a numpy slice assignment broadcasts 3 bytes at a time, 4× slower
        # at 720p, which mattered for a source meant to outrun the model.
        bgr = tuple(int(v) for v in _class_bgr(name))
        cv2.rectangle(frame, (x0, y0), (x1 - 1, y1 - 1), bgr, thickness=cv2.FILLED)
    return frame


def noise_frame(size_wh: tuple[int, int], index: int, seed: int) -> np.ndarray:
    width, height = size_wh
    return np.random.default_rng((seed, index)).integers(0, 256, (height, width, 3), np.uint8)


def gradient_frame(size_wh: tuple[int, int], index: int) -> np.ndarray:
    """Blue ramps across, green down, red along the diagonal; all drift 4 levels a frame."""
    width, height = size_wh
    xs = np.arange(width)[None, :] * 256 // width
    ys = np.arange(height)[:, None] * 256 // height
    shift = 4 * index
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = (xs + shift) % 256
    frame[..., 1] = (ys + shift) % 256
    frame[..., 2] = ((xs + ys) // 2 + shift) % 256
    return frame


def frame_maker(params: SyntheticParams) -> Callable[[int], np.ndarray]:
    """index → BGR image `(H, W, 3)` for the params' pattern."""
    if params.pattern == "moving":
        from edge.samples_tracking import MovingScene

        return MovingScene(params.size_wh, params.objects, params.seed, params.moving).draw
    if params.pattern == "blobs":
        # draw_blob_scene's textured background costs ~10 ms at 720p: drawn once, boxes pasted.
        background = draw_blob_scene(params.size_wh, {}, seed=params.seed)
        return lambda index: blob_frame(background, index, params.seed)
    if params.pattern == "noise":
        return lambda index: noise_frame(params.size_wh, index, params.seed)
    return lambda index: gradient_frame(params.size_wh, index)


def next_slot(start_s: float, fps: float, last_slot: int, now_s: float) -> tuple[int, float]:
    """The frame slot (slot k is due at `start_s + k / fps`) a read at `now_s` gets, and how long
    to wait for it: the newest slot already due, passing over the ones a slow reader missed, or
    else the next one."""
    due_slot = math.floor((now_s - start_s) * fps)
    if due_slot > last_slot:
        return due_slot, 0.0
    slot = last_slot + 1
    return slot, start_s + slot / fps - now_s


class SyntheticSource:
    """A live `test://` source. Frames are due at `fps` from `open()` whether read or not; a read
    waits for the next one, and a late read gets the newest, the missed ones counted in
    `skipped_frames` and never produced. `count` frames are delivered, then read() gives None."""

    live = True

    def __init__(self, spec: SourceSpec) -> None:
        if not isinstance(spec.params, SyntheticParams):
            raise ValueError(f"SyntheticSource needs a test:// spec, got {spec.kind}")
        self.uri = spec.uri
        self.params = spec.params
        self.skipped_frames = 0
        self._closed = threading.Event()
        self._start_s = 0.0
        self._last_slot = -1
        self._delivered = 0
        # With gt=, each frame's ground truth is taken as the frame is drawn (one rasterisation)
        # and written when the source closes.
        self._scene: Any = None
        if spec.params.gt is not None:
            from edge.samples_tracking import MovingScene

            params = spec.params
            self._scene = MovingScene(params.size_wh, params.objects, params.seed, params.moving)
        else:
            self._frame_at = frame_maker(spec.params)
        self._gt_rows: list[np.ndarray] = []

    def open(self) -> None:
        self._closed.clear()
        self._start_s = time.monotonic()
        self._last_slot = -1
        self._delivered = 0

    def read(self) -> np.ndarray | None:
        count = self.params.count
        if self._closed.is_set() or (count is not None and self._delivered >= count):
            return None
        slot, wait_s = next_slot(self._start_s, self.params.fps, self._last_slot, time.monotonic())
        if wait_s > 0 and self._closed.wait(wait_s):
            return None
        self.skipped_frames += slot - self._last_slot - 1
        self._last_slot = slot
        if self._scene is None:
            image = self._frame_at(self._delivered)
        else:
            image, rows = self._scene.frame_and_truth(self._delivered)
            self._gt_rows.append(rows)
        self._delivered += 1
        return image

    def close(self) -> None:
        self._closed.set()
        if self.params.gt is not None and self._gt_rows:
            from edge.analytics.mot import write_mot_rows

            # The ground truth of the frames delivered, atomically.
            write_mot_rows(self.params.gt, np.concatenate(self._gt_rows))
            self._gt_rows = []
