"""Training augmentations: letterbox, mosaic, random scale/translate, HSV jitter and flips.

Pure functions over numpy arrays (OpenCV for pixels, no torch): images are `(H,W,3)` uint8 BGR,
boxes `xyxy (N,4)` float32 in the pixels of the image they come with, `class_ids (N,)` int64.
Every random choice is drawn from the `np.random.Generator` passed in, so an augmented sample is a
function of the generator's seed alone. Geometry is scale + translation only: axis-aligned boxes
stay exact under it, where rotation or shear would only give their enclosing boxes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.boxes import box_area, clip_xyxy
from edge.errors import JetkitError
from edge.manifest import PreprocessSpec
from edge.preprocess import is_odd_integer_downscale, plan_placement


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_range(name: str, value: float, low: float, high: float, high_open: bool = False) -> None:
    """Raise naming `augment.<name>` unless `value` is a number in [low, high] (or [low, high))."""
    upper_ok = _is_number(value) and (value < high if high_open else value <= high)
    if not (upper_ok and low <= value):
        bracket = ")" if high_open else "]"
        raise JetkitError(
            f"augment.{name}: must be a number in [{low}, {high}{bracket}, got {value!r}"
        )


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation settings (Ultralytics defaults); probabilities are in [0, 1]."""

    hsv_gains: tuple[float, float, float] = (0.015, 0.7, 0.4)  # hue shift, saturation, value
    flip_lr: float = 0.5
    flip_ud: float = 0.0
    scale: float = 0.5  # random scale in [1 - scale, 1 + scale]
    translate: float = 0.1  # random shift up to this fraction of the input size, per axis
    mosaic: float = 1.0  # probability of a 4-image mosaic
    min_box_px: float = 2.0  # boxes narrower or shorter than this after augmentation are dropped
    min_area_ratio: float = 0.1  # … and those keeping less than this fraction of their area

    def __post_init__(self) -> None:
        gains = self.hsv_gains
        if not (
            isinstance(gains, (list, tuple))
            and len(gains) == 3
            and all(_is_number(g) and 0 <= g <= 1 for g in gains)
        ):
            raise JetkitError(
                f"augment.hsv_gains: expected three numbers in [0, 1] (hue, saturation, value), "
                f"got {gains!r}"
            )
        object.__setattr__(self, "hsv_gains", tuple(float(g) for g in gains))
        for name in ("flip_lr", "flip_ud", "mosaic", "min_area_ratio"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        _check_range("scale", self.scale, 0.0, 1.0, high_open=True)
        _check_range("translate", self.translate, 0.0, 0.5)
        _check_range("min_box_px", self.min_box_px, 0.0, math.inf, high_open=True)


def _resize(image_bgr: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Resize exactly as `edge.preprocess.Preprocessor` does, so that un-augmented training
    images are bit for bit what the runtime feeds the model."""
    height, width = image_bgr.shape[:2]
    if (width, height) == size_wh:
        return image_bgr
    exact_nearest = is_odd_integer_downscale((width, height), size_wh)
    interpolation = cv2.INTER_NEAREST_EXACT if exact_nearest else cv2.INTER_LINEAR
    return cv2.resize(image_bgr, size_wh, interpolation=interpolation)


def resize_to_fit(
    image_bgr: np.ndarray, xyxy: np.ndarray, input_hw: tuple[int, int], spec: PreprocessSpec
) -> tuple[np.ndarray, np.ndarray]:
    """The image resized as the model sees it inside `input_hw`, without padding (by its long
    side for letterbox, to `input_hw` for stretch), and its boxes `xyxy (N,4)` in those pixels."""
    height, width = image_bgr.shape[:2]
    placement, transform = plan_placement((width, height), input_hw, spec)
    scale_x, scale_y = transform.scale_xy
    scaled = (xyxy * np.array([scale_x, scale_y, scale_x, scale_y])).astype(np.float32)
    return _resize(image_bgr, placement.size_wh), scaled


def letterbox(
    image_bgr: np.ndarray, xyxy: np.ndarray, input_hw: tuple[int, int], spec: PreprocessSpec
) -> tuple[np.ndarray, np.ndarray]:
    """The `input_hw` image the model is fed (letterbox or stretch per `spec`, padded with
    `spec.pad_value`), BGR `(H,W,3)` uint8, and `xyxy (N,4)` mapped into input pixels."""
    height, width = image_bgr.shape[:2]
    placement, transform = plan_placement((width, height), input_hw, spec)
    (new_w, new_h), (left, top) = placement.size_wh, placement.offset_xy
    out = np.full((*input_hw, 3), spec.pad_value, dtype=np.uint8)
    out[top : top + new_h, left : left + new_w] = _resize(image_bgr, (new_w, new_h))
    return out, transform.to_input(xyxy)


def augment_hsv(
    image_bgr: np.ndarray, gains: tuple[float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """Random hue shift and saturation/value gains (Ultralytics-style lookup tables on HSV):
    hue moves by up to `gains[0]` of the circle, saturation and value scale by `1 ± gains[1:]`."""
    hue_shift, sat_gain, val_gain = rng.uniform(-1, 1, 3) * np.asarray(gains) + (0, 1, 1)
    if hue_shift == 0 and sat_gain == 1 and val_gain == 1:
        return image_bgr
    levels = np.arange(256, dtype=np.float64)
    lut_hue = ((levels + hue_shift * 180) % 180).astype(np.uint8)  # OpenCV 8-bit hue is 0..179
    lut_sat = np.clip(levels * sat_gain, 0, 255).astype(np.uint8)
    lut_val = np.clip(levels * val_gain, 0, 255).astype(np.uint8)
    hue, sat, val = cv2.split(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2HSV))
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def flip(image: np.ndarray, xyxy: np.ndarray, horizontal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right (`horizontal`) or top-bottom; `xyxy (N,4)` follow. Its own inverse."""
    height, width = image.shape[:2]
    out = xyxy.copy()
    if horizontal:
        out[:, 0], out[:, 2] = width - xyxy[:, 2], width - xyxy[:, 0]
        return cv2.flip(image, 1), out
    out[:, 1], out[:, 3] = height - xyxy[:, 3], height - xyxy[:, 1]
    return cv2.flip(image, 0), out


def _keep_visible(
    moved_xyxy: np.ndarray, size_wh: tuple[int, int], min_box_px: float, min_area_ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """Clip `moved_xyxy (N,4)` to an image of `size_wh` → (clipped boxes, keep mask `(N,)`):
    boxes at least `min_box_px` wide and tall that keep `min_area_ratio` of their area."""
    clipped = clip_xyxy(moved_xyxy.copy(), size_wh)
    box_w, box_h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (
        (box_w > 0)
        & (box_h > 0)
        & (box_w >= min_box_px)
        & (box_h >= min_box_px)
        & (box_area(clipped) >= min_area_ratio * box_area(moved_xyxy))
    )
    return clipped, keep


def random_affine(
    image: np.ndarray,
    xyxy: np.ndarray,
    class_ids: np.ndarray,
    out_hw: tuple[int, int],
    scale: float,
    translate: float,
    rng: np.random.Generator,
    pad_value: int,
    min_box_px: float,
    min_area_ratio: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale the image about its centre by `1 ± scale`, put that centre at the centre of an
    `out_hw` canvas shifted by up to `translate` of its size, and fill the rest with `pad_value`.

    A larger image is cropped around its centre (the mosaic border). Boxes `xyxy (N,4)` move with
    the pixels, are clipped, and those left too small (`min_box_px`, `min_area_ratio`) are dropped
    together with their `class_ids (N,)`."""
    in_h, in_w = image.shape[:2]
    out_h, out_w = out_hw
    gain = rng.uniform(1 - scale, 1 + scale)
    shift_x, shift_y = rng.uniform(-translate, translate, 2) * (out_w, out_h)
    offset_x = out_w / 2 + shift_x - gain * in_w / 2
    offset_y = out_h / 2 + shift_y - gain * in_h / 2
    if gain == 1 and offset_x == 0 and offset_y == 0 and (in_h, in_w) == (out_h, out_w):
        warped = image
    else:
        # Boxes live in continuous coordinates (pixel i spans [i, i+1]); OpenCV maps pixel
        # centres, which sit half a pixel in, hence the (gain - 1) / 2 correction.
        half = (gain - 1) / 2
        matrix = np.array([[gain, 0, offset_x + half], [0, gain, offset_y + half]])
        warped = cv2.warpAffine(
            image,
            matrix,
            (out_w, out_h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(pad_value, pad_value, pad_value),
        )
    moved = (xyxy * gain + np.array([offset_x, offset_y, offset_x, offset_y])).astype(np.float32)
    clipped, keep = _keep_visible(moved, (out_w, out_h), min_box_px, min_area_ratio)
    return warped, clipped[keep], class_ids[keep]


def mosaic4(
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    class_ids: Sequence[np.ndarray],
    input_hw: tuple[int, int],
    rng: np.random.Generator,
    pad_value: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four images (each already resized to fit `input_hw`, see `resize_to_fit`) around a random
    centre of a `(2H, 2W, 3)` canvas, Ultralytics-style: top-left, top-right, bottom-left,
    bottom-right, each cut only by the canvas edge. Returns the canvas, all `xyxy (M,4)` shifted
    into it and clipped (boxes cut away entirely are dropped), and their `class_ids (M,)`.

    Follow with `random_affine(…, out_hw=input_hw, …)`, which crops the canvas back to input size.
    """
    if len(images) != 4:
        raise ValueError("mosaic4 takes exactly four images with their boxes and class ids")
    in_h, in_w = input_hw
    canvas_h, canvas_w = 2 * in_h, 2 * in_w
    canvas = np.full((canvas_h, canvas_w, 3), pad_value, dtype=np.uint8)
    centre_x = int(rng.uniform(in_w / 2, 3 * in_w / 2))
    centre_y = int(rng.uniform(in_h / 2, 3 * in_h / 2))
    placed_boxes, placed_ids = [], []
    for corner, (image, xyxy, ids) in enumerate(zip(images, boxes, class_ids, strict=True)):
        height, width = image.shape[:2]
        left = corner % 2 == 0
        top = corner < 2
        # The canvas region (x0..x1, y0..y1) meets the centre on the tile's inner sides.
        if left:
            x0, x1 = max(centre_x - width, 0), centre_x
        else:
            x0, x1 = centre_x, min(centre_x + width, canvas_w)
        if top:
            y0, y1 = max(centre_y - height, 0), centre_y
        else:
            y0, y1 = centre_y, min(centre_y + height, canvas_h)
        # Source offsets: tiles on the left/top lose their outer (left/top) part to the edge.
        src_x = width - (x1 - x0) if left else 0
        src_y = height - (y1 - y0) if top else 0
        canvas[y0:y1, x0:x1] = image[src_y : src_y + (y1 - y0), src_x : src_x + (x1 - x0)]
        shift = np.array([x0 - src_x, y0 - src_y] * 2, dtype=np.float32)
        placed_boxes.append(xyxy.astype(np.float32) + shift)
        placed_ids.append(ids)
    moved = np.concatenate(placed_boxes).reshape(-1, 4)
    clipped, keep = _keep_visible(moved, (canvas_w, canvas_h), 0.0, 0.0)
    return canvas, clipped[keep], np.concatenate(placed_ids).astype(np.int64)[keep]
