"""Box conversions and the IoU family (IoU, GIoU, DIoU, CIoU), vectorized numpy.

Boxes are `xyxy` (x0, y0, x1, y1) or `cxcywh` (centre x, centre y, width, height) in pixels, with
the coordinates in the last axis. `box_iou` broadcasts like numpy: `(N,4)` with `(N,4)` gives
`(N,)`; `pairwise_iou` gives the `(N,M)` matrix.
"""

from __future__ import annotations

import numpy as np

IOU_KINDS = ("iou", "giou", "diou", "ciou")
_EPS = 1e-7


def cxcywh_to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    """`(..., 4)` centre/size → `(..., 4)` corners."""
    cx, cy, w, h = np.moveaxis(cxcywh, -1, 0)
    half_w, half_h = w / 2, h / 2
    return np.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), axis=-1)


def xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    """`(..., 4)` corners → `(..., 4)` centre/size."""
    x0, y0, x1, y1 = np.moveaxis(xyxy, -1, 0)
    return np.stack(((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0), axis=-1)


def box_area(xyxy: np.ndarray) -> np.ndarray:
    """`(..., 4)` → `(...)`; degenerate boxes have area 0."""
    x0, y0, x1, y1 = np.moveaxis(xyxy, -1, 0)
    return np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)


def iou_of_coords(
    a: tuple[np.ndarray, ...],
    b: tuple[np.ndarray, ...],
    kind: str = "iou",
) -> np.ndarray:
    """The IoU family from corner coordinates given as broadcastable arrays per side:
    `(x0, y0, x1, y1)`, optionally followed by the box area when the caller already has it
    (it must equal `max(x1-x0, 0) * max(y1-y0, 0)`, as `box_area` computes it).

    Taking coordinates apart (structure of arrays) lets NMS reuse this without re-slicing boxes.
    """
    ax0, ay0, ax1, ay1 = a[:4]
    bx0, by0, bx1, by1 = b[:4]
    # np.maximum(…, 0) rather than np.clip: same result, a fraction of the call overhead, which
    # dominates on the small arrays NMS passes in.
    inter_w = np.maximum(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0)
    inter_h = np.maximum(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0)
    inter = inter_w * inter_h
    if len(a) == 5 and len(b) == 5 and kind != "ciou":
        area_a, area_b = a[4], b[4]
    else:
        aw, ah = np.maximum(ax1 - ax0, 0), np.maximum(ay1 - ay0, 0)
        bw, bh = np.maximum(bx1 - bx0, 0), np.maximum(by1 - by0, 0)
        area_a, area_b = aw * ah, bw * bh
    union = area_a + area_b - inter
    iou = inter / (union + _EPS)
    if kind == "iou":
        return iou
    enclose_w = np.maximum(ax1, bx1) - np.minimum(ax0, bx0)
    enclose_h = np.maximum(ay1, by1) - np.minimum(ay0, by0)
    if kind == "giou":
        enclose_area = enclose_w * enclose_h
        return iou - (enclose_area - union) / (enclose_area + _EPS)
    if kind not in ("diou", "ciou"):
        raise ValueError(f"unknown IoU kind {kind!r}; choose one of {', '.join(IOU_KINDS)}")
    diag_sq = enclose_w**2 + enclose_h**2 + _EPS
    centre_dist_sq = ((ax0 + ax1 - bx0 - bx1) ** 2 + (ay0 + ay1 - by0 - by1) ** 2) / 4
    diou = iou - centre_dist_sq / diag_sq
    if kind == "diou":
        return diou
    v = (4 / np.pi**2) * (np.arctan(bw / (bh + _EPS)) - np.arctan(aw / (ah + _EPS))) ** 2
    alpha = v / (1 - iou + v + _EPS)
    return diou - alpha * v


def _coords(xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return xyxy[..., 0], xyxy[..., 1], xyxy[..., 2], xyxy[..., 3]


def box_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray, kind: str = "iou") -> np.ndarray:
    """Element-wise IoU-family of `(..., 4)` boxes (broadcasting) → `(...)`."""
    return iou_of_coords(_coords(a_xyxy), _coords(b_xyxy), kind)


def pairwise_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray, kind: str = "iou") -> np.ndarray:
    """`(N,4)` × `(M,4)` → `(N,M)` IoU-family matrix."""
    return box_iou(a_xyxy[:, None, :], b_xyxy[None, :, :], kind)


def centres_inside(xyxy: np.ndarray, region_xyxy: tuple[float, float, float, float]) -> np.ndarray:
    """`(N,4)` boxes → `(N,)` whether each box's centre lies in `region_xyxy` (right and bottom
    edges excluded)."""
    x0, y0, x1, y1 = region_xyxy
    cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
    return (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)


def clip_xyxy(xyxy: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Clip `(N,4)` boxes to an image of `size_wh`, in place; returns the same array."""
    width, height = size_wh
    np.clip(xyxy[:, 0::2], 0, width, out=xyxy[:, 0::2])
    np.clip(xyxy[:, 1::2], 0, height, out=xyxy[:, 1::2])
    return xyxy
