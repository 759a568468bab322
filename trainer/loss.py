"""The detection loss: task-aligned assignment, then an IoU-family box loss, a distribution focal
loss on each box side's bins (when the head has them) and a BCE class loss against soft
(alignment-weighted) targets, all normalised by the sum of the class targets."""

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
    # CIoU in the assigner's metric and positives for boxes with fewer than k anchor centres
    # inside (YOLOv8 has neither) lowered the median of three seeds on the default schedule
    # (BENCHMARKS.md, "recipe changes", round 3): options, off.
    assign_iou: str = "iou"
    min_candidates: int = 0
    box_gain: float = 7.5
    cls_gain: float = 0.5
    dfl_gain: float = 1.5
    topk: int = 10
    alpha: float = 0.5
    beta: float = 6.0

    def __post_init__(self) -> None:
        if self.box_kind not in IOU_KINDS[1:]:
            raise JetkitError(
                f"--box-loss {self.box_kind!r} is not one of {', '.join(IOU_KINDS[1:])}"
            )
        if self.assign_iou not in IOU_KINDS:
            raise JetkitError(
                f"loss.assign_iou {self.assign_iou!r} is not one of {', '.join(IOU_KINDS)}"
            )
        for name in ("box_gain", "cls_gain", "dfl_gain", "alpha", "beta"):
            if getattr(self, name) < 0:
                raise JetkitError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
        if self.min_candidates < 0:
            raise JetkitError(f"loss.min_candidates must be >= 0, got {self.min_candidates}")
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


def distribution_focal_loss(ltrb_logits: torch.Tensor, target_ltrb: torch.Tensor) -> torch.Tensor:
    """`ltrb_logits (P, 4, R)` bin logits, `target_ltrb (P, 4)` distances in strides → `(P,)`:
    cross-entropy with the two bins around each target, weighted by closeness (Li et al.,
    Generalized Focal Loss), so the distribution's mean lands on the target. Targets are
    clamped just below the last bin, which is as far as a side can reach."""
    bins = ltrb_logits.shape[-1]
    target = target_ltrb.clamp(0, bins - 1 - 0.01)
    left = target.long()
    right_weight = target - left
    flat = ltrb_logits.reshape(-1, bins)
    left_ce = F.cross_entropy(flat, left.reshape(-1), reduction="none").view(left.shape)
    right_ce = F.cross_entropy(flat, (left + 1).reshape(-1), reduction="none").view(left.shape)
    return (left_ce * (1 - right_weight) + right_ce * right_weight).mean(-1)


def target_ltrb(
    anchors_xy: torch.Tensor, strides: torch.Tensor, xyxy: torch.Tensor
) -> torch.Tensor:
    """`(P,2)` anchor centres, `(P,)` strides, `(P,4)` boxes → `(P,4)` side distances in strides."""
    sides = torch.cat((anchors_xy - xyxy[:, :2], xyxy[:, 2:] - anchors_xy), dim=-1)
    return sides / strides[:, None]


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
            iou_kind=config.assign_iou,
            strides=out.strides,
            min_candidates=config.min_candidates,
        )
        self.last_assignment = assignment
        score_sum = assignment.target_scores.sum().clamp(min=1.0)
        cls_loss = (
            F.binary_cross_entropy_with_logits(logits, assignment.target_scores, reduction="sum")
            / score_sum
        )
        fg = assignment.fg_mask
        any_fg = bool(fg.any())
        weight = assignment.target_scores.sum(-1)[fg]  # (P,) each positive's share
        if any_fg:
            iou = elementwise_iou(pred_xyxy[fg], assignment.target_xyxy[fg], config.box_kind)
            box_loss = ((1.0 - iou) * weight).sum() / score_sum
        else:
            box_loss = pred_xyxy.sum() * 0.0
        total = config.box_gain * box_loss + config.cls_gain * cls_loss
        parts = {"box": box_loss.detach(), "cls": cls_loss.detach()}
        if out.ltrb_logits is not None:
            if any_fg:
                dfl_loss = self._dfl(out, assignment, weight, score_sum)
            else:
                dfl_loss = out.ltrb_logits.sum() * 0.0
            total = total + config.dfl_gain * dfl_loss
            parts["dfl"] = dfl_loss.detach()
        return total, parts

    @staticmethod
    def _dfl(
        out: HeadOutput, assignment: Assignment, weight: torch.Tensor, score_sum: torch.Tensor
    ) -> torch.Tensor:
        """The distribution focal loss over the `P` positives, weighted as the box loss is."""
        assert out.ltrb_logits is not None
        fg = assignment.fg_mask
        anchor_index = fg.nonzero()[:, 1]
        target = target_ltrb(
            out.anchors_xy[anchor_index], out.strides[anchor_index], assignment.target_xyxy[fg]
        )
        loss = distribution_focal_loss(out.ltrb_logits[fg].float(), target)
        return (loss * weight).sum() / score_sum
