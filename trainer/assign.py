"""Task-aligned label assignment (TOOD, as in YOLOv8): which anchors learn which ground-truth box.

For every ground-truth box, the anchors whose centres lie inside it are ranked by the alignment
metric `score^alpha * IoU^beta` (the predicted score of the box's class and the IoU of the
predicted box with it); the `topk` best become positives. An anchor claimed by several boxes keeps
the one it overlaps most. Class targets are soft: the alignment normalised per box so that its best
anchor's target equals that anchor's IoU. The overlap may be plain IoU or one of its penalised
forms (YOLOv8 uses CIoU, clamped at 0), which also ranks well-centred, well-shaped predictions
above others of equal IoU.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from trainer.iou import elementwise_iou


class Assignment(NamedTuple):
    target_xyxy: torch.Tensor  # (B, N, 4) input pixels (zeros where not foreground)
    target_scores: torch.Tensor  # (B, N, C) soft class targets
    fg_mask: torch.Tensor  # (B, N) bool
    gt_index: torch.Tensor  # (B, N) index of the assigned box in its image (0 where background)


def centres_inside(
    anchors_xy: torch.Tensor, gt_xyxy: torch.Tensor, eps: float = 1e-9
) -> torch.Tensor:
    """`(N,2)` anchor centres, `(B,M,4)` boxes → `(B,M,N)` bool: the centre is strictly inside."""
    lt = anchors_xy[None, None] - gt_xyxy[..., None, :2]
    rb = gt_xyxy[..., None, 2:] - anchors_xy[None, None]
    return torch.cat((lt, rb), dim=-1).amin(dim=-1) > eps


def with_nearest_fine_anchors(
    candidates: torch.Tensor,
    anchors_xy: torch.Tensor,
    strides: torch.Tensor,
    gt_xyxy: torch.Tensor,
    count: int,
) -> torch.Tensor:
    """`candidates (B,M,N)` bool, `anchors_xy (N,2)`, `strides (N,)`, `gt_xyxy (B,M,4)` → the
    candidates, plus, for each box with fewer than `count` anchor centres inside, its `count`
    nearest anchors of the finest stride (by distance to the box centre). A box smaller than
    a stride-8 cell may hold no centre at all and would otherwise never be learned."""
    if count < 1:
        return candidates
    centres_xy = (gt_xyxy[..., :2] + gt_xyxy[..., 2:]) / 2  # (B,M,2)
    distance_sq = (centres_xy[..., None, :] - anchors_xy[None, None]).pow(2).sum(-1)  # (B,M,N)
    distance_sq = distance_sq.masked_fill(strides[None, None] > strides.min(), float("inf"))
    nearest = distance_sq.topk(min(count, distance_sq.shape[-1]), largest=False).indices
    extra = torch.zeros_like(candidates).scatter_(-1, nearest, True)
    short = candidates.sum(-1) < count  # (B,M)
    return candidates | (extra & short[..., None])


@torch.no_grad()
def task_aligned_assign(
    pred_scores: torch.Tensor,
    pred_xyxy: torch.Tensor,
    anchors_xy: torch.Tensor,
    gt_class: torch.Tensor,
    gt_xyxy: torch.Tensor,
    gt_mask: torch.Tensor,
    topk: int = 10,
    alpha: float = 0.5,
    beta: float = 6.0,
    iou_kind: str = "iou",
    strides: torch.Tensor | None = None,
    min_candidates: int = 0,
    eps: float = 1e-9,
) -> Assignment:
    """`pred_scores (B,N,C)` sigmoid, `pred_xyxy (B,N,4)`, `anchors_xy (N,2)`, `gt_class (B,M)`
    long, `gt_xyxy (B,M,4)`, `gt_mask (B,M)` bool (padding False) → `Assignment`. `iou_kind`
    is the overlap of the metric (`trainer.iou.IOU_KINDS`); with `strides (N,)` and
    `min_candidates` > 0, boxes with fewer centres inside also compete for their nearest
    finest-stride anchors (`with_nearest_fine_anchors`)."""
    batch, num_anchors, num_classes = pred_scores.shape
    device = pred_scores.device
    num_gt = gt_xyxy.shape[1]
    if num_gt == 0:
        return Assignment(
            torch.zeros_like(pred_xyxy),
            torch.zeros_like(pred_scores),
            torch.zeros(batch, num_anchors, dtype=torch.bool, device=device),
            torch.zeros(batch, num_anchors, dtype=torch.long, device=device),
        )
    candidates = centres_inside(anchors_xy, gt_xyxy)  # (B,M,N)
    if strides is not None:
        candidates = with_nearest_fine_anchors(
            candidates, anchors_xy, strides, gt_xyxy, min_candidates
        )
    candidates = candidates & gt_mask[..., None]

    image_index = torch.arange(batch, device=device)[:, None].expand(batch, num_gt)
    class_scores = pred_scores.transpose(1, 2)[image_index, gt_class.clamp(min=0)]  # (B,M,N)
    overlaps = elementwise_iou(gt_xyxy[:, :, None, :], pred_xyxy[:, None, :, :], iou_kind).clamp(
        min=0
    )
    overlaps = overlaps * candidates
    alignment = class_scores.pow(alpha) * overlaps.pow(beta) * candidates

    k = min(topk, num_anchors)
    top_index = alignment.topk(k, dim=-1).indices  # (B,M,k)
    in_topk = torch.zeros_like(candidates).scatter_(-1, top_index, True)
    positive = in_topk & candidates & (alignment > 0)  # (B,M,N)

    # An anchor claimed by several boxes goes to the box it overlaps most.
    claimed = positive.sum(dim=1)  # (B,N)
    if bool((claimed > 1).any()):
        best_box = overlaps.argmax(dim=1)  # (B,N)
        only_best = torch.zeros_like(positive).scatter_(1, best_box[:, None, :], True)
        positive = torch.where((claimed > 1)[:, None, :], only_best & positive, positive)
    fg_mask = positive.any(dim=1)
    gt_index = positive.float().argmax(dim=1)  # (B,N)

    target_xyxy = gt_xyxy[image_index[:, :1].expand(batch, num_anchors), gt_index]
    target_class = gt_class[image_index[:, :1].expand(batch, num_anchors), gt_index].clamp(min=0)
    one_hot = torch.nn.functional.one_hot(target_class, num_classes).to(pred_scores.dtype)

    alignment = alignment * positive
    best_alignment = alignment.amax(dim=-1, keepdim=True)  # (B,M,1)
    best_overlap = (overlaps * positive).amax(dim=-1, keepdim=True)
    normalised = (alignment * best_overlap / (best_alignment + eps)).amax(dim=1)  # (B,N)
    target_scores = one_hot * (normalised * fg_mask)[..., None]
    target_xyxy = target_xyxy * fg_mask[..., None]
    return Assignment(target_xyxy, target_scores, fg_mask, gt_index * fg_mask)
