"""`jetkit build` as a user runs it. Here (no TensorRT): the trtexec line, the not-installed error
and every input check that comes before TensorRT. On a device (`jetson` marker, `make
test-jetson`): real builds — FP16 with a timing cache, explicit INT8 from a Q/DQ model, implicit
INT8 calibrated by TensorRT and then rebuilt from its cache — each opened by the TensorRT
backend, benchmarked with H2D/compute/D2H apart, and detecting what ONNX Runtime detects."""

import json

import cv2
import numpy as np
import pytest
from cli_helpers import assert_user_error, jetkit

from calibration.int8 import quantize_int8
from calibration.trt_cache import read_cache
from edge.backends.tensorrt import tensorrt_missing
from edge.detector import Detector
from edge.images import list_images
from edge.manifest import load_manifest
from edge.samples import draw_blob_scene


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


@pytest.fixture(scope="module")
def blob_cpu_int8(blob_onnx, blob_val, tmp_path_factory):
    """The blob model quantized for ONNX Runtime on CPUs: UINT8 activations, INT32 biases."""
    out = tmp_path_factory.mktemp("cpu") / "blob-int8.onnx"
    images = list_images([str(blob_val.parent / "images")])[:4]
    quantize_int8(blob_onnx, Detector.open(blob_onnx).manifest, images, out, runtime="cpu")
    return out


def test_a_dla_build_is_one_static_batch_the_manifests_max(blob_onnx):
    result = jetkit("build", blob_onnx, "--dla", "1", "--print-trtexec")
    assert result.returncode == 0, result.stderr
    for flag in ("min", "opt", "max"):
        assert f"--{flag}Shapes=images:8x3x320x320" in result.stdout
    assert "--useDLACore=1 --allowGPUFallback" in result.stdout
    two = jetkit("build", blob_onnx, "--dla", "0", "--batch", "2", "--print-trtexec")
    assert "--minShapes=images:2x3x320x320 --optShapes=images:2x3x320x320" in two.stdout


def test_tensorrts_rules_refuse_a_model_before_tensorrt_is_touched(blob_cpu_int8):
    result = jetkit("build", blob_cpu_int8, "--precision", "int8", "--print-trtexec")
    assert_user_error(result, "TensorRT 10.3 would reject", "[qdq.int32-bias]", "`jetkit check")


def test_tensorrt_11_takes_the_precision_from_the_model(blob_onnx, tmp_path):
    fp16 = jetkit("build", blob_onnx, "--tensorrt", "11.4.1", "--print-trtexec")
    assert_user_error(fp16, "[build.strongly-typed]", "jetkit calibrate --precision fp16")
    converted = jetkit("calibrate", blob_onnx, "--precision", "fp16", "--out", tmp_path)
    assert converted.returncode == 0, converted.stderr
    built = jetkit("build", tmp_path / "blob-fp16.onnx", "--tensorrt", "11.4.1", "--print-trtexec")
    assert built.returncode == 0, built.stderr
    assert "--fp16" not in built.stdout  # TensorRT 11's trtexec has no precision flags
    cache = tmp_path / "blob.cache"
    cache.write_text("TRT-8601-EntropyCalibration2\nimages: 3c010204\n")
    implicit = jetkit(
        "build", blob_onnx, "--precision", "int8", "--calib-cache", cache, "--tensorrt", "11.0",
        "--print-trtexec",
    )  # fmt: skip
    assert_user_error(implicit, "TensorRT 11.0 has no implicit INT8")


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


def _dla_cores():
    import tensorrt as trt

    from edge.backends.tensorrt import trt_logger

    return trt.Builder(trt_logger()).num_DLA_cores


@pytest.mark.jetson
def test_a_dla_engine_is_static_records_its_placement_and_runs_on_its_core(
    blob_onnx, scene_png, tmp_path
):
    cores = _dla_cores()
    if cores == 0:
        pytest.skip("this device has no DLA (Orin Nano, desktop GPUs)")
    core = cores - 1  # core 1 where there are two: the runtime must select it
    engine = tmp_path / "blob-dla.engine"
    result = jetkit("build", blob_onnx, "--dla", str(core), "--batch", "1", "--out", engine)
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(engine.with_suffix(".json"))
    assert (manifest.input.dynamic_batch, manifest.input.max_batch) == (False, 1)
    assert manifest.target.dla_core == core
    dla = manifest.provenance["engine"]["dla"]
    assert dla["dla_layers"] >= 1 and dla["gpu_layers"] == len(dla["gpu_fallback"])
    assert f"{dla['dla_layers']} of" in result.stderr
    from edge.backends.tensorrt import TensorRTBackend

    backend = TensorRTBackend(engine)
    try:
        assert backend.describe()["dla_core"] == core
    finally:
        backend.close()


@pytest.mark.jetson
def test_a_corrupt_calibration_image_fails_the_build_by_name(blob_onnx, tmp_path):
    # TensorRT's wrapper would print the error and calibrate on the first image alone.
    images = tmp_path / "calib"
    images.mkdir()
    for i in range(3):
        scene = draw_blob_scene((320, 320), {"red": (10, 10, 90, 90)}, seed=i)
        cv2.imwrite(str(images / f"{i}.png"), scene)
    (images / "1.png").write_bytes(b"not a png")
    engine = tmp_path / "blob-int8.engine"
    result = jetkit("build", blob_onnx, "--precision", "int8", "--data", images, "--out", engine)
    assert_user_error(result, "calibration stopped", "1.png cannot be read", progress=True)
    assert not engine.exists()


@pytest.mark.jetson
def test_a_timing_cache_from_another_tensorrt_starts_a_new_one(blob_onnx, tmp_path):
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"TRT timing cache of another version" * 8)
    engine = tmp_path / "blob-fp16.engine"
    result = jetkit("build", blob_onnx, "--timing-cache", timing, "--out", engine)
    assert result.returncode == 0, result.stderr
    assert "starting a new one" in result.stderr and engine.is_file()
    again = jetkit("build", blob_onnx, "--timing-cache", timing, "--out", engine)
    assert "reusing timing cache" in again.stderr
