"""Candidates of a batch → final detections per image: one NMS call for the whole batch."""

from __future__ import annotations

import numpy as np

from edge.decode import Candidates
from edge.nms import nms, soft_nms


def suppress(
    candidates: list[Candidates],
    num_classes: int,
    iou_threshold: float,
    kind: str = "class_aware",
    max_detections: int = 300,
) -> list[Candidates]:
    """Apply the manifest's NMS kind to every image's candidates at once.

    `kind`: "class_aware" (per class), "agnostic" (across classes), "diou" (class-aware DIoU-NMS),
    "soft" (class-aware Gaussian soft-NMS, scores decayed), or "none" (already done in the
    graph: only the `max_detections` cap). Images and classes become NMS groups, so a batch of 8
    is one vectorized pass, not 8.
    """
    counts = [c.scores.shape[0] for c in candidates]
    if sum(counts) == 0:
        return candidates
    xyxy = np.concatenate([c.xyxy for c in candidates])
    scores = np.concatenate([c.scores for c in candidates])
    class_ids = np.concatenate([c.class_ids for c in candidates])
    image_ids = np.repeat(np.arange(len(candidates)), counts)
    if kind == "none":
        keep = np.lexsort((np.arange(scores.shape[0]), -scores))
    else:
        groups = image_ids if kind == "agnostic" else image_ids * num_classes + class_ids
        if kind == "soft":
            keep, decayed = soft_nms(xyxy, scores, groups)
            scores = scores.copy()
            scores[keep] = decayed
        else:
            overlap = "diou" if kind == "diou" else "iou"
            keep = nms(xyxy, scores, iou_threshold, groups, overlap, max_per_group=max_detections)
    # `keep` is in score order; split it per image, keeping each image's best `max_detections`.
    keep = keep[np.argsort(image_ids[keep], kind="stable")]
    bounds = np.searchsorted(image_ids[keep], np.arange(len(candidates) + 1))
    result = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        mine = keep[start:stop][:max_detections]
        result.append(Candidates(xyxy[mine], scores[mine], class_ids[mine]))
    return result
