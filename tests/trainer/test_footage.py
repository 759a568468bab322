"""Footage joining a run (the teacher's operating point on val, then `add_footage`) and the
teacher-output cache, with an oracle teacher: one
that reports each frame's true boxes at 0.9 and a clutter box at 0.1, so that what the
pseudo-labels should be is known exactly. (The real teachers' outputs are tested in
test_teachers.py and, end to end, in test_engine.py.)"""

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge.datasets import load_dataset
from edge.errors import JetkitError
from edge.evaluate import ImageDetections
from trainer.config import TrainConfig
from trainer.distill import DistillConfig
from trainer.footage import add_footage
from trainer.operating_point import run_operating_point, student_class_predictions
from trainer.teacher_cache import TeacherOutputCache, cached_predictions, default_cache_dir

CLUTTER_XYXY = [0.0, 0.0, 6.0, 6.0]


class OracleTeacher:
    """Knows the labels of `samples` by path, and of copies of the train images by file name (val
    images may share train images' names); `class_shift` mislabels every class."""

    neck_channels = None
    description = "oracle"

    def __init__(self, labelled, class_shift=0, score=0.9, keep_every=1):
        self.names = tuple(labelled.names)
        self.class_index = np.arange(len(self.names))
        self.by_path = {s.image_path: s for s in labelled.val}
        self.by_name = {s.image_path.name: s for s in labelled.train}
        self.class_shift = class_shift
        self.score = score
        self.keep_every = keep_every  # report only every k-th true box: recall 1/k
        self.info = {"path": "oracle.onnx", "sha256": "ab" * 32, "format": "onnx (yolov8)"}
        self.calls = 0

    def predict(self, samples):
        self.calls += len(samples)
        results = []
        for sample in samples:
            truth = self.by_path.get(sample.image_path) or self.by_name[sample.image_path.name]
            xyxy, class_ids = truth.xyxy[:: self.keep_every], truth.class_ids[:: self.keep_every]
            results.append(
                ImageDetections(
                    np.concatenate([xyxy, [CLUTTER_XYXY]]).astype(np.float32),
                    np.array([self.score] * len(class_ids) + [0.1], np.float32),
                    np.concatenate([(class_ids + self.class_shift) % len(self.names), [0]]).astype(
                        np.int64
                    ),
                )
            )
        return results


@pytest.fixture(scope="module")
def labelled(tiny_data):
    return load_dataset(tiny_data)


@pytest.fixture(scope="module")
def footage(labelled, tmp_path_factory):
    """The train images without their labels."""
    folder = tmp_path_factory.mktemp("footage") / "cam"
    folder.mkdir()
    for sample in labelled.train:
        shutil.copy(sample.image_path, folder / sample.image_path.name)
    return folder


def config_for(tiny_data, footage, tmp_path, **changes):
    values = dict(
        data=str(tiny_data),
        out=str(tmp_path / "run"),
        teacher="oracle.onnx",
        distill=DistillConfig(),
        unlabeled=str(footage),
        cache_dir=str(tmp_path / "cache"),
    )
    return TrainConfig(**{**values, **changes})


def oracle(labelled, **options):
    return OracleTeacher(labelled, **options)


def join(config, labelled, teacher, log):
    """What the engine does before the run folder exists."""
    cache_root = Path(config.cache_dir)
    predict = student_class_predictions(teacher, cache_root, log)
    point = run_operating_point(config, labelled, predict, log)
    names = list(teacher.names)
    return add_footage(config, labelled, names, predict, point, cache_root, log)


def test_the_threshold_chosen_on_val_keeps_the_true_boxes_and_drops_the_clutter(
    labelled, footage, tiny_data, tmp_path
):
    teacher = oracle(labelled)
    logs: list[str] = []
    dataset, info = join(config_for(tiny_data, footage, tmp_path), labelled, teacher, logs.append)
    true_boxes = sum(len(s.class_ids) for s in labelled.train)
    assert len(dataset.train) == 2 * len(labelled.train) and dataset.val == labelled.val
    pseudo = dataset.train[len(labelled.train) :]
    assert sum(len(s.class_ids) for s in pseudo) == true_boxes == info["pseudo_boxes"]
    assert 0.1 < info["threshold"] <= 0.9 and "best F1 (1.000)" in info["threshold_from"]
    assert info["frames"] == len(labelled.train) and info["validation"] == "labelled val set"
    assert not (tmp_path / "run").exists()  # nothing of the run is written yet


def test_a_teacher_that_misses_most_objects_is_used_with_a_warning(
    labelled, footage, tiny_data, tmp_path
):
    logs: list[str] = []
    config = config_for(tiny_data, footage, tmp_path)
    join(config, labelled, oracle(labelled, keep_every=4), logs.append)
    assert any(line.startswith("warning: the teacher agrees") for line in logs)
    logs.clear()
    fresh = config.replace(cache_dir=str(tmp_path / "other-cache"))  # the same teacher digest
    join(fresh, labelled, oracle(labelled), logs.append)
    assert not any(line.startswith("warning") for line in logs)


def test_without_labels_every_tenth_frame_validates_and_the_run_says_so(
    labelled, footage, tiny_data, tmp_path
):
    logs: list[str] = []
    config = config_for(tiny_data, footage, tmp_path, data=None)
    dataset, info = join(config, None, oracle(labelled), logs.append)
    assert len(dataset.val) == len(labelled.train) // 10
    assert len(dataset.train) + len(dataset.val) == len(labelled.train)
    assert info["threshold_from"] == "the default: no labelled val set"
    assert any("agreement with the teacher, not accuracy" in line for line in logs)


def test_a_teacher_that_finds_nothing_or_only_wrong_classes_is_refused(
    labelled, footage, tiny_data, tmp_path
):
    faint = oracle(labelled, score=0.2)
    with pytest.raises(JetkitError, match=r"finds nothing at or above 0\.500.*--pseudo-threshold"):
        join(config_for(tiny_data, footage, tmp_path, pseudo_threshold=0.5), labelled, faint, print)
    confused = oracle(labelled, class_shift=1)
    with pytest.raises(JetkitError, match="finds none of the boxes"):
        # Its own cache: the oracles share one digest.
        config = config_for(tiny_data, footage, tmp_path, cache_dir=str(tmp_path / "confused"))
        join(config, labelled, confused, print)


def test_teacher_outputs_are_computed_once_per_image_and_teacher(labelled, tmp_path):
    teacher = oracle(labelled)
    cache = TeacherOutputCache(tmp_path, teacher.info["sha256"])
    samples = labelled.val
    first = cached_predictions(teacher.predict, samples, cache)
    assert teacher.calls == len(samples)
    again = cached_predictions(teacher.predict, samples, cache)
    assert teacher.calls == len(samples)  # all from the cache
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
    # A damaged entry is computed again; another teacher has its own entries.
    from edge.models import file_sha256

    damaged = cache.path(file_sha256(samples[0].image_path))
    damaged.write_bytes(b"PK\x03\x04 not a zip")
    cached_predictions(teacher.predict, samples, cache)
    assert teacher.calls == len(samples) + 1
    other = TeacherOutputCache(tmp_path, "cd" * 32)
    cached_predictions(teacher.predict, samples, other)
    assert teacher.calls == 2 * len(samples) + 1


def test_the_cache_lives_where_the_environment_says():
    assert default_cache_dir({"JETKIT_CACHE_DIR": "/x"}) == Path("/x")
    assert default_cache_dir({"XDG_CACHE_HOME": "/y"}) == Path("/y/jetkit")
    assert default_cache_dir({}) == Path.home() / ".cache" / "jetkit"


def test_footage_options_are_checked_with_the_config(tiny_data, footage, tmp_path):
    base = config_for(tiny_data, footage, tmp_path)
    with pytest.raises(JetkitError, match="--unlabeled needs a teacher"):
        replace(base, teacher=None, distill=None)
    with pytest.raises(JetkitError, match="--pseudo-threshold"):
        replace(base, pseudo_threshold=1.5)
    with pytest.raises(JetkitError, match="--every"):
        replace(base, every=0)
    with pytest.raises(JetkitError, match="--data.*--unlabeled"):
        replace(base, data=None, unlabeled=None)
