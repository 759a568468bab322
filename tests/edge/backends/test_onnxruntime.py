"""The ONNX Runtime backend on a real model the tests build."""

import numpy as np
import pytest

from edge.backends import open_backend
from edge.backends.onnxruntime import OnnxRuntimeBackend, choose_providers
from edge.errors import JetkitError


def test_provider_order_prefers_tensorrt_then_cuda_then_cpu():
    available = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert choose_providers(available) == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers(["AzureExecutionProvider", "CPUExecutionProvider"]) == [
        "CPUExecutionProvider"
    ]


def test_requested_providers_must_exist():
    assert choose_providers(["CPUExecutionProvider"], ["CPUExecutionProvider"]) == [
        "CPUExecutionProvider"
    ]
    with pytest.raises(JetkitError, match="CUDAExecutionProvider is not in this onnxruntime build"):
        choose_providers(["CPUExecutionProvider"], ["CUDAExecutionProvider"])


def test_specs_metadata_and_inference(blob_onnx):
    backend = open_backend(str(blob_onnx))
    assert isinstance(backend, OnnxRuntimeBackend)
    (image,) = backend.inputs
    assert image.name == "images" and image.shape == ("batch", 3, 320, 320) and image.is_dynamic
    assert backend.outputs[0].shape == ("batch", 7, 3 + 40 * 40)
    assert "jetkit.manifest" in backend.metadata
    batch = np.zeros((2, 3, 320, 320), np.float32)
    batch[1, 0, 10:20, 30:50] = 1.0  # a red patch in the second image
    (out,) = backend.infer([batch])
    assert out.shape == (2, 7, 1603)
    assert out[0, 4, 0] == 0.0 and out[1, 4, 0] == 1.0  # red score per image
    np.testing.assert_allclose(out[1, :4, 0], [40, 15, 20, 10])  # cx, cy, w, h of the patch
    assert backend.last_stages_ms["compute"] > 0
    assert backend.describe()["execution_provider"] == "CPUExecutionProvider"


def test_thread_count_reaches_the_session(blob_onnx):
    assert OnnxRuntimeBackend(blob_onnx, threads=1).describe()["intra_op_threads"] == 1


def test_missing_and_corrupt_files_are_named(tmp_path, blob_onnx):
    with pytest.raises(JetkitError, match="does not exist"):
        open_backend(str(tmp_path / "absent.onnx"))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(blob_onnx.read_bytes()[:500])
    with pytest.raises(JetkitError, match=r"truncated.onnx is not a valid ONNX model"):
        open_backend(str(truncated))
    text = tmp_path / "notes.onnx"
    text.write_text("hello")
    with pytest.raises(JetkitError, match="not a valid ONNX model"):
        open_backend(str(text))


def test_unknown_backend_is_refused(blob_onnx):
    with pytest.raises(JetkitError, match="unknown backend 'openvino'"):
        open_backend(str(blob_onnx), "openvino")


def test_spinning_can_be_turned_off_and_is_refused_for_engines(blob_onnx):
    assert OnnxRuntimeBackend(blob_onnx, spinning=False).describe()["intra_op_spinning"] is False
    with pytest.raises(JetkitError, match="--spinning applies to the onnxruntime backend only"):
        open_backend("model.engine", spinning=False)
