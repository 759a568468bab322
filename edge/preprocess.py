"""Frames → model input: letterbox (or stretch), colour order, scale/mean/std, HWC → NCHW.

The output goes into one buffer reused across calls. The resized frame is split into uint8
planes, and `(pixel * scale - mean) / std` is computed from each plane straight into its NCHW
plane of the buffer (float32, skipping a zero mean and a unit std, which change nothing). The
padding is written only when a slot's geometry changes. Each frame's `Transform` maps boxes back
to frame pixels.
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


def is_odd_integer_downscale(frame_size_wh: tuple[int, int], size_wh: tuple[int, int]) -> bool:
    """True when both axes shrink by the same odd integer factor k >= 3.

    Bilinear sampling (OpenCV `INTER_LINEAR`) reads source position `(x + 0.5) * k - 0.5`, which
    is then the integer `k*x + (k-1)/2` with weights exactly 1 and 0: the output is the source
    pixel that `INTER_NEAREST_EXACT` picks (`floor((x + 0.5) * k)`), bit for bit, at half the
    cost. 1920x1080 → 640x360, the most common letterbox of all, is such a case (k = 3).
    """
    (frame_w, frame_h), (w, h) = frame_size_wh, size_wh
    factor, remainder = divmod(frame_w, w)
    return remainder == 0 and factor >= 3 and factor % 2 == 1 and frame_h == h * factor


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


def normalized_levels(values: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """`(x * scale - mean) / std` in float32 for uint8 levels `values (..., 3)` (model channel
    order): the reference formula every path here must reproduce bit for bit."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return (values.astype(np.float32) * np.float32(spec.scale) - mean) / std


def source_channels(spec: PreprocessSpec) -> tuple[int, int, int]:
    """The BGR frame channel that feeds each model channel."""
    return (2, 1, 0) if spec.color == "RGB" else (0, 1, 2)


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
        self._scale = np.float32(spec.scale)
        self._mean = [np.float32(m) for m in spec.mean]
        self._std = [np.float32(s) for s in spec.std]
        self._pad_levels = normalized_levels(np.full(3, spec.pad_value), spec).astype(self.dtype)
        self._slot_placement: list[Placement | None] = [None] * max_batch
        # Scratch images for the last resized size, reused while the frame size stays the same.
        self._scratch_hw: tuple[int, int] | None = None
        self._resized: np.ndarray | None = None
        self._planes: list[np.ndarray] = []
        self._plane_f32: np.ndarray | None = None

    def _ensure_buffer(self) -> np.ndarray:
        if self._buffer is None:
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

    def _scratch(self, size_hw: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
        if self._scratch_hw != size_hw or self._resized is None:
            self._resized = np.empty((*size_hw, 3), dtype=np.uint8)
            self._planes = [np.empty(size_hw, dtype=np.uint8) for _ in range(3)]
            if self.dtype != np.float32:
                self._plane_f32 = np.empty(size_hw, dtype=np.float32)
            self._scratch_hw = size_hw
        return self._resized, self._planes

    def _fill(self, slot: int, frame_bgr: np.ndarray) -> Transform:
        import cv2

        assert self._buffer is not None
        height, width = frame_bgr.shape[:2]
        placement, transform = plan_placement((width, height), self.input_hw, self.spec)
        if placement != self._slot_placement[slot]:
            self._buffer[slot] = self._pad_levels[:, None, None]
            self._slot_placement[slot] = placement
        new_w, new_h = placement.size_wh
        left, top = placement.offset_xy
        resized, planes_u8 = self._scratch((new_h, new_w))
        if (width, height) != (new_w, new_h):
            exact_nearest = is_odd_integer_downscale((width, height), (new_w, new_h))
            interpolation = cv2.INTER_NEAREST_EXACT if exact_nearest else cv2.INTER_LINEAR
            cv2.resize(frame_bgr, (new_w, new_h), dst=resized, interpolation=interpolation)
        else:
            resized = np.ascontiguousarray(frame_bgr)
        cv2.split(resized, planes_u8)
        for channel, source in enumerate(source_channels(self.spec)):
            target = self._buffer[slot, channel, top : top + new_h, left : left + new_w]
            self._normalize(planes_u8[source], channel, target)
        return transform

    def _normalize(self, plane_u8: np.ndarray, channel: int, target: np.ndarray) -> None:
        """`target = (plane * scale - mean) / std` in float32, skipping the no-op steps."""
        out = target if self._plane_f32 is None else self._plane_f32
        np.multiply(plane_u8, self._scale, out=out, casting="unsafe")
        if self._mean[channel] != 0:
            np.subtract(out, self._mean[channel], out=out)
        if self._std[channel] != 1:
            np.divide(out, self._std[channel], out=out)
        if out is not target:
            target[...] = out
