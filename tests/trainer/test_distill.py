"""Distillation terms: zero when the student equals the teacher, positive otherwise, with the
gradients going to the student only."""

import math

import pytest
import torch

from edge.errors import JetkitError
from trainer.distill import (
    DistillConfig,
    DistillLoss,
    FeatureAdapters,
    active_terms,
    binary_kd_loss,
    box_distill_loss,
    cwd_loss,
    masked_feature_loss,
    object_masks,
)
from trainer.model import DetectionModel, ModelConfig


def test_logit_kd_is_zero_for_equal_logits_and_grows_with_the_gap():
    teacher = torch.randn(2, 50, 4) * 3
    assert binary_kd_loss(teacher.clone(), teacher, 2.0).item() == pytest.approx(0, abs=1e-6)
    near = binary_kd_loss(teacher + 0.1, teacher, 2.0)
    far = binary_kd_loss(teacher + 1.0, teacher, 2.0)
    assert 0 < near < far


def test_logit_kd_scales_by_t_squared_for_small_gaps():
    """For small gaps, KL ≈ σ'(z/T)·(Δ/T)²/2 ⇒ T²·KL keeps the same magnitude across T (Hinton)."""
    teacher = torch.zeros(1, 10, 1)
    loss_t1 = binary_kd_loss(teacher + 0.01, teacher, 1.0)
    loss_t4 = binary_kd_loss(teacher + 0.01, teacher, 4.0)
    assert loss_t4.item() == pytest.approx(loss_t1.item(), rel=0.05)


def test_feature_terms_are_zero_for_equal_maps_and_positive_otherwise():
    teacher = torch.randn(2, 8, 5, 5)
    mask = torch.zeros(2, 1, 5, 5)
    mask[:, :, 1:3, 1:4] = 1
    assert cwd_loss(teacher.clone(), teacher, 1.0).item() == pytest.approx(0, abs=1e-6)
    assert masked_feature_loss(teacher.clone(), teacher, mask).item() == 0
    other = teacher + torch.randn_like(teacher)
    assert cwd_loss(other, teacher, 1.0) > 0 and masked_feature_loss(other, teacher, mask) > 0
    outside = teacher.clone()
    outside[:, :, 4, 4] += 10  # a difference outside every box is ignored by the masked form
    assert masked_feature_loss(outside, teacher, mask).item() == 0


def test_object_masks_cover_boxes_and_at_least_the_centre_cell_of_tiny_ones():
    targets = torch.tensor([[0, 0, 0, 0, 32, 16], [1, 1, 40, 40, 42, 42]], dtype=torch.float32)
    p3, p4, p5 = object_masks(targets, batch=2, sizes_hw=[(8, 8), (4, 4), (2, 2)])
    assert p3[0, 0, :2, :4].all() and p3[0].sum() == 8
    assert p3[1].sum() == 1 and p3[1, 0, 5, 5] == 1
    assert p5[1].sum() == 1


def test_box_distillation_follows_confident_teacher_boxes_only():
    teacher_xyxy = torch.tensor([[[0.0, 0, 10, 10], [20, 20, 30, 30]]])
    scores = torch.tensor([[[0.9], [0.1]]])
    assert box_distill_loss(
        teacher_xyxy.clone(), teacher_xyxy, scores, 0.25
    ).item() == pytest.approx(0, abs=1e-6)
    student = teacher_xyxy.clone()
    student[0, 1] += 50  # far off, but the teacher is not confident there
    assert box_distill_loss(student, teacher_xyxy, scores, 0.25).item() == pytest.approx(
        0, abs=1e-6
    )
    student[0, 0] += 3
    assert box_distill_loss(student, teacher_xyxy, scores, 0.25) > 0


def test_whole_loss_trains_student_and_adapters_not_the_teacher():
    torch.manual_seed(0)
    student = DetectionModel(ModelConfig(3, "t")).train()
    teacher = DetectionModel(ModelConfig(3, "n")).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    adapters = FeatureAdapters(student.config.neck_channels, teacher.config.neck_channels)
    targets = torch.tensor([[0, 1, 8, 8, 40, 40]], dtype=torch.float32)
    images = torch.rand(1, 3, 64, 64)
    for mode in ("cwd", "masked"):
        loss_fn = DistillLoss(DistillConfig(feature_mode=mode, box_score_threshold=0.0), adapters)
        with torch.no_grad():
            teacher_out = teacher(images, raw=True)
        total, parts = loss_fn(student(images), teacher_out, targets)
        assert set(parts) == {"kd_logit", "kd_feature", "kd_box"}
        assert all(v > 0 for v in parts.values())
        total.backward()
        assert student.head.cls[0][-1].weight.grad is not None
        assert adapters.levels[0][0].weight.grad is not None
        assert all(p.grad is None for p in teacher.parameters())


def test_a_teacher_without_features_turns_feature_imitation_off_and_says_why():
    torch.manual_seed(0)
    student = DetectionModel(ModelConfig(3, "t")).train()
    outputs = student(torch.rand(1, 3, 64, 64))
    from trainer.teachers import TeacherTargets

    teacher = TeacherTargets(outputs.cls_logits.detach() + 1.0, outputs.xyxy.detach(), None)
    targets = torch.zeros(0, 6)
    total, parts = DistillLoss(DistillConfig(box_score_threshold=0.0), None)(
        outputs, teacher, targets
    )
    assert parts["kd_feature"] == 0 and parts["kd_logit"] > 0
    total.backward()
    terms = active_terms(DistillConfig(), teacher_has_features=False)
    assert terms[0] == "logit KD on (T=2)"
    assert terms[2].startswith("feature imitation off (only a jetkit checkpoint teacher")
    assert active_terms(DistillConfig(feature_mode="none"), True)[2].endswith("none)")


def test_calibration_undoes_a_uniformly_underconfident_teacher():
    """A teacher whose logits all run 2 lower than another's teaches the same once shifted by
    its calibration; uncalibrated, its low scores close the box gate."""
    from trainer.operating_point import OperatingPoint
    from trainer.teachers import TeacherTargets

    torch.manual_seed(0)
    student = DetectionModel(ModelConfig(3, "t")).train()
    outputs = student(torch.rand(1, 3, 64, 64))
    logits = outputs.cls_logits.detach()
    logits[:, :20] = 2.0  # confident (0.88) at a few anchors
    confident = TeacherTargets(logits, outputs.xyxy.detach() + 2.0, None)
    timid = TeacherTargets(logits - 2.0, confident.xyxy, None)  # 0.5 there
    config = DistillConfig(box_score_threshold=0.6)
    targets = torch.zeros(0, 6)
    _, reference = DistillLoss(config, None)(outputs, confident, targets)
    _, uncalibrated = DistillLoss(config, None)(outputs, timid, targets)
    assert reference["kd_box"] > 0 and uncalibrated["kd_box"] == 0
    # Its operating point runs as much lower: 0.6 for the one is sigmoid(logit(0.6) - 2).
    point = OperatingPoint(1 / (1 + 0.4 / 0.6 * math.exp(2.0)), 0.8, 10)
    _, calibrated = DistillLoss(config, None, point.logit_shift(0.6))(outputs, timid, targets)
    for name, value in reference.items():
        assert calibrated[name].item() == pytest.approx(value.item(), rel=1e-4, abs=1e-6), name


def test_the_run_says_whether_the_teacher_is_calibrated_and_how():
    from trainer.operating_point import OperatingPoint

    point = OperatingPoint(0.068, 0.31, 120)
    assert active_terms(DistillConfig(), False, point)[-1] == (
        "teacher calibration on (logits +1.52: its best-F1 confidence 0.068 on val reads as 0.25)"
    )
    assert active_terms(DistillConfig(), False)[-1].startswith(
        "teacher calibration off (no labelled val set"
    )
    assert active_terms(DistillConfig(calibrate=False), False, point)[-1] == (
        "teacher calibration off (--no-teacher-calibration)"
    )


def test_config_errors_name_the_option():
    with pytest.raises(JetkitError, match="--kd-temperature"):
        DistillConfig(temperature=0)
    with pytest.raises(JetkitError, match="--feature-mode"):
        DistillConfig(feature_mode="fgd")
