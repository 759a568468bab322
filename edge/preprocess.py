"""Frames → model input: letterbox (or stretch), colour order, scale/mean/std, HWC → NCHW.

The output goes into one buffer reused across calls. The per-channel arithmetic
`(pixel * scale - mean) / std` is done once into a 256-entry table per channel and applied with
`cv2.LUT` (one pass, SIMD), then split straight into the NCHW planes. The padding is written only
when a slot's geometry changes. Each frame's `Transform` maps boxes back to frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import JetkitError
from edge.manifest import PreprocessSpec


@dataclass(frozen=True)
class Transform:
    """Frame → input mapping `input = frame * scale + pad`, per axis; and its inverse."""

    scale_xy: tuple[float, float]
    pad_xy: tuple[float, float]
    frame_size_wh: tuple[int, int]

    def to_frame(self, xyxy: np.ndarray) -> np.ndarray:
        """`(N,4)` boxes in input pixels → new `(N,4)` float32 boxes in frame pixels, clipped."""
        sx, sy = self.scale_xy
        px, py = self.pad_xy
        width, height = self.frame_size_wh
        out = np.empty(xyxy.shape, dtype=np.float32)
        np.clip((xyxy[:, 0::2] - px) / sx, 0, width, out=out[:, 0::2])
        np.clip((xyxy[:, 1::2] - py) / sy, 0, height, out=out[:, 1::2])
        return out

    def to_input(self, xyxy: np.ndarray) -> np.ndarray:
        """`(N,4)` boxes in frame pixels → `(N,4)` float32 in input pixels."""
        sx, sy = self.scale_xy
        px, py = self.pad_xy
        out = np.empty(xyxy.shape, dtype=np.float32)
        out[:, 0::2] = xyxy[:, 0::2] * sx + px
        out[:, 1::2] = xyxy[:, 1::2] * sy + py
        return out


@dataclass(frozen=True)
class Placement:
    """Where the resized frame lands in the input: `size_wh` of the resized image, `offset_xy`."""

    size_wh: tuple[int, int]
    offset_xy: tuple[int, int]


def plan_placement(
    frame_size_wh: tuple[int, int], input_hw: tuple[int, int], spec: PreprocessSpec
) -> tuple[Placement, Transform]:
    """Geometry of letterbox / stretch, matching Ultralytics `LetterBox` (centre, rounding) and
    YOLOX `preproc` (top-left, truncation)."""
    frame_w, frame_h = frame_size_wh
    in_h, in_w = input_hw
    if spec.resize == "stretch":
        placement = Placement((in_w, in_h), (0, 0))
        return placement, Transform((in_w / frame_w, in_h / frame_h), (0.0, 0.0), frame_size_wh)
    ratio = min(in_h / frame_h, in_w / frame_w)
    if spec.pad_position == "center":
        new_w, new_h = int(round(frame_w * ratio)), int(round(frame_h * ratio))
        dw, dh = (in_w - new_w) / 2, (in_h - new_h) / 2
        left, top = int(round(dw - 0.1)), int(round(dh - 0.1))
    else:
        new_w, new_h = int(frame_w * ratio), int(frame_h * ratio)
        left, top = 0, 0
    new_w, new_h = max(new_w, 1), max(new_h, 1)
    placement = Placement((new_w, new_h), (left, top))
    return placement, Transform((ratio, ratio), (float(left), float(top)), frame_size_wh)


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Grayscale `(H,W)`/`(H,W,1)` or BGRA `(H,W,4)` uint8 → BGR `(H,W,3)`; BGR passes through."""
    import cv2

    if frame.dtype != np.uint8:
        raise JetkitError(f"frames must be 8-bit images, got dtype {frame.dtype}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise JetkitError(
        f"frames must be grayscale, BGR or BGRA images, got shape {list(frame.shape)}"
    )


def channel_tables(spec: PreprocessSpec, dtype: np.dtype) -> np.ndarray:
    """`(1, 256, 3)` table: the input value of each uint8 level for each *frame* (BGR) channel,
    computed in float32 exactly as `(x * scale - mean) / std`."""
    levels = np.arange(256, dtype=np.float32)[:, None]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    table = (levels * np.float32(spec.scale) - mean) / std  # (256, 3) in model channel order
    if spec.color == "RGB":
        table = table[:, ::-1]  # frame channel k (B, G, R) feeds model channel 2 - k
    return np.ascontiguousarray(table, dtype=dtype)[None]


class Preprocessor:
    """Fills a reused `(max_batch, 3, H, W)` buffer from BGR frames; see the module docstring."""

    def __init__(
        self,
        spec: PreprocessSpec,
        input_hw: tuple[int, int],
        max_batch: int = 1,
        dtype: str = "float32",
    ) -> None:
        self.spec = spec
        self.input_hw = input_hw
        self.max_batch = max_batch
        self.dtype = np.dtype(dtype)
        self._buffer: np.ndarray | None = None
        self._tables: np.ndarray | None = None
        self._slot_placement: list[Placement | None] = [None] * max_batch

    def _ensure_buffer(self) -> np.ndarray:
        if self._buffer is None:
            self._tables = channel_tables(self.spec, self.dtype)
            self._buffer = np.empty((self.max_batch, 3, *self.input_hw), dtype=self.dtype)
        return self._buffer

    def __call__(self, frames: list[np.ndarray]) -> tuple[np.ndarray, list[Transform]]:
        """BGR (or gray/BGRA) uint8 frames → `(B, 3, H, W)` view of the buffer and one Transform
        per frame. The view is overwritten by the next call."""
        if not 1 <= len(frames) <= self.max_batch:
            raise JetkitError(
                f"a batch of {len(frames)} frames does not fit this model (max batch "
                f"{self.max_batch}); send at most {self.max_batch} or export with a larger batch"
            )
        buffer = self._ensure_buffer()
        transforms = [self._fill(slot, to_bgr(frame)) for slot, frame in enumerate(frames)]
        return buffer[: len(frames)], transforms

    def _fill(self, slot: int, frame_bgr: np.ndarray) -> Transform:
        import cv2

        assert self._buffer is not None and self._tables is not None
        height, width = frame_bgr.shape[:2]
        placement, transform = plan_placement((width, height), self.input_hw, self.spec)
        if placement != self._slot_placement[slot]:
            pad_level = self._tables[0, self.spec.pad_value]
            self._buffer[slot] = (
                pad_level[::-1, None, None]
                if self.spec.color == "RGB"
                else pad_level[:, None, None]
            )
            self._slot_placement[slot] = placement
        new_w, new_h = placement.size_wh
        left, top = placement.offset_xy
        resized = frame_bgr
        if (width, height) != (new_w, new_h):
            resized = cv2.resize(frame_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        mapped = cv2.LUT(resized, self._tables)  # (h, w, 3) in the buffer's dtype
        planes = [self._buffer[slot, c, top : top + new_h, left : left + new_w] for c in range(3)]
        if self.spec.color == "RGB":
            planes = planes[::-1]
        if all(p.flags.c_contiguous for p in planes):
            cv2.split(mapped, planes)
        else:
            for channel, plane in enumerate(planes):
                plane[...] = mapped[..., channel]
        return transform
