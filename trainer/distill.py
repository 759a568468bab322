"""Knowledge distillation from a frozen teacher of the same family into a smaller student.

Three terms, each logged on its own and each zero when the student's outputs equal the teacher's:
- logit KD on class scores: the per-class binary KL between `sigmoid(t/T)` and `sigmoid(s/T)`
  (sigmoid heads have no softmax over classes), scaled by `T²`, weighted per anchor by the
  teacher's confidence so that the few object anchors are not drowned by background;
- feature imitation on the neck levels P3–P5 through 1×1 conv + BN adapters (student channels →
  teacher channels): MSE inside ground-truth boxes (`masked`) or channel-wise distillation (`cwd`:
  per-channel spatial softmax with temperature τ, KL, `τ²`);
- box distillation: the student's boxes regress onto the teacher's decoded boxes (IoU-family
  loss) wherever the teacher is confident.

"Confident" is relative to the teacher: with a labelled val set its logits are shifted so that
its operating point there (`trainer.operating_point`) reads as `box_score_threshold`, which sets
the box gate, the anchor weights of logit KD and its soft targets alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from edge.errors import JetkitError
from trainer.iou import IOU_KINDS, elementwise_iou
from trainer.model import STRIDES, HeadOutput

if TYPE_CHECKING:
    from trainer.operating_point import OperatingPoint

FEATURE_MODES = ("masked", "cwd", "none")


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 2.0
    logit_weight: float = 1.0
    feature_weight: float = 1.0
    feature_mode: str = "cwd"
    cwd_tau: float = 1.0
    box_weight: float = 1.0
    box_kind: str = "ciou"
    box_score_threshold: float = 0.25
    off_epochs: int = 2  # plain training for the last epochs, like closing mosaic
    # Shift the teacher's logits so that its operating point on val (trainer.operating_point)
    # sits at box_score_threshold: the gates then mean the same for every teacher.
    calibrate: bool = True

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise JetkitError(f"--kd-temperature must be > 0, got {self.temperature}")
        if self.cwd_tau <= 0:
            raise JetkitError(f"--cwd-tau must be > 0, got {self.cwd_tau}")
        for name in ("logit_weight", "feature_weight", "box_weight"):
            if getattr(self, name) < 0:
                raise JetkitError(f"--{name.replace('_', '-')} must be >= 0")
        if self.feature_mode not in FEATURE_MODES:
            raise JetkitError(
                f"--feature-mode {self.feature_mode!r} is not one of {', '.join(FEATURE_MODES)}"
            )
        if self.box_kind not in IOU_KINDS[1:]:
            raise JetkitError(f"--box-loss {self.box_kind!r} is not one of giou, diou, ciou")
        if not 0 <= self.box_score_threshold < 1:
            raise JetkitError("--box-score-threshold must be in [0, 1)")
        if self.off_epochs < 0:
            raise JetkitError(f"--distill-off-epochs must be >= 0, got {self.off_epochs}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def active_terms(
    config: DistillConfig, teacher_has_features: bool, point: OperatingPoint | None = None
) -> list[str]:
    """One phrase per term (and the teacher's calibration to its operating `point`): on with its
    setting, or off and why."""

    def weighted(name: str, weight: float, setting: str) -> str:
        return f"{name} on ({setting})" if weight > 0 else f"{name} off (weight 0)"

    terms = [
        weighted("logit KD", config.logit_weight, f"T={config.temperature:g}"),
        weighted(
            "box distillation",
            config.box_weight,
            f"{config.box_kind} where the teacher scores > {config.box_score_threshold:g}",
        ),
    ]
    if not teacher_has_features:
        terms.append(
            "feature imitation off (only a jetkit checkpoint teacher has neck features to "
            "imitate; this one gives its outputs)"
        )
    elif config.feature_mode == "none":
        terms.append("feature imitation off (--feature-mode none)")
    else:
        terms.append(weighted("feature imitation", config.feature_weight, config.feature_mode))
    if not config.calibrate:
        terms.append("teacher calibration off (--no-teacher-calibration)")
    elif point is None:
        terms.append("teacher calibration off (no labelled val set to find its operating point)")
    else:
        terms.append(
            f"teacher calibration on (logits {point.logit_shift(config.box_score_threshold):+.2f}: "
            f"its best-F1 confidence {point.confidence:.3f} on val reads as "
            f"{config.box_score_threshold:g})"
        )
    return terms


def binary_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    anchor_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """`(B,N,C)` logits → scalar: `T² · Σ_c KL(Bern(σ(t/T)) ‖ Bern(σ(s/T)))`, averaged over
    anchors with `anchor_weights (B,N)` (uniform when None)."""
    t = temperature
    p_teacher = torch.sigmoid(teacher_logits / t)
    log_p_student = F.logsigmoid(student_logits / t)
    log_q_student = F.logsigmoid(-student_logits / t)
    log_p_teacher = F.logsigmoid(teacher_logits / t)
    log_q_teacher = F.logsigmoid(-teacher_logits / t)
    kl = p_teacher * (log_p_teacher - log_p_student) + (1 - p_teacher) * (
        log_q_teacher - log_q_student
    )
    per_anchor = kl.sum(-1)
    if anchor_weights is None:
        return per_anchor.mean() * t * t
    return (per_anchor * anchor_weights).sum() / anchor_weights.sum().clamp(min=1e-6) * t * t


def cwd_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
    """Channel-wise distillation: `(B,C,H,W)` maps → scalar KL of per-channel spatial softmaxes,
    `τ²`-scaled, averaged over channels and images."""
    batch, channels = teacher.shape[:2]
    log_p_teacher = F.log_softmax(teacher.flatten(2) / tau, dim=-1)
    log_p_student = F.log_softmax(student.flatten(2) / tau, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
    return kl.sum() * tau * tau / (batch * channels)


def masked_feature_loss(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """MSE between `(B,C,H,W)` maps over the cells where `mask (B,1,H,W)` is 1, per channel."""
    cells = mask.sum().clamp(min=1.0) * teacher.shape[1]
    return ((student - teacher).pow(2) * mask).sum() / cells


def object_masks(
    targets: torch.Tensor, batch: int, sizes_hw: list[tuple[int, int]]
) -> list[torch.Tensor]:
    """`(T,6)` targets in input pixels → one `(B,1,H,W)` 0/1 mask per level: cells whose centre
    lies in a ground-truth box (at least the box's centre cell, so tiny objects count)."""
    masks = []
    for (height, width), stride in zip(sizes_hw, STRIDES, strict=True):
        mask = torch.zeros(batch, 1, height, width, device=targets.device)
        for row in targets:
            image = int(row[0])
            x0, y0, x1, y1 = (row[2:6] / stride).tolist()
            col0 = min(max(int(x0 + 0.5), 0), width - 1)
            row0 = min(max(int(y0 + 0.5), 0), height - 1)
            col1 = min(max(int(x1 - 0.5) + 1, col0 + 1), width)
            row1 = min(max(int(y1 - 0.5) + 1, row0 + 1), height)
            mask[image, 0, row0:row1, col0:col1] = 1.0
        masks.append(mask)
    return masks


def box_distill_loss(
    student_xyxy: torch.Tensor,
    teacher_xyxy: torch.Tensor,
    teacher_scores: torch.Tensor,
    threshold: float,
    kind: str = "ciou",
) -> torch.Tensor:
    """`(B,N,4)` boxes and the teacher's `(B,N,C)` sigmoid scores → the teacher-confidence-weighted
    `1 - IoU` over anchors where the teacher's best score exceeds `threshold`."""
    confidence = teacher_scores.amax(-1)
    keep = confidence > threshold
    if not bool(keep.any()):
        return student_xyxy.sum() * 0.0
    weight = confidence[keep]
    iou = elementwise_iou(student_xyxy[keep], teacher_xyxy[keep], kind)
    return ((1.0 - iou) * weight).sum() / weight.sum()


class FeatureAdapters(nn.Module):
    """1×1 conv + BN per neck level, student channels → teacher channels."""

    def __init__(
        self, student_channels: tuple[int, ...], teacher_channels: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_s, c_t, 1, bias=False), nn.BatchNorm2d(c_t))
            for c_s, c_t in zip(student_channels, teacher_channels, strict=True)
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [adapter(f) for adapter, f in zip(self.levels, features, strict=True)]


class TeacherOutputs(Protocol):
    """Per-anchor outputs on the student's grid: a `HeadOutput`, or a foreign teacher's
    `trainer.teachers.TeacherTargets` (`features` None: no feature imitation)."""

    @property
    def cls_logits(self) -> torch.Tensor: ...

    @property
    def xyxy(self) -> torch.Tensor: ...

    @property
    def features(self) -> list[torch.Tensor] | None: ...


class DistillLoss:
    """The three terms for one batch, weighted; `parts` keeps each (detached) for the log.
    Without `adapters` (a teacher without features) the feature term is zero. The teacher's
    logits are read plus `teacher_logit_shift` (its calibration, `OperatingPoint.logit_shift`)."""

    def __init__(
        self,
        config: DistillConfig,
        adapters: FeatureAdapters | None,
        teacher_logit_shift: float = 0.0,
    ) -> None:
        self.config = config
        self.adapters = adapters
        self.teacher_logit_shift = teacher_logit_shift

    def __call__(
        self, student: HeadOutput, teacher: TeacherOutputs, targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        teacher_logits = teacher.cls_logits.float() + self.teacher_logit_shift
        teacher_scores = teacher_logits.sigmoid()
        logit = binary_kd_loss(
            student.cls_logits.float(),
            teacher_logits,
            config.temperature,
            anchor_weights=teacher_scores.amax(-1).clamp(min=0.02),
        )
        if (
            config.feature_mode == "none"
            or config.feature_weight == 0
            or self.adapters is None
            or teacher.features is None
        ):
            feature = logit * 0.0
        else:
            adapted = self.adapters(student.features)
            if config.feature_mode == "cwd":
                terms = [
                    cwd_loss(s.float(), t.float(), config.cwd_tau)
                    for s, t in zip(adapted, teacher.features, strict=True)
                ]
            else:
                sizes_hw = [(f.shape[2], f.shape[3]) for f in teacher.features]
                masks = object_masks(targets, teacher.features[0].shape[0], sizes_hw)
                terms = [
                    masked_feature_loss(s.float(), t.float(), m)
                    for s, t, m in zip(adapted, teacher.features, masks, strict=True)
                ]
            feature = torch.stack(terms).mean()
        box = box_distill_loss(
            student.xyxy.float(),
            teacher.xyxy.float(),
            teacher_scores,
            config.box_score_threshold,
            config.box_kind,
        )
        total = (
            config.logit_weight * logit + config.feature_weight * feature + config.box_weight * box
        )
        return total, {
            "kd_logit": logit.detach(),
            "kd_feature": feature.detach(),
            "kd_box": box.detach(),
        }
