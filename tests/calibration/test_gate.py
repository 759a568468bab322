"""The accuracy gate passes a well-calibrated INT8 artifact and catches one calibrated on blank
images."""

import cv2
import numpy as np
import pytest

from calibration.data import calibration_images
from calibration.gate import output_drift, run_gate
from calibration.int8 import quantize_int8
from edge.datasets import load_dataset
from edge.detector import Detector


def test_drift_figures():
    a = np.array([1.0, 2.0, 3.0])
    same = output_drift(a, a)
    assert same.max_abs == 0 and same.cosine == pytest.approx(1.0)
    moved = output_drift(a, a + [0, 0, 1])
    assert moved.max_abs == 1 and moved.mean_abs == pytest.approx(1 / 3) and moved.cosine < 1


def test_well_calibrated_int8_passes(blob_onnx, blob_val, tmp_path):
    manifest = Detector.open(blob_onnx).manifest
    images = calibration_images(blob_val)
    quantize_int8(blob_onnx, manifest, images, tmp_path / "good.onnx")
    report = run_gate(blob_onnx, tmp_path / "good.onnx", load_dataset(blob_val).val, 1.0)
    assert report.fp32.map50_95 > 0.8
    assert report.passed, report.describe()
    assert report.drift["output0"].cosine > 0.99


def test_calibrating_on_blank_images_is_caught(blob_onnx, blob_val, tmp_path):
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(4):
        cv2.imwrite(str(blank / f"b{i}.png"), np.full((480, 640, 3), 114, np.uint8))
    manifest = Detector.open(blob_onnx).manifest
    # Only the decode in float: the sample detector's convolutions on the image see flat grey.
    quantize_int8(
        blob_onnx,
        manifest,
        calibration_images(blank),
        tmp_path / "bad.onnx",
        island_reasons=("decode",),
    )
    report = run_gate(blob_onnx, tmp_path / "bad.onnx", load_dataset(blob_val).val, 1.0)
    assert not report.passed, report.describe()
    assert report.map_drop > 1.0
    assert "points; limit" in report.describe()
