"""Validation of a torch model with the edge runtime's own decode, NMS, inverse letterbox and
evaluator, so a checkpoint and its ONNX artifacts are measured the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from edge.datasets import Sample
from edge.decode import decode_yolov8
from edge.evaluate import EVAL_THRESHOLDS, EvalResult, ImageDetections, evaluate
from edge.manifest import PreprocessSpec
from edge.postprocess import suppress
from trainer.dataset import DetectionDataset, make_loader, normalize_batch


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    input_hw: tuple[int, int],
    spec: PreprocessSpec,
    num_classes: int,
    batch: int = 16,
    device: torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[ImageDetections]:
    """Detections in frame pixels for every sample, at the evaluation thresholds."""
    device = device or next(model.parameters()).device
    dataset = DetectionDataset(samples, input_hw, spec, augment=None)
    loader = make_loader(dataset, batch, shuffle=False, seed=0)
    was_training = model.training
    model.eval()
    results: list[ImageDetections] = []
    try:
        for images_u8, _targets, indices in loader:
            output = model(normalize_batch(images_u8, spec, device=device), raw=False)
            candidates = decode_yolov8(output.float().cpu().numpy(), EVAL_THRESHOLDS.conf)
            kept = suppress(
                candidates,
                num_classes,
                EVAL_THRESHOLDS.iou,
                max_detections=EVAL_THRESHOLDS.max_detections,
            )
            for index, found in zip(indices, kept, strict=True):
                xyxy = dataset.transform(index).to_frame(found.xyxy)
                results.append(
                    ImageDetections(
                        xyxy, found.scores.astype(np.float32), found.class_ids.astype(np.int64)
                    )
                )
            if progress:
                progress(len(results), len(samples))
    finally:
        model.train(was_training)
    return results


def validate(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    names: Sequence[str],
    input_hw: tuple[int, int],
    spec: PreprocessSpec,
    batch: int = 16,
    device: torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    detections = predict(model, samples, input_hw, spec, len(names), batch, device, progress)
    return evaluate(samples, detections, names)
