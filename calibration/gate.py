"""The accuracy gate: an artifact against its FP32 source on validation images, through the edge
runtime and the evaluator of `jetkit eval`, plus raw-output drift on the same input tensors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.datasets import Sample
from edge.evaluate import EVAL_THRESHOLDS, EvalResult, evaluate_detector
from edge.manifest import Manifest
from edge.models import Overrides


@dataclass(frozen=True)
class Drift:
    """How far one output moved: max and mean absolute difference, cosine similarity."""

    max_abs: float
    mean_abs: float
    cosine: float


def output_drift(reference: np.ndarray, candidate: np.ndarray) -> Drift:
    a = reference.astype(np.float64).ravel()
    b = candidate.astype(np.float64).ravel()
    diff = np.abs(a - b)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    cosine = float(a @ b / norms) if norms > 0 else float(np.array_equal(a, b))
    return Drift(float(diff.max(initial=0.0)), float(diff.mean()) if diff.size else 0.0, cosine)


@dataclass(frozen=True)
class GateReport:
    fp32: EvalResult
    artifact: EvalResult
    drift: dict[str, Drift]
    max_map_drop: float  # in mAP points (0-100 scale)

    @property
    def map_drop(self) -> float:
        """mAP50-95 lost, in points."""
        return 100.0 * (self.fp32.map50_95 - self.artifact.map50_95)

    @property
    def passed(self) -> bool:
        return self.map_drop <= self.max_map_drop

    def describe(self) -> str:
        lines = [
            f"mAP50-95 {self.fp32.map50_95:.4f} → {self.artifact.map50_95:.4f} "
            f"({-self.map_drop:+.2f} points; limit -{self.max_map_drop:.2f}), mAP50 "
            f"{self.fp32.map50:.4f} → {self.artifact.map50:.4f}"
        ]
        for name, drift in self.drift.items():
            lines.append(
                f"output {name}: max abs {drift.max_abs:.4g}, mean abs {drift.mean_abs:.4g}, "
                f"cosine {drift.cosine:.6f}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fp32": {"map50_95": self.fp32.map50_95, "map50": self.fp32.map50},
            "artifact": {"map50_95": self.artifact.map50_95, "map50": self.artifact.map50},
            "map_drop_points": self.map_drop,
            "max_map_drop_points": self.max_map_drop,
            "passed": self.passed,
            "drift": {name: vars(d) for name, d in self.drift.items()},
        }


def run_gate(
    fp32_path: Path,
    artifact_path: Path,
    samples: Sequence[Sample],
    max_map_drop: float,
    fp32_overrides: Overrides = Overrides(),
    drift_images: int = 8,
) -> GateReport:
    """Evaluate both models on `samples`; drift on the first `drift_images` inputs. The FP32
    model is read with the manifest overrides the artifact was made with."""
    from edge.detector import Detector
    from edge.images import read_image

    options = EVAL_THRESHOLDS.detector_options()
    reference = Detector.open(fp32_path, overrides=fp32_overrides, **options)
    candidate = Detector.open(artifact_path, **options)
    drift: dict[str, list[Drift]] = {}
    for sample in list(samples)[:drift_images]:
        tensor, _ = reference.preprocessor([read_image(sample.image_path)])
        ours = reference.backend.infer([np.array(tensor)])
        theirs = candidate.backend.infer([np.array(tensor)])
        for spec, a, b in zip(reference.backend.outputs, ours, theirs, strict=True):
            drift.setdefault(spec.name, []).append(output_drift(a, b))
    worst = {
        name: Drift(
            max(d.max_abs for d in values),
            float(np.mean([d.mean_abs for d in values])),
            min(d.cosine for d in values),
        )
        for name, values in drift.items()
    }
    return GateReport(
        evaluate_detector(reference, samples),
        evaluate_detector(candidate, samples),
        worst,
        max_map_drop,
    )


def map_scorer(manifest: Manifest, samples: Sequence[Sample]) -> Callable[[Path], float]:
    """A function from a candidate model file (a scratch Q/DQ ONNX without a manifest of its own)
    to its mAP50-95 on `samples`, read with `manifest`: how calibration compares its methods by
    the number the gate will judge."""
    from edge.backends import open_backend
    from edge.detector import Detector

    options = EVAL_THRESHOLDS.detector_options()

    def score(path: Path) -> float:
        detector = Detector(open_backend(str(path)), manifest, **options)
        return evaluate_detector(detector, samples).map50_95

    return score
