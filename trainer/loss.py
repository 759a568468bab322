"""The detection loss: task-aligned assignment, then an IoU-family box loss and a BCE class loss
against soft (alignment-weighted) targets, both normalised by the sum of the class targets."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F  # noqa: N812

from edge.errors import JetkitError
from trainer.assign import Assignment, task_aligned_assign
from trainer.iou import IOU_KINDS, elementwise_iou
from trainer.model import HeadOutput


@dataclass(frozen=True)
class LossConfig:
    box_kind: str = "ciou"
    box_gain: float = 7.5
    cls_gain: float = 0.5
    topk: int = 10
    alpha: float = 0.5
    beta: float = 6.0

    def __post_init__(self) -> None:
        if self.box_kind not in IOU_KINDS[1:]:
            raise JetkitError(
                f"--box-loss {self.box_kind!r} is not one of {', '.join(IOU_KINDS[1:])}"
            )
        for name in ("box_gain", "cls_gain", "alpha", "beta"):
            if getattr(self, name) < 0:
                raise JetkitError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
        if self.topk < 1:
            raise JetkitError(f"loss.topk must be >= 1, got {self.topk}")


def pad_targets(
    targets: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(T,6)` rows `[image, class, x1, y1, x2, y2]` → `gt_class (B,M)`, `gt_xyxy (B,M,4)`,
    `gt_mask (B,M)`, with M the most boxes in one image (padding: class -1, mask False)."""
    device = targets.device
    image_ids = targets[:, 0].long()
    counts = torch.bincount(image_ids, minlength=batch) if targets.numel() else None
    most = int(counts.max()) if counts is not None else 0
    gt_class = torch.full((batch, most), -1, dtype=torch.long, device=device)
    gt_xyxy = torch.zeros((batch, most, 4), dtype=targets.dtype, device=device)
    if most:
        order = torch.argsort(image_ids, stable=True)
        sorted_ids = image_ids[order]
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(order.numel(), device=device) - starts[sorted_ids]
        gt_class[sorted_ids, slot] = targets[order, 1].long()
        gt_xyxy[sorted_ids, slot] = targets[order, 2:6]
    return gt_class, gt_xyxy, gt_class >= 0


class DetectionLoss:
    """`loss(out, targets) -> (total, parts)`; `parts` holds detached `box` and `cls` values, and
    the assignment is kept in `last_assignment` for distillation's object masks."""

    def __init__(self, num_classes: int, config: LossConfig | None = None) -> None:
        self.num_classes = num_classes
        self.config = config or LossConfig()
        self.last_assignment: Assignment | None = None

    def __call__(
        self, out: HeadOutput, targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        batch = out.cls_logits.shape[0]
        logits = out.cls_logits.float()
        pred_xyxy = out.xyxy.float()
        gt_class, gt_xyxy, gt_mask = pad_targets(targets.to(logits.device).float(), batch)
        assignment = task_aligned_assign(
            logits.detach().sigmoid(),
            pred_xyxy.detach(),
            out.anchors_xy,
            gt_class,
            gt_xyxy,
            gt_mask,
            topk=config.topk,
            alpha=config.alpha,
            beta=config.beta,
        )
        self.last_assignment = assignment
        score_sum = assignment.target_scores.sum().clamp(min=1.0)
        cls_loss = (
            F.binary_cross_entropy_with_logits(logits, assignment.target_scores, reduction="sum")
            / score_sum
        )
        fg = assignment.fg_mask
        if bool(fg.any()):
            weight = assignment.target_scores.sum(-1)[fg]
            iou = elementwise_iou(pred_xyxy[fg], assignment.target_xyxy[fg], config.box_kind)
            box_loss = ((1.0 - iou) * weight).sum() / score_sum
        else:
            box_loss = pred_xyxy.sum() * 0.0
        total = config.box_gain * box_loss + config.cls_gain * cls_loss
        return total, {"box": box_loss.detach(), "cls": cls_loss.detach()}
