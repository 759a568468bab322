"""Export: an ONNX model the edge runtime reads with its manifest, checked against torch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edge.detector import Detector
from edge.errors import JetkitError
from edge.manifest import load_manifest
from trainer.export import Parity, compare_outputs, export_checkpoint, export_proto
from trainer.model import SIZES, YOLOV8_REG_MAX, DetectionModel, ModelConfig


@pytest.fixture(scope="module")
def val_images(tiny_data):
    from edge.datasets import load_dataset

    return [sample.image_path for sample in load_dataset(tiny_data).val]


@pytest.fixture(scope="module")
def exported(tiny_run, val_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    return export_checkpoint(tiny_run.best_path, out, val_images, dynamic_batch=True, max_batch=4)


def test_export_writes_onnx_with_the_manifest_embedded_and_beside_it(exported, tiny_run):
    from edge.models import file_sha256

    manifest = load_manifest(exported.manifest_path)
    assert manifest.output.format == "yolov8" and manifest.input.shape == (4, 3, 96, 96)
    assert manifest.input.dynamic_batch and manifest.input.max_batch == 4
    assert manifest.classes == tuple(tiny_run.metrics["per_class"])
    assert manifest.artifact.sha256 == file_sha256(exported.onnx_path)
    assert manifest.provenance["checkpoint"] == str(tiny_run.best_path)
    proto = onnx.load(exported.onnx_path)
    assert any(p.key == "jetkit.manifest" for p in proto.metadata_props)
    assert [i.name for i in proto.graph.input] == ["images"]


def test_parity_with_torch_is_measured_on_real_images(exported):
    assert exported.parity.images == 4
    assert exported.parity.max_rel <= 1e-4
    assert exported.parity.max_abs_score < 1e-4


def test_the_edge_detector_runs_the_export_at_any_batch_up_to_the_maximum(exported, val_images):
    from edge.images import read_image

    detector = Detector.open(exported.onnx_path, conf=0.001)
    frames = [read_image(path) for path in val_images[:3]]
    batch = detector.detect_batch(frames)
    single = [detector(frame) for frame in frames]
    for a, b in zip(batch, single, strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)


def test_compare_outputs_reports_box_and_score_errors_separately():
    torch_out = np.zeros((1, 6, 10), dtype=np.float32)
    torch_out[0, :4] = 100
    ort_out = torch_out.copy()
    ort_out[0, 0, 3] += 0.5
    ort_out[0, 5, 2] += 0.01
    parity = compare_outputs(torch_out, ort_out)
    assert parity == Parity(
        images=1, max_abs_box_px=0.5, max_abs_score=pytest.approx(0.01), max_rel=0.005
    )
    assert not parity.passed(1e-4) and parity.passed(1e-2)


def test_a_failed_parity_check_writes_nothing(tiny_run, val_images, tmp_path):
    with pytest.raises(JetkitError, match="disagrees with torch"):
        export_checkpoint(tiny_run.best_path, tmp_path, val_images, tolerance=0.0)
    assert not list(tmp_path.glob("*model*"))


def test_the_export_converts_to_an_fp16_artifact_that_matches(exported, val_images, tmp_path):
    """The detector's neck upsamples with Resize, which the FP16 converter keeps in float32: the
    artifact must still load in ONNX Runtime and give the FP32 detections."""
    from calibration.fp16 import convert_fp16
    from edge.images import read_image

    out = tmp_path / "model-fp16.onnx"
    convert_fp16(exported.onnx_path, exported.manifest, out)
    frame = read_image(val_images[0])
    fp32 = Detector.open(exported.onnx_path, conf=0.001)(frame)
    fp16 = Detector.open(out, conf=0.001)(frame)
    assert len(fp32) and abs(len(fp16) - len(fp32)) <= max(2, len(fp32) // 10)
    assert trt_findings(out) == []


def trt_findings(path):
    """What TensorRT's rules say about `path` on every version jetkit targets."""
    from calibration.trt_rules.check import DEFAULT_VERSIONS, check_versions, load_onnx

    return check_versions(load_onnx(path), DEFAULT_VERSIONS)


def test_the_export_passes_tensorrts_rules_on_every_version(exported):
    assert trt_findings(exported.onnx_path) == []


@pytest.mark.parametrize("size", list(SIZES))
def test_every_size_exports_to_a_graph_tensorrt_builds_on_every_version(size, tmp_path):
    """The rules are structural, so an untrained network of each size shows what its export
    will be: `n` … `l` with their channel caps, and `t`."""
    model = DetectionModel(ModelConfig(num_classes=3, size=size)).eval()
    path = tmp_path / f"{size}.onnx"
    path.write_bytes(export_proto(model, (64, 64), True, 4, 17, path).SerializeToString())
    assert trt_findings(path) == []


def test_a_head_with_yolov8s_bins_decodes_in_the_graph_and_calibration_keeps_that_float(
    tmp_path,
):
    """`--reg-max 16`: the softmax over each side's bins and their fixed projection are in the
    exported graph (the output keeps the yolov8 layout), pass TensorRT's rules, and are found as
    a float island, as in Ultralytics' exports."""
    from calibration.islands import float_islands, island_counts
    from calibration.trt_rules.graph import GraphView

    model = DetectionModel(ModelConfig(num_classes=3, size="t", reg_max=YOLOV8_REG_MAX)).eval()
    path = tmp_path / "dfl.onnx"
    path.write_bytes(export_proto(model, (64, 64), True, 4, 17, path).SerializeToString())
    graph = onnx.load(str(path))
    assert any(node.op_type == "Softmax" for node in graph.graph.node)
    assert trt_findings(path) == []
    assert island_counts(float_islands(GraphView(graph))).get("dfl", 0) >= 2


@pytest.mark.parametrize("runtime", ["cpu", "tensorrt"])
def test_the_export_quantizes_to_a_valid_int8_model_close_to_fp32(
    exported, val_images, tmp_path, runtime
):
    """INT8 on a trained jetkit model (not only the hand-made blob detector): a valid Q/DQ
    model that ONNX Runtime runs, whose raw outputs on real images stay close to FP32."""
    from calibration.gate import output_drift
    from calibration.int8 import quantize_int8
    from edge.backends.onnxruntime import OnnxRuntimeBackend
    from edge.images import read_image
    from edge.preprocess import Preprocessor

    out = tmp_path / f"model-int8-{runtime}.onnx"
    quantize_int8(exported.onnx_path, exported.manifest, val_images[:8], out, runtime=runtime)
    onnx.checker.check_model(onnx.load(str(out)))
    if runtime == "tensorrt":
        # Every TensorRT rule, placement included: nothing to report on any version.
        assert trt_findings(out) == []
    manifest = exported.manifest
    preprocess = Preprocessor(manifest.preprocess, manifest.input.size_hw, max_batch=4)
    images, _ = preprocess([read_image(p) for p in val_images[8:12]])
    images = np.array(images)
    (fp32,) = OnnxRuntimeBackend(exported.onnx_path).infer([images])
    (int8,) = OnnxRuntimeBackend(out).infer([images])
    assert int8.shape == fp32.shape and int8.dtype == np.float32
    boxes, scores = slice(0, 4), slice(4, None)
    box_drift = output_drift(fp32[:, boxes], int8[:, boxes])
    score_drift = output_drift(fp32[:, scores], int8[:, scores])
    input_size = max(manifest.input.size_hw)
    assert box_drift.mean_abs < 0.005 * input_size, box_drift
    assert score_drift.cosine > 0.999, score_drift
