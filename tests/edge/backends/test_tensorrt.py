"""TensorRTBackend: the error without TensorRT (here), and a real engine against ONNX Runtime
(`jetson`-marked: runs with `make test-jetson` where TensorRT and CUDA are installed)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from edge.backends.tensorrt import TensorRTBackend
from edge.backends.trt_versions import api_for_version
from edge.errors import JetkitError

INPUT_CHW = (3, 8, 8)
MAX_BATCH = 4


def _tensorrt_runs_here() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    import tensorrt

    return hasattr(tensorrt, "Runtime")


@pytest.mark.skipif(_tensorrt_runs_here(), reason="TensorRT is installed here")
def test_open_without_tensorrt_says_so_and_names_the_alternatives() -> None:
    with pytest.raises(JetkitError) as error:
        TensorRTBackend("x.engine")
    message = str(error.value)
    assert message.startswith("TensorRT is not installed here")
    assert "onnxruntime backend" in message and "JetPack" in message


def _tiny_detector_onnx(dynamic_batch: bool) -> bytes:
    """images [B,3,8,8] → scores [B,2,8,8] (1x1 conv + sigmoid) and pooled [B,2] (mean)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    batch: int | str = "batch" if dynamic_batch else 1
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(2, 3, 1, 1)).astype(np.float32)
    bias = np.array([0.1, -0.2], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["images", "w", "b"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["scores"]),
            helper.make_node("ReduceMean", ["scores"], ["pooled"], axes=[2, 3], keepdims=0),
        ],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, *INPUT_CHW])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 2, 8, 8]),
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [batch, 2]),
        ],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by the ONNX parsers of TensorRT 8.5 and ONNX Runtime alike
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _build_engine(onnx_bytes: bytes, dynamic_batch: bool) -> bytes:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0  # TensorRT 10 networks are always explicit-batch
    if api_for_version(trt.__version__) == "bindings":
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_bytes), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)  # compare FP32 with FP32
    if dynamic_batch:
        profile = builder.create_optimization_profile()
        profile.set_shape("images", (1, *INPUT_CHW), (2, *INPUT_CHW), (MAX_BATCH, *INPUT_CHW))
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert plan is not None, "TensorRT could not build the test engine"
    return bytes(plan)


def _onnxruntime_outputs(onnx_bytes: bytes, images: np.ndarray) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return list(session.run(["scores", "pooled"], {"images": images}))


@pytest.mark.jetson
@pytest.mark.parametrize("ultralytics_header", [False, True])
def test_dynamic_engine_matches_onnxruntime(tmp_path: Path, ultralytics_header: bool) -> None:
    onnx_bytes = _tiny_detector_onnx(dynamic_batch=True)
    plan = _build_engine(onnx_bytes, dynamic_batch=True)
    header = b""
    if ultralytics_header:
        meta = json.dumps({"names": {"0": "a", "1": "b"}, "imgsz": [8, 8], "task": "detect"})
        header = len(meta).to_bytes(4, byteorder="little", signed=True) + meta.encode()
    engine_path = tmp_path / "tiny.engine"
    engine_path.write_bytes(header + plan)

    backend = TensorRTBackend(engine_path)
    try:
        assert [s.name for s in backend.inputs] == ["images"]
        assert [s.name for s in backend.outputs] == ["scores", "pooled"]
        assert backend.inputs[0].shape == (None, *INPUT_CHW)
        assert backend.outputs[1].shape == (None, 2)
        assert backend.metadata.get("names") == ("{0: 'a', 1: 'b'}" if ultralytics_header else None)

        rng = np.random.default_rng(1)
        for batch in (1, 3, MAX_BATCH, 2):
            images = rng.random((batch, *INPUT_CHW), dtype=np.float32)
            got = backend.infer([images])
            expected = _onnxruntime_outputs(onnx_bytes, images)
            for out, ref in zip(got, expected, strict=True):
                assert out.shape == ref.shape and out.dtype == np.float32
                np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
            assert set(backend.last_stages_ms) == {"h2d", "compute", "d2h"}
            assert all(ms >= 0 for ms in backend.last_stages_ms.values())

        first = backend.infer([np.ones((1, *INPUT_CHW), np.float32)])[0]
        snapshot = first.copy()
        second = backend.infer([np.zeros((1, *INPUT_CHW), np.float32)])[0]
        assert not np.array_equal(second, snapshot)
        assert np.array_equal(first, snapshot)  # outputs are copies, not views of reused buffers

        with pytest.raises(JetkitError, match=f"profile maximum {MAX_BATCH}.*--max-batch"):
            backend.infer([np.zeros((MAX_BATCH + 1, *INPUT_CHW), np.float32)])

        facts = backend.describe()
        assert facts["backend"] == "tensorrt"
        assert facts["batch_range"] == (1, MAX_BATCH)
        assert facts["ultralytics_header"] is ultralytics_header
        assert str(facts["compute_capability"]).count(".") == 1
    finally:
        backend.close()
    backend.close()  # closing twice is harmless


@pytest.mark.jetson
def test_static_engine_matches_onnxruntime(tmp_path: Path) -> None:
    onnx_bytes = _tiny_detector_onnx(dynamic_batch=False)
    engine_path = tmp_path / "static.plan"
    engine_path.write_bytes(_build_engine(onnx_bytes, dynamic_batch=False))
    images = np.random.default_rng(2).random((1, *INPUT_CHW), dtype=np.float32)

    backend = TensorRTBackend(engine_path)
    try:
        assert backend.inputs[0].shape == (1, *INPUT_CHW)
        got = backend.infer([images])
        for out, ref in zip(got, _onnxruntime_outputs(onnx_bytes, images), strict=True):
            np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
        with pytest.raises(JetkitError, match="fixed batch of 1, got 2"):
            backend.infer([np.zeros((2, *INPUT_CHW), np.float32)])
    finally:
        backend.close()


@pytest.mark.jetson
def test_a_corrupt_engine_asks_for_a_rebuild(tmp_path: Path) -> None:
    engine_path = tmp_path / "other-device.engine"
    engine_path.write_bytes(b"ftrt" + bytes(4096))
    with pytest.raises(
        JetkitError, match="built for another TensorRT version or GPU.*jetkit build"
    ):
        TensorRTBackend(engine_path)


@pytest.mark.jetson
def test_a_missing_engine_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(JetkitError, match=r"missing\.engine not found.*jetkit build"):
        TensorRTBackend(tmp_path / "missing.engine")
