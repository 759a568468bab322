"""Calibration batches are exactly what the runtime feeds the model."""

import cv2
import numpy as np
import pytest

from calibration.data import (
    CalibrationBatches,
    calibration_digest,
    calibration_images,
    select_images,
)
from edge.detector import Detector
from edge.errors import JetkitError
from edge.samples import draw_blob_scene


@pytest.fixture()
def image_dir(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    for i, size in enumerate([(640, 480), (300, 500), (1280, 720)]):
        cv2.imwrite(
            str(folder / f"img{i}.png"), draw_blob_scene(size, {"red": (10, 10, 90, 90)}, seed=i)
        )
    return folder


def test_batches_equal_the_runtime_preprocessing(image_dir, blob_onnx):
    detector = Detector.open(blob_onnx)
    paths = calibration_images(image_dir)
    batches = list(CalibrationBatches(paths, detector.manifest, batch=2))
    assert [b.shape[0] for b in batches] == [2, 1]
    frames = [cv2.imread(str(p)) for p in paths]
    expected, _ = detector.preprocessor(frames)
    np.testing.assert_array_equal(np.concatenate(batches), expected)


def test_selection_is_even_and_deterministic(tmp_path):
    paths = [tmp_path / f"{i:03d}.jpg" for i in range(100)]
    chosen = select_images(list(reversed(paths)), 5)
    assert [p.name for p in chosen] == ["000.jpg", "025.jpg", "050.jpg", "074.jpg", "099.jpg"]
    assert select_images(paths[:3], 10) == paths[:3]
    with pytest.raises(JetkitError, match="--images must be >= 1"):
        select_images(paths, 0)


def test_digest_changes_with_any_image(image_dir):
    paths = sorted(image_dir.iterdir())
    before = calibration_digest(paths)
    assert calibration_digest(paths) == before
    paths[1].write_bytes(paths[1].read_bytes() + b"\0")
    assert calibration_digest(paths) != before


def test_a_data_yaml_supplies_its_training_images(tiny_synth_yaml):
    paths = calibration_images(tiny_synth_yaml)
    assert len(paths) == 6 and all(p.suffix == ".jpg" for p in paths)


@pytest.fixture()
def tiny_synth_yaml(tmp_path):
    from trainer.synth import SynthConfig, write_synth_dataset

    return write_synth_dataset(tmp_path / "d", SynthConfig(train_images=6, val_images=2, imgsz=64))


def test_an_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(JetkitError, match="holds no images"):
        calibration_images(tmp_path)
