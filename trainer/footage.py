"""`--unlabeled`: footage joins a distillation run with the teacher's pseudo-labels.

Everything here happens before the run folder is touched: an empty folder, an undecodable video
or a teacher that finds nothing fails with nothing written (the teacher cache and extracted video
frames aside, which are keyed by content and only ever complete).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.datasets import DetectionSet, unlabelled_samples
from edge.errors import JetkitError
from trainer.config import TrainConfig
from trainer.operating_point import OperatingPoint, Predict
from trainer.pseudo import (
    DEFAULT_PSEUDO_THRESHOLD,
    box_count,
    footage_images,
    holdout_split,
    pseudo_labelled,
)

Log = Callable[[str], None]


def add_footage(
    config: TrainConfig,
    labelled: DetectionSet | None,
    names: list[str],
    predict: Predict,
    point: OperatingPoint | None,
    cache_root: Path,
    log: Log,
) -> tuple[DetectionSet, dict[str, Any]]:
    """`labelled` (or nothing) plus `config.unlabeled`'s frames with the teacher's pseudo-labels
    (`predict`: its detections in the student's classes) at its operating `point` on the
    labelled val set, when there is one → the data set to train on, and the provenance to
    record."""
    assert config.unlabeled is not None
    images = footage_images(config.unlabeled, config.every, cache_root, log)
    frames = unlabelled_samples(images)
    if config.pseudo_threshold is not None:
        threshold, chosen_by = config.pseudo_threshold, "--pseudo-threshold"
    elif point is not None:
        threshold = point.confidence
        chosen_by = f"the teacher's best F1 ({point.f1:.3f}) on {point.images} labelled val images"
    else:
        threshold, chosen_by = DEFAULT_PSEUDO_THRESHOLD, "the default: no labelled val set"
    pseudo = pseudo_labelled(frames, predict(frames), threshold)
    boxes = box_count(pseudo)
    if boxes == 0:
        raise JetkitError(
            f"the teacher {config.teacher} finds nothing at or above {threshold:.3f} on the "
            f"{len(frames)} frames of {config.unlabeled}; check that it detects these cameras' "
            "objects (`jetkit detect --model TEACHER FRAME`) or lower --pseudo-threshold"
        )
    log(
        f"footage: {len(frames)} frames of {config.unlabeled}, {boxes} pseudo-boxes at "
        f"confidence >= {threshold:.3f} ({chosen_by})"
    )
    info: dict[str, Any] = {
        "source": str(Path(config.unlabeled).resolve()),
        "frames": len(frames),
        "every": config.every,
        "pseudo_boxes": boxes,
        "threshold": round(threshold, 4),
        "threshold_from": chosen_by,
    }
    if labelled is not None:
        info["validation"] = "labelled val set"
        dataset = DetectionSet(
            labelled.names,
            labelled.train + tuple(pseudo),
            labelled.val,
            labelled.source,
            labelled.report,
        )
        return dataset, info
    train, held = holdout_split(pseudo)
    if box_count(held) == 0:
        raise JetkitError(
            f"the teacher finds nothing on the {len(held)} held-out frames of {config.unlabeled} "
            "(every 10th), which are this run's only validation; give more footage or --data"
        )
    log(
        f"no labelled data: validation is the teacher's pseudo-labels on {len(held)} held-out "
        "frames (every 10th), so mAP here measures agreement with the teacher, not accuracy"
    )
    info["validation"] = f"teacher pseudo-labels on {len(held)} held-out frames"
    dataset = DetectionSet(
        tuple(names),
        tuple(train),
        tuple(held),
        Path(config.unlabeled),
        {"train_images": len(train), "val_images": len(held)},
    )
    return dataset, info
