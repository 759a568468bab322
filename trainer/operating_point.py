"""The teacher's operating point: the confidence at which its detections agree best (F1) with
the labelled val set.

Teachers are calibrated differently: on the same data a YOLOv8n trained by Ultralytics agrees
best at confidence 0.07, a jetkit `n` at 0.29 (BENCHMARKS.md). A fixed gate ("the teacher is
confident above 0.25") then means a different thing for each. The operating point is what the
gates are set relative to: hard pseudo-labels are taken at it, and the soft terms see the
teacher's logits shifted so that it lands on `DistillConfig.box_score_threshold`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.datasets import DetectionSet, Sample
from edge.errors import JetkitError
from edge.evaluate import ImageDetections, best_f1_confidence
from trainer.config import TrainConfig
from trainer.pseudo import MIN_PSEUDO_THRESHOLD, WEAK_TEACHER_F1, box_count, to_student_classes
from trainer.teacher_cache import TeacherOutputCache, cached_predictions
from trainer.teachers import Teacher

Predict = Callable[[Sequence[Sample]], list[ImageDetections]]
Log = Callable[[str], None]


@dataclass(frozen=True)
class OperatingPoint:
    confidence: float
    f1: float
    images: int

    def logit_shift(self, reference: float) -> float:
        """What to add to the teacher's logits so that `confidence` becomes `reference`."""
        return _logit(reference) - _logit(self.confidence)

    def to_dict(self) -> dict[str, Any]:
        return {"confidence": round(self.confidence, 4), "f1": round(self.f1, 4),
                "val_images": self.images}  # fmt: skip


def _logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))


def student_class_predictions(teacher: Teacher, cache_root: Path, log: Log | None) -> Predict:
    """The teacher's detections on un-augmented images in the student's class ids, through the
    teacher-output cache (so every later run and student reads them back)."""
    cache = TeacherOutputCache(cache_root, teacher.info["sha256"])

    def predict(samples: Sequence[Sample]) -> list[ImageDetections]:
        found = cached_predictions(teacher.predict, samples, cache, log)
        return [to_student_classes(d, teacher.class_index) for d in found]

    return predict


def operating_point(val: Sequence[Sample], predict: Predict, num_classes: int) -> OperatingPoint:
    """The teacher's best-F1 confidence (at least `MIN_PSEUDO_THRESHOLD`) on the labelled
    `val` (F1 0: it finds none of val's boxes)."""
    confidence, f1 = best_f1_confidence(val, predict(val), num_classes, MIN_PSEUDO_THRESHOLD)
    return OperatingPoint(confidence, f1, len(val))


def run_operating_point(
    config: TrainConfig, labelled: DetectionSet | None, predict: Predict, log: Log
) -> OperatingPoint | None:
    """The operating point when the run wants one (to choose the pseudo-label threshold, or to
    calibrate distillation) and has labelled val boxes to find it on; otherwise None. A teacher
    that finds none of val's boxes cannot label footage (an error) and has no point to calibrate
    to (a warning); one with a weak best F1 gets a warning."""
    calibrating = config.distill is not None and config.distill.calibrate
    choosing = config.unlabeled is not None and config.pseudo_threshold is None
    if labelled is None or box_count(labelled.val) == 0 or not (calibrating or choosing):
        return None
    point = operating_point(labelled.val, predict, len(labelled.names))
    found_none = (
        f"the teacher {config.teacher} finds none of the boxes of the {point.images} labelled "
        f"val images of {config.data} at any confidence >= {MIN_PSEUDO_THRESHOLD}"
    )
    if point.f1 == 0 and choosing:
        raise JetkitError(
            f"{found_none}, so its labels for the footage would be noise; check that it was "
            "trained for these classes and pictures, or give --pseudo-threshold"
        )
    if point.f1 == 0:
        log(f"warning: {found_none}: its scores are used uncalibrated")
        return None
    if point.f1 < WEAK_TEACHER_F1:
        log(
            f"warning: the teacher agrees with the labelled val set at F1 {point.f1:.3f} at "
            "best: its targets are noisy and can cost the student accuracy (BENCHMARKS.md); "
            "compare with a run without it"
        )
    return point
