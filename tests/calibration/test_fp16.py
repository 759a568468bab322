"""FP16 artifacts run in the edge runtime with float32 I/O and near-FP32 results."""

import json

import numpy as np
import onnx
import pytest

from calibration.fp16 import convert_fp16
from edge.detector import Detector
from edge.errors import JetkitError
from edge.models import file_sha256


def test_fp16_artifact_keeps_float32_io_and_the_detections(blob_onnx, scene_bgr, tmp_path):
    fp32 = Detector.open(blob_onnx)
    out = tmp_path / "blob-fp16.onnx"
    manifest = convert_fp16(blob_onnx, fp32.manifest, out)

    assert manifest.artifact.kind == "onnx-fp16" and manifest.artifact.precision == "fp16"
    assert manifest.artifact.sha256 == file_sha256(out)
    assert manifest.provenance["source"]["sha256"] == file_sha256(blob_onnx)
    sidecar = json.loads((tmp_path / "blob-fp16.json").read_text())
    assert sidecar["artifact"]["sha256"] == manifest.artifact.sha256
    model = onnx.load(out)
    elem = onnx.TensorProto.FLOAT
    assert model.graph.input[0].type.tensor_type.elem_type == elem
    assert model.graph.output[0].type.tensor_type.elem_type == elem
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)

    fp16 = Detector.open(out)
    a, b = fp32(scene_bgr), fp16(scene_bgr)
    assert a.names == b.names
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=2.0)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-2)


def test_only_fp32_models_are_converted(blob_onnx, tmp_path):
    fp32 = Detector.open(blob_onnx).manifest
    first = convert_fp16(blob_onnx, fp32, tmp_path / "a.onnx")
    with pytest.raises(JetkitError, match="already fp16"):
        convert_fp16(tmp_path / "a.onnx", first, tmp_path / "b.onnx")
    not_onnx = tmp_path / "x.onnx"
    not_onnx.write_bytes(b"not a model")
    with pytest.raises(JetkitError, match="is not an ONNX model"):
        convert_fp16(not_onnx, fp32, tmp_path / "c.onnx")
    assert not (tmp_path / "c.onnx").exists()


def test_weights_outside_float16_are_counted_in_one_line(blob_onnx, tmp_path):
    """The converter warns per clamped weight tensor; the artifact records how many values were
    clamped and the log says it once."""
    model = onnx.load(blob_onnx)
    weight = next(i for i in model.graph.initializer if i.dims and np.prod(i.dims) >= 3)
    values = onnx.numpy_helper.to_array(weight).copy()
    values.flat[:3] = [1e-9, -2e-9, 3e-9]  # below float16's smallest subnormal
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    tiny = tmp_path / "tiny.onnx"
    onnx.save(model, tiny)
    messages = []
    manifest = convert_fp16(
        tiny, Detector.open(blob_onnx).manifest, tmp_path / "tiny-fp16.onnx", log=messages.append
    )
    assert manifest.provenance["fp16"]["clamped_weight_values"] == 3
    assert messages == [
        "3 weight values outside float16's usable range were clamped "
        "(magnitudes below 1e-07 or above 10000)"
    ]
