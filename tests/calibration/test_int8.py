"""INT8 Q/DQ artifacts from real calibration images: the format per runtime, float decode, the
TensorRT cache from the same ranges, and the manifest's calibration record."""

import cv2
import numpy as np
import onnx
import pytest

from calibration.artifacts import name_unnamed_nodes
from calibration.data import calibration_images
from calibration.int8 import output_tail_nodes, quantize_int8, trt_cache_from
from calibration.trt_cache import format_cache, parse_cache
from edge.detector import Detector
from edge.errors import JetkitError
from edge.samples import draw_blob_scene


@pytest.fixture(scope="module")
def calib_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for i in range(8):
        x, y = (int(v) for v in rng.integers(20, 300, 2))
        boxes = {"red": (x, y, x + 120, y + 90), "blue": (400, 200, 560, 380)}
        cv2.imwrite(str(folder / f"c{i}.png"), draw_blob_scene((640, 480), boxes, seed=i))
    return calibration_images(folder)


def activation_types(model):
    """Element types of the QuantizeLinear zero points (the activations' integer type)."""
    inits = {i.name: i.data_type for i in model.graph.initializer}
    return {inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"}


@pytest.mark.parametrize(
    ("runtime", "dtype"), [("tensorrt", onnx.TensorProto.INT8), ("cpu", onnx.TensorProto.UINT8)]
)
def test_qdq_format_follows_the_runtime(blob_onnx, calib_images, tmp_path, runtime, dtype):
    manifest = Detector.open(blob_onnx).manifest
    result = quantize_int8(blob_onnx, manifest, calib_images, tmp_path / "q.onnx", runtime=runtime)
    model = onnx.load(tmp_path / "q.onnx")
    assert activation_types(model) == {dtype}
    assert result.manifest.artifact.kind == "onnx-int8-qdq"
    calibration = result.manifest.provenance["calibration"]
    assert calibration["runtime"] == runtime and calibration["images"] == 8
    assert len(calibration["digest"]) == 64


def test_int8_model_detects_what_fp32_detects_and_keeps_the_decode_in_float(
    blob_onnx, calib_images, scene_bgr, tmp_path
):
    fp32 = Detector.open(blob_onnx)
    result = quantize_int8(blob_onnx, fp32.manifest, calib_images, tmp_path / "q.onnx")
    quantized = onnx.load(tmp_path / "q.onnx")
    source = onnx.load(blob_onnx)
    name_unnamed_nodes(source)
    tail = set(output_tail_nodes(source))
    assert tail and tail <= set(result.excluded)
    # Nothing feeding the output is quantized: the last node before it is float arithmetic.
    last = next(n for n in quantized.graph.node if "output0" in n.output)
    assert last.op_type not in ("DequantizeLinear", "QuantizeLinear")
    a, b = fp32(scene_bgr), Detector.open(tmp_path / "q.onnx")(scene_bgr)
    assert a.names == b.names
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=12.0)


def test_the_tensorrt_cache_carries_the_same_ranges(blob_onnx, calib_images, tmp_path):
    manifest = Detector.open(blob_onnx).manifest
    result = quantize_int8(blob_onnx, manifest, calib_images, tmp_path / "q.onnx", method="minmax")
    cache = parse_cache(format_cache(trt_cache_from(result, "8.6.1", "minmax")))
    assert cache.header == "TRT-8601-MinMaxCalibration"
    # The input is pixels / 255 through the manifest's preprocessing: its range is [0, 1].
    assert cache.amax("images") == pytest.approx(1.0, abs=1e-3)
    assert set(cache.scales) == set(result.amax)


def test_bad_options_are_named(blob_onnx, calib_images, tmp_path):
    manifest = Detector.open(blob_onnx).manifest
    with pytest.raises(JetkitError, match="--runtime 'gpu'"):
        quantize_int8(blob_onnx, manifest, calib_images, tmp_path / "q.onnx", runtime="gpu")
    with pytest.raises(JetkitError, match="--exclude nope"):
        quantize_int8(blob_onnx, manifest, calib_images, tmp_path / "q.onnx", exclude=["nope"])
    assert not (tmp_path / "q.onnx").exists()
