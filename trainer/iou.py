"""The IoU family in torch, elementwise and differentiable (the numpy versions in `edge.boxes` serve
NMS and evaluation; training needs gradients through the same formulas)."""

from __future__ import annotations

import math

import torch

IOU_KINDS = ("iou", "giou", "diou", "ciou")


def elementwise_iou(
    box1_xyxy: torch.Tensor, box2_xyxy: torch.Tensor, kind: str = "iou", eps: float = 1e-7
) -> torch.Tensor:
    """`(..., 4)` and `(..., 4)` (broadcast) → `(...)`: IoU, GIoU, DIoU or CIoU of each pair."""
    if kind not in IOU_KINDS:
        raise ValueError(f"unknown IoU kind {kind!r}; choose one of {', '.join(IOU_KINDS)}")
    x1, y1, x2, y2 = box1_xyxy.unbind(-1)
    u1, v1, u2, v2 = box2_xyxy.unbind(-1)
    w1, h1 = (x2 - x1).clamp(min=0), (y2 - y1).clamp(min=0)
    w2, h2 = (u2 - u1).clamp(min=0), (v2 - v1).clamp(min=0)
    inter = (torch.minimum(x2, u2) - torch.maximum(x1, u1)).clamp(min=0) * (
        torch.minimum(y2, v2) - torch.maximum(y1, v1)
    ).clamp(min=0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if kind == "iou":
        return iou
    enclose_w = torch.maximum(x2, u2) - torch.minimum(x1, u1)
    enclose_h = torch.maximum(y2, v2) - torch.minimum(y1, v1)
    if kind == "giou":
        enclose_area = enclose_w * enclose_h + eps
        return iou - (enclose_area - union) / enclose_area
    diagonal_sq = enclose_w**2 + enclose_h**2 + eps
    centre_sq = ((u1 + u2 - x1 - x2) ** 2 + (v1 + v2 - y1 - y2) ** 2) / 4
    if kind == "diou":
        return iou - centre_sq / diagonal_sq
    aspect = (4 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))).pow(2)
    with torch.no_grad():
        alpha = aspect / (aspect - iou + (1 + eps))
    return iou - (centre_sq / diagonal_sq + aspect * alpha)
