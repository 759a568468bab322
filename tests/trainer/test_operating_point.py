"""The teacher's operating point on the labelled val set, and when a run looks for one. The
teachers here are functions that report val's true boxes at a known score (plus a clutter box), so
where the point must land is known."""

import math

import numpy as np
import pytest

from edge.datasets import DetectionSet, load_dataset
from edge.errors import JetkitError
from edge.evaluate import ImageDetections
from trainer.config import TrainConfig
from trainer.distill import DistillConfig
from trainer.operating_point import OperatingPoint, operating_point, run_operating_point


@pytest.fixture(scope="module")
def labelled(tiny_data):
    return load_dataset(tiny_data)


def reporting(score: float, keep_every: int = 1, clutter: float = 0.02):
    """A teacher's `predict`: each image's true boxes at `score` (every `keep_every`-th), and
    one clutter box at `clutter`."""

    def predict(samples):
        return [
            ImageDetections(
                np.concatenate([s.xyxy[::keep_every], [[0, 0, 4, 4]]]).astype(np.float32),
                np.array([score] * len(s.class_ids[::keep_every]) + [clutter], np.float32),
                np.concatenate([s.class_ids[::keep_every], [0]]).astype(np.int64),
            )
            for s in samples
        ]

    return predict


def config(tiny_data, tmp_path, **changes):
    values = dict(data=str(tiny_data), out=str(tmp_path), teacher="t.onnx", distill=DistillConfig())
    return TrainConfig(**{**values, **changes})


@pytest.mark.parametrize("score", [0.07, 0.3, 0.9])
def test_the_point_is_where_the_teacher_agrees_best_and_the_shift_moves_it_to_the_gate(
    labelled, score
):
    point = operating_point(labelled.val, reporting(score), len(labelled.names))
    assert point.f1 == pytest.approx(1.0) and point.images == len(labelled.val)
    assert 0.02 < point.confidence <= score  # above the clutter, at most the true boxes' score
    shifted = math.log(point.confidence / (1 - point.confidence)) + point.logit_shift(0.25)
    assert 1 / (1 + math.exp(-shifted)) == pytest.approx(0.25)


def test_a_run_looks_for_the_point_only_when_it_wants_one_and_has_val_boxes(
    labelled, tiny_data, tmp_path
):
    predict = reporting(0.3)
    assert run_operating_point(config(tiny_data, tmp_path), labelled, predict, print) is not None
    uncalibrated = config(tiny_data, tmp_path, distill=DistillConfig(calibrate=False))
    assert run_operating_point(uncalibrated, labelled, predict, print) is None
    # Footage without --pseudo-threshold wants it to choose the pseudo-label threshold.
    footage = uncalibrated.replace(unlabeled=str(tmp_path))
    assert run_operating_point(footage, labelled, predict, print) is not None
    assert run_operating_point(footage, None, predict, print) is None
    no_boxes = tuple(s.__class__(s.image_path, s.size_wh, s.xyxy[:0], s.class_ids[:0])
                     for s in labelled.val)  # fmt: skip
    empty_val = DetectionSet(labelled.names, labelled.train, no_boxes, labelled.source, {})
    assert run_operating_point(config(tiny_data, tmp_path), empty_val, predict, print) is None


def test_a_teacher_that_finds_nothing_on_val_is_not_calibrated_or_refused_for_footage(
    labelled, tiny_data, tmp_path
):
    blind = reporting(0.01, clutter=0.9)  # only clutter above the floor
    logs: list[str] = []
    assert run_operating_point(config(tiny_data, tmp_path), labelled, blind, logs.append) is None
    assert any("finds none of the boxes" in line and "uncalibrated" in line for line in logs)
    with pytest.raises(JetkitError, match="finds none of the boxes.*--pseudo-threshold"):
        run_operating_point(
            config(tiny_data, tmp_path, unlabeled=str(tmp_path)), labelled, blind, logs.append
        )


def test_a_weak_teacher_is_calibrated_with_a_warning(labelled, tiny_data, tmp_path):
    logs: list[str] = []
    point = run_operating_point(
        config(tiny_data, tmp_path), labelled, reporting(0.5, keep_every=4), logs.append
    )
    assert point is not None and 0 < point.f1 < 0.5
    assert any(line.startswith("warning: the teacher agrees") for line in logs)


def test_the_record_rounds_for_reading():
    record = OperatingPoint(0.0681234, 0.31049, 120).to_dict()
    assert record == {"confidence": 0.0681, "f1": 0.3105, "val_images": 120}
