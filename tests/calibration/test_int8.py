"""INT8 Q/DQ artifacts from real calibration images: the format per runtime, float decode, the
TensorRT cache from the same ranges, the manifest's calibration record, and auto-exclusion of
the nodes that quantize worst."""

import cv2
import numpy as np
import onnx
import pytest

from calibration.artifacts import name_unnamed_nodes
from calibration.data import CalibrationBatches, calibration_images
from calibration.int8 import quantize_int8, trt_cache_from
from calibration.islands import decode_tail
from calibration.ranges import Method, collect_histograms, ranges_for
from calibration.sensitivity import output_error
from calibration.trt_cache import format_cache, parse_cache
from calibration.trt_rules.graph import GraphView
from edge.backends.onnxruntime import load_session
from edge.detector import Detector
from edge.errors import JetkitError
from edge.manifest import OutputSpec
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


def test_the_tensorrt_layout_is_what_tensorrts_parser_takes(blob_onnx, calib_images, tmp_path):
    """Float biases (no INT32 DequantizeLinear), FP32 weights through Q/DQ per channel on axis 0
    (TensorRT 8.x rejects INT8 weight initializers), Q/DQ on the inputs of convolutions only."""
    manifest = Detector.open(blob_onnx).manifest
    result = quantize_int8(
        blob_onnx, manifest, calib_images, tmp_path / "q.onnx", runtime="tensorrt"
    )
    model = onnx.load(tmp_path / "q.onnx")
    inits = {i.name: i for i in model.graph.initializer}
    producers = {out: n for n in model.graph.node for out in n.output}
    dequantized = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert dequantized and all(n.input[0] not in inits for n in dequantized)  # nothing INT32/INT8
    in_float = set(result.excluded)
    for conv in (n for n in model.graph.node if n.op_type == "Conv" and n.name not in in_float):
        data, weight, bias = conv.input
        assert producers[data].op_type == producers[weight].op_type == "DequantizeLinear"
        quantize = producers[producers[weight].input[0]]
        assert inits[quantize.input[0]].data_type == onnx.TensorProto.FLOAT
        assert [a.i for a in quantize.attribute if a.name == "axis"] == [0]
        assert inits[bias].data_type == onnx.TensorProto.FLOAT
        assert all(
            c.op_type != "QuantizeLinear" for c in model.graph.node if conv.output[0] in c.input
        )


@pytest.mark.parametrize("method", ["entropy", "percentile:99.9", "minmax"])
def test_int8_model_detects_what_fp32_detects_and_keeps_the_decode_in_float(
    blob_onnx, calib_images, scene_bgr, tmp_path, method
):
    fp32 = Detector.open(blob_onnx)
    result = quantize_int8(
        blob_onnx, fp32.manifest, calib_images, tmp_path / "q.onnx", method=method
    )
    assert result.manifest.provenance["calibration"]["method"] == method
    quantized = onnx.load(tmp_path / "q.onnx")
    source = onnx.load(blob_onnx)
    name_unnamed_nodes(source)
    tail = {node.name for node in decode_tail(GraphView(source))}
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
    cache = parse_cache(format_cache(trt_cache_from(result, "8.6.1")))
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


def raw_outputs(model_path, batch_nchw):
    return load_session(model_path, providers=["CPUExecutionProvider"]).run(
        ["output0"], {"images": batch_nchw}
    )[0]


@pytest.mark.parametrize("runtime", ["tensorrt", "cpu"])
def test_auto_exclusion_keeps_the_most_sensitive_nodes_in_float(
    blob_onnx, calib_images, tmp_path, runtime
):
    manifest = Detector.open(blob_onnx).manifest
    plain = quantize_int8(blob_onnx, manifest, calib_images, tmp_path / "q.onnx", runtime=runtime)
    messages = []
    auto = quantize_int8(
        blob_onnx,
        manifest,
        calib_images,
        tmp_path / "auto.onnx",
        runtime=runtime,
        auto_exclude=2,
        log=messages.append,
    )
    found = auto.auto_exclusion
    # How many nodes still help after the first depends on the CPU's arithmetic: at least the
    # most sensitive one, at most the two asked for.
    assert found is not None and 1 <= len(found.nodes) <= 2
    assert auto.excluded == (*plain.excluded, *found.nodes)
    calibration = auto.manifest.provenance["calibration"]
    assert calibration["auto_excluded"] == list(found.nodes)
    assert calibration["excluded_nodes"] == list(auto.excluded)
    ranking = calibration["sensitivity"]["ranking"]
    assert ranking[0]["op"] == "Conv" and ranking[0]["error_reduction"] > 0
    # The most sensitive node always helps alone; the others were kept only where they helped.
    assert found.nodes[0] == ranking[0]["node"]
    helpful = [s.node for s in found.ranking if s.error_reduction > 0]
    assert list(found.nodes) == [node for node in helpful if node in found.nodes]  # in rank order
    assert found.error_after < found.error_before
    assert f"auto-excluded {len(found.nodes)} node(s)" in messages[-1]

    model = onnx.load(tmp_path / "auto.onnx")
    onnx.checker.check_model(model)
    quantized_inputs = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    for node in model.graph.node:
        if node.name in found.nodes:
            assert node.input[1] not in quantized_inputs  # the weights stayed float

    # Measured here, apart from the ranking's own figures, on the same images.
    batch_nchw = np.concatenate(list(CalibrationBatches(calib_images, manifest)))
    outputs_fp32 = raw_outputs(blob_onnx, batch_nchw)
    error_plain = output_error(outputs_fp32, raw_outputs(tmp_path / "q.onnx", batch_nchw), "yolov8")
    error_auto = output_error(
        outputs_fp32, raw_outputs(tmp_path / "auto.onnx", batch_nchw), "yolov8"
    )
    assert error_auto <= error_plain
    assert calibration["sensitivity"]["error_before"] == pytest.approx(error_plain, rel=1e-3)
    assert calibration["sensitivity"]["error_after"] == pytest.approx(error_auto, rel=1e-3)
    assert (
        plain.auto_exclusion is None
        and "auto_excluded" not in plain.manifest.provenance["calibration"]
    )


def test_auto_exclusion_needs_raw_outputs(blob_onnx, calib_images, tmp_path):
    manifest = Detector.open(blob_onnx).manifest
    end2end = manifest.replace(output=OutputSpec(format="end2end", names=("output0",)))
    with pytest.raises(JetkitError, match=r"--auto-exclude needs raw \(pre-NMS\) outputs"):
        quantize_int8(blob_onnx, end2end, calib_images, tmp_path / "q.onnx", auto_exclude=1)
    with pytest.raises(JetkitError, match="--auto-exclude must be >= 0"):
        quantize_int8(blob_onnx, manifest, calib_images, tmp_path / "q.onnx", auto_exclude=-1)
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile:99.99"])
def test_ranges_collected_in_chunks_match_one_pass(blob_onnx, calib_images, method):
    """Calibration holds a few images' activations at a time (memory stays bounded on a
    Jetson). Min-max ranges come out exactly as from one pass over all images; histogram ranges
    as closely as merged histograms allow (most equal, none far off)."""
    manifest = Detector.open(blob_onnx).manifest
    batches = CalibrationBatches(calib_images, manifest)
    ranges = {}
    for chunk_images in (2, len(calib_images)):
        histograms = collect_histograms(blob_onnx, batches, "images", chunk_images=chunk_images)
        ranges[chunk_images] = {
            name: np.asarray(pair, np.float64)
            for name, pair in ranges_for(histograms, Method.parse(method)).items()
        }
    chunked, one_pass = ranges[2], ranges[len(calib_images)]
    assert chunked.keys() == one_pass.keys() and len(one_pass) > 5
    relative = np.array(
        [
            np.max(np.abs(chunked[name] - values) / np.maximum(np.abs(values), 1e-6))
            for name, values in one_pass.items()
        ]
    )
    if method == "minmax":
        assert relative.max() == 0.0
    else:
        assert np.median(relative) < 0.01 and relative.max() < 0.3, relative
