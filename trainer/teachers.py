"""Distillation teachers: a jetkit checkpoint run in torch, or any model the edge runtime opens (an
ONNX file of the yolov8, yolov5 or yolox format, a TensorRT engine) run through its backend.

Both give the same two things:
- `targets(images_u8, images)`: per-anchor class logits and boxes on the student's augmented
  batch, on the student's grid and in the student's class order (plus neck features, for a
  jetkit teacher only: a foreign graph has none the student's adapters could imitate);
- `predict(samples)`: detections on un-augmented images, in the teacher's own class ids, for
  pseudo-labels (cached on disk by `trainer.teacher_cache`).

Classes match by name: a teacher with COCO's 80 classes serves a student of three of them. The
trainer never parses a foreign graph itself: it asks `edge` for the outputs (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from edge.datasets import Sample
from edge.dense import DENSE_FORMATS, class_index_map, dense_predictions, resample_cells
from edge.errors import JetkitError
from edge.evaluate import EVAL_THRESHOLDS, ImageDetections
from edge.images import read_image
from edge.manifest import PreprocessSpec
from edge.models import file_sha256
from edge.preprocess import source_channels
from trainer.checkpoint import (
    load_checkpoint,
    model_config_of,
    model_from_checkpoint,
    preprocess_of,
)
from trainer.model import STRIDES

CHECKPOINT_SUFFIXES = (".pt", ".pth")
# Probabilities are clipped before the logit: an exported teacher's sigmoid saturates to exactly
# 0 or 1 in float32, where the logit is infinite.
PROBABILITY_EPS = 1e-6


class TeacherTargets(NamedTuple):
    """What distillation compares the student with, per anchor of the student's grid:
    `cls_logits (B,N,C)` in the student's class order, `xyxy (B,N,4)` in input pixels, and
    the neck features P3–P5 where the teacher has them (None otherwise)."""

    cls_logits: torch.Tensor
    xyxy: torch.Tensor
    features: list[torch.Tensor] | None


class Teacher(Protocol):
    """`names`: the teacher's classes; `class_index[c]`: the teacher class of student class `c`."""

    names: tuple[str, ...]
    class_index: np.ndarray
    neck_channels: tuple[int, ...] | None
    info: dict[str, Any]

    @property
    def description(self) -> str: ...

    def targets(self, images_u8: torch.Tensor, images: torch.Tensor) -> TeacherTargets: ...

    def predict(self, samples: Sequence[Sample]) -> list[ImageDetections]: ...


def open_teacher(
    path: str,
    student_names: Sequence[str] | None,
    student_hw: tuple[int, int],
    spec: PreprocessSpec,
    device: torch.device,
) -> Teacher:
    """The teacher in `path` ready to serve a student with `student_names` (None: all the
    teacher's classes) at `student_hw` fed as `spec` says."""
    file = Path(path)
    if not file.is_file():
        raise JetkitError(
            f"teacher {path} does not exist; give a jetkit checkpoint (best.pt), an ONNX model "
            "or a TensorRT engine"
        )
    if file.suffix.lower() in CHECKPOINT_SUFFIXES:
        return CheckpointTeacher(file, student_names, spec, device)
    return RuntimeTeacher(file, student_names, student_hw, spec, device)


def _base_info(path: Path, fmt: str, names: tuple[str, ...]) -> dict[str, Any]:
    return {"path": str(path), "sha256": file_sha256(path), "format": fmt, "classes": len(names)}


class CheckpointTeacher:
    """A jetkit checkpoint, frozen, in torch on the training device."""

    def __init__(
        self,
        path: Path,
        student_names: Sequence[str] | None,
        spec: PreprocessSpec,
        device: torch.device,
    ) -> None:
        checkpoint = load_checkpoint(path)
        self.config = model_config_of(checkpoint)
        self.names = tuple(checkpoint["names"])
        if list(checkpoint.get("strides", STRIDES)) != list(STRIDES):
            raise JetkitError(
                f"the teacher predicts on strides {checkpoint['strides']}, the student on "
                f"{list(STRIDES)}; distillation needs the same levels"
            )
        if preprocess_of(checkpoint) != spec:
            raise JetkitError(
                f"the teacher {path} was trained with other preprocessing "
                f"({checkpoint['preprocess']}); distillation needs the same input"
            )
        self.class_index = class_index_map(self.names, tuple(student_names or self.names))
        self._index = torch.as_tensor(self.class_index, device=device)
        self.model = model_from_checkpoint(checkpoint).to(device)  # in eval mode
        for param in self.model.parameters():
            param.requires_grad_(False)
        height, width = checkpoint.get("imgsz", (320, 320))
        self.input_hw = (int(height), int(width))
        self.spec = spec
        self.device = device
        self.neck_channels: tuple[int, ...] | None = self.config.neck_channels
        self.metrics = checkpoint.get("metrics", {})
        self.info = {
            **_base_info(path, "jetkit checkpoint", self.names),
            "model": self.config.size,
            "metrics": self.metrics,
        }

    @property
    def description(self) -> str:
        return (
            f"jetkit checkpoint ({self.config.size}, mAP50-95 "
            f"{self.metrics.get('map50_95', float('nan')):.4f}), in torch"
        )

    def targets(self, images_u8: torch.Tensor, images: torch.Tensor) -> TeacherTargets:
        out = self.model(images, raw=True)
        return TeacherTargets(out.cls_logits[..., self._index], out.xyxy, out.features)

    def predict(self, samples: Sequence[Sample]) -> list[ImageDetections]:
        from trainer.validate import predict

        return predict(
            self.model, samples, self.input_hw, self.spec, len(self.names), device=self.device
        )


class RuntimeTeacher:
    """A model the edge runtime opens, run through its backend (ONNX Runtime on the CPU or CUDA,
    TensorRT) on the student's batch, re-fed as the teacher's own manifest says."""

    def __init__(
        self,
        path: Path,
        student_names: Sequence[str] | None,
        student_hw: tuple[int, int],
        spec: PreprocessSpec,
        device: torch.device,
    ) -> None:
        from edge.detector import Detector

        options: dict[str, Any] = {}
        if path.suffix.lower() == ".onnx":
            if device.type == "cuda":
                options["providers"] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            # Idle ONNX Runtime threads busy-wait for the next run by default, taking the cores
            # from torch's backward pass between the teacher's batches.
            options["spinning"] = False
        self.detector = Detector.open(
            path, backend_options=options, **EVAL_THRESHOLDS.detector_options()
        )
        manifest = self.detector.manifest
        self.manifest = manifest
        self.names = tuple(manifest.classes)
        self.input_hw: tuple[int, int] = manifest.input.size_hw
        self._check_serves(path, student_hw)
        self.class_index = class_index_map(self.names, tuple(student_names or self.names))
        self.student_hw = student_hw
        self.channels = source_channels(spec)
        self.device = device
        self.neck_channels: tuple[int, ...] | None = None
        backend = "tensorrt" if path.suffix.lower() in (".engine", ".plan", ".trt") else "onnx"
        self.info = {
            **_base_info(path, f"{backend} ({manifest.output.format})", self.names),
            "input_hw": list(self.input_hw),
        }

    def _check_serves(self, path: Path, student_hw: tuple[int, int]) -> None:
        """Raises unless the teacher's grid maps onto the student's: per-cell outputs, the same
        strides, and a square input (the student's square batch scales into it unpadded)."""
        manifest = self.manifest
        if manifest.output.format not in DENSE_FORMATS:
            raise JetkitError(
                f"teacher {path} has NMS in its graph ({manifest.output.format}): it gives final "
                "boxes, not the per-cell scores distillation needs; export it without NMS "
                "(Ultralytics: `yolo export format=onnx nms=False`)"
            )
        if tuple(manifest.output.strides) != tuple(STRIDES):
            raise JetkitError(
                f"teacher {path} predicts on strides {list(manifest.output.strides)}, the "
                f"student on {list(STRIDES)}; use a P3-P5 teacher (not a P6 model)"
            )
        height, width = self.input_hw
        if height != width or student_hw[0] != student_hw[1]:
            raise JetkitError(
                f"teacher {path} takes a {height}x{width} input and the student "
                f"{student_hw[0]}x{student_hw[1]}: only square inputs map onto each other; "
                "export the teacher at a square size (e.g. imgsz=640)"
            )
        if height % STRIDES[-1]:
            raise JetkitError(
                f"teacher {path} takes {height}x{width}, not a multiple of {STRIDES[-1]}"
            )
        # One blank frame through the model proves its output is one prediction per cell.
        blank = np.full((height, width, 3), 114, dtype=np.uint8)
        tensor, _ = self.detector.preprocess([blank])
        output = self.detector.infer(tensor)[0]
        try:
            dense_predictions(output, manifest.output.format, self.input_hw, STRIDES)
        except JetkitError as error:
            raise JetkitError(f"teacher {path}: {error}") from None

    @property
    def description(self) -> str:
        return (
            f"{self.info['format']} at {self.input_hw[0]}x{self.input_hw[1]}, "
            f"{len(self.names)} classes, through {type(self.detector.backend).__name__}"
        )

    def targets(self, images_u8: torch.Tensor, images: torch.Tensor) -> TeacherTargets:
        """The student's `(B,3,H,W)` uint8 batch (model channel order) → targets: back to BGR
        frames, through the teacher's preprocessing and backend, its per-cell outputs resampled
        onto the student's grid."""
        chw = images_u8.cpu().numpy()
        frames_bgr = np.empty((chw.shape[0], chw.shape[2], chw.shape[3], 3), dtype=np.uint8)
        for model_channel, bgr_channel in enumerate(self.channels):
            frames_bgr[..., bgr_channel] = chw[:, model_channel]
        boxes, scores = [], []
        step = self.detector.max_batch
        for start in range(0, len(frames_bgr), step):
            chunk = list(frames_bgr[start : start + step])
            tensor, _ = self.detector.preprocess(chunk)
            output = self.detector.infer(tensor)[0][: len(chunk)]
            grid = dense_predictions(output, self.manifest.output.format, self.input_hw, STRIDES)
            grid = resample_cells(grid, self.input_hw, self.student_hw, STRIDES)
            boxes.append(grid.xyxy)
            scores.append(grid.scores[..., self.class_index])
        probabilities = np.clip(np.concatenate(scores), PROBABILITY_EPS, 1 - PROBABILITY_EPS)
        logits = np.log(probabilities) - np.log1p(-probabilities)
        return TeacherTargets(
            torch.from_numpy(logits.astype(np.float32)).to(images.device),
            torch.from_numpy(np.concatenate(boxes).astype(np.float32)).to(images.device),
            None,
        )

    def predict(self, samples: Sequence[Sample]) -> list[ImageDetections]:
        results = []
        step = self.detector.max_batch
        for start in range(0, len(samples), step):
            frames = [read_image(s.image_path) for s in samples[start : start + step]]
            for found in self.detector.detect_batch(frames):
                results.append(ImageDetections(found.xyxy, found.scores, found.class_ids))
        return results
