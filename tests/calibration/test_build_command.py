"""`jetkit build` as a user runs it. Here (no TensorRT): the trtexec line, the not-installed error
and every input check that comes before TensorRT. On a device (`jetson` marker, `make
test-jetson`): real builds — FP16 with a timing cache, explicit INT8 from a Q/DQ model, implicit
INT8 calibrated by TensorRT and then rebuilt from its cache — each opened by the TensorRT
backend, benchmarked with H2D/compute/D2H apart, and detecting what ONNX Runtime detects."""

import json

import numpy as np
import pytest
from cli_helpers import assert_user_error, jetkit

from calibration.int8 import quantize_int8
from calibration.trt_cache import read_cache
from edge.backends.tensorrt import tensorrt_missing
from edge.detector import Detector
from edge.images import list_images
from edge.manifest import load_manifest


@pytest.fixture(scope="module")
def blob_qdq(blob_onnx, blob_val, tmp_path_factory):
    """The blob model as a TensorRT-format Q/DQ INT8 ONNX, with its manifest beside it."""
    out = tmp_path_factory.mktemp("qdq") / "blob-int8.onnx"
    images = list_images([str(blob_val.parent / "images")])[:4]
    quantize_int8(blob_onnx, Detector.open(blob_onnx).manifest, images, out)
    return out


def _files(directory):
    return sorted(p.name for p in directory.iterdir())


def test_print_trtexec_needs_no_tensorrt_and_builds_nothing(blob_onnx):
    before = _files(blob_onnx.parent)
    result = jetkit(
        "build", blob_onnx, "--precision", "fp16", "--max-batch", "4", "--print-trtexec"
    )
    assert result.returncode == 0, result.stderr
    engine = blob_onnx.with_name("blob-trt-fp16.engine")
    assert result.stdout.strip() == (
        f"trtexec --onnx={blob_onnx} --saveEngine={engine} --fp16 "
        "--memPoolSize=workspace:1024 --minShapes=images:1x3x320x320 "
        "--optShapes=images:4x3x320x320 --maxShapes=images:4x3x320x320"
    )
    assert _files(blob_onnx.parent) == before


def test_print_trtexec_for_a_qdq_model_is_an_int8_build(blob_qdq):
    result = jetkit("build", blob_qdq, "--precision", "int8", "--print-trtexec")
    assert result.returncode == 0, result.stderr
    assert "--int8" in result.stdout and "--calib" not in result.stdout
    assert f"--saveEngine={blob_qdq.with_name('blob-int8-trt.engine')}" in result.stdout


@pytest.mark.skipif(tensorrt_missing() is None, reason="TensorRT is installed here")
def test_without_tensorrt_the_error_names_the_device_build_and_the_trtexec_line(
    blob_onnx, tmp_path
):
    out = tmp_path / "blob.engine"
    result = jetkit("build", blob_onnx, "--out", out)
    assert_user_error(
        result,
        "TensorRT is not installed here",
        "`jetkit flash` does",
        f"trtexec --onnx={blob_onnx} --saveEngine={out} --fp16",
    )
    assert list(tmp_path.iterdir()) == []


def test_input_checks_come_before_tensorrt(blob_onnx, blob_qdq, tmp_path, scene_png):
    assert_user_error(jetkit("build", tmp_path / "missing.onnx"), "missing.onnx does not exist")
    assert_user_error(jetkit("build", scene_png), "not an ONNX model")
    assert_user_error(
        jetkit("build", blob_onnx, "--precision", "int8"), "needs scales: --calib-cache"
    )
    assert_user_error(
        jetkit("build", blob_qdq, "--precision", "fp16"), "build it with --precision int8"
    )
    assert_user_error(
        jetkit("build", blob_onnx, "--out", blob_onnx.with_suffix(".engine")),
        "the manifest of",
    )
    assert_user_error(jetkit("build", blob_onnx, "--workspace", "lots"), "--workspace 'lots'")
    assert_user_error(jetkit("build", blob_onnx, "--dla", "0", "--precision", "fp32"), "DLA")
    corrupt = tmp_path / "corrupt.cache"
    corrupt.write_text("not a cache\n")
    assert_user_error(
        jetkit("build", blob_onnx, "--precision", "int8", "--calib-cache", corrupt),
        "corrupt.cache",
    )


# --- on a device ---------------------------------------------------------------------------------


def _detections(model, image):
    result = jetkit("detect", model, image, "--json")
    assert result.returncode == 0, result.stderr
    return {d["class_name"]: d["xyxy"] for d in json.loads(result.stdout)["detections"]}


def _check_engine(engine, blob_onnx, scene_png, precision):
    manifest = load_manifest(engine.with_suffix(".json"))
    assert manifest.artifact.kind == "tensorrt" and manifest.artifact.precision == precision
    key = manifest.provenance["engine"]["key"]
    assert key["tensorrt"] == manifest.target.tensorrt
    assert key["compute_capability"] == manifest.target.compute_capability
    bench = jetkit(
        "bench", engine, "--warmup-ms", "0", "--iterations", "5", "--duration", "0", "--json", "-"
    )
    assert bench.returncode == 0, bench.stderr
    assert {"h2d", "compute", "d2h"} <= set(json.loads(bench.stdout)["stages_ms"])
    expected = _detections(blob_onnx, scene_png)
    found = _detections(engine, scene_png)
    assert set(found) == set(expected)
    for name, xyxy in expected.items():
        np.testing.assert_allclose(found[name], xyxy, atol=4)


@pytest.mark.jetson
def test_fp16_engine_with_a_timing_cache(blob_onnx, scene_png, tmp_path):
    engine, timing = tmp_path / "blob-fp16.engine", tmp_path / "timing.cache"
    args = ("build", blob_onnx, "--max-batch", "4", "--timing-cache", timing, "--out", engine)
    first = jetkit(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(engine) and timing.stat().st_size > 0
    _check_engine(engine, blob_onnx, scene_png, "fp16")
    assert load_manifest(engine.with_suffix(".json")).input.max_batch == 4
    second = jetkit(*args)
    assert second.returncode == 0 and "reusing timing cache" in second.stderr


@pytest.mark.jetson
def test_explicit_int8_from_the_qdq_model(blob_onnx, blob_qdq, scene_png, tmp_path):
    engine = tmp_path / "blob-int8.engine"
    result = jetkit("build", blob_qdq, "--precision", "int8", "--out", engine)
    assert result.returncode == 0, result.stderr
    _check_engine(engine, blob_onnx, scene_png, "int8")
    assert load_manifest(engine.with_suffix(".json")).provenance["engine"]["int8_mode"] == (
        "explicit"
    )


@pytest.mark.jetson
def test_implicit_int8_calibrates_writes_the_cache_and_rebuilds_from_it(
    blob_onnx, blob_val, scene_png, tmp_path
):
    cache, engine = tmp_path / "blob.cache", tmp_path / "blob-int8.engine"
    calibrated = jetkit(
        "build", blob_onnx, "--precision", "int8", "--data", blob_val, "--images", "8",
        "--calib-cache", cache, "--out", engine,
    )  # fmt: skip
    assert calibrated.returncode == 0, calibrated.stderr
    assert read_cache(cache).algorithm == "EntropyCalibration2"
    _check_engine(engine, blob_onnx, scene_png, "int8")
    rebuilt = jetkit(
        "build", blob_onnx, "--precision", "int8", "--calib-cache", cache, "--out", engine
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    _check_engine(engine, blob_onnx, scene_png, "int8")
